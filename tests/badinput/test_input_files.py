"""The files a run reads are the catalogued ones, of the run's year, and whole: declared checksums
(hashed once per file version), ``valid_years`` (with ``allow_outside_years``), and damaged
blocks found before any computation — or, if a check is bypassed, turned into one line during it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ecoraster.cli import app

from .conftest import CATALOG, scramble_block, tree_digest, write_catalog, write_tiled_with_overviews

runner = CliRunner()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_checksum_hashed_once_per_file_version(mini, tmp_path, monkeypatch):
    """A declared checksum is verified by `eco validate` and `eco run`; a run hashes each input
    once (validation, verification and the manifest share it), an unchanged file is not hashed
    again by the next run, a rewritten one is."""
    from ecoraster.pipeline import run as execute_run
    from ecoraster.pipeline import stages, verify

    p = mini / "p.tif"
    write_catalog(mini, {**CATALOG, "p": f"{{kind: raster, uri: p.tif, units: mm/yr, checksum: 'sha256:{_sha(p)}'}}"})
    hashed: list[str] = []
    real = verify.file_sha256

    def counting(path, *a, **k):
        if Path(path).parent == mini:  # the run's inputs (not the parameter tables it also records)
            hashed.append(Path(path).name)
        return real(path, *a, **k)

    monkeypatch.setattr(verify, "file_sha256", counting)
    monkeypatch.setattr(stages, "file_sha256", counting)
    ws = tmp_path / "ws"
    execute_run(mini / "run.yaml", ws)
    # every local input once: eco.tif, et.tif, p.tif, runoff.csv, zones.gpkg
    assert sorted(hashed) == ["eco.tif", "et.tif", "p.tif", "runoff.csv", "zones.gpkg"]
    manifest = json.loads((ws / "run.json").read_text(encoding="utf-8"))
    assert manifest["inputs"]["p"]["sha256"] == _sha(p)  # the manifest takes the same hash
    memo = json.loads((ws / ".cache" / "verified.json").read_text(encoding="utf-8"))
    assert memo[str(p)]["sha256"] == f"sha256:{_sha(p)}"

    hashed.clear()
    execute_run(mini / "run.yaml", ws)  # nothing changed: nothing hashed
    assert hashed == []

    # same content, new mtime: a new file version is hashed again (and still matches)
    p.write_bytes(p.read_bytes())
    hashed.clear()
    execute_run(mini / "run.yaml", ws)
    assert hashed == ["p.tif"]


def test_checksum_changed_file_refused_by_the_next_run(mini, tmp_path):
    """A file replaced after a good run is refused (the memo is keyed by the file's version),
    and the workspace keeps the good run."""
    from ..conftest import write_raster

    p = mini / "p.tif"
    write_catalog(mini, {**CATALOG, "p": f"{{kind: raster, uri: p.tif, units: mm/yr, checksum: 'sha256:{_sha(p)}'}}"})
    ws = tmp_path / "ws"
    assert runner.invoke(app, ["run", str(mini / "run.yaml"), "-w", str(ws), "-q"]).exit_code == 0
    before = tree_digest(ws)
    write_raster(p, np.full((10, 10), 900.0, np.float32), nodata=-1.0)
    res = runner.invoke(app, ["run", str(mini / "run.yaml"), "-w", str(ws), "-q"])
    assert res.exit_code == 1 and len(res.output.strip().splitlines()) == 1
    assert f"error: datasets.p.checksum: {p} has sha256:{_sha(p)}, the catalogue says sha256:" in res.output
    assert tree_digest(ws) == before


def test_allow_outside_years_warns_and_runs(mini, tmp_path, caplog):
    """A dataset whose valid_years leave out the run year is used when the config lists it in
    `allow_outside_years`: a warning names dataset, years and run year."""
    from ecoraster.pipeline import run as execute_run
    from ecoraster.pipeline import validate_run

    write_catalog(mini, {**CATALOG, "p": "{kind: raster, uri: p.tif, units: mm/yr, valid_years: [2019]}"})
    assert [str(i) for i in validate_run(mini / "run.yaml")] == [
        f"services.water_conservation.inputs.precipitation: datasets.p.valid_years = [2019] does not include "
        f"the run year 2020 ({mini / 'p.tif'}); use data of 2020, or list 'p' under allow_outside_years in the "
        f"run config to use it anyway"]
    cfg = mini / "run.yaml"
    cfg.write_text(cfg.read_text() + "allow_outside_years: [p]\n")
    assert validate_run(cfg) == []
    assert "datasets.p.valid_years = [2019] does not include the run year 2020; used anyway" in caplog.text
    # 100 px × 250.776 m³ (the mini case by hand, tests/badinput/conftest.py)
    total = execute_run(cfg, tmp_path / "ws").services["water_conservation"].totals["water_conservation_m3_total"][0]
    assert total == pytest.approx(25077.6, rel=1e-6)
    cfg.write_text(cfg.read_text().replace("allow_outside_years: [p]", "allow_outside_years: [nope]"))
    assert any("allow_outside_years: unknown catalogue id 'nope'" in str(i) for i in validate_run(cfg))


def test_baseline_input_is_not_held_to_the_run_year():
    """Carbon storage's baseline land cover is of another year by design; its current one is not."""
    from ecoraster.registry import get_service

    spec = get_service("carbon_storage").SPEC
    assert spec.input("lulc_bas").accounting_year is False and spec.input("lulc_alt").accounting_year is True


# where the damaged block is: (file layout, block to scramble, text of the one-line error)
LAYOUTS = {
    # 1024² px of 300/1024 m over the 10 × 10 grid of 30 m: read through a GDAL warp
    "finer_raster_warped": (dict(shape=1024, res=300 / 1024, block=256), (1, 2),
                            "p.tif: block (col 1, row 2) of the full resolution (rows 512–767, cols 256–511) "
                            "cannot be read (TIFFReadEncodedTile() failed.)"),
    # 32² px of 30 m on the grid's lattice: read with a window read; block (0, 0) holds the whole grid
    "same_lattice_window": (dict(shape=32, res=30.0, block=16), (0, 0),
                            "p.tif: block (col 0, row 0) of the full resolution (rows 0–15, cols 0–15) "
                            "cannot be read (TIFFReadEncodedTile() failed.)"),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_damaged_block_met_during_compute_is_one_line(mini, tmp_path, monkeypatch, layout):
    """With the decode check bypassed, the compute's read of the damaged block fails the run with
    one line naming the file and the block (exit 1, not a traceback, not zeros), and the
    workspace keeps its previous result."""
    from ecoraster.pipeline import stages, verify

    ws = tmp_path / "ws"
    assert runner.invoke(app, ["run", str(mini / "run.yaml"), "-w", str(ws), "-q"]).exit_code == 0
    before = tree_digest(ws)
    lay, (bx, by), expected = LAYOUTS[layout]
    n = lay["shape"]
    write_tiled_with_overviews(mini / "p.tif", np.full((n, n), 800.0, np.float32), res=lay["res"], block=lay["block"])
    scramble_block(mini / "p.tif", bx, by)
    monkeypatch.setattr(verify, "decode_problem", lambda *a, **k: None)  # as if the damage went unseen:
    monkeypatch.setattr(stages, "validate_plan", lambda *a, **k: [])     # no check reads the block
    res = runner.invoke(app, ["run", str(mini / "run.yaml"), "-w", str(ws), "-q", "--force"])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.exception
    assert res.output.startswith("error: ") and len(res.output.strip().splitlines()) == 1, res.output
    assert expected in res.output
    assert tree_digest(ws) == before and not list(ws.glob(".staging*"))
