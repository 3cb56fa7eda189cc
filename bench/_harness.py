"""Shared by the bench scripts that time ``ecoraster.pipeline.run`` in a child process (CASA, air).

The parent generates inputs, then runs ``<script> --child CONFIG WORKSPACE``; the child runs the
config and prints one JSON line; the parent reads it and the child's peak RSS
(``getrusage(RUSAGE_CHILDREN).ru_maxrss``), so input generation is neither timed nor counted."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child_report(config: str, workspace: str, service: str) -> None:
    """In the child: run ``config`` and print wall time, stage timings, totals and the
    service's block size as one JSON line."""
    from ecoraster import pipeline

    t0 = time.monotonic()
    result = pipeline.run(config, workspace, checksums=False, cache=False)  # time the computation, not the cache
    wall = time.monotonic() - t0
    res = result.services[service]
    print(json.dumps({"wall_s": wall, "timings": result.timings, "chunk": res.metadata.get("chunk"),
                      "totals": {k: v[0] for k, v in res.totals.items()}}))


def run_child(script: str, config: Path, workspace: Path) -> tuple[dict, float]:
    """In the parent: (the child's JSON report, its peak RSS in GB)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, str(Path(script).resolve()), "--child", str(config), str(workspace)],
                         env=env, capture_output=True, text=True)
    if out.returncode:
        print(out.stdout, out.stderr)
        raise SystemExit(out.returncode)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    return report, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20


def print_report(headline: str, report: dict, size: int, peak_gb: float) -> None:
    mpx = size ** 2 / 1e6
    print(f"{headline} {size}² ({mpx:.0f} Mpx): wall {report['wall_s']:.1f} s, "
          f"{mpx / report['wall_s']:.2f} Mpx/s, peak RSS {peak_gb:.2f} GB")
    print("stage timings (s):", {k: round(v, 1) for k, v in report["timings"].items()})
    print("totals:", {k: f"{v:.6g}" for k, v in report["totals"].items()})
