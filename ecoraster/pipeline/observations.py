"""New observations for a finished run: raw scenes for datasets that declare ``derive:`` and
station tables for concentration datasets, each an update of the workspace in one call.

- :func:`add_scenes`: recognise each raw scene (Landsat C2 L2 folder / MTL, Sentinel-2 L2A,
  MODIS SR, STAC Item), compute its index on the run grid, merge it into the dataset's period
  composite (:func:`ecoraster.ingest.derived.add_scene`), record the scenes in the workspace's
  overlay catalogue (entry + ``provenance:``) and in ``derived/stac/catalog.json``, and rerun —
  only the steps that read the dataset recompute (:func:`ecoraster.pipeline.runner.run`).
  A scene already taken changes nothing and runs nothing.
- :func:`add_stations`: a station table → QC → period means → IDW / kriging grids that replace
  the concentration datasets (:func:`ecoraster.ingest.derived.station_grids`), then the same rerun.
- :func:`scan_products`: the raw products of a folder recognised by their metadata (not a glob),
  less the scenes a dataset has already taken.

Every check that needs no pixel (unknown sensor, missing band / QA, no overlap, period outside
the run's year, unknown table columns, missing pollutant) runs before anything is written.
Derived files are content-named under ``<workspace>/derived/<dataset>/`` and never overwritten;
the overlay and the STAC catalogue are staged and committed with the run's outputs.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import yaml

from ..config import DaskConfig, load_plan
from ..errors import CatalogError, EcorasterError
from ..ingest import derived as dv
from ..ingest import scenes as sc
from .incremental import dependents
from .runner import Executor, run
from .stages import ProgressFn, RunResult
from .workspace import Workspace

log = logging.getLogger(__name__)

DERIVED_DIR = "derived"
OVERLAY_HEADER = "# Written by ecoraster: catalogue entries replaced by newer data. Do not edit by hand.\n"


def read_overlay(ws: Workspace) -> dict[str, Any]:
    """The workspace's overlay catalogue as a mapping (``datasets``, ``provenance``)."""
    path = ws.existing_overlay()
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) if path else None
    raw = raw or {"version": 1}
    raw.setdefault("datasets", {})
    raw.setdefault("provenance", {})
    return raw


def _entry_body(entry, derived: dv.DerivedFile, *, bands: int) -> dict[str, Any]:
    body = entry.model_dump(exclude={"id", "crs"}, exclude_none=True)
    body.update(uri=derived.uri, checksum=derived.checksum, nodata=derived.nodata, band=1)
    prov = derived.provenance
    if prov["kind"] == "scenes":
        body["source"] = (f"{len(prov['scenes'])} scene(s) ({', '.join(s['scene_id'] for s in prov['scenes'][:3])}"
                          f"{'…' if len(prov['scenes']) > 3 else ''}) over {Path(prov['base_uri']).name}")
    else:
        body["source"] = (f"{prov['n_stations']} stations of {Path(prov['source']).name}, {prov['period']} mean, "
                          f"{prov['method']} (LOOCV RMSE {prov['loocv_rmse']:.2f} {prov['units']})")
    return body


def write_overlay(ws: Workspace, staging: Path, plan0, derived: list[dv.DerivedFile]) -> str:
    """Stage the overlay: the previous one plus an entry and a provenance record per derived file."""
    raw = read_overlay(ws)
    for d in derived:
        entry = plan0.catalog.get(d.dataset)
        raw["datasets"][d.dataset] = _entry_body(entry, d, bands=1)
        raw["provenance"][d.dataset] = d.provenance
    path = ws.overlay(staging)
    path.write_text(OVERLAY_HEADER + yaml.safe_dump(json.loads(json.dumps(raw, default=str)), allow_unicode=True,
                                                    sort_keys=False), encoding="utf-8")
    return str(path)


