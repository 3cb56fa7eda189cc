"""Cache keys derived from what a step reads, and a small JSON store of completed steps.

A step of a run (one service, the valuation of one service, one zone table, the products) is
skipped when its *key* equals the key recorded after its last successful commit and every
file it wrote is still there, unchanged. Keys are built from cheap facts only, never by
hashing arrays, and from nothing kept by hand:

- each catalogue dataset the step reads (:func:`dataset_token`: its entry fields, declared
  ``checksum`` and file fingerprint; a reclass table's fingerprint);
- the reference tables the plan resolved (:func:`reference_tokens`: products.yaml, the
  standard profile, the *resolved* price table and its CPI, every parameter, class and
  land-cover table found through :mod:`ecoraster.resources`);
- the step's configuration (inputs, params, method, grid, chunk, profile, year, price year);
- the code: ``ecoraster.__version__`` and the sha256 of every ``ecoraster`` module in the
  import closure of the module the step runs (:func:`import_closure`, read from the source,
  lazy imports inside functions included);
- the keys of the steps it consumes (valuation → service, zones → valuations, …).

The store is one JSON file per step under ``<workspace>/.cache/`` holding the key, the parts
it was made of (for debugging), the fingerprints of the outputs (paths relative to the
workspace) and a small JSON ``payload``. Records are written with a temporary file +
``os.replace``, only after the outputs were committed, so a killed run never leaves a
record pointing at missing or partial files.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .. import __version__

#: Bytes read at each end of a file for its fingerprint.
FINGERPRINT_EDGE = 1 << 20

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def file_fingerprint(path: str | os.PathLike) -> str:
    """A cheap identity of a file: ``size:mtime_ns:sha256(first MiB + last MiB)``.

    Reads at most 2 MiB whatever the file size. A change anywhere in a file changes its
    mtime (unless it is set back on purpose); a copy with the same content but another
    mtime gets another fingerprint, which only costs a recomputation. A folder
    (e.g. a Zarr store) is fingerprinted by the sorted names, sizes and mtimes of its files.
    """
    p = Path(path)
    if p.is_dir():
        h = hashlib.sha256()
        for f in sorted(x for x in p.rglob("*") if x.is_file()):
            st = f.stat()
            h.update(f"{f.relative_to(p).as_posix()}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        return f"dir:{h.hexdigest()}"
    st = p.stat()
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        h.update(fh.read(FINGERPRINT_EDGE))
        if st.st_size > 2 * FINGERPRINT_EDGE:
            fh.seek(-FINGERPRINT_EDGE, os.SEEK_END)
            h.update(fh.read(FINGERPRINT_EDGE))
        elif st.st_size > FINGERPRINT_EDGE:
            h.update(fh.read())
    return f"{st.st_size}:{st.st_mtime_ns}:{h.hexdigest()}"


def dataset_token(entry) -> dict[str, Any]:
    """What a step's key records about one catalogue dataset (a ``DatasetEntry``).

    Every field of the entry (uri, declared checksum, band, crs, nodata, resampling, reclass …;
    not the free-text ones) and the local file's fingerprint; for a shapefile the ``.dbf``,
    ``.prj`` and ``.shx`` sidecars too; for a ``reclass`` table, that table's fingerprint.
    Remote URIs contribute their entry fields only.
    """
    token: dict[str, Any] = entry.model_dump(mode="json", exclude_none=True,
                                             exclude={"description", "license", "source", "valid_years"})
    reclass = getattr(entry, "reclass", None)
    if reclass:
        try:
            from ..ingest.landcover import resolve_table_path

            token["reclass_table"] = file_fingerprint(resolve_table_path(reclass))
        except Exception as exc:  # an unknown table is reported by validation, not here
            token["reclass_table"] = f"unresolved: {exc}"
    if "://" in entry.uri:
        return token
    path = Path(entry.uri)
    token["fingerprint"] = file_fingerprint(path) if path.exists() else "missing"
    if path.suffix.lower() == ".shp":
        token["sidecars"] = {s: file_fingerprint(path.with_suffix(s))
                             for s in (".dbf", ".prj", ".shx") if path.with_suffix(s).exists()}
    return token


# -- code: the import closure of the module a step runs -------------------------------------------

def _module_name(path: Path, package_dir: Path) -> str:
    rel = path.relative_to(package_dir.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _module_file(name: str, package_dir: Path) -> Path | None:
    """``ecoraster.a.b`` → ``<package_dir>/a/b.py`` (or ``a/b/__init__.py``), None if absent."""
    parts = name.split(".")
    if parts[0] != package_dir.name:
        return None
    base = package_dir.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=1024)
def _imports_of(path: str, package_dir: str, stamp: tuple[int, int]) -> tuple[str, ...]:
    """Modules named by every ``import`` in a source file (top level and inside functions)."""
    pkg = Path(package_dir)
    src = Path(path)
    me = _module_name(src, pkg)
    is_pkg = src.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(src.read_text(encoding="utf-8"), filename=path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = me.split(".")
                anchor = anchor if is_pkg else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return tuple(sorted(n for n in found if n.split(".")[0] == pkg.name))


def import_closure(*modules: str, package_dir: Path | None = None) -> list[Path]:
    """Source files of ``modules`` and of every module of the package they import, directly or
    not (parent packages' ``__init__.py`` included), sorted."""
    pkg = package_dir or PACKAGE_DIR
    seen: dict[str, Path] = {}
    todo = list(modules)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__
            sub = ".".join(parts[:i])
            if sub in seen:
                continue
            path = _module_file(sub, pkg)
            if path is None:
                continue
            seen[sub] = path
            st = path.stat()
            todo.extend(_imports_of(str(path), str(pkg), (st.st_mtime_ns, st.st_size)))
    return sorted(set(seen.values()))


def code_hash(*modules: str, sources: Iterable[str] = (), package_dir: Path | None = None) -> str:
    """sha256 of ``ecoraster.__version__``, of every file in the import closure of ``modules``
    and of extra source texts (e.g. a stage function's own source)."""
    pkg = package_dir or PACKAGE_DIR
    h = hashlib.sha256(__version__.encode())
    for path in import_closure(*modules, package_dir=pkg):
        h.update(path.relative_to(pkg).as_posix().encode())
        h.update(path.read_bytes())
    for text in sources:
        h.update(text.encode())
    return h.hexdigest()


def function_source(fn: Any) -> str:
    """The source of a function (its qualified name when the source is unavailable)."""
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _outside_source(module: Any) -> Path | None:
    """The source file of a service defined outside the package (a plug-in, a test double)."""
    for obj in (module, getattr(module, "compute", None)):
        try:
            path = inspect.getsourcefile(obj) if obj is not None else None
        except TypeError:
            path = None
        if path:
            return Path(path)
    return None


def _package_imports(path: Path, package: str) -> list[str]:
    """Absolute imports of ``package`` modules in a file outside it."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
    return [n for n in found if n.split(".")[0] == package]


def module_code_hash(module: Any, *also: str, package_dir: Path | None = None) -> str:
    """Code hash of a service module (plus modules ``also``). A module outside the package
    (a plug-in, a test double) contributes its own source file and the import closure of the
    package modules it imports."""
    pkg = package_dir or PACKAGE_DIR
    name = getattr(module, "__name__", "")
    roots = [*also]
    sources: list[str] = []
    if name.split(".")[0] == pkg.name:
        roots.append(name)
    elif (path := _outside_source(module)) is not None:
        sources.append(path.read_text(encoding="utf-8"))
        roots += _package_imports(path, pkg.name)
    else:
        sources.extend(function_source(getattr(module, f, None)) for f in ("validate", "compute"))
    return code_hash(*roots, sources=sources, package_dir=pkg)


# -- data: the reference tables the plan resolved ------------------------------------------------

def reference_tokens(files: Mapping[str, str | os.PathLike]) -> dict[str, str]:
    """Fingerprint of every resolved reference table (``{name: fingerprint}``; ``missing`` if gone)."""
    return {name: (file_fingerprint(p) if Path(p).exists() else "missing") for name, p in sorted(files.items())}

def make_key(parts: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``parts`` (sorted keys; non-JSON values via ``str``)."""
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class CacheRecord:
    """A completed step: its key, its outputs' fingerprints (relative paths) and a payload."""

    name: str
    key: str
    outputs: dict[str, str] = field(default_factory=dict)
    payload: Any = None
    parts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "key": self.key, "outputs": self.outputs, "payload": self.payload,
                "parts": self.parts}


