"""A worker of a Process work pool that stops on the first SIGTERM (systemd, ``docker stop``).

    python -m flows.worker --pool gep-process [--name gep-node-1] [--limit 1]

Same worker as ``prefect worker start --pool gep-process --type process``, but that command
turns a SIGTERM into a SIGINT to itself and keeps running (measured with Prefect 3.8.8: alive
30 s after it; only a second SIGTERM ends it, with SIGKILL). Here SIGTERM or SIGINT cancels the
worker's loops: it stops taking runs, says so, deregisters its polling and exits 0 within
seconds. A flow run still in progress gets its own SIGTERM from the service manager (systemd
``KillMode=control-group``): Prefect marks it Crashed, the flow discards its staging folder, the
workspace keeps its last committed results, and the OS releases the workspace lock.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import flows  # noqa: F401,E402  (quiet, offline settings before Prefect)


async def run_worker(pool: str, name: str | None = None, limit: int | None = None) -> int:
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
    a = parser.parse_args(argv)
    import anyio

    anyio.run(run_worker, a.pool, a.name, a.limit)


if __name__ == "__main__":
    main()
