"""Cheap cache keys for re-runs, and a small JSON store of completed steps in the workspace.

A step of a run (one service, the valuation of one service, one zone table, the products) is
skipped when its *key* equals the key recorded after its last successful commit and every
file it wrote is still there, unchanged. Keys are built from cheap facts only, never by
hashing arrays:

- each catalogue dataset the step reads: its declared ``checksum`` (if any) **and** a file
  fingerprint (:func:`file_fingerprint`: size + mtime + sha256 of the first and last MiB);
- the step's configuration (inputs, params, method, grid, chunk, profile, year, prices);
- the code: ``ecoraster.__version__`` and the sha256 of the source files the step runs
  (:func:`code_hash`);
- the keys of the steps it consumes (valuation → service, zones → valuations, …).

The store is one JSON file per step under ``<workspace>/.cache/`` (``service.carbon_storage.json``,
``value.carbon_storage.json``, ``zonal.districts.json``, ``products.json``) holding the key,
the parts it was made of (for debugging), the fingerprints of the outputs (paths relative
to the workspace) and a small JSON ``payload`` (e.g. the path of the step's result file).
Records are written with a temporary file + ``os.replace``, only after the outputs were
committed, so a killed run never leaves a record pointing at missing or partial files.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import __version__

#: Bytes read at each end of a file for its fingerprint.
FINGERPRINT_EDGE = 1 << 20

PACKAGE_DIR = Path(__file__).resolve().parent

#: Source files every service's computation runs through (besides its own module and the
#: kernels). ``run.py`` is left out on purpose: its stage functions only move files around.
SERVICE_CODE = ("engine.py", "grid.py", "context.py", "io/raster.py", "tables.py", "spec.py", "datasets.py", "prices.py", "standards.py", "resources.py",
                "ingest")
VALUATION_CODE = ("accounting/valuation.py", "prices.py", "standards.py")
ZONAL_CODE = ("zonal",)
PRODUCTS_CODE = ("accounting",)


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
            from .ingest.landcover import resolve_table_path

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


@lru_cache(maxsize=64)
def _files_hash(paths: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.encode())
        h.update(Path(p).read_bytes())
    return h.hexdigest()


def code_hash(*relative: str | os.PathLike, extra: Iterable[str | os.PathLike] = ()) -> str:
    """sha256 of ecoraster source files (paths relative to the package; a folder means every
    ``.py`` under it), of any ``extra`` absolute files, and of ``ecoraster.__version__``."""
    files: list[Path] = []
    for rel in relative:
        p = PACKAGE_DIR / rel
        files.extend(sorted(p.rglob("*.py")) if p.is_dir() else [p])
    files.extend(Path(e) for e in extra)
    existing = tuple(str(f) for f in files if f.is_file())
    return hashlib.sha256(f"{__version__}:{_files_hash(existing)}".encode()).hexdigest()


def service_code_hash(module) -> str:
    """Code hash of a service: its module, the private helpers of ``ecoraster/services``,
    every kernel in ``ecoraster/kernels`` and the shared machinery in :data:`SERVICE_CODE`."""
    own = Path(module.__file__)
    helpers = sorted((PACKAGE_DIR / "services").glob("_*.py"))
    return code_hash("kernels", *SERVICE_CODE, extra=[own, *helpers])


def folder_hash(folder: str | os.PathLike) -> str:
    """Fingerprint of every file under ``folder`` (e.g. ``configs/parameters``), or ``absent``."""
    p = Path(folder)
    return file_fingerprint(p) if p.is_dir() else "absent"


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