class CacheStore:
    """JSON records of completed steps under ``<workspace>/.cache/``."""

    def __init__(self, workspace: str | os.PathLike):
        self.workspace = Path(workspace).resolve()
        self.folder = self.workspace / ".cache"

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def get(self, name: str) -> CacheRecord | None:
        """The record of step ``name``, or None (also when the file is unreadable)."""
        path = self._path(name)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return CacheRecord(name=raw["name"], key=raw["key"], outputs=dict(raw.get("outputs", {})),
                               payload=raw.get("payload"), parts=dict(raw.get("parts", {})))
        except (OSError, ValueError, KeyError):
            return None

    def lookup(self, name: str, key: str) -> CacheRecord | None:
        """The record if its key equals ``key`` and every recorded output still exists with
        the recorded fingerprint; otherwise None (the step must run)."""
        rec = self.get(name)
        if rec is None or rec.key != key:
            return None
        for rel, fp in rec.outputs.items():
            path = self.workspace / rel
            if not path.exists() or file_fingerprint(path) != fp:
                return None
        return rec

    def put(self, name: str, key: str, outputs: Iterable[str | os.PathLike], payload: Any = None,
            parts: Mapping[str, Any] | None = None) -> CacheRecord:
        """Record step ``name`` as done; ``outputs`` are files inside the workspace."""
        fps = {}
        for out in outputs:
            p = Path(out)
            p = p if p.is_absolute() else self.workspace / p
            fps[p.resolve().relative_to(self.workspace).as_posix()] = file_fingerprint(p)
        rec = CacheRecord(name=name, key=key, outputs=fps, payload=payload, parts=dict(parts or {}))
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self._path(name).with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(rec.to_dict(), ensure_ascii=False, indent=1, default=str), encoding="utf-8")
        os.replace(tmp, self._path(name))
        return rec

    def drop(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.json")) if self.folder.is_dir() else []


# -- the keys of a run's steps --------------------------------------------------------------------

def _input_token(plan, value: Any) -> Any:
    if isinstance(value, str) and value in plan.catalog:
        return dataset_token(plan.catalog.get(value))
    return value


def _valuation_tokens(plan) -> dict[str, Any]:
    """The valuation set-up as resolved: price table and CPI by fingerprint, price year, profile."""
    files = {k: plan.reference_files[k] for k in ("price_table", "cpi", "profile", "products")
             if k in plan.reference_files}
    setup = plan.valuation
    return {"files": reference_tokens(files),
            "price_year": setup.price_year if setup else None,
            "price_table": setup.table.id if setup else None,
            "error": plan.valuation_error}


def service_key(plan, service_id: str) -> tuple[str, dict[str, Any]]:
    """Key of one service: its inputs, params, method, grid, chunk, profile, year, every
    reference table (parameters, classes, land-cover tables, profile, products, CPI) and the
    code of the service module's import closure."""
    from ..registry import get_service

    run = plan.config.services[service_id]
    # the valuation set-up (price table and its CPI) is the valuation step's, not the service's
    tables = {k: v for k, v in plan.reference_files.items() if k not in ("price_table", "cpi")}
    parts = {
        "service": service_id,
        "inputs": {k: _input_token(plan, v) for k, v in sorted(run.inputs.items())},
        "params": run.params, "method": run.method,
        "grid": plan.grid.to_dict(), "chunk": plan.config.chunk,
        "profile": plan.config.profile, "year": plan.config.year,
        "reference_tables": reference_tokens(tables),
        "code": module_code_hash(get_service(service_id), "ecoraster.context"),
    }
    return make_key(parts), parts


def value_key(plan, service_id: str, service_key_: str) -> tuple[str, dict[str, Any]]:
    """Key of the valuation of one service: the service key, the resolved price table, CPI,
    profile, products and price year, and the code of the valuation stage."""
    parts = {"service_key": service_key_, "service": service_id, "valuation": _valuation_tokens(plan),
             "grid": plan.grid.to_dict(), "chunk": plan.config.chunk, "year": plan.config.year,
             "code": code_hash("ecoraster.accounting.valuation")}
    return make_key(parts), parts


def zonal_key(plan, name: str, value_keys: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
    """Key of one zone table: the zone set, its dataset, the valuations it sums, the grid, code."""
    zs = plan.config.zones[name]
    parts = {"zone_set": name, "config": zs.model_dump(), "dataset": dataset_token(plan.catalog.get(zs.dataset)),
             "values": dict(sorted(value_keys.items())), "grid": plan.grid.to_dict(),
             "code": code_hash("ecoraster.zonal")}
    return make_key(parts), parts


def products_key(plan, value_keys: Mapping[str, str], zonal_keys: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
    """Key of the products: valuations, zone tables, the config, the valuation set-up, code."""
    cfg = plan.config.model_dump(mode="json", exclude={"source_path", "dask", "catalog", "extra_catalogs"})
    parts = {"values": dict(sorted(value_keys.items())), "zonal": dict(sorted(zonal_keys.items())),
             "config": cfg, "valuation": _valuation_tokens(plan),
             "code": code_hash("ecoraster.accounting.gep_tables", "ecoraster.accounting.stac")}
    return make_key(parts), parts


@dataclass
class RunKeys:
    """Every step's key of a run, derived from the plan before anything runs."""

    service: dict[str, str] = field(default_factory=dict)
    value: dict[str, str] = field(default_factory=dict)
    zonal: dict[str, str] = field(default_factory=dict)
    products: str = ""
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def names(self) -> dict[str, str]:
        """``{step name: key}``, step names as in the store (``service.<id>``, ``value.<id>`` …)."""
        out = {f"service.{k}": v for k, v in self.service.items()}
        out.update({f"value.{k}": v for k, v in self.value.items()})
        out.update({f"zonal.{k}": v for k, v in self.zonal.items()})
        out["products"] = self.products
        return out


def run_keys(plan, services: list[str]) -> RunKeys:
    """The keys of every step of a run of ``services``."""
    keys = RunKeys()
    for sid in services:
        keys.service[sid], keys.parts[f"service.{sid}"] = service_key(plan, sid)
        keys.value[sid], keys.parts[f"value.{sid}"] = value_key(plan, sid, keys.service[sid])
    value_names = {f"value.{k}": v for k, v in keys.value.items()}
    for name in plan.config.zones:
        keys.zonal[name], keys.parts[f"zonal.{name}"] = zonal_key(plan, name, value_names)
    keys.products, keys.parts["products"] = products_key(
        plan, value_names, {f"zonal.{k}": v for k, v in keys.zonal.items()})
    return keys
