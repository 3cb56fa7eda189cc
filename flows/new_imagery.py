"""``on_new_imagery``: a new scene (a raw product for a dataset that declares ``derive:``, a ready
raster or STAC Item for any other, or what a folder scan finds) → checked → the index on the run
grid merged into the dataset's period composite (raw scenes) → an overlay catalogue entry in the
workspace → only the steps that depend on it recomputed → everything committed atomically; a
table artifact lists the scenes, their valid shares and what was recomputed. The logic is
:func:`ecoraster.pipeline.observations.new_imagery`; this module only wires Prefect.

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

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import flows  # noqa: F401,E402  (quiet, offline settings before Prefect)
from flows.artifacts import publish_run_summary  # noqa: E402
from flows.checks import check_watch_folder  # noqa: E402
from flows.tasks import IO_RETRIES, PrefectExecutor, dask_settings, report_artifact  # noqa: E402
from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from ecoraster.errors import MissingFileError  # noqa: E402
from ecoraster.pipeline import incremental, observations  # noqa: E402
from ecoraster.pipeline.runner import resolve_run  # noqa: E402


@task(name="scan-folder", cache_policy=NO_CACHE, **IO_RETRIES)
def scan_task(folder: str, patterns: dict[str, str], workspace: str) -> list[dict[str, str]]:
    check_watch_folder(folder, patterns)
    found = incremental.scan_folder(folder, patterns, workspace)
    get_run_logger().info("scan of %s: %d new scene(s)", folder, len(found))
    return found


@task(name="report-imagery", cache_policy=NO_CACHE)
def report_task(summary: dict) -> None:
    """A table artifact of the run: scenes taken (valid shares), what was recomputed."""
    report_artifact("new-imagery", summary, rows=[
        {"scene": s.get("scene_id") or s.get("uri"), "dataset": s["dataset"], "acquired": s.get("acquired", ""),
         "period": s.get("period", ""), "valid_share": s.get("valid_share", ""), "new": s.get("new", True)}
        for s in summary.get("scenes") or []])


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
    scene, dataset : one scene and the catalogue id it updates: a raw product (Landsat C2 L2 folder /
        MTL, Sentinel-2 L2A, MODIS SR, STAC Item) for a dataset that declares ``derive:``, else a
        ready raster; or
    folder, dataset : a folder of raw products recognised by their metadata; or
    folder, patterns : a folder to scan, with ``{glob: catalogue id}`` (e.g. ``{"LC09_*.tif": "ndvi_2024"}``);
        scenes this workspace has already ingested are skipped.
    dask_address : an existing ``distributed`` scheduler.

    Returns
    -------
    dict : as ``annual_gep``, plus ``scenes`` (valid shares), ``dependents`` (services / zone sets
    that read the updated datasets) and ``skipped``.
    """
    logger = get_run_logger()
    config, workspace = resolve_run(None, None, config, workspace)
    if folder and not scene:
        if patterns:
            if not scan_task(folder, patterns, workspace):
                return {"scenes": [], "changed": False}
        elif not Path(folder).is_dir():  # products recognised by their metadata: the folder must exist
            raise MissingFileError(str(Path(folder).resolve()), field="watch folder")
    summary = observations.new_imagery(config, workspace, scene=scene, dataset=dataset, folder=folder,
                                       patterns=patterns, executor=PrefectExecutor(),
                                       dask_config=dask_settings(config, dask_address))
    deps = summary.get("dependents") or {}
    logger.info("scenes %s; services recomputed: %s", ", ".join(str(s.get("scene_id") or s.get("uri"))
                                                                for s in summary.get("scenes") or []) or "-",
                ", ".join(summary.get("computed") or []) or "-")
    stale = [n for n in summary.get("computed") or [] if n.startswith("service.")
             and n.removeprefix("service.") not in deps.get("services", [])]
    if stale:
        logger.warning("also recomputed %s: their cache was out of date", ", ".join(stale))
    report_task(summary)
    if summary.get("computed"):
        publish_run_summary(config, workspace, summary,
                            warnings=[f"also recomputed {n}: its cache was out of date" for n in stale])
    return summary


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Update a workspace for new scenes.")
    parser.add_argument("config")
    parser.add_argument("-w", "--workspace", help="default $ECORASTER_OUTPUT_DIR/<region>_<year>")
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
