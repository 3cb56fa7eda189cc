"""Serve both deployments from one long-running process on a compute node (Prefect ``serve``).

    python flows/serve.py --config configs/wuhan_2013.yaml --workspace /data/outputs/wuhan_2013 \\
        --watch-folder /data/incoming --pattern '*.tif=wuhan_lulc_2013'

- ``annual-gep``: every year on 1 March, 02:00 Asia/Shanghai (``ANNUAL_CRON``), after the
  statistical yearbook data lands; one run at a time.
- ``on-new-imagery``: scans the watch folder every ``--interval`` seconds (default 3600) and
  updates the workspace for new scenes (only when ``--watch-folder`` is given).
- ``on-new-monitoring``: no schedule; run it when a station table arrives
  (``prefect deployment run on_new_monitoring/on-new-monitoring -p stations=table.csv``).

Stopping the process pauses the schedules. Set ``PREFECT_API_URL`` to register the deployments
with a self-hosted Prefect server; without it Prefect uses a local ephemeral server.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import flows  # noqa: F401,E402  (quiet, offline settings before Prefect)

ANNUAL_CRON = "0 2 1 3 *"
TIMEZONE = "Asia/Shanghai"


def build_deployments(config: str, workspace: str, watch_folder: str | None = None,
                      patterns: dict[str, str] | None = None, interval_s: int = 3600) -> list:
    """The RunnerDeployments that ``serve`` runs (also used by tests)."""
    from prefect.schedules import Cron, Interval

    from flows.annual import annual_gep
    from flows.new_imagery import on_new_imagery
    from flows.new_monitoring import on_new_monitoring

    config, workspace = str(Path(config).resolve()), str(Path(workspace).resolve())
    deployments = [annual_gep.to_deployment(
        name="annual-gep", schedules=[Cron(ANNUAL_CRON, timezone=TIMEZONE)], concurrency_limit=1,
        parameters={"config": config, "workspace": workspace}, tags=["gep", "annual"],
        description="Annual GEP accounting run (生态产品总值核算)")]
    if watch_folder:
        deployments.append(on_new_imagery.to_deployment(
            name="on-new-imagery", schedules=[Interval(interval_s, timezone=TIMEZONE)], concurrency_limit=1,
            parameters={"config": config, "workspace": workspace, "folder": str(Path(watch_folder).resolve()),
                        "patterns": patterns or {}},
            tags=["gep", "imagery"], description="Ingest new scenes and update what depends on them"))
    deployments.append(on_new_monitoring.to_deployment(  # no schedule: run it as station tables arrive
        name="on-new-monitoring", concurrency_limit=1, parameters={"config": config, "workspace": workspace},
        tags=["gep", "monitoring"], description="A station table replaces the concentration datasets"))
    return deployments


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--watch-folder")
    parser.add_argument("--pattern", action="append", default=[], help="GLOB=DATASET (repeatable)")
    parser.add_argument("--interval", type=int, default=3600, help="seconds between folder scans")
    a = parser.parse_args(argv)
    from prefect import serve

    patterns = dict(p.split("=", 1) for p in a.pattern)
    serve(*build_deployments(a.config, a.workspace, a.watch_folder, patterns, a.interval))


if __name__ == "__main__":
    main()
