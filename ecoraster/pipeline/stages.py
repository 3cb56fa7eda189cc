"""The stages of a run, each one function with typed inputs and a typed outcome.

``prepare`` → ``verify_inputs`` → ``run_service`` (per service) → ``value_service`` (per
service) → ``aggregate_zones`` (per zone set) → ``build_products`` → ``finish``.

Every stage writes into the run's staging folder only, and only its own files: the service
stage ``<service>/result.json`` and its COGs, the valuation stage ``<service>/valued.json``
and the ``*_value.tif`` COGs, the zone stage ``zonal/<zone set>.*``, the products stage
``products/…``, ``finish`` the manifest ``run.json`` and ``valuation.json``. No stage
rewrites a file an earlier stage wrote; stages hand over in-memory outcomes. A stage whose
key (:mod:`.cache`) matches its record returns the recorded outcome without computing.

The order is kept by :func:`ecoraster.pipeline.runner.run`; the Prefect tasks of ``flows/``
call these functions one each.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import __version__
from ..accounting.valuation import Valued, valuation_report
from ..config import RunPlan
from ..context import ServiceContext
from ..datasets import file_sha256
from ..errors import EcorasterError, ValidationFailed
from ..provenance import relative_to_workspace, software_provenance
from ..registry import get_service
from ..spec import Issue, ServiceResult
from .cache import CacheStore, RunKeys, file_fingerprint, run_keys
from .verify import MEMO, dataset_issues, used_datasets, year_issues
from .workspace import Workspace

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int], None]


# -- outcomes -------------------------------------------------------------------------------------

@dataclass
class StageOutcome:
    """What every stage reports: its step name, key, whether it computed, the files it wrote
    (staging paths until the commit) and how long it took."""

    name: str
    key: str
    computed: bool
    outputs: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "key": self.key, "computed": self.computed, "seconds": round(self.seconds, 3),
                "outputs": [str(p) for p in self.outputs]}


@dataclass
class ServiceOutcome(StageOutcome):
    """One service's physical outputs."""

    service: str = ""
    result: ServiceResult | None = None


@dataclass
class ValuationOutcome(StageOutcome):
    """One service's value outputs, and the service's result with them added (in memory)."""

    service: str = ""
    valued: Valued | None = None
    result: ServiceResult | None = None


@dataclass
class ZonalOutcome(StageOutcome):
    """One zone set's table (CSV; Parquet and mass balance beside it)."""

    zone_set: str = ""
    table: Path | None = None


@dataclass
class ProductsOutcome(StageOutcome):
    """The run's products by name (catalogue, zone GEP tables, report, STAC)."""

    products: dict[str, Path] = field(default_factory=dict)


@dataclass
class RunState:
    """What the stages of one run share: the resolved plan, the workspace, the staging folder,
    every step's key, and whether cached steps may be reused."""

    plan: RunPlan
    workspace: Workspace
    staging: Path
    services: list[str]
    keys: RunKeys
    reuse: bool = True
    checksums: bool = True
    #: hashes and decoded windows of the run's input files (:mod:`.verify`), ``.cache/verified.json``
    verified: dict[str, Any] = field(default_factory=dict)

    @property
    def store(self) -> CacheStore:
        return CacheStore(self.workspace.root)

    def cached(self, name: str, key: str):
        return self.store.lookup(name, key) if self.reuse else None


