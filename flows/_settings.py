"""Offline, quiet defaults for Prefect and Dask. Imported by ``flows/__init__.py`` *before*
Prefect, because Prefect reads its settings from the environment when it is imported.

Nothing the user has set is overridden (``os.environ.setdefault``). The defaults:

- no telemetry: ``PREFECT_SERVER_ANALYTICS_ENABLED=false``, ``DO_NOT_TRACK=1``;
- quiet: ``PREFECT_LOGGING_LEVEL=WARNING`` (``eco flow … -v`` sets INFO),
  ``PREFECT_LOGGING_TO_API_ENABLED=false``, ``DASK_DISTRIBUTED__LOGGING__DISTRIBUTED=error``;
- time for the ephemeral server to start on a busy node (≈12 s measured with a fresh database);
- a numba cache outside the source tree.

With no ``PREFECT_API_URL`` Prefect runs flows against an ephemeral local server. The default
task runner of our flows runs tasks in threads of the flow process; only Dask workers (which
never import Prefect) do the pixel work, so no worker starts its own server. For a
``DaskTaskRunner`` with worker processes, call :func:`ensure_api_server` before the cluster is
created: one server for the parent, its URL exported to every worker.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

QUIET_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_LOGGING_TO_API_ENABLED": "false",
    "DASK_DISTRIBUTED__LOGGING__DISTRIBUTED": "error",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "NUMBA_CACHE_DIR": str(Path.home() / ".cache" / "ecoraster" / "numba"),
}


def apply_defaults() -> dict[str, str]:
    """Set every default the environment does not already have; return what was set."""
    applied = {}
    for name, value in QUIET_DEFAULTS.items():
        if name not in os.environ:
            os.environ[name] = value
            applied[name] = value
    if "DASK_DISTRIBUTED__LOGGING__DISTRIBUTED" in applied:
        # dask may have been imported (and read its config) before us
        logging.getLogger("distributed").setLevel(logging.ERROR)
    return applied


def set_verbose() -> None:
    """INFO log lines from the flows (call before Prefect is imported)."""
    os.environ["PREFECT_LOGGING_LEVEL"] = "INFO"


def ensure_api_server() -> str:
    """Start one Prefect API server in this process (unless ``PREFECT_API_URL`` is set) and
    export its URL, so worker processes spawned later talk to it instead of each starting
    its own ephemeral server on the same SQLite file. Prefect stops it at exit."""
    url = os.environ.get("PREFECT_API_URL")
    if url:
        return url
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start(timeout=int(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")))
    os.environ["PREFECT_API_URL"] = server.api_url
    return server.api_url


apply_defaults()