def write_inputs_stac(ws: Workspace, staging: Path, provenance: dict[str, Any]) -> Path:
    """Stage ``derived/stac/catalog.json``: one Item per derived dataset (its file, with the
    scenes or stations it came from, their dates and valid shares in the properties)."""
    import pystac

    from ..ingest.stac import raster_item

    root = staging / DERIVED_DIR / "stac"
    cat = pystac.Catalog(id="ecoraster-derived-inputs",
                         description="Datasets of this workspace derived from scenes and station tables")
    for ds_id, prov in sorted(provenance.items()):
        if not Path(prov["uri"]).is_file():
            continue
        props = {"ecoraster:dataset": ds_id, "ecoraster:derived_from": prov["kind"]}
        if prov["kind"] == "scenes":
            props["ecoraster:scenes"] = [{k: s[k] for k in ("scene_id", "sensor", "acquired", "valid_share", "period")}
                                         for s in prov["scenes"]]
            when = max(s["acquired"] for s in prov["scenes"])
        else:
            props.update({"ecoraster:stations": prov["n_stations"], "ecoraster:period": prov["period"],
                          "ecoraster:method": prov["method"], "ecoraster:loocv_rmse": prov["loocv_rmse"]})
            when = f"{prov['period'][:4]}-01-01T00:00:00+00:00"
        item = raster_item(prov["uri"], item_id=ds_id, datetime=when, checksum=prov["checksum"].replace("sha256:", "1220"),
                           properties=props)
        cat.add_item(item)
    cat.normalize_hrefs(str(root))
    cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


def _rerun(config, ws: Workspace, staging: Path, plan0, derived: list[dv.DerivedFile], facts: dict[str, Any], *,
           progress, executor, dask_config) -> tuple[RunResult, dict[str, Any]]:
    overlay = write_overlay(ws, staging, plan0, derived)
    write_inputs_stac(ws, staging, read_overlay_from(overlay)["provenance"])
    plan = load_plan(config, overlay=overlay)
    deps = dependents(plan, [d.dataset for d in derived])
    result = run(plan, ws, progress=progress, executor=executor, dask_config=dask_config, staging=staging,
                 extra_manifest={**facts, "dependents": deps})
    return result, deps


def read_overlay_from(path: str) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------
# scenes
# ---------------------------------------------------------------------------------------

def scene_target(plan0, dataset: str):
    """(entry, SceneDerive) of a dataset that takes raw scenes; a CatalogError otherwise."""
    entry = plan0.catalog.get(dataset, field="dataset")
    spec = dv.derive_spec(entry, "scenes")
    if spec is None:
        raise CatalogError(f"datasets.{dataset}: no derive: {{index, composite, period}}, so it takes ready rasters, "
                           "not raw scenes (declare derive: in the catalogue)")
    return entry, spec


def takes_raw_scenes(config: str | os.PathLike, dataset: str) -> bool:
    """Whether ``dataset`` declares ``derive:`` for scenes (else new imagery is a ready raster)."""
    entry = load_plan(config).catalog.get(dataset, field="dataset")
    return dv.derive_spec(entry, "scenes") is not None


def add_scenes(config: str | os.PathLike, workspace: str | os.PathLike, items: list[dict[str, str]], *,
               progress: ProgressFn | None = None, executor: Executor | None = None,
               dask_config: DaskConfig | None = None) -> tuple[RunResult | None, list[dict[str, Any]], dict[str, Any]]:
    """Add raw scenes (``[{"scene", "dataset"}]``) to derived datasets and rerun what depends on them.

    Returns (run result or None when every scene was already taken, scene facts with
    ``valid_share`` and ``taken``, dependents)."""
    ws = Workspace(workspace)
    plan0 = load_plan(config)
    year = plan0.config.year
    for it in items:  # every check without pixels first
        entry, spec = scene_target(plan0, it["dataset"])
        dv.check_scene(entry, spec, it["scene"], plan0.grid, year)
    with ws.lock():
        ws.remove_dead_staging()
        provenance = read_overlay(ws)["provenance"]
        staging = ws.new_staging()
        try:
            latest: dict[str, dv.DerivedFile] = {}
            facts = []
            for it in items:
                entry, spec = scene_target(plan0, it["dataset"])
                folder = ws.root / DERIVED_DIR / it["dataset"]
                prev = latest[it["dataset"]].provenance if it["dataset"] in latest else provenance.get(it["dataset"])
                d = dv.add_scene(entry, spec, it["scene"], plan0.grid, year, folder, prev, chunk=plan0.config.chunk)
                latest[it["dataset"]] = d if d.changed or it["dataset"] not in latest else latest[it["dataset"]]
                scene = sc.recognise(it["scene"])
                taken = next(s for s in d.provenance["scenes"] if s["scene_id"] == scene.scene_id)
                facts.append({"dataset": it["dataset"], "scene": str(it["scene"]), "scene_id": scene.scene_id,
                              "sensor": taken["sensor"], "acquired": taken["acquired"], "period": taken["period"],
                              "valid_share": taken["valid_share"], "new": d.changed})
            changed = [d for d in latest.values() if d.changed]
            if not changed:
                Workspace.discard(staging)
                return None, facts, {"services": [], "zones": [], "grid": False}
            result, deps = _rerun(config, ws, staging, plan0, changed, {"scenes": facts}, progress=progress,
                                  executor=executor, dask_config=dask_config)
        except BaseException:
            Workspace.discard(staging)
            raise
    return result, facts, deps


