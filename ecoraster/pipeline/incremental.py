"""New scenes for an existing run: resolve a scene (raster or STAC Item), check it, record it in
the workspace's overlay catalogue (the user's catalogue is never edited), find the services
and zone sets that depend on it, scan a folder for new files, and rerun through
:func:`ecoraster.pipeline.runner.run` (only the steps whose key changed recompute).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from ..config import DaskConfig, RunPlan, load_plan
from ..datasets import file_sha256
from ..errors import CatalogError, ConfigError
from .cache import file_fingerprint
from .runner import Executor, run
from .stages import ProgressFn, RunResult
from .workspace import Workspace


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

    from ..grid import align_to, inspect_source

    raster, item_id = resolve_scene(scene)
    plan = load_plan(config, overlay=overlay)
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
    previous = Workspace(workspace).existing_overlay()
    plan = load_plan(config, overlay=previous)
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
    path = Workspace(workspace).overlay(Path(staging))
    header = "# Written by ecoraster flows: catalogue entries replaced by newer scenes. Do not edit by hand.\n"
    path.write_text(header + yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return str(path)


def dependents(config: str | os.PathLike | RunPlan, datasets: list[str], *, overlay: str | None = None) -> dict[str, Any]:
    """Services and zone sets of a run that read any of ``datasets`` (every service when one of
    them is the grid template)."""
    plan = config if isinstance(config, RunPlan) else load_plan(config, overlay=overlay)
    ids = set(datasets)
    everything = plan.config.grid.like in ids or plan.config.grid.bounds_from in ids
    services = [sid for sid, run in plan.config.enabled_services().items()
                if everything or ids & {str(v) for v in run.inputs.values() if isinstance(v, str)}]
    zones = [name for name, zs in plan.config.zones.items() if zs.dataset in ids]
    return {"services": services, "zones": zones, "grid": everything}


def scan_folder(folder: str | os.PathLike, patterns: dict[str, str], workspace: str | os.PathLike) -> list[dict[str, str]]:
    """New scenes in ``folder``: files matching a glob of ``patterns`` (glob → catalogue id)
    whose fingerprint this workspace has not ingested yet. The newest match (last by name)
    per dataset wins. Thin on purpose: ``ecoraster.ingest.stac.scan_new_scenes`` can replace it.
    """
    seen = Workspace(workspace).read_memo("scenes_seen.json")
    latest: dict[str, Path] = {}
    for pattern, dataset in patterns.items():
        for path in sorted(Path(folder).glob(pattern)):
            if path.is_file() and seen.get(str(path.resolve())) != file_fingerprint(path):
                latest[dataset] = path.resolve()
    return [{"scene": str(p), "dataset": d} for d, p in sorted(latest.items())]


def update(config: str | os.PathLike, workspace: str | os.PathLike, scenes: list[dict[str, str]], *,
           progress: ProgressFn | None = None, executor: Executor | None = None,
           dask_config: DaskConfig | None = None) -> tuple[RunResult, list[dict[str, Any]], dict[str, Any]]:
    """Ingest ``scenes`` ([{"scene", "dataset"}]), write the new overlay into a staging folder,
    rerun (only what depends on them recomputes) and commit atomically.
    Returns (run result, scene facts, dependents)."""
    ws = Workspace(workspace)
    previous = ws.existing_overlay()
    facts = [ingest_scene(config, s["scene"], s["dataset"], overlay=str(previous) if previous else None)
             for s in scenes]
    with ws.lock():
        ws.recover()
        ws.remove_dead_staging()
        staging = ws.new_staging()
        try:
            overlay = write_overlay(config, ws.root, staging, facts)
            plan = load_plan(config, overlay=overlay)
            deps = dependents(plan, [f["dataset"] for f in facts])
            result = run(plan, ws, progress=progress, executor=executor, dask_config=dask_config, staging=staging,
                         extra_manifest={"scenes": facts, "dependents": deps},
                         seen_scenes={f["uri"]: f["fingerprint"] for f in facts})
        except BaseException:
            Workspace.discard(staging)
            raise
    return result, facts, deps
