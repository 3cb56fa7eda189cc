"""Two writers cannot both write one workspace; a run stopped while publishing leaves a marked
workspace that readers refuse and the next run completes — never a mix taken for a result."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ecoraster.cli import app

from ..conftest import write_raster
from .conftest import tree_digest

runner = CliRunner()


def test_second_writer_is_refused_while_a_run_holds_the_workspace(mini, tmp_path):
    """Another process (an `eco run`) holds the workspace: this `eco run` exits 1 naming the lock
    and changes nothing."""
    from ecoraster import pipeline

    ws = tmp_path / "ws"
    pipeline.run(mini / "run.yaml", ws)
    before = tree_digest(ws)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from ecoraster.pipeline.workspace import Workspace
        with Workspace({str(ws)!r}).lock():
            print("locked", flush=True)
            sys.stdin.read()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        res = runner.invoke(app, ["run", str(mini / "run.yaml"), "-w", str(ws), "-q", "--force"])
        assert res.exit_code == 1 and "another run is writing this workspace" in res.output
        assert len(res.output.strip().splitlines()) == 1
    finally:
        holder.communicate("", timeout=60)
    assert tree_digest(ws) == before
    assert runner.invoke(app, ["run", str(mini / "run.yaml"), "-w", str(ws), "-q"]).exit_code == 0  # free again


def _zone_total(ws) -> float:
    table = pd.read_csv(ws / "zonal" / "z.csv", encoding="utf-8-sig")
    return float(table["water_conservation.water_conservation_m3"].sum())


def _service_total(ws) -> float:
    res = json.loads((ws / "water_conservation" / "result.json").read_text(encoding="utf-8"))
    return res["totals"]["water_conservation_m3_total"]["value"]


def test_stop_during_commit_is_refused_by_readers_then_completed(mini, tmp_path, monkeypatch):
    import ecoraster.pipeline.workspace as wsmod
    from ecoraster import pipeline
    from ecoraster.errors import EcorasterError

    ws = tmp_path / "ws"
    pipeline.run(mini / "run.yaml", ws)
    # 100 px × (800 − 21.36 − 500) mm × 0.9 m³/mm = 25 077.6 m³
    assert _service_total(ws) == pytest.approx(25077.6, rel=1e-6) == _zone_total(ws)

    write_raster(mini / "p.tif", np.full((10, 10), 900.0, np.float32), nodata=-1.0)
    # 100 px × (900 − 24.03 − 500) mm × 0.9 = 33 837.3 m³
    real, calls = wsmod.os.replace, []

    def stop_after_three(src, dst):
        if (ws / wsmod.COMMIT_MARKER).exists():  # committing: 3 files moved, then Ctrl-C
            calls.append(dst)
            if len(calls) == 4:
                raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(wsmod.os, "replace", stop_after_three)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(mini / "run.yaml", ws)
    monkeypatch.setattr(wsmod.os, "replace", real)

    assert (ws / wsmod.COMMIT_MARKER).exists()
    with pytest.raises(EcorasterError, match="incomplete workspace"):
        wsmod.check_complete(ws)
    res = runner.invoke(app, ["catalogue", "-w", str(ws)])
    assert res.exit_code == 1 and "incomplete workspace" in res.output

    pipeline.run(mini / "run.yaml", ws)  # finishes the interrupted commit first, then runs (all cached)
    assert not (ws / wsmod.COMMIT_MARKER).exists() and not list(ws.glob(".staging*"))
    assert _service_total(ws) == pytest.approx(33837.3, rel=1e-6) == _zone_total(ws)
    assert runner.invoke(app, ["catalogue", "-w", str(ws)]).exit_code == 0