def scan_products(folder: str | os.PathLike, config: str | os.PathLike, workspace: str | os.PathLike,
                  dataset: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Raw products under ``folder`` recognised by their metadata (Landsat MTL, Sentinel-2
    MTD_MSIL2A.xml / SCL bands, MODIS band descriptions, STAC Items), one per scene id, that
    ``dataset`` has not taken yet. Returns (new ``[{"scene", "dataset"}]``, skipped with reasons)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EcorasterError(f"--folder {folder}: not a folder")
    taken = {s["scene_id"] for s in read_overlay(Workspace(workspace))["provenance"].get(dataset, {}).get("scenes", [])}
    year = load_plan(config).config.year
    found: dict[str, Path] = {}
    skipped = []
    candidates = sorted([p for p in folder.rglob("*") if p.is_dir()] + [
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (".tif", ".tiff", ".json", ".txt", ".xml")])
    for path in candidates:
        if any(str(path).startswith(str(seen_root) + os.sep) for seen_root in found.values()):
            continue  # inside a product already recognised
        try:
            scene = sc.recognise(path)
        except EcorasterError:
            continue
        if scene.scene_id in taken or scene.scene_id in found:
            continue
        if scene.acquired.year != year:
            skipped.append({"scene": str(path), "reason": f"acquired {scene.acquired.date()}, outside {year}"})
            continue
        found[scene.scene_id] = path
    return [{"scene": str(p), "dataset": dataset} for _, p in sorted(found.items())], skipped


# ---------------------------------------------------------------------------------------
# stations
# ---------------------------------------------------------------------------------------

def add_stations(config: str | os.PathLike, workspace: str | os.PathLike, table_path: str | os.PathLike, *,
                 datasets: list[str] | None = None, period: str | None = None, method: str | None = None,
                 min_fraction: float | None = None, columns: dict[str, str] | None = None,
                 progress: ProgressFn | None = None, executor: Executor | None = None,
                 dask_config: DaskConfig | None = None) -> tuple[RunResult, dict[str, Any], dict[str, Any]]:
    """Replace the concentration datasets of a run by grids from a station table and rerun what
    depends on them (air purification). Returns (run result, facts, dependents)."""
    from ..ingest import monitoring as mon

    ws = Workspace(workspace)
    plan0 = load_plan(config)
    targets = dv.station_targets(plan0)
    if datasets:
        unknown = [d for d in datasets if d not in targets]
        if unknown:
            raise CatalogError(f"--dataset {unknown}: not a concentration dataset of this run "
                               f"(those are {sorted(targets)})")
        targets = {d: targets[d] for d in datasets}
    if not targets:
        raise dv.no_targets_error(str(config))
    table = mon.read_station_table(table_path, columns=columns)
    # the pollutant columns, the period and the QC are checked inside station_grids before any write
    with ws.lock():
        ws.remove_dead_staging()
        staging = ws.new_staging()
        try:
            derived = dv.station_grids(table, targets, plan0.grid, plan0.config.year, ws.root / DERIVED_DIR / "stations",
                                       period=period, method=method, min_fraction=min_fraction,
                                       entries=plan0.catalog.datasets, chunk=plan0.config.chunk)
            facts = {"stations": {"table": str(table_path), "checksum": table.attrs.get("checksum"),
                                  "time_step": table.attrs.get("time_step"),
                                  "datasets": [{"dataset": d.dataset, **{k: d.provenance[k] for k in (
                                      "pollutant", "period", "method", "n_stations", "loocv_rmse", "loocv_mae", "units")}}
                                      for d in derived]}}
            result, deps = _rerun(config, ws, staging, plan0, derived, facts, progress=progress, executor=executor,
                                  dask_config=dask_config)
        except BaseException:
            Workspace.discard(staging)
            raise
    return result, facts, deps


# ---------------------------------------------------------------------------------------
# one call per flow (CLI --no-prefect and the Prefect flows both use these)
# ---------------------------------------------------------------------------------------

def _summary(result: RunResult | None, **extra: Any) -> dict[str, Any]:
    base = result.summary() if result is not None else {"changed": False, "computed": [], "cached": []}
    return {**base, **({"outcomes": [o.summary() for o in result.outcomes]} if result is not None else {}), **extra}


def new_imagery(config: str | os.PathLike, workspace: str | os.PathLike, *, scene: str | None = None,
                dataset: str | None = None, folder: str | None = None, patterns: dict[str, str] | None = None,
                progress: ProgressFn | None = None, executor: Executor | None = None,
                dask_config: DaskConfig | None = None) -> dict[str, Any]:
    """New imagery for a workspace, whatever form it takes: a raw scene for a dataset that
    declares ``derive:`` (:func:`add_scenes`), a ready raster for any other
    (:func:`ecoraster.pipeline.incremental.update`), a folder scanned by metadata for a derived
    dataset (``folder`` + ``dataset``) or by glob (``folder`` + ``patterns``). Returns the run's
    summary plus ``scenes`` (with valid shares), ``dependents`` and ``skipped``."""
    from . import incremental

    kw = dict(progress=progress, executor=executor, dask_config=dask_config)
    skipped: list[dict[str, str]] = []
    if scene and dataset:
        wanted = [{"scene": str(scene), "dataset": dataset}]
    elif folder and dataset and not patterns:
        if not takes_raw_scenes(config, dataset):
            raise CatalogError(f"--folder with --dataset {dataset}: scanning by metadata is for datasets that "
                               "declare derive:; give --pattern GLOB=DATASET for ready rasters")
        wanted, skipped = scan_products(folder, config, workspace, dataset)
    elif folder and patterns:
        wanted = incremental.scan_folder(folder, patterns, workspace)
    else:
        raise EcorasterError("give --scene and --dataset, --folder and --dataset (raw products), "
                             "or --folder and --pattern GLOB=DATASET")
    if not wanted:
        return _summary(None, scenes=[], dependents={"services": [], "zones": []}, skipped=skipped)
    raw = [w for w in wanted if takes_raw_scenes(config, w["dataset"])]
    ready = [w for w in wanted if w not in raw]
    if raw and ready:
        raise EcorasterError("raw scenes and ready rasters in one update: run them separately")
    if raw:
        result, facts, deps = add_scenes(config, workspace, raw, **kw)
    else:
        result, facts, deps = incremental.update(config, workspace, ready, **kw)
    return _summary(result, scenes=facts, dependents=deps, skipped=skipped)


def new_monitoring(config: str | os.PathLike, workspace: str | os.PathLike, stations: str, *,
                   datasets: list[str] | None = None, period: str | None = None, method: str | None = None,
                   min_fraction: float | None = None, columns: dict[str, str] | None = None,
                   progress: ProgressFn | None = None, executor: Executor | None = None,
                   dask_config: DaskConfig | None = None) -> dict[str, Any]:
    """A station table for a workspace (:func:`add_stations`); the run's summary plus
    ``stations`` (per dataset: pollutant, period, method, stations, LOOCV RMSE) and ``dependents``."""
    result, facts, deps = add_stations(config, workspace, stations, datasets=datasets, period=period, method=method,
                                       min_fraction=min_fraction, columns=columns, progress=progress,
                                       executor=executor, dask_config=dask_config)
    return _summary(result, **facts, dependents=deps)
