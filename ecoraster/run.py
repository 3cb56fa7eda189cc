"""Run a whole configuration: validate everything first, compute every service into a
staging folder, aggregate to zones, write the manifest, then move the results into place.

A failed run removes its staging folder and leaves earlier results untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import platform
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dask

from . import __version__
from .datasets import Catalog, file_sha256
from .config import DaskConfig, RunConfig, build_grid
from .context import ServiceContext
from .errors import EcorasterError, ValidationFailed
from .grid import Grid
from .accounting.gep_tables import build_products, read_zone_set
from .checks import check_service_inputs, check_zone_set, zone_file_issue
from .registry import get_service
from .spec import Issue, ServiceResult
from .accounting.valuation import check_valuation, value_results

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int], None]


@dataclass
class RunPlan:
    """A loaded config with its catalogue and target grid."""

    config: RunConfig
    catalog: Catalog
    grid: Grid


@dataclass
class RunResult:
    """Where a run put things and what it found."""

    workspace: Path
    manifest_path: Path
    services: dict[str, ServiceResult] = field(default_factory=dict)
    zonal_tables: dict[str, Path] = field(default_factory=dict)
    products: dict[str, Path] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def load_plan(config: str | os.PathLike | RunConfig) -> RunPlan:
    """Load the config, its catalogue and build the target grid (raises on error)."""
    cfg = config if isinstance(config, RunConfig) else RunConfig.load(config)
    catalog = cfg.load_catalog()
    return RunPlan(cfg, catalog, build_grid(cfg, catalog))


def _context(plan: RunPlan, service_id: str, out_dir: Path, progress: ProgressFn | None) -> ServiceContext:
    run = plan.config.services[service_id]
    module = get_service(service_id)
    cb = (lambda done, total: progress(service_id, done, total)) if progress else None
    return ServiceContext(
        spec=module.SPEC, grid=plan.grid, catalog=plan.catalog, out_dir=out_dir,
        inputs=dict(run.inputs), params=dict(run.params), method=run.method,
        chunk=plan.config.chunk, progress=cb, year=plan.config.year, profile=plan.config.profile,
    )


def validate_run(config: str | os.PathLike | RunConfig, services: list[str] | None = None) -> list[Issue]:
    """Every problem of a run, without computing anything. Never raises."""
    try:
        plan = load_plan(config)
    except EcorasterError as exc:
        return [Issue(("config",), str(exc))]
    issues: list[Issue] = []
    chosen = services or list(plan.config.enabled_services())
    for sid in chosen:
        if sid not in plan.config.services:
            issues.append(Issue(("services", sid), "not configured in this run"))
            continue
        try:
            module = get_service(sid)
            ctx = _context(plan, sid, Path("."), None)
            found = module.validate(ctx)
            issues.extend(found)
            if not found:  # units, ranges, coverage and tables of inputs that pass the basic checks
                issues.extend(check_service_inputs(ctx))
        except EcorasterError as exc:
            issues.append(Issue(("services", sid), str(exc)))
        except Exception as exc:  # validation must report, never crash
            issues.append(Issue(("services", sid), f"validation failed unexpectedly: {exc!r}"))
    for name, zs in plan.config.zones.items():
        issues.extend(_validate_zones(plan, name, zs))
    issues.extend(check_valuation(plan, [s for s in chosen if s in plan.config.services]))
    return issues


def _validate_zones(plan: RunPlan, name: str, zs) -> list[Issue]:
    keys = ("zones", name)
    try:
        entry = plan.catalog.get(zs.dataset, field=f"zones.{name}.dataset")
        if entry.kind != "vector":
            return [Issue(keys, f"{zs.dataset!r} is a {entry.kind}, expected a vector")]
        entry.check_exists()
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


@contextlib.contextmanager
def dask_scheduler(cfg: DaskConfig) -> Iterator[None]:
    """Run dask on local threads (default), processes, or an existing distributed
    scheduler (``address`` or the ``DASK_SCHEDULER_ADDRESS`` environment variable)."""
    address = cfg.address or os.environ.get("DASK_SCHEDULER_ADDRESS")
    if cfg.scheduler == "distributed" or address:
        from distributed import Client

        with Client(address) if address else Client(n_workers=cfg.n_workers, dashboard_address=None) as client:
            log.info("dask: distributed scheduler %s", client.scheduler.address)
            yield
        return
    settings: dict[str, Any] = {"scheduler": cfg.scheduler}
    if cfg.n_workers:
        settings["num_workers"] = cfg.n_workers
    with dask.config.set(**settings):
        yield


def execute_run(
    config: str | os.PathLike | RunConfig,
    workspace: str | os.PathLike,
    *,
    services: list[str] | None = None,
    progress: ProgressFn | None = None,
    checksums: bool = True,
) -> RunResult:
    """Validate, compute every (chosen) service, value, aggregate to zones, build the
    products, write ``run.json``; then move everything into ``workspace``.

    Outputs land in ``workspace/<service>/…``, ``workspace/zonal/<zone set>.{csv,parquet}``,
    ``workspace/products/…`` and ``workspace/run.json``. Nothing is written if validation
    fails; a failure later on removes the staging folder and leaves earlier results in
    ``workspace`` untouched. The stages are public functions so flows can run them as tasks.
    """
    t_start = time.monotonic()
    issues = validate_run(config, services)
    if issues:
        raise ValidationFailed(issues)
    plan = load_plan(config)
    chosen = services or list(plan.config.enabled_services())
    workspace = Path(workspace).resolve()
    staging = new_staging(workspace)
    result = RunResult(workspace=workspace, manifest_path=workspace / "run.json")
    try:
        with dask_scheduler(plan.config.dask):
            for sid in chosen:
                t0 = time.monotonic()
                result.services[sid] = run_service(plan, sid, staging, progress)
                result.timings[sid] = time.monotonic() - t0
            t0 = time.monotonic()
            result.services = value_results(plan, result.services, staging)
            result.timings["valuation"] = time.monotonic() - t0
            for name in plan.config.zones:
                t0 = time.monotonic()
                result.zonal_tables[name] = aggregate_zones(plan, name, result.services, staging)
                result.timings[f"zonal:{name}"] = time.monotonic() - t0
            t0 = time.monotonic()
            result.products = build_products(plan, result.services, result.zonal_tables, staging)
            result.timings["products"] = time.monotonic() - t0
        result.timings["total"] = time.monotonic() - t_start
        write_manifest(plan, result, chosen, staging, checksums=checksums)
        commit_staging(staging, workspace)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _rebase_paths(result, staging, workspace)
    return result


def new_staging(workspace: Path) -> Path:
    """A fresh staging folder inside ``workspace`` (same filesystem: moves are atomic)."""
    workspace.mkdir(parents=True, exist_ok=True)
    staging = workspace / f".staging-{datetime.now().strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    staging.mkdir()
    return staging


def run_service(plan: RunPlan, service_id: str, staging: Path, progress: ProgressFn | None = None) -> ServiceResult:
    """Compute one service into ``staging/<service>/`` and save its ``result.json`` there."""
    log.info("service %s: computing on %r", service_id, plan.grid)
    ctx = _context(plan, service_id, staging / service_id, progress)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    res = ctx.checked(get_service(service_id).compute(ctx))  # every service: declared outputs written, no others
    (ctx.out_dir / "result.json").write_text(json.dumps(res.to_dict(), ensure_ascii=False, indent=2),
                                             encoding="utf-8")
    return res


def aggregate_zones(plan: RunPlan, name: str, services: dict[str, ServiceResult], staging: Path) -> Path:
    """Coverage-weighted sums of every per-pixel output over a zone set → CSV + Parquet."""
    from .zonal import zonal_stats

    zs = plan.config.zones[name]
    zones = read_zone_set(plan, name)
    rasters = {f"{sid}.{oid}": rec.path for sid, res in services.items()
               for oid, rec in res.outputs.items() if rec.per == "pixel"}
    table = zonal_stats(rasters, zones, zs.id_field, stats=("sum",))
    balance = {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v
               for k, v in table.attrs.pop("mass_balance", {}).items()}
    table.attrs = {}
    table.columns = [c.removesuffix("_sum") for c in table.columns]
    if zs.name_field and zs.name_field != zs.id_field:
        table.insert(0, zs.name_field, zones.set_index(zs.id_field)[zs.name_field].reindex(table.index))
    out = staging / "zonal"
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / f"{name}.csv", encoding="utf-8-sig")
    table.to_parquet(out / f"{name}.parquet")
    (out / f"{name}.mass_balance.json").write_text(json.dumps(balance, ensure_ascii=False, indent=2),
                                                   encoding="utf-8")
    if zs.partition:
        for raster, mb in balance.items():
            level = logging.WARNING if abs(mb.get("rel_diff", 0.0)) > mb.get("tolerance", 1e-9) else logging.INFO
            log.log(level, "zones %s (partition) × %s: zones sum %.6g vs raster inside %.6g (rel diff %.2e)",
                    name, raster, mb.get("zones_total", float("nan")), mb.get("inside_total", float("nan")),
                    mb.get("rel_diff", float("nan")))
    return out / f"{name}.csv"


def _inputs_used(plan: RunPlan, chosen: list[str], checksums: bool) -> dict[str, Any]:
    used: dict[str, Any] = {}
    ids = {str(v) for sid in chosen for v in plan.config.services[sid].inputs.values() if isinstance(v, str)}
    ids |= {zs.dataset for zs in plan.config.zones.values()}
    if plan.config.grid.like:
        ids.add(plan.config.grid.like)
    for ds_id in sorted(ids):
        entry = plan.catalog.get(ds_id)
        info = entry.model_dump(exclude_none=True)
        if checksums and "://" not in entry.uri and Path(entry.uri).is_file():
            info["sha256"] = file_sha256(entry.uri)
        used[ds_id] = info
    return used


def stand_in_inputs(plan: RunPlan, chosen: list[str]) -> dict[str, str]:
    """Inputs of the run that stand in for observations: datasets whose catalogue entry declares
    ``options.stand_in`` (why it is not the real thing), and scalar inputs given in the config."""
    out: dict[str, str] = {}
    for sid in chosen:
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


def write_manifest(plan: RunPlan, result: RunResult, chosen: list[str], staging: Path, *,
                   checksums: bool = True) -> Path:
    """Write ``run.json`` into ``staging``."""
    manifest = _manifest(plan, result, chosen, checksums)
    # stage reports of the valuation and products hooks (price table, price year, mass balance …)
    for key, name in (("valuation", "valuation.json"), ("products_report", "products/products.json")):
        if (staging / name).is_file():
            manifest[key] = json.loads((staging / name).read_text(encoding="utf-8"))
    manifest["parameter_tables"] = _parameter_versions(plan, checksums)
    manifest["stand_in_inputs"] = stand_in_inputs(plan, chosen)
    # package version + git commit; paths inside the workspace relative to it (provenance.py)
    from .provenance import relative_to_workspace, software_provenance

    manifest = {"software_provenance": software_provenance(),
                **relative_to_workspace(manifest, staging, result.workspace)}
    manifest["paths_relative_to"] = "workspace"
    path = staging / "run.json"
    path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def _parameter_versions(plan: RunPlan, checksums: bool) -> dict[str, Any]:
    """sha256 of the reference tables a run depends on: products, the profile, the price table
    and CPI, and every table input of the services (parameter tables)."""
    from .prices import resolve_price_table
    from .resources import config_path
    from .standards import load_profile, products_version

    out: dict[str, Any] = {"products": {"path": str(config_path("products.yaml")), "version": products_version()}}
    try:
        out["profile"] = {"id": plan.config.profile, "path": load_profile(plan.config.profile).source_path}
        out["prices"] = {"path": str(resolve_price_table(plan))}
    except EcorasterError as exc:
        out["error"] = str(exc)
    for sid, run in plan.config.services.items():
        for iid, ds in run.inputs.items():
            if isinstance(ds, str) and ds in plan.catalog and plan.catalog.get(ds).kind == "table":
                out[f"{sid}.{iid}"] = {"dataset": ds, "path": plan.catalog.get(ds).uri}
    if checksums:
        for info in out.values():
            if isinstance(info, dict) and info.get("path") and Path(info["path"]).is_file():
                info["sha256"] = file_sha256(info["path"])
    return out


def _manifest(plan: RunPlan, result: RunResult, chosen: list[str], checksums: bool) -> dict[str, Any]:
    import importlib.metadata as md

    versions = {}
    for pkg in ("numpy", "numba", "dask", "rasterio", "xarray", "geopandas", "exactextract", "pydantic"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return {
        "ecoraster_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": plan.config.model_dump(mode="json"),
        "grid": plan.grid.to_dict(),
        "services": chosen,
        "inputs": _inputs_used(plan, chosen, checksums),
        "results": {sid: res.to_dict() for sid, res in result.services.items()},
        "zonal_tables": {k: str(v) for k, v in result.zonal_tables.items()},
        "mass_balance": {k: json.loads(Path(v).with_suffix(".mass_balance.json").read_text(encoding="utf-8"))
                         for k, v in result.zonal_tables.items()
                         if Path(v).with_suffix(".mass_balance.json").exists()},
        "products": {k: str(v) for k, v in result.products.items()},
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
        "software": {"python": platform.python_version(), "platform": platform.platform(), **versions},
    }


def commit_staging(staging: Path, workspace: Path) -> None:
    """Move every staged file into place (each move is atomic on one filesystem), the
    manifest last. Paths inside staged JSON files (result.json, run.json) are rewritten
    from the staging folder to the workspace first."""
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    for path in files:
        if path.suffix == ".json":
            text = path.read_text(encoding="utf-8")
            if str(staging) in text:
                path.write_text(text.replace(str(staging), str(workspace)), encoding="utf-8")
    manifest = staging / "run.json"
    for src in [f for f in files if f != manifest] + ([manifest] if manifest.exists() else []):
        dst = workspace / src.relative_to(staging)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
    shutil.rmtree(staging, ignore_errors=True)


def _rebase_paths(result: RunResult, staging: Path, workspace: Path) -> None:
    def rebase(p: str | Path) -> str:
        return str(workspace / Path(p).relative_to(staging))

    for res in result.services.values():
        for rec in res.outputs.values():
            rec.path = rebase(rec.path)
    result.zonal_tables = {k: Path(rebase(v)) for k, v in result.zonal_tables.items()}
    result.products = {k: Path(rebase(v)) for k, v in result.products.items()}
