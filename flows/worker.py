"""A worker of a Process work pool that stops cleanly on the first SIGTERM (systemd, ``docker stop``).

    python -m flows.worker --pool gep-process [--name gep-node-1] [--limit 1] [--grace 30]

Same worker as ``prefect worker start --pool gep-process --type process``, but that command
turns a SIGTERM into a SIGINT to itself and keeps running (measured with Prefect 3.8.8: alive
30 s after it; only a second SIGTERM ends it, with SIGKILL). Here SIGTERM or SIGINT:

1. sends SIGTERM to the flow runs this worker started that are still running (its child
   processes: Prefect's engine raises in the flow, which discards its staging folder; the
   workspace keeps its last committed results; the OS releases the workspace lock) and waits up
   to ``--grace`` seconds for them to exit;
2. stops the worker's loops (no new runs) and exits 0;
3. marks any of those runs the API still shows as Running or Pending as **Crashed** ("worker
   stopped"), so that they do not hold the deployment's concurrency slot
   (``concurrency_limit: 1``) and block the next scheduled run forever.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import flows  # noqa: F401,E402  (quiet, offline settings before Prefect)


def _is_child(pid: int) -> bool:
    """True when ``pid`` is a running (not zombie) child process of this one (Linux ``/proc``)."""
    try:
        state, ppid = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:2]
    except (OSError, ValueError):
        return False
    return state != "Z" and int(ppid) == os.getpid()


async def stop_own_runs(pool: str, grace_s: float) -> list[str]:
    """SIGTERM the flow runs of ``pool`` whose process is a child of this worker, wait up to
    ``grace_s`` for them to exit, then mark those the API still shows as Running / Pending as
    Crashed. Returns the ids of the runs it stopped."""
    import anyio
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        WorkPoolFilter,
        WorkPoolFilterName,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(
                any_=[StateType.RUNNING, StateType.PENDING]))),
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])))
        mine = {r.id: int(r.infrastructure_pid) for r in runs
                if str(r.infrastructure_pid or "").isdigit() and _is_child(int(r.infrastructure_pid))}
        for run_id, pid in mine.items():
            print(f"stopping flow run {run_id} (pid {pid})", flush=True)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while any(_is_child(pid) for pid in mine.values()) and time.monotonic() < deadline:
            await anyio.sleep(0.5)
        for run_id in mine:
            run = await client.read_flow_run(run_id)
            if run.state is not None and run.state.type in (StateType.RUNNING, StateType.PENDING):
                await client.set_flow_run_state(run_id, Crashed(
                    message="the worker stopped (SIGTERM) while this run was in progress; the workspace keeps "
                            "its last committed results; run it again"), force=True)
                print(f"flow run {run_id} marked Crashed", flush=True)
    return [str(i) for i in mine]


async def run_worker(pool: str, name: str | None = None, limit: int | None = None, grace_s: float = 30.0) -> int:
    """Run a ProcessWorker until SIGTERM / SIGINT; return the signal number that stopped it (0
    if the worker ended by itself)."""
    import anyio
    from prefect.workers.process import ProcessWorker

    stopped_by = 0
    worker = ProcessWorker(work_pool_name=pool, name=name, limit=limit)

    async with anyio.create_task_group() as tg:
        async def stop_on_signal() -> None:
            nonlocal stopped_by
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    stopped_by = int(signum)
                    print(f"worker {worker.name!r}: {signal.Signals(signum).name} received, stopping", flush=True)
                    try:
                        with anyio.CancelScope(shield=True):
                            await stop_own_runs(pool, grace_s)
                    except Exception as exc:  # the API may be gone too: still stop
                        print(f"worker {worker.name!r}: could not stop its runs cleanly: {exc}", flush=True)
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(stop_on_signal)
        await worker.start(printer=lambda *a, **k: print(*a, flush=True))
        tg.cancel_scope.cancel()
    print(f"worker {worker.name!r} stopped", flush=True)
    return stopped_by


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", default="gep-process", help="work pool (type process)")
    parser.add_argument("--name", help="worker name (default: Prefect's)")
    parser.add_argument("--limit", type=int, help="flow runs at a time (default: no limit)")
    parser.add_argument("--grace", type=float, default=30.0,
                        help="seconds a running flow run gets to stop after SIGTERM (default 30)")
    a = parser.parse_args(argv)
    import anyio

    anyio.run(run_worker, a.pool, a.name, a.limit, a.grace)


if __name__ == "__main__":
    main()
