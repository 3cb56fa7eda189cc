"""Two writers cannot both write one workspace; a run stopped while publishing leaves a marked
workspace that readers refuse and the next run completes — never a mix taken for a result."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
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


# -- real `eco run` processes --------------------------------------------------------------------

#: `eco run …` in a fresh interpreter, started only when every process of the test is ready (a
#: file barrier), so that two runs reach the workspace lock at the same moment.
ECO_AFTER_BARRIER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import ecoraster.pipeline, ecoraster.services.water_conservation  # imported before the start line
    ready, n = Path(sys.argv[1]), int(sys.argv[2])
    (ready / str(__import__("os").getpid())).touch()
    while len(list(ready.iterdir())) < n:
        time.sleep(0.005)
    from ecoraster.cli.main import main
    sys.argv = ["eco", *sys.argv[3:]]
    main()
""")

#: `eco run …` that stops dead while publishing into the workspace ``sys.argv[1]``: after 3 files of
#: the commit are moved it says so on stdout and waits to be killed.
ECO_STOPS_WHILE_PUBLISHING = textwrap.dedent("""
    import os, sys, time
    from ecoraster.pipeline.workspace import COMMIT_MARKER
    marker, real, moved = os.path.join(sys.argv[1], COMMIT_MARKER), os.replace, []
    def replace(src, dst):
        if os.path.exists(marker) and str(dst) != marker:  # a file of the commit
            moved.append(dst)
            if len(moved) == 4:
                print("publishing", flush=True)
                time.sleep(600)
        return real(src, dst)
    os.replace = replace
    from ecoraster.cli.main import main
    sys.argv = ["eco", *sys.argv[2:]]
    main()
""")


def _second_config(mini) -> Path:
    """`run9.yaml`: the mini run on precipitation 900 mm (dataset p9) instead of 800 (p)."""
    write_raster(mini / "p9.tif", np.full((10, 10), 900.0, np.float32), nodata=-1.0)
    catalog = mini / "data_catalog.yaml"
    catalog.write_text(catalog.read_text() + "  p9: {kind: raster, uri: p9.tif, units: mm/yr}\n")
    cfg = mini / "run9.yaml"
    cfg.write_text((mini / "run.yaml").read_text().replace("precipitation: p,", "precipitation: p9,"))
    return cfg


#: water conservation of the mini run by hand, m³: 100 px × (P − P × 0.0267 − 500) mm × 0.9 m³/mm
BY_HAND = {"run.yaml": 100 * (800 - 800 * 0.0267 - 500) * 0.9,   # 25 077.6
           "run9.yaml": 100 * (900 - 900 * 0.0267 - 500) * 0.9}  # 33 837.3


def _consistent_result(ws) -> str:
    """The config whose result the workspace holds; asserts that the service result, the zone
    table and the manifest all hold that one run's numbers."""
    manifest = json.loads((ws / "run.json").read_text(encoding="utf-8"))
    config = Path(manifest["config"]["source_path"]).name
    expected = BY_HAND[config]
    assert _service_total(ws) == pytest.approx(expected, rel=1e-6)
    assert _zone_total(ws) == pytest.approx(expected, rel=1e-6)
    assert manifest["results"]["water_conservation"]["totals"]["water_conservation_m3_total"]["value"] == \
        pytest.approx(expected, rel=1e-6)
    assert not (ws / ".commit-in-progress").exists() and not list(ws.glob(".staging*"))
    return config


@pytest.mark.slow
def test_two_concurrent_eco_runs_one_wins_the_other_is_refused(mini, tmp_path):
    """Two `eco run` processes (precipitation 800 and 900) into one new workspace, started at the
    same moment: exactly one exits 0; the other exits 1 with one line naming the lock; the
    workspace holds the winner's complete result."""
    configs = [mini / "run.yaml", _second_config(mini)]
    ws, ready = tmp_path / "ws", tmp_path / "ready"
    ready.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", ECO_AFTER_BARRIER, str(ready), "2",
                               "run", str(cfg), "-w", str(ws), "-q"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for cfg in configs]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 1], outs
    winner, loser = codes.index(0), codes.index(1)
    err = outs[loser][1].strip()
    assert err == f"error: {ws / '.flow.lock'}: another run is writing this workspace", err
    assert _consistent_result(ws) == configs[winner].name


@pytest.mark.slow
def test_sigkill_while_publishing_leaves_old_or_new_never_a_mix(mini, tmp_path):
    """A real `eco run` killed with SIGKILL in the middle of moving its results into place: readers
    refuse the workspace (one line, exit 1) instead of reading a mix; the next run finishes the
    publish; the workspace then holds one run's numbers throughout."""
    import os
    import signal

    ws = tmp_path / "ws"
    assert runner.invoke(app, ["run", str(mini / "run.yaml"), "-w", str(ws), "-q"]).exit_code == 0
    assert _consistent_result(ws) == "run.yaml"  # the old result: 25 077.6 m³
    old = tree_digest(ws)

    cfg9 = _second_config(mini)
    proc = subprocess.Popen([sys.executable, "-c", ECO_STOPS_WHILE_PUBLISHING, str(ws), "run", str(cfg9), "-w", str(ws),
                             "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "publishing"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    # half moved: 3 files new, run.json still the old one — a reader must not take it for a result
    now = tree_digest(ws)
    assert now["run.json"] == old["run.json"]
    assert any(now[f] != old[f] for f in now if f in old and not f.startswith("."))  # some already new
    assert (ws / ".commit-in-progress").exists()
    for command in (["catalogue", "-w", str(ws)], ["gep-table", "-w", str(ws), "--zone-set", "z"]):
        res = runner.invoke(app, command)
        assert res.exit_code == 1 and len(res.output.strip().splitlines()) == 1, res.output
        assert "incomplete workspace" in res.output

    # the next writer (here the old config again) first completes the killed run's publish,
    # then runs: every step of run.yaml is recomputed or reused consistently
    assert runner.invoke(app, ["run", str(mini / "run.yaml"), "-w", str(ws), "-q"]).exit_code == 0
    assert _consistent_result(ws) == "run.yaml"
    assert runner.invoke(app, ["run", str(cfg9), "-w", str(ws), "-q"]).exit_code == 0
    assert _consistent_result(ws) == "run9.yaml"
