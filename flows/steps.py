"""The steps of the flows as plain functions: paths, ids and small parameters in, small JSON-able
dicts out. No Prefect here: the same steps run from the CLI (``eco flow … --no-prefect``), a
notebook (:func:`run_incremental`) and the Prefect tasks of ``flows.annual`` / ``flows.new_imagery``.

Each step wraps a stage of :mod:`ecoraster.run` (``run_service``, ``value_results``,
``aggregate_zones``, ``build_products``, ``write_manifest``, ``commit_staging``) with a
cache look-up (:mod:`ecoraster.cache`): when its key matches the record of its last commit
and its outputs are unchanged, it returns the recorded result file instead of computing.
Everything computed goes into one staging folder inside the workspace that is moved into
place at the end (:func:`finish`), so readers never see a half-written file and a killed
run leaves earlier results untouched.

An *outcome* (what each step returns) is a dict::

    {"name": "service.carbon_storage", "key": "<sha256>", "computed": True,
     "path": "<result json / csv>", "outputs": ["<files written>"], "payload": {...},
     "seconds": 1.2, "parts": {...}}
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from ecoraster.cache import (PRODUCTS_CODE, VALUATION_CODE, ZONAL_CODE, CacheStore, code_hash,
                             dataset_token, file_fingerprint, folder_hash, make_key,
                             service_code_hash)
from ecoraster.datasets import file_sha256
from ecoraster.config import RunConfig
from ecoraster.errors import CatalogError, ConfigError, EcorasterError, ValidationFailed
from ecoraster.accounting.gep_tables import build_products
from ecoraster.registry import get_service
from ecoraster.run import (RunPlan, RunResult, aggregate_zones, commit_staging, load_plan,
                           new_staging, run_service, validate_run, write_manifest)
from ecoraster.spec import ServiceResult
from ecoraster.accounting.valuation import value_results

log = logging.getLogger("ecoraster.flows")

ProgressFn = Callable[[str, int, int], None]
Outcome = dict[str, Any]

#: The overlay catalogue a workspace keeps for scenes that replaced catalogue entries.
OVERLAY_NAME = "catalog.overlay.yaml"
#: Parameter tables read by profile (``configs/parameters``), next to the package in a checkout.
PARAMETERS_DIR = Path(__file__).resolve().parents[1] / "configs" / "parameters"


# -- plan ---------------------------------------------------------------------------------------

def load_config(config: str | os.PathLike, overlay: str | os.PathLike | None = None) -> RunConfig:
    """The run config with ``overlay`` (if it exists) appended to its ``extra_catalogs``."""
    cfg = RunConfig.load(config)
    if overlay and Path(overlay).is_file():
        cfg = cfg.model_copy(update={"extra_catalogs": [*cfg.extra_catalogs, str(Path(overlay).resolve())]})
    return cfg


def workspace_overlay(workspace: str | os.PathLike) -> Path | None:
    """``<workspace>/catalog.overlay.yaml`` if a scene was ingested into this workspace."""
    path = Path(workspace) / OVERLAY_NAME
    return path if path.is_file() else None


def plan_for(config: str | os.PathLike, overlay: str | os.PathLike | None = None) -> RunPlan:
    return load_plan(load_config(config, overlay))


def chosen_services(plan: RunPlan, services: list[str] | None = None) -> list[str]:
    return list(services or plan.config.enabled_services())


@contextlib.contextmanager
def workspace_lock(workspace: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on ``<workspace>/.flow.lock`` (released by the OS if the process
    dies); a second run on the same workspace fails at once instead of mixing outputs."""
    ws = Path(workspace).resolve()
    ws.mkdir(parents=True, exist_ok=True)
    lock_path = ws / ".flow.lock"
    with open(lock_path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EcorasterError(f"{lock_path}: another run is writing this workspace") from None
        try:
            yield ws
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def remove_dead_staging(workspace: Path) -> list[Path]:
    """Delete ``.staging-*`` folders left by processes that no longer exist (a killed run)."""
    removed = []
    for folder in workspace.glob(".staging-*"):
        parts = folder.name.split("-")
        try:
            pid = int(parts[2])
        except (IndexError, ValueError):
            continue
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def everything_cached(config: str | os.PathLike, workspace: str | os.PathLike, *, overlay: str | None = None,
                      services: list[str] | None = None) -> bool:
    """True when every step's key matches its record and the manifest exists: the inputs,
    parameters and code are those of a committed (hence validated) run."""
    try:
        plan = plan_for(config, overlay)
        store = CacheStore(workspace)
        if not (store.workspace / "run.json").is_file():
            return False
        value_keys = {}
        for sid in chosen_services(plan, services):
            skey, _ = service_key(plan, sid)
            vkey, _ = value_key(plan, sid, skey)
            if store.lookup(f"service.{sid}", skey) is None or store.lookup(f"value.{sid}", vkey) is None:
                return False
            value_keys[f"value.{sid}"] = vkey
        zonal_keys = {}
        for name in plan.config.zones:
            zkey, _ = zonal_key(plan, name, value_keys)
            if store.lookup(f"zonal.{name}", zkey) is None:
                return False
            zonal_keys[f"zonal.{name}"] = zkey
        return store.lookup("products", products_key(plan, value_keys, zonal_keys)[0]) is not None
    except EcorasterError:
        return False


def prepare(config: str | os.PathLike, workspace: str | os.PathLike, *, overlay: str | None = None,
            services: list[str] | None = None, force: bool = False) -> str:
    """Validate the run (raise :class:`ValidationFailed` before any long work), remove staging
    folders of dead runs, and return a fresh staging folder inside ``workspace``.

    Validation (which may read every class raster once) is skipped when every step is cached
    (:func:`everything_cached`): nothing will be computed from inputs a committed run validated."""
    cfg = load_config(config, overlay)
    if force or not everything_cached(config, workspace, overlay=overlay, services=services):
        issues = validate_run(cfg, services)
        if issues:
            raise ValidationFailed(issues)
    ws = Path(workspace).resolve()
    ws.mkdir(parents=True, exist_ok=True)
    for folder in remove_dead_staging(ws):
        log.warning("removed the staging folder of a dead run: %s", folder)
    return str(new_staging(ws))


def discard(staging: str | os.PathLike) -> None:
    """Remove a staging folder (a failed run)."""
    shutil.rmtree(staging, ignore_errors=True)


# -- inputs ---------------------------------------------------------------------------------------

def used_datasets(plan: RunPlan, services: list[str] | None = None) -> list[str]:
    """Catalogue ids a run reads: service inputs, zone sets and the grid template."""
    ids = {str(v) for sid in chosen_services(plan, services)
           for v in plan.config.services[sid].inputs.values() if isinstance(v, str)}
    ids |= {zs.dataset for zs in plan.config.zones.values()}
    if plan.config.grid.like:
        ids.add(plan.config.grid.like)
    if plan.config.prices and plan.config.prices in plan.catalog:
        ids.add(plan.config.prices)
    return sorted(ids)


def verify_inputs(config: str | os.PathLike, workspace: str | os.PathLike, *, overlay: str | None = None,
                  services: list[str] | None = None) -> dict[str, str]:
    """Check every input a run reads against its declared ``checksum`` (full sha256).

    The sha256 of a file is remembered in ``<workspace>/.cache/verified.json`` by its cheap
    fingerprint, so an unchanged file is hashed once. Returns ``{dataset id: fingerprint}``;
    raises :class:`CatalogError` (file, field, value) on a mismatch.
    """
    plan = plan_for(config, overlay)
    memo_path = Path(workspace) / ".cache" / "verified.json"
    try:
        memo = json.loads(memo_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        memo = {}
    seen: dict[str, str] = {}
    for ds_id in used_datasets(plan, services):
        entry = plan.catalog.get(ds_id)
        entry.check_exists()
        if "://" in entry.uri:
            continue
        fp = file_fingerprint(entry.uri)
        seen[ds_id] = fp
        if not entry.checksum or Path(entry.uri).is_dir():
            continue
        digest = memo.get(entry.uri, {}).get(fp) or "sha256:" + file_sha256(entry.uri)
        if digest != entry.checksum:
            raise CatalogError(f"datasets.{ds_id}.checksum: {entry.uri} has {digest}, "
                               f"catalogue says {entry.checksum}")
        memo[entry.uri] = {fp: digest}
    memo_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo_path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(memo, indent=1), encoding="utf-8")
    os.replace(tmp, memo_path)
    return seen


# -- keys -----------------------------------------------------------------------------------------

def _input_token(plan: RunPlan, value: Any) -> Any:
    if isinstance(value, str) and value in plan.catalog:
        return dataset_token(plan.catalog.get(value))
    return value


def service_key(plan: RunPlan, service_id: str) -> tuple[str, dict[str, Any]]:
    """Cache key of one service: its inputs' checksums / fingerprints, params, method, grid,
    chunk, profile, year and code hash."""
    run = plan.config.services[service_id]
    parts = {
        "service": service_id,
        "inputs": {k: _input_token(plan, v) for k, v in sorted(run.inputs.items())},
        "params": run.params, "method": run.method,
        "grid": plan.grid.to_dict(), "chunk": plan.config.chunk,
        "profile": plan.config.profile, "year": plan.config.year,
        "parameters_dir": folder_hash(PARAMETERS_DIR),
        "code": service_code_hash(get_service(service_id)),
    }
    return make_key(parts), parts


def value_key(plan: RunPlan, service_id: str, service_key_: str) -> tuple[str, dict[str, Any]]:
    """Cache key of the valuation of one service: the service key, prices, price year, code."""
    prices = plan.config.prices
    if prices and prices in plan.catalog:
        prices_token: Any = dataset_token(plan.catalog.get(prices))
    elif prices and Path(prices).exists():
        prices_token = file_fingerprint(prices)
    else:
        prices_token = prices
    parts = {"service_key": service_key_, "service": service_id, "prices": prices_token,
             "price_year": plan.config.price_year, "profile": plan.config.profile,
             "parameters_dir": folder_hash(PARAMETERS_DIR),
             "code": code_hash(*VALUATION_CODE, "valuation")}
    return make_key(parts), parts


def zonal_key(plan: RunPlan, name: str, value_keys: dict[str, str]) -> tuple[str, dict[str, Any]]:
    zs = plan.config.zones[name]
    parts = {"zone_set": name, "config": zs.model_dump(), "dataset": dataset_token(plan.catalog.get(zs.dataset)),
             "values": dict(sorted(value_keys.items())), "grid": plan.grid.to_dict(),
             "code": code_hash(*ZONAL_CODE)}
    return make_key(parts), parts


def products_key(plan: RunPlan, value_keys: dict[str, str], zonal_keys: dict[str, str]) -> tuple[str, dict[str, Any]]:
    cfg = plan.config.model_dump(mode="json", exclude={"source_path", "dask", "catalog", "extra_catalogs"})
    parts = {"values": dict(sorted(value_keys.items())), "zonal": dict(sorted(zonal_keys.items())),
             "config": cfg, "code": code_hash(*PRODUCTS_CODE, "products")}
    return make_key(parts), parts


# -- steps ----------------------------------------------------------------------------------------

def _outcome(name: str, key: str, parts: dict, *, computed: bool, path: str | None, outputs=(),
             payload: Any = None, seconds: float = 0.0) -> Outcome:
    return {"name": name, "key": key, "computed": computed, "path": path,
            "outputs": [str(o) for o in outputs], "payload": payload, "seconds": round(seconds, 3),
            "parts": parts}


def _rel(path: str | os.PathLike, root: str | os.PathLike) -> str:
    return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()


def _read_result(path: str | os.PathLike) -> ServiceResult:
    return ServiceResult.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def service_step(config: str, workspace: str, staging: str, service_id: str, *, overlay: str | None = None,
                 progress: ProgressFn | None = None, force: bool = False) -> Outcome:
    """Compute one service into ``staging/<service>/`` unless its cache key matches."""
    plan = plan_for(config, overlay)
    store = CacheStore(workspace)
    key, parts = service_key(plan, service_id)
    name = f"service.{service_id}"
    rec = None if force else store.lookup(name, key)
    if rec is not None:
        return _outcome(name, key, parts, computed=False, path=str(store.workspace / rec.payload["result"]),
                        payload=rec.payload)
    t0 = time.monotonic()
    res = run_service(plan, service_id, Path(staging), progress)
    result_path = Path(staging) / service_id / "result.json"
    outputs = [rec.path for rec in res.outputs.values()] + [result_path]
    return _outcome(name, key, parts, computed=True, path=str(result_path), outputs=outputs,
                    payload={"result": _rel(result_path, staging)}, seconds=time.monotonic() - t0)


def value_step(config: str, workspace: str, staging: str, service: Outcome, *, overlay: str | None = None,
               force: bool = False) -> Outcome:
    """Add value outputs to one service's result (``ecoraster.accounting.valuation.value_results`` on that
    service alone) → ``<service>/result.valued.json``, unless its key matches."""
    service_id = service["name"].removeprefix("service.")
    plan = plan_for(config, overlay)
    store = CacheStore(workspace)
    key, parts = value_key(plan, service_id, service["key"])
    name = f"value.{service_id}"
    rec = None if (force or service["computed"]) else store.lookup(name, key)
    if rec is not None:
        return _outcome(name, key, parts, computed=False, path=str(store.workspace / rec.payload["result"]),
                        payload=rec.payload)
    t0 = time.monotonic()
    physical = _read_result(service["path"])
    before = {o.path for o in physical.outputs.values()}
    valued = value_results(plan, {service_id: physical}, Path(staging))[service_id]
    path = Path(staging) / service_id / "result.valued.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(valued.to_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
    outputs = [o.path for o in valued.outputs.values() if o.path not in before] + [path]
    return _outcome(name, key, parts, computed=True, path=str(path), outputs=outputs,
                    payload={"result": _rel(path, staging)}, seconds=time.monotonic() - t0)


def zonal_step(config: str, workspace: str, staging: str, zone_set: str, values: list[Outcome], *,
               overlay: str | None = None, force: bool = False) -> Outcome:
    """Aggregate every per-pixel output to one zone set (CSV + Parquet), unless its key matches."""
    plan = plan_for(config, overlay)
    store = CacheStore(workspace)
    key, parts = zonal_key(plan, zone_set, {v["name"]: v["key"] for v in values})
    name = f"zonal.{zone_set}"
    rec = None if force else store.lookup(name, key)
    if rec is not None:
        return _outcome(name, key, parts, computed=False, path=str(store.workspace / rec.payload["table"]),
                        payload=rec.payload)
    t0 = time.monotonic()
    results = {v["name"].removeprefix("value."): _read_result(v["path"]) for v in values}
    csv = aggregate_zones(plan, zone_set, results, Path(staging))
    outputs = [csv, csv.with_suffix(".parquet")]
    return _outcome(name, key, parts, computed=True, path=str(csv), outputs=[o for o in outputs if o.exists()],
                    payload={"table": _rel(csv, staging)}, seconds=time.monotonic() - t0)


def products_step(config: str, workspace: str, staging: str, values: list[Outcome], zonal: list[Outcome], *,
                  overlay: str | None = None, force: bool = False) -> Outcome:
    """Build the run's products (``ecoraster.accounting.gep_tables.build_products``), unless its key matches."""
    plan = plan_for(config, overlay)
    store = CacheStore(workspace)
    key, parts = products_key(plan, {v["name"]: v["key"] for v in values}, {z["name"]: z["key"] for z in zonal})
    name = "products"
    rec = None if force else store.lookup(name, key)
    if rec is not None:
        return _outcome(name, key, parts, computed=False, path=None, payload=rec.payload)
    t0 = time.monotonic()
    results = {v["name"].removeprefix("value."): _read_result(v["path"]) for v in values}
    tables = {z["name"].removeprefix("zonal."): Path(z["path"]) for z in zonal}
    products = build_products(plan, results, tables, Path(staging))
    staged = {k: Path(v) for k, v in products.items()}
    payload = {"products": {k: (_rel(v, staging) if str(v.resolve()).startswith(str(Path(staging).resolve()))
                                else str(v)) for k, v in staged.items()}}
    outputs = [v for v in staged.values() if v.exists() and str(v.resolve()).startswith(str(Path(staging).resolve()))]
    return _outcome(name, key, parts, computed=True, path=None, outputs=outputs, payload=payload,
                    seconds=time.monotonic() - t0)


def rebase_outcomes(outcomes: list[Outcome], staging: str | os.PathLike, workspace: str | os.PathLike) -> list[Outcome]:
    """The outcomes with every staging path replaced by its committed workspace path."""
    stage, ws = str(Path(staging).resolve()), str(Path(workspace).resolve())

    def move(p: str | None) -> str | None:
        return ws + p[len(stage):] if p and p.startswith(stage) else p

    return [{**o, "path": move(o["path"]), "outputs": [move(x) for x in o["outputs"]]} for o in outcomes]


def finish(config: str, workspace: str, staging: str, outcomes: list[Outcome], *, overlay: str | None = None,
           services: list[str] | None = None, extra_manifest: dict[str, Any] | None = None,
           seen_scenes: dict[str, str] | None = None) -> dict[str, Any]:
    """Write ``run.json``, move everything staged into the workspace (the manifest last),
    then record the cache of every step computed in this run.

    When nothing was computed and nothing else changed, the staging folder is dropped and the
    existing manifest is kept untouched. Returns ``{"manifest", "changed", "computed", "cached"}``.
    """
    ws, stage = Path(workspace).resolve(), Path(staging).resolve()
    computed = [o for o in outcomes if o["computed"]]
    overlay_staged = (stage / OVERLAY_NAME).is_file()
    summary = {"manifest": str(ws / "run.json"), "computed": [o["name"] for o in computed],
               "cached": [o["name"] for o in outcomes if not o["computed"]],
               "outcomes": rebase_outcomes(outcomes, stage, ws)}
    if not computed and not overlay_staged and (ws / "run.json").is_file():
        discard(stage)
        return {**summary, "changed": False}
    plan = plan_for(config, overlay)
    chosen = chosen_services(plan, services)
    result = RunResult(workspace=ws, manifest_path=ws / "run.json")
    for o in outcomes:
        kind, _, ident = o["name"].partition(".")
        if kind == "value":
            result.services[ident] = _read_result(o["path"])
        elif kind == "zonal":
            result.zonal_tables[ident] = Path(o["path"])
        elif kind == "products":
            result.products = {k: ws / v for k, v in (o["payload"] or {}).get("products", {}).items()}
        result.timings[o["name"]] = o["seconds"]
    manifest_path = write_manifest(plan, result, chosen, stage)
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["steps"] = {o["name"]: {"key": o["key"], "computed": o["computed"], "seconds": o["seconds"]}
                         for o in outcomes}
    manifest.update(extra_manifest or {})
    manifest_path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    commit_staging(stage, ws)  # also points staged JSON files at the workspace
    store = CacheStore(ws)
    for o in computed:
        outputs = [ws / _rel(p, stage) for p in o["outputs"] if str(Path(p).resolve()).startswith(str(stage))]
        store.put(o["name"], o["key"], outputs, payload=o["payload"], parts=o["parts"])
    if seen_scenes:
        _remember_scenes(ws, seen_scenes)
    return {**summary, "changed": True}


# -- a whole incremental run without Prefect -------------------------------------------------------

def run_incremental(config: str | os.PathLike, workspace: str | os.PathLike, *, services: list[str] | None = None,
                    progress: ProgressFn | None = None, force: bool = False) -> dict[str, Any]:
    """Every step in order in this process (what ``annual_gep`` runs as tasks). For notebooks,
    the CLI's ``--no-prefect`` and tests. Returns :func:`finish`'s summary plus ``outcomes``."""
    config, workspace = str(config), str(Path(workspace).resolve())
    with workspace_lock(workspace):
        overlay = workspace_overlay(workspace)
        overlay = str(overlay) if overlay else None
        staging = prepare(config, workspace, overlay=overlay, services=services, force=force)
        return _steps_in_order(config, workspace, staging, overlay=overlay, services=services,
                               progress=progress, force=force)


def _steps_in_order(config: str, workspace: str, staging: str, *, overlay: str | None, services: list[str] | None,
                    progress: ProgressFn | None, force: bool, extra_manifest: dict[str, Any] | None = None,
                    seen_scenes: dict[str, str] | None = None) -> dict[str, Any]:
    try:
        verify_inputs(config, workspace, overlay=overlay, services=services)
        plan = plan_for(config, overlay)
        outcomes: list[Outcome] = []
        values = []
        for sid in chosen_services(plan, services):
            svc = service_step(config, workspace, staging, sid, overlay=overlay, progress=progress, force=force)
            values.append(value_step(config, workspace, staging, svc, overlay=overlay, force=force))
            outcomes.append(svc)
        zonal = [zonal_step(config, workspace, staging, name, values, overlay=overlay, force=force)
                 for name in plan.config.zones]
        prod = products_step(config, workspace, staging, values, zonal, overlay=overlay, force=force)
        outcomes += values + zonal + [prod]
        summary = finish(config, workspace, staging, outcomes, overlay=overlay, services=services,
                         extra_manifest=extra_manifest, seen_scenes=seen_scenes)
    except BaseException:
        discard(staging)
        raise
    return {**summary, "outcomes": outcomes}


# -- new scenes -------------------------------------------------------------------------------------

def resolve_scene(scene: str | os.PathLike) -> tuple[Path, str | None]:
    """A scene given as a raster path or a STAC Item JSON → (raster path, STAC item id).

    From an Item, the asset with role ``data`` (else the first GeoTIFF asset) is taken; a
    relative ``href`` resolves against the Item file's folder.
    """
    path = Path(scene)
    if path.suffix.lower() != ".json":
        return path.resolve(), None
    try:
        item = json.loads(path.read_text(encoding="utf-8"))
        assets = item["assets"]
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{path}: not a STAC Item with assets ({exc})") from None
    chosen = next((a for a in assets.values() if "data" in (a.get("roles") or [])), None)
    chosen = chosen or next((a for a in assets.values() if "tiff" in str(a.get("type", "")).lower()
                             or str(a.get("href", "")).lower().endswith((".tif", ".tiff"))), None)
    if chosen is None:
        raise ConfigError(f"{path}: assets: no data or GeoTIFF asset among {', '.join(assets)}")
    href = str(chosen["href"]).removeprefix("file://")
    if "://" in href:
        raise ConfigError(f"{path}: assets.href = {href!r}: only local files can be ingested offline")
    raster = Path(href) if os.path.isabs(href) else path.parent / href
    return raster.resolve(), item.get("id")


def ingest_scene(config: str | os.PathLike, scene: str | os.PathLike, dataset: str, *,
                 overlay: str | None = None) -> dict[str, Any]:
    """Check a new scene for ``dataset`` (it opens, has a CRS and nodata, overlaps the run grid)
    and hash it. Returns the facts the overlay catalogue records. Raises before any computing."""
    import rasterio

    from ecoraster.grid import align_to, inspect_source

    raster, item_id = resolve_scene(scene)
    plan = plan_for(config, overlay)
    entry = plan.catalog.get(dataset, field="dataset")
    if entry.kind != "raster":
        raise CatalogError(f"datasets.{dataset}.kind = {entry.kind!r}: only a raster can take a new scene")
    if not raster.is_file():
        raise ConfigError(f"scene = {str(raster)!r}: file not found")
    try:
        with rasterio.open(raster):
            pass
    except rasterio.errors.RasterioIOError as exc:
        raise ConfigError(f"scene = {str(raster)!r}: not a raster GDAL can open ({exc})") from None
    info = inspect_source(str(raster), band=entry.band, crs=entry.crs, nodata=entry.nodata, field="scene")
    align_to(info, plan.grid, entry.effective_resampling, chunk=plan.config.chunk)  # raises if no overlap
    return {"dataset": dataset, "uri": str(raster), "checksum": "sha256:" + file_sha256(raster),
            "fingerprint": file_fingerprint(raster), "stac_item": item_id, "scene": str(scene)}


def write_overlay(config: str | os.PathLike, workspace: str | os.PathLike, staging: str | os.PathLike,
                  scenes: list[dict[str, Any]]) -> str:
    """``staging/catalog.overlay.yaml``: the workspace's previous overlay plus one entry per new
    scene (a copy of the catalogue entry with the scene's ``uri`` and ``checksum``). The user's
    catalogue is never edited; the overlay is committed with the outputs."""
    previous = workspace_overlay(workspace)
    plan = plan_for(config, previous)
    raw: dict[str, Any] = {"version": 1, "datasets": {}}
    if previous:
        raw = yaml.safe_load(previous.read_text(encoding="utf-8")) or raw
        raw.setdefault("datasets", {})
    for s in scenes:
        body = plan.catalog.get(s["dataset"]).model_dump(exclude={"id"}, exclude_none=True)
        body.update(uri=s["uri"], checksum=s["checksum"])
        if s.get("stac_item"):
            body["source"] = f"STAC item {s['stac_item']} ({s['scene']})"
        else:
            body["source"] = f"scene {s['scene']}"
        raw["datasets"][s["dataset"]] = body
    path = Path(staging) / OVERLAY_NAME
    header = "# Written by ecoraster flows: catalogue entries replaced by newer scenes. Do not edit by hand.\n"
    path.write_text(header + yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return str(path)


def dependents(config: str | os.PathLike, datasets: list[str], *, overlay: str | None = None) -> dict[str, Any]:
    """Services and zone sets of a run that read any of ``datasets`` (every service when one of
    them is the grid template)."""
    plan = plan_for(config, overlay)
    ids = set(datasets)
    everything = plan.config.grid.like in ids or plan.config.grid.bounds_from in ids
    services = [sid for sid, run in plan.config.enabled_services().items()
                if everything or ids & {str(v) for v in run.inputs.values() if isinstance(v, str)}]
    zones = [name for name, zs in plan.config.zones.items() if zs.dataset in ids]
    return {"services": services, "zones": zones, "grid": everything}


def _seen_path(workspace: Path) -> Path:
    return workspace / ".cache" / "scenes_seen.json"


def _remember_scenes(workspace: Path, scenes: dict[str, str]) -> None:
    path = _seen_path(workspace)
    try:
        seen = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        seen = {}
    seen.update(scenes)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(seen, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def scan_folder(folder: str | os.PathLike, patterns: dict[str, str], workspace: str | os.PathLike) -> list[dict[str, str]]:
    """New scenes in ``folder``: files matching a glob of ``patterns`` (glob → catalogue id)
    whose fingerprint this workspace has not ingested yet. The newest match (last by name)
    per dataset wins. Thin on purpose: ``ecoraster.ingest.stac.scan_new_scenes`` can replace it.
    """
    try:
        seen = json.loads(_seen_path(Path(workspace)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        seen = {}
    latest: dict[str, Path] = {}
    for pattern, dataset in patterns.items():
        for path in sorted(Path(folder).glob(pattern)):
            if path.is_file() and seen.get(str(path.resolve())) != file_fingerprint(path):
                latest[dataset] = path.resolve()
    return [{"scene": str(p), "dataset": d} for d, p in sorted(latest.items())]


def prepare_update(config: str, workspace: str, scenes: list[dict[str, Any]]) -> tuple[str, str]:
    """Staging folder + overlay (with ``scenes``, the facts from :func:`ingest_scene`) for an
    update; the run is validated against the overlay first. Returns (staging, overlay)."""
    ws = Path(workspace).resolve()
    ws.mkdir(parents=True, exist_ok=True)
    for folder in remove_dead_staging(ws):
        log.warning("removed the staging folder of a dead run: %s", folder)
    staging = str(new_staging(ws))
    try:
        overlay = write_overlay(config, workspace, staging, scenes)
        issues = validate_run(load_config(config, overlay))
        if issues:
            raise ValidationFailed(issues)
    except BaseException:
        discard(staging)
        raise
    return staging, overlay


def update_incremental(config: str | os.PathLike, workspace: str | os.PathLike, scenes: list[dict[str, str]], *,
                       progress: ProgressFn | None = None) -> dict[str, Any]:
    """``on_new_imagery`` without Prefect: ingest ``scenes`` ([{"scene", "dataset"}]), write the
    overlay into a staging folder, recompute what depends on them, commit atomically."""
    config, workspace = str(config), str(Path(workspace).resolve())
    previous = workspace_overlay(workspace)
    facts = [ingest_scene(config, s["scene"], s["dataset"], overlay=str(previous) if previous else None)
             for s in scenes]
    with workspace_lock(workspace):
        staging, overlay = prepare_update(config, workspace, facts)
        deps = dependents(config, [f["dataset"] for f in facts], overlay=overlay)
        out = _steps_in_order(config, workspace, staging, overlay=overlay, services=None, progress=progress,
                              force=False, extra_manifest={"scenes": facts, "dependents": deps},
                              seen_scenes={f["uri"]: f["fingerprint"] for f in facts})
    return {**out, "dependents": deps, "scenes": facts}
