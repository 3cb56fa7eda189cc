"""What a compute node runs (docs/compute-node.md), end to end, against a REAL Prefect server:
``prefect server start`` on a free loopback port with a temporary ``PREFECT_HOME``, the work pool,
``prefect --no-prompt deploy --all`` from this checkout as shipped (prefect.yaml untouched), the
server's scheduler creating the next cron run of ``annual-gep``, a worker (``python -m
flows.worker``), a triggered annual run on the small example config completed with its outputs
and artifacts, the worker stopping on one SIGTERM during a second run (marked Crashed); and ``flows/serve.py`` on the same server under
its own deployment names (scheduled too, no takeover, paused and stopped by SIGTERM).

It fails when the dependency constraints drift to versions that break Prefect's server
(fastapi 0.151–0.154: 422 on ``"limit": null``; SQLAlchemy 2.1: no scheduled runs). Every
Prefect command runs as a child process talking to this server only (never to the pytest
harness of tests/flows). Skip it in the inner loop: ``pytest -m 'not server'``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import rasterio

from flows.server import LocalServer

from ..conftest import REPO

SHANGHAI = ZoneInfo("Asia/Shanghai")
PREFECT = [sys.executable, "-m", "prefect"]
#: The machine running CI may be busy: generous limits; a healthy run takes ≈1.5 min in all.
START_TIMEOUT_S, SCHEDULE_TIMEOUT_S, RUN_TIMEOUT_S, STOP_TIMEOUT_S = 180, 120, 480, 30


def next_annual_run(now: datetime) -> datetime:
    """Next ``0 2 1 3 *`` in Asia/Shanghai after ``now``: 1 March 02:00 of this year, or of the
    next one when that has passed (e.g. now 2026-11-30 → 2027-03-01 02:00+08:00 = 2027-02-28 18:00Z)."""
    local = now.astimezone(SHANGHAI)
    candidate = datetime(local.year, 3, 1, 2, 0, tzinfo=SHANGHAI)
    return candidate if candidate > local else datetime(local.year + 1, 3, 1, 2, 0, tzinfo=SHANGHAI)


def test_next_annual_run_by_hand():
    assert next_annual_run(datetime(2026, 11, 30, 21, 0, tzinfo=ZoneInfo("UTC"))) == \
        datetime(2027, 3, 1, 2, 0, tzinfo=SHANGHAI)
    # 2027-02-28 18:30Z is already 1 March 02:30 in Shanghai: the next one is 2028
    assert next_annual_run(datetime(2027, 2, 28, 18, 30, tzinfo=ZoneInfo("UTC"))).year == 2028
    assert next_annual_run(datetime(2027, 2, 28, 17, 30, tzinfo=ZoneInfo("UTC"))).year == 2027


class Api:
    """Plain HTTP calls to the server's REST API (bodies as Prefect's own client sends them,
    ``"limit": null`` included: the call fastapi 0.151–0.154 reject with 422)."""

    def __init__(self, url: str):
        import httpx

        self.http = httpx.Client(base_url=url.rstrip("/") + "/", timeout=30)

    def get(self, path: str):
        r = self.http.get(path)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: dict):
        r = self.http.post(path, json=body)
        assert r.status_code < 300, f"POST {path}: {r.status_code} {r.text[:500]}"
        return r.json()

    def flow_runs(self, deployment_id: str, state_types: list[str] | None = None) -> list[dict]:
        body: dict = {"deployments": {"id": {"any_": [deployment_id]}}, "limit": None, "offset": 0}
        if state_types:
            body["flow_runs"] = {"state": {"type": {"any_": state_types}}}
        return self.post("flow_runs/filter", body)


def _cli(args: list[str], env: dict[str, str], timeout: float = 240) -> str:
    p = subprocess.run([*PREFECT, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, check=False)
    assert p.returncode == 0, f"prefect {' '.join(args)} → {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p.stdout


def _wait(what: str, check, timeout_s: float, interval_s: float = 2.0, diagnose=lambda: ""):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval_s)
    pytest.fail(f"{what}: not within {timeout_s:.0f} s\n{diagnose()}")


def _stop_tree(proc: subprocess.Popen) -> None:
    """End a process this test started and every process it started (flow runs)."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    for p in [*children]:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


