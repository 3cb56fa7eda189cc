import json
import textwrap

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ecoraster.cli import app

from .test_carbon_storage import _setup

runner = CliRunner()


def test_list_and_getspec():
    res = runner.invoke(app, ["list", "--json"])
    assert res.exit_code == 0
    ids = [s["id"] for s in json.loads(res.stdout)]
    assert "carbon_storage" in ids
    res = runner.invoke(app, ["getspec", "carbon_storage"])
    assert res.exit_code == 0 and "Mg C/ha" in res.stdout and "c_storage_bas.tif" in res.stdout
    assert runner.invoke(app, ["getspec", "nope"]).exit_code == 1


def test_validate_reports_all_problems_and_exit_code(tmp_zh, raster_writer):
    bas = np.ones((4, 4), np.uint8)
    bas[0, 0] = 5
    cfg = _setup(tmp_zh, raster_writer, bas)
    text = cfg.read_text().replace("carbon_pools: pools", "carbon_pools: pools, lulc_alt: missing_id, bogus: 1")
    cfg.write_text(text)
    res = runner.invoke(app, ["validate", str(cfg), "--json"])
    assert res.exit_code == 1
    issues = json.loads(res.stdout)["issues"]
    messages = " | ".join(i["message"] for i in issues)
    assert "not an input of carbon_storage" in messages
    assert "unknown catalogue id 'missing_id'" in messages


def test_run_json_and_zonal_cli(tmp_zh, raster_writer):
    cfg = _setup(tmp_zh, raster_writer, np.ones((6, 6), np.uint8))
    res = runner.invoke(app, ["run", str(cfg), "--workspace", str(tmp_zh / "ws"), "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    out = payload["services"]["carbon_storage"]["outputs"]["c_storage_bas"]
    assert out["total"] == pytest.approx(36 * 86 * 0.09)
    import geopandas as gpd
    from shapely.geometry import box

    from .conftest import TEST_CRS, TEST_ORIGIN

    x0, y0 = TEST_ORIGIN
    gpd.GeoDataFrame({"id": ["a", "b"]}, geometry=[box(x0, y0 - 90, x0 + 90, y0), box(x0 + 90, y0 - 180, x0 + 180, y0)],
                     crs=TEST_CRS).to_file(tmp_zh / "zones.gpkg")
    table = tmp_zh / "z.csv"
    res = runner.invoke(app, ["zonal", out["path"], "--zones", str(tmp_zh / "zones.gpkg"), "--id", "id",
                              "--stat", "sum", "--stat", "mean", "--out", str(table)])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(table, encoding="utf-8-sig").set_index("id")
    # zone a: 3×3 pixels × 7.74 Mg C; zone b: 3 cols × 6 rows = 18 px
    assert df.loc["a", "c_storage_bas_sum"] == pytest.approx(9 * 7.74, rel=1e-6)
    assert df.loc["b", "c_storage_bas_sum"] == pytest.approx(18 * 7.74, rel=1e-6)


def test_failed_run_keeps_previous_results(tmp_zh, raster_writer, monkeypatch):
    cfg = _setup(tmp_zh, raster_writer, np.ones((6, 6), np.uint8))
    ws = tmp_zh / "ws"
    assert runner.invoke(app, ["run", str(cfg), "-w", str(ws), "-q"]).exit_code == 0
    good = (ws / "carbon_storage" / "c_storage_bas.tif").read_bytes()
    manifest = (ws / "run.json").read_text()

    from ecoraster import pipeline
    from ecoraster.pipeline import stages

    def broken_aggregate(*args, **kwargs):
        raise RuntimeError("aggregation crashed")

    cfg.write_text(cfg.read_text() + textwrap.dedent("""
        zones:
          z: {dataset: zones, id_field: id}
    """))
    cat = tmp_zh / "data_catalog.yaml"
    cat.write_text(cat.read_text() + "  zones: {kind: vector, uri: zones.gpkg}\n")
    import geopandas as gpd
    from shapely.geometry import box

    from .conftest import TEST_ORIGIN

    x0, y0 = TEST_ORIGIN  # inside the grid: zones outside it are refused by validation (issue 17)
    gpd.GeoDataFrame({"id": [1]}, geometry=[box(x0, y0 - 60, x0 + 60, y0)], crs="EPSG:4527").to_file(
        tmp_zh / "zones.gpkg")
    monkeypatch.setattr(stages, "aggregate_zones", broken_aggregate)
    with pytest.raises(RuntimeError, match="aggregation crashed"):
        pipeline.run(cfg, ws)
    assert (ws / "carbon_storage" / "c_storage_bas.tif").read_bytes() == good
    assert (ws / "run.json").read_text() == manifest
    assert not list(ws.glob(".staging*"))


def test_console_script_keeps_exit_codes():
    """``eco`` as installed (``ecoraster.cli:main``: malloc arena cap, objects frozen before the
    interpreter's exit collections) still returns each command's exit code."""
    import subprocess
    import sys

    def eco(*args):
        return subprocess.run([sys.executable, "-c", "from ecoraster.cli import main; main()", *args],
                              capture_output=True, text=True, timeout=120)

    ok = eco("list")
    assert ok.returncode == 0 and "carbon_storage" in ok.stdout
    assert eco("validate", "/no/such/config.yaml").returncode == 1
    assert eco("no-such-command").returncode == 2