@dataclass
class RunResult:
    """Where a run put things and what it did (paths point into the workspace)."""

    workspace: Path
    manifest_path: Path
    services: dict[str, ServiceResult] = field(default_factory=dict)
    zonal_tables: dict[str, Path] = field(default_factory=dict)
    products: dict[str, Path] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    computed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    changed: bool = True
    outcomes: list[StageOutcome] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary (``eco … --json``, flow return values)."""
        return {"workspace": str(self.workspace), "manifest": str(self.manifest_path), "changed": self.changed,
                "computed": self.computed, "cached": self.cached,
                "timings_s": {k: round(v, 3) for k, v in self.timings.items()}}


# -- validation -----------------------------------------------------------------------------------

def service_context(plan: RunPlan, service_id: str, out_dir: Path, progress: ProgressFn | None) -> ServiceContext:
    run = plan.config.services[service_id]
    module = get_service(service_id)
    cb = (lambda done, total: progress(service_id, done, total)) if progress else None
    return ServiceContext(
        spec=module.SPEC, grid=plan.grid, catalog=plan.catalog, out_dir=out_dir,
        inputs=dict(run.inputs), params=dict(run.params), method=run.method,
        chunk=plan.config.chunk, progress=cb, year=plan.config.year, profile=plan.config.profile,
    )


def validate_plan(plan: RunPlan, services: list[str] | None = None,
                  memo: dict[str, Any] | None = None) -> list[Issue]:
    """Every problem of a resolved run, without computing anything. Never raises.

    ``memo``: hashes of input files already verified (:mod:`.verify`); updated in place."""
    from ..accounting.valuation import check_valuation

    chosen = plan.chosen(services)
    # checksums, valid_years; every block of every input raster under the grid lies in its file and decodes
    issues: list[Issue] = dataset_issues(plan, [s for s in chosen if s in plan.config.services], memo, decode=True)
    damaged = {i.keys[1] for i in issues if i.keys[:1] == ("datasets",)}  # reported once, above
    for sid in chosen:
        if sid not in plan.config.services:
            issues.append(Issue(("services", sid), "not configured in this run"))
            continue
        if damaged & {v for v in plan.config.services[sid].inputs.values() if isinstance(v, str)}:
            continue  # its checks would only read the damaged file again
        try:
            module = get_service(sid)
            ctx = service_context(plan, sid, Path("."), None)
            found = module.validate(ctx)
            issues.extend(found)
            if not found:  # units, ranges, coverage and tables of inputs that pass the basic checks
                from ..checks import check_service_inputs

                issues.extend(check_service_inputs(ctx))
        except EcorasterError as exc:
            issues.append(Issue(("services", sid), str(exc)))
        except Exception as exc:  # validation must report, never crash
            cause = f" ({exc.__cause__})" if exc.__cause__ else ""  # GDAL's reason behind a rasterio error
            issues.append(Issue(("services", sid), f"validation failed unexpectedly: {exc!r}{cause}"))
    for name in plan.config.zones:
        issues.extend(_validate_zones(plan, name))
    issues.extend(check_valuation(plan, [s for s in chosen if s in plan.config.services]))
    return issues


def _validate_zones(plan: RunPlan, name: str) -> list[Issue]:
    zs = plan.config.zones[name]
    keys = ("zones", name)
    try:
        entry = plan.catalog.get(zs.dataset, field=f"zones.{name}.dataset")
        if entry.kind != "vector":
            return [Issue(keys, f"{zs.dataset!r} is a {entry.kind}, expected a vector")]
        entry.check_exists()
        from ..checks import check_zone_set, zone_file_issue

        if (bad := zone_file_issue(name, entry)) is not None:
            return [bad]
        import pyogrio

        info = pyogrio.read_info(entry.uri, layer=entry.layer)
        fields = list(info["fields"])
        for f in [zs.id_field, zs.name_field]:
            if f and f not in fields:
                return [Issue((*keys, "id_field" if f == zs.id_field else "name_field"),
                              f"{entry.uri} has no field {f!r} (fields: {', '.join(fields)})")]
    except EcorasterError as exc:
        return [Issue(keys, str(exc))]
    except Exception as exc:
        return [Issue(keys, f"cannot read zones: {exc}")]
    return check_zone_set(plan, name, zs, entry)


# -- prepare / verify -----------------------------------------------------------------------------

def everything_cached(plan: RunPlan, workspace: Workspace, keys: RunKeys) -> bool:
    """True when every step's key matches its record and the manifest exists: the inputs,
    parameters and code are those of a committed (hence validated) run."""
    if not workspace.run_json().is_file():
        return False
    store = CacheStore(workspace.root)
    return all(store.lookup(name, key) is not None for name, key in keys.names().items())


def prepare(plan: RunPlan, workspace: str | Path | Workspace, *, services: list[str] | None = None,
            reuse: bool = True, checksums: bool = True, staging: Path | None = None) -> RunState:
    """Derive every step's key, validate the run (raise :class:`ValidationFailed` before any long
    work), remove staging folders of dead runs and open a staging folder (or use ``staging``).

    Validation (which may read every class raster once) is skipped when every step is cached
    (:func:`everything_cached`): nothing will be computed from inputs a committed run validated
    (the run's year is still checked against the inputs' ``valid_years``; :func:`verify_inputs`
    still checks every file)."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    memo = ws.read_memo(MEMO)
    chosen = plan.chosen(services)
    unknown = [s for s in chosen if s not in plan.config.services]
    issues = [Issue(("services", s), "not configured in this run") for s in unknown]
    if issues:
        raise ValidationFailed(issues)
    keys = run_keys(plan, chosen)
    if reuse and everything_cached(plan, ws, keys):
        issues = year_issues(plan, chosen)  # valid_years are not part of any step's key
    else:
        issues = validate_plan(plan, chosen, memo)
    if issues:
        raise ValidationFailed(issues)
    ws.root.mkdir(parents=True, exist_ok=True)
    if (finished := ws.recover()) is not None:
        log.warning("finished the interrupted commit of %s", finished)
    for folder in ws.remove_dead_staging():
        log.warning("removed the staging folder of a dead run: %s", folder)
    return RunState(plan=plan, workspace=ws, staging=staging or ws.new_staging(), services=chosen, keys=keys,
                    reuse=reuse, checksums=checksums, verified=memo)


