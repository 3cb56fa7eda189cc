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

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import flows  # noqa: F401,E402  (quiet, offline settings before Prefect)
from flows.tasks import IO_RETRIES, PrefectExecutor, dask_settings, flow_summary  # noqa: E402
from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from ecoraster.pipeline import incremental  # noqa: E402


@task(name="scan-folder", cache_policy=NO_CACHE, **IO_RETRIES)
def scan_task(folder: str, patterns: dict[str, str], workspace: str) -> list[dict[str, str]]:
    found = incremental.scan_folder(folder, patterns, workspace)
    get_run_logger().info("scan of %s: %d new scene(s)", folder, len(found))
    return found


@flow(name="on_new_imagery", task_runner=ThreadPoolTaskRunner(max_workers=4))
def on_new_imagery(config: str, workspace: str, scene: str | None = None, dataset: str | None = None,
                   folder: str | None = None, patterns: dict[str, str] | None = None,
                   dask_address: str | None = None) -> dict:
    """Update a workspace for new scenes.

    Parameters
    ----------
    config : run config the workspace was made with.
    workspace : the workspace of an earlier run (``annual_gep``).
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
    config, workspace = str(Path(config).resolve()), str(Path(workspace).resolve())
    if scene and dataset:
        wanted = [{"scene": scene, "dataset": dataset}]
    elif folder and patterns:
        wanted = scan_task(folder, patterns, workspace)
    else:
        raise ValueError("on_new_imagery: give `scene` and `dataset`, or `folder` and `patterns`")
    if not wanted:
        return {"scenes": [], "changed": False}
    result, facts, deps = incremental.update(config, workspace, wanted, executor=PrefectExecutor(),
                                             dask_config=dask_settings(config, dask_address))
    logger.info("datasets %s are read by services %s and zone sets %s",
                ", ".join(f["dataset"] for f in facts), deps["services"] or "-", deps["zones"] or "-")
    stale = [n for n in result.computed if n.startswith("service.")
             and n.removeprefix("service.") not in deps["services"]]
    if stale:
        logger.warning("also recomputed %s: their cache was out of date", ", ".join(stale))
    return flow_summary(result, scenes=facts, dependents=deps)

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
