"""``annual_gep``: region + year (+ config path) → inputs checked → services → valuation →
zone tables → products (catalogue, parcel GEP, STAC) → manifest, committed atomically.

Run it::

    python -m flows.annual configs/wuhan_2013.yaml -w outputs/wuhan_2013
    eco flow annual configs/wuhan_2013.yaml -w outputs/wuhan_2013

or as the ``annual-gep`` deployment (``prefect.yaml``, or ``python flows/serve.py``).
A re-run with unchanged inputs, parameters and code reuses every step (seconds).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import flows  # noqa: F401,E402  (quiet, offline settings before Prefect)
from flows.artifacts import publish_run_summary  # noqa: E402
from flows.tasks import PrefectExecutor, dask_settings, flow_summary, totals_artifact_task  # noqa: E402
from prefect import flow, get_run_logger  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from ecoraster.pipeline import run  # noqa: E402
from ecoraster.pipeline.runner import CONFIG_DIR_ENV, OUTPUT_DIR_ENV, resolve_run  # noqa: E402,F401

@flow(name="annual_gep", task_runner=ThreadPoolTaskRunner(max_workers=4))
def annual_gep(region: str | None = None, year: int | None = None, config: str | None = None,
               workspace: str | None = None, services: list[str] | None = None,
               dask_address: str | None = None, force: bool = False) -> dict:
    """The annual GEP run of one region and year.

    Parameters
    ----------
    region, year : the run (``<region>_<year>.yaml`` in ``$ECORASTER_CONFIG_DIR``), or
    config : path of a run config (region and year are then checked against it).
    workspace : output folder (default ``$ECORASTER_OUTPUT_DIR/<region>_<year>``).
    services : only these services (default: every enabled one).
    dask_address : an existing ``distributed`` scheduler (overrides the config's ``dask:``).
    force : recompute every step even when its cache key matches.

    Returns
    -------
    dict : ``manifest`` (path of ``run.json``), ``changed``, ``computed`` / ``cached`` step names,
    ``outcomes``.
    """
    config, workspace = resolve_run(region, year, config, workspace)
    logger = get_run_logger()
    dask_cfg = dask_settings(config, dask_address)
    logger.info("annual run %s → %s (dask: %s)", config, workspace,
                dask_cfg.address or os.environ.get("DASK_SCHEDULER_ADDRESS") or dask_cfg.scheduler)
    result = run(config, workspace, services=services, cache=not force, executor=PrefectExecutor(),
                 dask_config=dask_cfg)
    totals_artifact_task(config, result)
    publish_run_summary(config, workspace, result.summary())
    logger.info("done: %s", result.manifest_path)
    return flow_summary(result)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Run the annual GEP flow once.")
    parser.add_argument("config", nargs="?", help="run config (or give --region/--year)")
    parser.add_argument("--region")
    parser.add_argument("--year", type=int)
    parser.add_argument("-w", "--workspace")
    parser.add_argument("--dask-address")
    parser.add_argument("--force", action="store_true")
    a = parser.parse_args()
    out = annual_gep(region=a.region, year=a.year, config=a.config, workspace=a.workspace,
                     dask_address=a.dask_address, force=a.force)
    print(out["manifest"])