def verify_inputs(state: RunState) -> dict[str, str]:
    """The files of the run, before any computation (:mod:`.verify`): declared checksums,
    ``valid_years``, and every block under the run grid of every input raster decodes.

    Hashes and decoded windows are kept in ``state.verified`` (the manifest takes each sha256
    from there) and remembered in ``<workspace>/.cache/verified.json`` by each file's
    fingerprint when the run commits (:func:`finish`), so an unchanged file is read once.
    Returns ``{dataset id: fingerprint}`` of the local files; raises :class:`ValidationFailed`
    listing every problem.
    """
    plan, memo = state.plan, state.verified
    issues = dataset_issues(plan, state.services, memo, decode=True, hash_all=state.checksums, years=False)
    if issues:
        raise ValidationFailed(issues)
    seen: dict[str, str] = {}
    for ds_id in used_datasets(plan, state.services):
        uri = plan.catalog.get(ds_id).uri
        if "://" not in uri and Path(uri).exists():
            seen[ds_id] = memo.get(uri, {}).get("fingerprint") or file_fingerprint(uri)
    return seen


# -- the computing stages -------------------------------------------------------------------------

def run_service(state: RunState, service_id: str, progress: ProgressFn | None = None) -> ServiceOutcome:
    """Compute one service into ``staging/<service>/`` and write its ``result.json`` there,
    unless its key matches its record (then the committed result is returned)."""
    ws, name, key = state.workspace, f"service.{service_id}", state.keys.service[service_id]
    rec = state.cached(name, key)
    if rec is not None:
        result = ServiceResult.from_dict(json.loads(ws.result_json(service_id).read_text(encoding="utf-8")))
        return ServiceOutcome(name, key, False, service=service_id, result=result)
    t0 = time.monotonic()
    log.info("service %s: computing on %r", service_id, state.plan.grid)
    ctx = service_context(state.plan, service_id, ws.service_dir(service_id, state.staging), progress)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    result = ctx.checked(get_service(service_id).compute(ctx))  # declared outputs written, no others
    path = ws.write_json(ws.result_json(service_id, state.staging), _final_result(state, result).to_dict())
    outputs = [Path(r.path) for r in result.outputs.values()] + [path]
    return ServiceOutcome(name, key, True, outputs, time.monotonic() - t0, service=service_id, result=result)


