"""A real, self-hosted Prefect server for one compute node (``prefect server start`` in a child
process), so that cron schedules fire.

Prefect's *ephemeral* server (what a flow or ``serve`` uses when ``PREFECT_API_URL`` is unset)
runs no scheduler service: deployments register, but no scheduled run is ever created. A
``prefect server start`` process runs the API and its services (scheduler, late runs, …).

:class:`LocalServer` starts one on a loopback port with its own ``PREFECT_HOME`` (database,
logs), waits until ``/api/health`` answers, and stops it (SIGTERM, then SIGKILL after a grace
period). Used by ``flows/serve.py`` (one-node path) and by the real-server test.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

#: Settings the child server gets unless the caller's environment sets them.
SERVER_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def api_healthy(api_url: str, timeout_s: float = 2.0) -> bool:
    """True when ``<api_url>/health`` answers ``true``."""
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout_s) as r:
            return r.status == 200 and json.loads(r.read() or b"false") is True
    except (OSError, ValueError, urllib.error.URLError):
        return False


class LocalServer:
    """``prefect server start --host HOST --port PORT`` as a child process.

    ``home`` becomes the child's ``PREFECT_HOME`` (SQLite database ``prefect.db``); its output
    goes to ``<home>/server.log``. ``env`` adds settings (e.g. a faster scheduler loop in tests).
    Use as a context manager, or call :meth:`start` / :meth:`stop`.
    """

    def __init__(self, home: str | os.PathLike, host: str = "127.0.0.1", port: int | None = None,
                 ui: bool = True, env: dict[str, str] | None = None):
        self.home = Path(home).expanduser().resolve()
        self.host = host
        self.port = port or free_port(host)
        self.ui = ui
        self.extra_env = dict(env or {})
        self.process: subprocess.Popen | None = None
        self.log_path = self.home / "server.log"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}/api"

    def environment(self) -> dict[str, str]:
        env = {**os.environ}
        for name, value in SERVER_DEFAULTS.items():
            env.setdefault(name, value)
        env.pop("PREFECT_API_URL", None)  # the server itself talks to no other API
        env.update(self.extra_env, PREFECT_HOME=str(self.home))
        return env

    def start(self, timeout_s: float = 120.0) -> str:
        """Start the server, wait until it answers; return its API URL. Raises
        ``RuntimeError`` with the end of the server log if it exits or does not answer."""
        self.home.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", self.host,
               "--port", str(self.port), "--ui" if self.ui else "--no-ui"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(cmd, env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prefect server exited with code {self.process.returncode}; "
                                   f"log {self.log_path}:\n{self.log_tail()}")
            if api_healthy(self.api_url):
                return self.api_url
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"prefect server did not answer at {self.api_url} within {timeout_s:.0f} s; "
                           f"log {self.log_path}:\n{self.log_tail()}")

    def stop(self, grace_s: float = 20.0) -> int | None:
        """SIGTERM the server (it forwards to its uvicorn child), SIGKILL its process group after
        ``grace_s``; return its exit code."""
        p, self.process = self.process, None
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)  # a uvicorn child left behind in the server's group
        return p.returncode

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for_api(api_url: str, timeout_s: float = 120.0) -> bool:
    """Poll ``<api_url>/health`` until it answers (True) or ``timeout_s`` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if api_healthy(api_url):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.server wait [--url URL] [--timeout S]``: exit 0 once the Prefect API
    answers (default ``$PREFECT_API_URL``), 1 after the timeout (systemd ``ExecStartPre=``)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m flows.server")
    sub = parser.add_subparsers(dest="command", required=True)
    wait = sub.add_parser("wait", help="wait until the Prefect API answers")
    wait.add_argument("--url", default=os.environ.get("PREFECT_API_URL"))
    wait.add_argument("--timeout", type=float, default=120.0)
    a = parser.parse_args(argv)
    if not a.url:
        parser.error("no --url and no PREFECT_API_URL")
    if wait_for_api(a.url, a.timeout):
        return 0
    print(f"Prefect API {a.url} did not answer within {a.timeout:.0f} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
