"""Serve both flows from one long-running process on one compute node, with a real Prefect
server so that the schedules fire.

    python flows/serve.py --config configs/wuhan_2013_gep.yaml --workspace /data/outputs/wuhan_2013 \\
        --watch-folder /data/incoming --pattern 'wh2013_*.tif=wuhan_lulc_2013'

- ``annual-gep-served``: every year on 1 March, 02:00 Asia/Shanghai (``ANNUAL_CRON``), after the
  statistical yearbook data lands; one run at a time.
- ``on-new-imagery-served``: scans the watch folder every ``--interval`` seconds (default 3600)
  and updates the workspace for new scenes (only with ``--watch-folder``; the folder and the
  patterns are checked at start-up).
- ``on-new-monitoring-served``: no schedule; run it when a station table arrives
  (``prefect deployment run on_new_monitoring/on-new-monitoring-served -p stations=table.csv``).

The server: ``PREFECT_API_URL`` when set (a ``prefect server start`` elsewhere, e.g. the
``prefect-server`` systemd unit); else a server already answering on ``--server-port`` of this
machine; else this process starts one (``prefect server start`` on 127.0.0.1:``--server-port``,
database and ``server.log`` in ``$PREFECT_HOME``, default ``~/.prefect``) and stops it when it
ends. ``--no-server`` refuses to start without one. (Prefect's ephemeral server, used when
nothing is set, runs no scheduler: deployments register but never get a scheduled run.)

The names end in ``-served`` so that serving never takes over the ``annual-gep`` /
``on-new-imagery`` deployments of ``prefect.yaml`` (a work pool's); a work-pool deployment of the
same name is refused. SIGTERM or Ctrl-C: the schedules are paused, the server this process started
is stopped, exit 0.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import flows  # noqa: F401,E402  (quiet, offline settings before Prefect)

ANNUAL_CRON = "0 2 1 3 *"
TIMEZONE = "Asia/Shanghai"
#: Deployment names of ``serve`` (``prefect.yaml`` uses the same without the suffix).
ANNUAL_NAME, IMAGERY_NAME, MONITORING_NAME = "annual-gep-served", "on-new-imagery-served", "on-new-monitoring-served"
DEFAULT_PORT = 4200


def build_deployments(config: str, workspace: str, watch_folder: str | None = None,
                      patterns: dict[str, str] | None = None, interval_s: int = 3600) -> list:
    """The RunnerDeployments that ``serve`` runs (also used by tests)."""
    from prefect.schedules import Cron, Interval

    from flows.annual import annual_gep
    from flows.new_imagery import on_new_imagery
    from flows.new_monitoring import on_new_monitoring

    config, workspace = str(Path(config).resolve()), str(Path(workspace).resolve())
    deployments = [annual_gep.to_deployment(
        name=ANNUAL_NAME, schedules=[Cron(ANNUAL_CRON, timezone=TIMEZONE)], concurrency_limit=1,
        parameters={"config": config, "workspace": workspace}, tags=["gep", "annual", "served"],
        description="Annual GEP accounting run (生态产品总值核算), served by flows/serve.py")]
    if watch_folder:
        deployments.append(on_new_imagery.to_deployment(
            name=IMAGERY_NAME, schedules=[Interval(interval_s, timezone=TIMEZONE)], concurrency_limit=1,
            parameters={"config": config, "workspace": workspace, "folder": str(Path(watch_folder).resolve()),
                        "patterns": patterns or {}},
            tags=["gep", "imagery", "served"], description="Ingest new scenes, served by flows/serve.py"))
    deployments.append(on_new_monitoring.to_deployment(  # no schedule: run it as station tables arrive
        name=MONITORING_NAME, concurrency_limit=1, parameters={"config": config, "workspace": workspace},
        tags=["gep", "monitoring", "served"],
        description="A station table replaces the concentration datasets, served by flows/serve.py"))
    return deployments


def refuse_takeover(deployments: list) -> None:
    """Raise ``SystemExit`` with a message when a deployment of the same name already exists on the
    server and belongs to a work pool (``prefect deploy``): serving it would take it over."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        for d in deployments:
            try:
                existing = client.read_deployment_by_name(f"{d.flow_name}/{d.name}")
            except ObjectNotFound:
                continue
            if existing.work_pool_name:
                raise SystemExit(f"serve: deployment {d.flow_name}/{d.name} exists on work pool "
                                 f"{existing.work_pool_name!r}; serving it would take it over. Delete it "
                                 f"(prefect deployment delete '{d.flow_name}/{d.name}') or use the worker.")


def ensure_server(port: int, home: str | None, required: bool):
    """``(api_url, LocalServer or None)``: the server this process talks to, started here when
    no other answers. Sets ``PREFECT_API_URL`` (before Prefect is imported)."""
    from flows.server import LocalServer, api_healthy

    url = os.environ.get("PREFECT_API_URL")
    if url:
        return url, None
    local = f"http://127.0.0.1:{port}/api"
    if api_healthy(local):
        os.environ["PREFECT_API_URL"] = local
        return local, None
    if required:
        raise SystemExit("serve: no Prefect server. Start one (`prefect server start`, or the prefect-server "
                         "systemd unit of deploy/systemd/) and set PREFECT_API_URL, or drop --no-server.")
    home = home or os.environ.get("PREFECT_HOME") or str(Path.home() / ".prefect")
    server = LocalServer(home, port=port)
    print(f"starting a Prefect server on {server.api_url} (database and server.log in {server.home})", flush=True)
    os.environ["PREFECT_API_URL"] = server.start()
    return server.api_url, server


def main(argv: list[str] | None = None) -> None:
    import argparse

    from flows.checks import check_watch_folder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--watch-folder")
    parser.add_argument("--pattern", action="append", default=[], help="GLOB=DATASET (repeatable)")
    parser.add_argument("--interval", type=int, default=3600, help="seconds between folder scans")
    parser.add_argument("--server-port", type=int, default=DEFAULT_PORT,
                        help="port of the local Prefect server (used or started; default 4200)")
    parser.add_argument("--server-home", help="PREFECT_HOME of a server started here (default $PREFECT_HOME)")
    parser.add_argument("--no-server", action="store_true",
                        help="never start a server: need PREFECT_API_URL or one on --server-port")
    a = parser.parse_args(argv)
    bad = [p for p in a.pattern if "=" not in p]
    if bad:
        parser.error(f"--pattern needs GLOB=DATASET, got {bad[0]!r}")
    patterns = dict(p.split("=", 1) for p in a.pattern)
    if a.watch_folder:
        check_watch_folder(a.watch_folder, patterns)  # before anything starts

    url, server = ensure_server(a.server_port, a.server_home, a.no_server)
    # Prefect 3.8.8's runner calls an async stop() from its SIGTERM handler without awaiting it (harmless)
    warnings.filterwarnings("ignore", message="coroutine 'Runner.astop' was never awaited")
    try:
        from prefect import serve

        deployments = build_deployments(a.config, a.workspace, a.watch_folder, patterns, a.interval)
        refuse_takeover(deployments)
        print(f"serving {', '.join(d.name for d in deployments)} on {url}", flush=True)
        serve(*deployments)  # SIGTERM: Prefect's runner pauses the schedules and exits (SystemExit 0)
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
