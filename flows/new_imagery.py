"""``on_new_imagery``: a new scene (a raster path, a STAC Item JSON, or what a folder scan
finds) → checked and hashed → an overlay catalogue entry in the workspace → only the steps
that depend on it recomputed → everything committed atomically.

Run it::

    eco flow new-imagery configs/wuhan_2013.yaml --dataset wuhan_lulc_2013 --scene new.tif -w outputs/wuhan_2013
    python -m flows.new_imagery configs/wuhan_2013.yaml -w outputs/wuhan_2013 --scene new.tif --dataset wuhan_lulc_2013
    python -m flows.new_imagery configs/wuhan_2013.yaml -w outputs/wuhan_2013 --folder incoming --pattern '*.tif=wuhan_lulc_2013'

The user's ``data_catalog.yaml`` is never edited: the scene replaces the entry through
``<workspace>/catalog.overlay.yaml``, which later runs on that workspace also read.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import flows  # noqa: F401,E402  (quiet, offline settings before Prefect)
from flows import steps  # noqa: E402
from flows.annual import resolve_run  # noqa: E402
from flows.checks import check_watch_folder  # noqa: E402
from flows.tasks import IO_RETRIES, dask_engine, run_steps  # noqa: E402
from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402


@task(name="scan-folder", cache_policy=NO_CACHE, **IO_RETRIES)
def scan_task(folder: str, patterns: dict[str, str], workspace: str) -> list[dict[str, str]]:
    check_watch_folder(folder, patterns)
    found = steps.scan_folder(folder, patterns, workspace)
    get_run_logger().info("scan of %s: %d new scene(s)", folder, len(found))
    return found


@task(name="ingest-scene", task_run_name="ingest-{dataset}", cache_policy=NO_CACHE, **IO_RETRIES)
def ingest_scene_task(config: str, scene: str, dataset: str, overlay: str | None) -> dict[str, Any]:
    facts = steps.ingest_scene(config, scene, dataset, overlay=overlay)
    get_run_logger().info("scene %s for %s: %s", facts["uri"], dataset, facts["checksum"])
    return facts


@task(name="prepare-update", cache_policy=NO_CACHE, **IO_RETRIES)
def prepare_update_task(config: str, workspace: str, scenes: list[dict[str, Any]]) -> tuple[str, str]:
    return steps.prepare_update(config, workspace, scenes)


@flow(name="on_new_imagery", task_runner=ThreadPoolTaskRunner(max_workers=4))
def on_new_imagery(config: str, workspace: str | None = None, scene: str | None = None, dataset: str | None = None,
                   folder: str | None = None, patterns: dict[str, str] | None = None,
                   dask_address: str | None = None) -> dict:
    """Update a workspace for new scenes.

    Parameters
    ----------
    config : run config the workspace was made with.
    workspace : the workspace of an earlier run (``annual_gep``; default as there,
        ``$ECORASTER_OUTPUT_DIR/<region>_<year>``).
    scene, dataset : one scene (raster path or STAC Item JSON) and the catalogue id it updates; or
    folder, patterns : a folder to scan, with ``{glob: catalogue id}`` (e.g. ``{"LC09_*.tif": "ndvi_2024"}``);
        scenes this workspace has already ingested are skipped.
    dask_address : an existing ``distributed`` scheduler.

    Returns
    -------
    dict : as ``annual_gep``, plus ``scenes`` and ``dependents`` (services / zone sets that read
    the updated datasets); ``{"scenes": []}`` when a scan found nothing new.
    """
    logger = get_run_logger()
    config, workspace = resolve_run(None, None, config, workspace)
    if scene and dataset:
        wanted = [{"scene": scene, "dataset": dataset}]
    elif folder:
        wanted = scan_task(folder, patterns or {}, workspace)
    else:
        raise ValueError("on_new_imagery: give `scene` and `dataset`, or `folder` and `patterns`")
    if not wanted:
        return {"scenes": [], "changed": False}
    previous = steps.workspace_overlay(workspace)
    previous = str(previous) if previous else None
    facts = [ingest_scene_task(config, w["scene"], w["dataset"], previous) for w in wanted]
    with steps.workspace_lock(workspace):
        staging, overlay = prepare_update_task(config, workspace, facts)
        deps = steps.dependents(config, [f["dataset"] for f in facts], overlay=overlay)
        logger.info("datasets %s are read by services %s and zone sets %s",
                    ", ".join(f["dataset"] for f in facts), deps["services"] or "-", deps["zones"] or "-")
        with dask_engine(config, dask_address):
            summary = run_steps(config, workspace, staging, overlay=overlay, services=None, force=False,
                                extra_manifest={"scenes": facts, "dependents": deps},
                                seen_scenes={f["uri"]: f["fingerprint"] for f in facts})
    stale = [n for n in summary["computed"] if n.startswith("service.")
             and n.removeprefix("service.") not in deps["services"]]
    if stale:
        logger.warning("also recomputed %s: their cache was out of date", ", ".join(stale))
    return {**summary, "scenes": facts, "dependents": deps}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Update a workspace for new scenes.")
    parser.add_argument("config")
    parser.add_argument("-w", "--workspace", required=True)
    parser.add_argument("--scene")
    parser.add_argument("--dataset")
    parser.add_argument("--folder")
    parser.add_argument("--pattern", action="append", default=[], help="GLOB=DATASET (repeatable)")
    parser.add_argument("--dask-address")
    a = parser.parse_args()
    pats = dict(p.split("=", 1) for p in a.pattern)
    out = on_new_imagery(a.config, a.workspace, scene=a.scene, dataset=a.dataset, folder=a.folder,
                         patterns=pats or None, dask_address=a.dask_address)
    print(out.get("manifest", "no new scenes"))