def value_service(state: RunState, service: ServiceOutcome, progress: ProgressFn | None = None) -> ValuationOutcome:
    """Value one service's physical outputs (``*_value.tif`` + ``<service>/valued.json``),
    unless its key matches its record. The service's own files are left as they are."""
    from ..accounting.valuation import value_service as value

    sid = service.service
    ws, name, key = state.workspace, f"value.{sid}", state.keys.value[sid]
    assert service.result is not None
    rec = None if service.computed else state.cached(name, key)
    if rec is not None:
        valued = Valued.from_dict(json.loads(ws.valued_json(sid).read_text(encoding="utf-8")))
        return ValuationOutcome(name, key, False, service=sid, valued=valued, result=valued.apply(service.result))
    t0 = time.monotonic()
    valued = value(state.plan, service.result, state.staging, progress=progress)
    path = ws.write_json(ws.valued_json(sid, state.staging),
                         valued.with_paths(lambda p: ws.final(p, state.staging)).to_dict())
    outputs = [Path(r.path) for r in valued.records.values()] + [path]
    return ValuationOutcome(name, key, True, outputs, time.monotonic() - t0, service=sid, valued=valued,
                            result=valued.apply(service.result))


def aggregate_zones(state: RunState, zone_set: str, values: list[ValuationOutcome]) -> ZonalOutcome:
    """Coverage-weighted sums of every per-pixel output over a zone set → CSV + Parquet (+ the
    mass balance), unless its key matches its record."""
    from ..accounting.gep_tables import read_zone_set
    from ..zonal import zonal_stats

    ws, name, key = state.workspace, f"zonal.{zone_set}", state.keys.zonal[zone_set]
    if state.cached(name, key) is not None:
        return ZonalOutcome(name, key, False, zone_set=zone_set, table=ws.zonal_csv(zone_set))
    t0 = time.monotonic()
    plan = state.plan
    zs = plan.config.zones[zone_set]
    zones = read_zone_set(plan, zone_set)
    rasters = {f"{v.service}.{oid}": rec.path for v in values if v.result
               for oid, rec in v.result.outputs.items() if rec.per == "pixel"}
    paths = set(rasters.values())
    table = zonal_stats(rasters, zones, zs.id_field, stats=("sum",))
    balance = {k: dataclasses.asdict(b) if dataclasses.is_dataclass(b) else dict(b)
               for k, b in table.attrs.pop("mass_balance", {}).items()}
    for b in balance.values():  # the raster as it will be named once committed
        if isinstance(b.get("raster"), str) and b["raster"] in paths:
            b["raster"] = str(ws.final(b["raster"], state.staging))
    table.attrs = {}
    table.columns = [c.removesuffix("_sum") for c in table.columns]
    if zs.name_field and zs.name_field != zs.id_field:
        table.insert(0, zs.name_field, zones.set_index(zs.id_field)[zs.name_field].reindex(table.index))
    csv = ws.zonal_csv(zone_set, state.staging)
    csv.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(csv, encoding="utf-8-sig")
    table.to_parquet(csv.with_suffix(".parquet"))
    ws.write_json(csv.with_suffix(".mass_balance.json"), balance)
    if zs.partition:
        for raster, mb in balance.items():
            level = logging.WARNING if abs(mb.get("rel_diff", 0.0)) > mb.get("tolerance", 1e-9) else logging.INFO
            log.log(level, "zones %s (partition) × %s: zones sum %.6g vs raster inside %.6g (rel diff %.2e)",
                    zone_set, raster, mb.get("zones_total", float("nan")), mb.get("inside_total", float("nan")),
                    mb.get("rel_diff", float("nan")))
    outputs = [csv, csv.with_suffix(".parquet"), csv.with_suffix(".mass_balance.json")]
    return ZonalOutcome(name, key, True, outputs, time.monotonic() - t0, zone_set=zone_set, table=csv)


def build_products(state: RunState, values: list[ValuationOutcome], zonal: list[ZonalOutcome]) -> ProductsOutcome:
    """The run's products (catalogue, zone GEP tables, STAC), unless its key matches its record."""
    from ..accounting.gep_tables import build_products as build

    ws, name, key = state.workspace, "products", state.keys.products
    rec = state.cached(name, key)
    if rec is not None:
        return ProductsOutcome(name, key, False,
                               products={k: ws.root / v for k, v in (rec.payload or {}).get("products", {}).items()})
    t0 = time.monotonic()
    results = {v.service: v.result for v in values if v.result is not None}
    tables = {z.zone_set: z.table for z in zonal if z.table is not None}

    def layout(p: Path) -> Path:  # where a file sits relative to the staging tree once committed
        return state.staging / ws.relative(p, state.staging)

    products = build(state.plan, results, tables, state.staging, layout=layout)
    staged = [Path(p) for p in products.values() if _inside(p, state.staging) and Path(p).exists()]
    return ProductsOutcome(name, key, True, staged, time.monotonic() - t0, products={k: Path(v) for k, v in products.items()})


