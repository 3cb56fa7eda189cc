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
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import flows  # noqa: F401,E402  (quiet, offline settings before Prefect)
from flows import steps  # noqa: E402
from flows.tasks import dask_engine, prepare_task, run_steps  # noqa: E402
from prefect import flow, get_run_logger  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from ecoraster.errors import ConfigError  # noqa: E402

#: Where ``annual_gep(region=…)`` looks for ``<region>_<year>.yaml`` and writes outputs.
CONFIG_DIR_ENV = "ECORASTER_CONFIG_DIR"
OUTPUT_DIR_ENV = "ECORASTER_OUTPUT_DIR"
TIMEZONE = ZoneInfo("Asia/Shanghai")


def resolve_run(region: str | None, year: int | None, config: str | None,
                workspace: str | None) -> tuple[str, str]:
    """(config path, workspace) of an annual run.

    With ``config`` given, its ``region`` / ``year`` must match the ones given. Without it the
    config is ``$ECORASTER_CONFIG_DIR/<region>_<year>.yaml`` (default ``./configs``), the year
    defaulting to last calendar year in Asia/Shanghai (the scheduled March run accounts the
    year before). The workspace defaults to ``$ECORASTER_OUTPUT_DIR/<region>_<year>``
    (default ``./outputs``).
    """
    from ecoraster.config import RunConfig

    if config is None:
        if not region:
            raise ConfigError("annual_gep: give `config` or `region` (and `year`)")
        year = year or datetime.now(TIMEZONE).year - 1
        config = str(Path(os.environ.get(CONFIG_DIR_ENV, "configs")) / f"{region}_{year}.yaml")
    cfg = RunConfig.load(config)
    if region and region != cfg.region:
        raise ConfigError(f"{config}: region = {cfg.region!r}, but the flow was asked for {region!r}")
    if year and int(year) != cfg.year:
        raise ConfigError(f"{config}: year = {cfg.year}, but the flow was asked for {year}")
    if workspace is None:
        workspace = str(Path(os.environ.get(OUTPUT_DIR_ENV, "outputs")) / f"{cfg.region}_{cfg.year}")
    return str(Path(config).resolve()), str(Path(workspace).resolve())


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
    with steps.workspace_lock(workspace):
        overlay = steps.workspace_overlay(workspace)
        overlay = str(overlay) if overlay else None
        staging = prepare_task(config, workspace, overlay, services, force)
        with dask_engine(config, dask_address) as dask_cfg:
            logger.info("annual run %s → %s (dask: %s)", config, workspace,
                        dask_cfg.address or os.environ.get("DASK_SCHEDULER_ADDRESS") or dask_cfg.scheduler)
            summary = run_steps(config, workspace, staging, overlay=overlay, services=services, force=force)
    logger.info("done: %s", summary["manifest"])
    return summary


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