@pytest.fixture
def server(tmp_path):
    srv = LocalServer(tmp_path / "server-home", ui=False)
    try:
        t0 = time.monotonic()
        srv.start(timeout_s=START_TIMEOUT_S)
        print(f"server started: {time.monotonic() - t0:.1f} s", flush=True)
        yield srv
    finally:
        srv.stop()


@pytest.mark.server
@pytest.mark.flows
@pytest.mark.slow
def test_deploy_schedule_and_worker_run_on_a_real_server(server, tmp_path):
    api = Api(server.api_url)
    t0, phases = time.monotonic(), {}

    def phase(name: str) -> None:  # wall time per phase, in failure messages and the -s output
        phases[name] = round(time.monotonic() - t0 - sum(phases.values()), 1)
        print(f"{name}: {phases[name]} s", flush=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "ECORASTER_"))}  # nothing from the pytest harness or the user
    env.update(PREFECT_API_URL=server.api_url, PREFECT_HOME=str(tmp_path / "client-home"),
               PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", PREFECT_LOGGING_LEVEL="INFO",
               PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))

    # work pool + every deployment of prefect.yaml, as shipped
    _cli(["work-pool", "create", "gep-process", "--type", "process"], env)
    out = _cli(["--no-prompt", "deploy", "--all"], env)
    assert "annual_gep/annual-gep" in out and "on_new_imagery/on-new-imagery" in out, out[-2000:]
    phase("work pool + deploy --all")

    annual = api.get("deployments/name/annual_gep/annual-gep")
    imagery = api.get("deployments/name/on_new_imagery/on-new-imagery")
    assert annual["work_pool_name"] == imagery["work_pool_name"] == "gep-process"
    # runs start in this checkout, wherever it is (the build step recorded it)
    assert annual["pull_steps"] == [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]
    assert annual["parameters"] == {"config": "configs/wuhan_2013_gep.yaml"}
    (sched,) = annual["schedules"]
    assert sched["schedule"]["cron"] == "0 2 1 3 *" and sched["schedule"]["timezone"] == "Asia/Shanghai"

    # the server's scheduler creates the next annual run (none without a working scheduler)
    expected = next_annual_run(datetime.now(SHANGHAI))
    scheduled = _wait("a scheduled run of annual-gep", lambda: api.flow_runs(annual["id"], ["SCHEDULED"]),
                      SCHEDULE_TIMEOUT_S, diagnose=server.log_tail)
    first = min(datetime.fromisoformat(r["expected_start_time"]) for r in scheduled)
    assert first == expected, (first, expected)
    phase("scheduled run seen")

    # a worker; the annual deployment triggered on the small example config
    ws = tmp_path / "ws"
    worker_log = open(tmp_path / "worker.log", "w+", encoding="utf-8")
    worker = subprocess.Popen([sys.executable, "-m", "flows.worker", "--pool", "gep-process", "--name", "pytest-node"],
                              cwd=tmp_path, env=env, stdout=worker_log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL)
    # and the one-process path next to it: serve.py on the same server, under its own names
    serve_log = open(tmp_path / "serve.log", "w+", encoding="utf-8")
    serve = subprocess.Popen([sys.executable, str(REPO / "flows" / "serve.py"), "--no-server",
                              "--config", str(REPO / "configs" / "examples" / "wuhan_small.yaml"),
                              "--workspace", str(tmp_path / "served")],
                             cwd=tmp_path, env=env, stdout=serve_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        params = {"config": "configs/examples/wuhan_small.yaml", "workspace": str(ws)}
        out = _cli(["deployment", "run", "annual_gep/annual-gep", "--params", json.dumps(params)], env)
        run_id = re.search(r"UUID: ([0-9a-f-]{36})", out).group(1)

        def log() -> str:
            worker_log.flush()
            return (tmp_path / "worker.log").read_text(encoding="utf-8", errors="replace")[-6000:]

        def final_state(flow_run_id: str = run_id):
            state = api.get(f"flow_runs/{flow_run_id}")["state_type"]
            return state if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

        state = _wait("the triggered annual run to finish", final_state, RUN_TIMEOUT_S,
                      diagnose=lambda: f"{phases}\n{log()}")
        phase("worker ran the triggered run")
        assert state == "COMPLETED", log()

        # outputs: the manifest and the carbon-storage rasters, committed into the workspace
        manifest = json.loads((ws / "run.json").read_text(encoding="utf-8"))
        assert manifest["config"]["region"] == "wuhan_small" and (ws / "zonal" / "districts.csv").is_file()
        assert "service.carbon_storage" in {k for k, v in manifest["steps"].items() if v["computed"]}

        # artifacts: the totals table reports what the rasters hold (re-summed here in float64)
        arts = api.post("artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run_id]}}, "limit": None})
        by_key = {a["key"]: a for a in arts if a.get("key")}
        totals = by_key["gep-totals-wuhan-small-2013"]
        rows = json.loads(totals["data"]) if isinstance(totals["data"], str) else totals["data"]
        change = next(r for r in rows if r["service"] == "carbon_storage" and r["output"] == "c_change")
        with rasterio.open(next((ws / "carbon_storage").glob("c_change*.tif"))) as src:
            band = src.read(1, masked=True).astype("float64")
        assert change["total"] == pytest.approx(float(band.sum()), rel=1e-9)
        summary = by_key["gep-run-wuhan-small-2013"]
        assert summary["type"] == "markdown"
        assert "`service.carbon_storage`" in summary["data"] and "## Warnings" in summary["data"]
        assert np.isfinite(change["total"])

        # the worker stops on ONE SIGTERM (systemd / docker stop) while a second run (force) is in
        # progress: exit code 0, the run Crashed (not left Running, where it would hold the
        # deployment's concurrency slot), the committed outputs untouched
        committed = (ws / "run.json").read_bytes()
        out = _cli(["deployment", "run", "annual_gep/annual-gep", "--params", json.dumps({**params, "force": True})], env)
        second = re.search(r"UUID: ([0-9a-f-]{36})", out).group(1)
        _wait("the second run to start", lambda: api.get(f"flow_runs/{second}")["state_type"] == "RUNNING",
              RUN_TIMEOUT_S, interval_s=0.5, diagnose=log)
        worker.send_signal(signal.SIGTERM)
        try:
            code = worker.wait(STOP_TIMEOUT_S + 30)  # + the grace the flow run gets
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker still running {STOP_TIMEOUT_S + 30} s after SIGTERM\n{log()}")
        assert code == 0, log()
        assert "SIGTERM received, stopping" in log()
        assert _wait("the second run to end", lambda: final_state(second), 10, interval_s=0.5,
                     diagnose=log) == "CRASHED", log()
        assert (ws / "run.json").read_bytes() == committed
        phase("worker stopped during a run")

        # serve: its deployment gets the same next cron run; the work pool's one is not taken over
        def served():
            try:
                return api.get("deployments/name/annual_gep/annual-gep-served")
            except Exception:
                return None

        def serve_log_text() -> str:
            serve_log.flush()
            return (tmp_path / "serve.log").read_text(encoding="utf-8", errors="replace")[-4000:]

        dep = _wait("serve.py to register annual-gep-served", served, SCHEDULE_TIMEOUT_S, diagnose=serve_log_text)
        runs = _wait("a scheduled run of annual-gep-served", lambda: api.flow_runs(dep["id"], ["SCHEDULED"]),
                     SCHEDULE_TIMEOUT_S, diagnose=serve_log_text)
        assert min(datetime.fromisoformat(r["expected_start_time"]) for r in runs) == expected
        assert dep["work_pool_name"] is None
        assert api.get("deployments/name/annual_gep/annual-gep")["work_pool_name"] == "gep-process"
        serve.send_signal(signal.SIGTERM)  # schedules paused, exit 0
        try:
            assert serve.wait(STOP_TIMEOUT_S) == 0, serve_log_text()
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve.py still running {STOP_TIMEOUT_S} s after SIGTERM\n{serve_log_text()}")
        assert api.get(f"deployments/{dep['id']}")["paused"] is True, serve_log_text()
        phase("serve registered, scheduled and stopped")
    finally:
        _stop_tree(worker)
        _stop_tree(serve)
        worker_log.close()
        serve_log.close()