# -- finish: manifest, commit, cache records ------------------------------------------------------

def _inside(path: str | Path, folder: Path) -> bool:
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
        return True
    except ValueError:
        return False


def _final_result(state: RunState, result: ServiceResult) -> ServiceResult:
    out = ServiceResult.from_dict(result.to_dict())
    for rec in out.outputs.values():
        rec.path = str(state.workspace.final(rec.path, state.staging))
    return out


def finish(state: RunState, outcomes: list[StageOutcome], *, extra_manifest: dict[str, Any] | None = None,
           seen_scenes: dict[str, str] | None = None) -> RunResult:
    """Write ``run.json`` and ``valuation.json``, move everything staged into the workspace (the
    manifest last), then record every step computed in this run in the cache.

    When nothing was computed or staged and a manifest exists, the staging folder is dropped
    and the existing manifest is kept untouched (``changed`` is False)."""
    ws, staging = state.workspace, state.staging
    computed = [o for o in outcomes if o.computed]
    staged_anything = any(p.is_file() for p in staging.rglob("*"))
    result = RunResult(workspace=ws.root, manifest_path=ws.run_json(),
                       computed=[o.name for o in computed], cached=[o.name for o in outcomes if not o.computed])
    for o in outcomes:
        result.timings[o.name] = o.seconds
        if isinstance(o, ValuationOutcome) and o.result is not None:
            result.services[o.service] = _final_result(state, o.result)
        elif isinstance(o, ZonalOutcome) and o.table is not None:
            result.zonal_tables[o.zone_set] = ws.final(o.table, staging)
        elif isinstance(o, ProductsOutcome):
            result.products = {k: ws.final(v, staging) for k, v in o.products.items()}
    if not computed and not staged_anything and ws.run_json().is_file():
        ws.write_memo(MEMO, state.verified)
        Workspace.discard(staging)
        result.changed = False
        result.outcomes = outcomes
        return result
    values = [o.valued for o in outcomes if isinstance(o, ValuationOutcome) and o.valued is not None]
    report = valuation_report(state.plan.require_valuation(), values) if state.plan.valuation else {}
    ws.write_json(ws.valuation_json(staging), report)
    manifest = _manifest(state, result, outcomes, report)
    manifest.update(extra_manifest or {})
    # package version + git commit; paths inside the workspace relative to it (provenance.py)
    manifest = {"software_provenance": software_provenance(),
                **relative_to_workspace(manifest, staging, ws.root), "paths_relative_to": "workspace"}
    ws.write_json(ws.run_json(staging), manifest)
    ws.commit(staging)
    ws.write_memo(MEMO, state.verified)  # hashes of the inputs of a committed run (a failed run leaves none)
    store = state.store
    for o in computed:
        outputs = [ws.final(p, staging) for p in o.outputs if _inside(p, staging)]
        store.put(o.name, o.key, outputs, payload=_payload(state, o), parts=state.keys.parts.get(o.name, {}))
    if seen_scenes:
        seen = ws.read_memo("scenes_seen.json")
        seen.update(seen_scenes)
        ws.write_memo("scenes_seen.json", seen)
    result.outcomes = outcomes
    return result


def _payload(state: RunState, o: StageOutcome) -> dict[str, Any]:
    if isinstance(o, ProductsOutcome):
        return {"products": {k: state.workspace.relative(v, state.staging) for k, v in o.products.items()
                             if _inside(state.workspace.final(v, state.staging), state.workspace.root)}}
    return {}


def _inputs_used(plan: RunPlan, services: list[str], checksums: bool,
                 verified: dict[str, Any] | None = None) -> dict[str, Any]:
    """Catalogue entry of every input, with the file's sha256 (``checksums``; from the hashes
    :func:`verify_inputs` took, when it did)."""
    used: dict[str, Any] = {}
    for ds_id in used_datasets(plan, services):
        entry = plan.catalog.get(ds_id)
        info = entry.model_dump(exclude_none=True)
        if checksums and "://" not in entry.uri and Path(entry.uri).is_file():
            known = (verified or {}).get(entry.uri, {}).get("sha256")
            info["sha256"] = known.removeprefix("sha256:") if known else file_sha256(entry.uri)
        used[ds_id] = info
    return used


def _reference_tables(plan: RunPlan, checksums: bool) -> dict[str, Any]:
    """The reference tables the run resolved (path, and sha256 when ``checksums``)."""
    from ..standards import products_version

    out: dict[str, Any] = {}
    for name, path in plan.reference_files.items():
        info: dict[str, Any] = {"path": str(path)}
        if checksums and path.is_file():
            info["sha256"] = file_sha256(path)
        out[name] = info
    if "products" in out:
        out["products"]["version"] = products_version(plan.reference_files["products"])
    if plan.profile is not None:
        out.setdefault("profile", {})["id"] = plan.profile.id
    return out


def stand_in_inputs(plan: RunPlan, services: list[str]) -> dict[str, str]:
    """Inputs of the run that stand in for observations: datasets whose catalogue entry declares
    ``options.stand_in`` (why it is not the real thing), and scalar inputs given in the config."""
    out: dict[str, str] = {}
    for sid in services:
        for iid, value in plan.config.services[sid].inputs.items():
            if isinstance(value, str) and value in plan.catalog:
                note = plan.catalog.get(value).options.get("stand_in")
                if note:
                    out[value] = str(note)
            elif isinstance(value, (int, float)):
                out[f"{sid}.{iid}"] = f"scalar {value} from the run config, uniform in space and time"
    for zs in plan.config.zones.values():
        if zs.dataset in plan.catalog and plan.catalog.get(zs.dataset).options.get("stand_in"):
            out[zs.dataset] = str(plan.catalog.get(zs.dataset).options["stand_in"])
    return out


def _manifest(state: RunState, result: RunResult, outcomes: list[StageOutcome], report: dict[str, Any]) -> dict[str, Any]:
    import importlib.metadata as md

    plan, ws, staging = state.plan, state.workspace, state.staging
    versions = {}
    for pkg in ("numpy", "numba", "dask", "rasterio", "xarray", "geopandas", "exactextract", "pydantic"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    config = plan.config.model_dump(mode="json")
    config["extra_catalogs"] = [str(ws.final(p, staging)) for p in config.get("extra_catalogs", [])]
    mass_balance = {}
    for name, csv in result.zonal_tables.items():
        here = next((p for p in (ws.zonal_csv(name, staging), Path(csv)) if p.with_suffix(".mass_balance.json").exists()),
                    None)
        if here is not None:
            mass_balance[name] = json.loads(here.with_suffix(".mass_balance.json").read_text(encoding="utf-8"))
    products_report = None
    for base in (staging, ws.root):
        path = ws.products_dir(base) / "products.json"
        if path.is_file():
            products_report = json.loads(path.read_text(encoding="utf-8"))
            break
    manifest: dict[str, Any] = {
        "ecoraster_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config,
        "grid": plan.grid.to_dict(),
        "services": state.services,
        "inputs": _inputs_used(plan, state.services, state.checksums, state.verified),
        "results": {sid: res.to_dict() for sid, res in result.services.items()},
        "zonal_tables": {k: str(v) for k, v in result.zonal_tables.items()},
        "mass_balance": mass_balance,
        "products": {k: str(v) for k, v in result.products.items()},
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
        "software": {"python": platform.python_version(), "platform": platform.platform(), **versions},
        "valuation": report,
        "parameter_tables": _reference_tables(plan, state.checksums),
        "steps": {o.name: {"key": o.key, "computed": o.computed, "seconds": round(o.seconds, 3)} for o in outcomes},
        "stand_in_inputs": stand_in_inputs(plan, state.services),
    }
    if products_report is not None:
        manifest["products_report"] = products_report
    return manifest
