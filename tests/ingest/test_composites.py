"""Period composites of scene indices with per-pixel valid-observation counts (eco ingest composite)."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from ecoraster.cli.main import app
from ecoraster.errors import ConfigError, InputDataError
from ecoraster.ingest import composites as cp

from .conftest import REPO_ROOT, write_tif
from .scene_products import LANDSAT_ID, T30, landsat_product

runner = CliRunner()
NAN = np.nan
A = np.array([[0.2, NAN, 0.5], [0.1, 0.3, NAN]], np.float32)
B = np.array([[0.4, 0.6, NAN], [NAN, 0.2, NAN]], np.float32)
C = np.array([[0.3, 0.1, 0.7], [0.5, NAN, NAN]], np.float32)
AUG = np.full((2, 3), 0.9, np.float32)


def _index(path, arr, when, scene_id):
    return write_tif(path, arr, nodata=float("nan"), transform=T30,
                     tags={"acquired": when, "scene_id": scene_id, "index": "ndvi"})


@pytest.fixture
def july(tmp_cn):
    return [_index(tmp_cn / "a.tif", A, "2020-07-03T03:00:00+00:00", "A"),
            _index(tmp_cn / "b.tif", B, "2020-07-19T03:00:00+00:00", "B"),
            _index(tmp_cn / "c.tif", C, "2020-07-28T03:00:00+00:00", "C"),
            _index(tmp_cn / "aug.tif", AUG, "2020-08-04T03:00:00+00:00", "AUG")]


def test_parse_period():
    assert cp.parse_period("2020-02").end == dt.date(2020, 2, 29)
    assert cp.parse_period(2021).start == dt.date(2021, 1, 1)
    for bad in ("2020-13", "20-1", "July"):
        with pytest.raises(ConfigError, match="YYYY or YYYY-MM"):
            cp.parse_period(bad)
    with pytest.raises(ConfigError, match="outside the run's year 2020"):
        cp.check_period_in_year(cp.parse_period("2019-12"), 2020)


def test_max_and_median_with_counts(july, tmp_cn):
    stack = np.stack([A, B, C])
    mx = cp.composite_scenes(july, "max", "2020-07")
    # the August scene is outside the period; the others by hand, e.g. (0, 0): max(0.2, 0.4, 0.3) = 0.4
    assert [s["scene_id"] for s in mx.report["outside_period"]] == ["AUG"]
    np.testing.assert_array_equal(mx.composite.values, np.nanmax(stack, axis=0))
    assert float(mx.composite.values[0, 0]) == pytest.approx(0.4)
    # counts: (0,0) 3; (0,1) 2; (0,2) 2; (1,0) 2; (1,1) 2; (1,2) 0 (never observed → composite NaN)
    np.testing.assert_array_equal(mx.counts.values, [[3, 2, 2], [2, 2, 0]])
    assert np.isnan(mx.composite.values[1, 2])
    med = cp.composite_scenes(july, "median", "2020-07")
    np.testing.assert_allclose(med.composite.values, [[0.3, 0.35, 0.6], [0.3, 0.25, NAN]], atol=1e-7)
    shares = {s["scene_id"]: s["valid_share"] for s in mx.report["scenes"]}
    assert shares == {"A": pytest.approx(4 / 6), "B": pytest.approx(3 / 6), "C": pytest.approx(4 / 6)}


def test_same_scene_twice_changes_nothing(july, tmp_cn):
    once = cp.composite_scenes(july[:2], "max", "2020-07")
    copy = _index(tmp_cn / "a_again.tif", A, "2020-07-03T03:00:00+00:00", "A")
    twice = cp.composite_scenes([*july[:2], july[0], copy], "max", "2020-07")
    np.testing.assert_array_equal(once.composite.values, twice.composite.values)
    np.testing.assert_array_equal(once.counts.values, twice.counts.values)
    assert twice.report["used"] == 2


def test_cli_composite_writes_counts_beside(july, tmp_cn):
    out = tmp_cn / "out" / "ndvi_2020-07_max.tif"
    res = runner.invoke(app, ["ingest", "composite", *map(str, july), "--rule", "max", "--period", "2020-07",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as c, rasterio.open(out.with_name("ndvi_2020-07_max_count.tif")) as n:
        np.testing.assert_array_equal(c.read(1), np.nanmax(np.stack([A, B, C]), axis=0))
        np.testing.assert_array_equal(n.read(1), [[3, 2, 2], [2, 2, 0]])
        assert c.tags()["period"] == "2020-07" and c.tags()["n_scenes"] == "3" and n.dtypes[0] == "uint16"
        assert [s["scene_id"] for s in json.loads(c.tags()["scenes"])] == ["A", "B", "C"]
    assert json.loads(out.with_suffix(".report.json").read_text())["outside_period"][0]["scene_id"] == "AUG"


def test_bad_composite_input_refused_before_writing(july, tmp_cn):
    out = tmp_cn / "x.tif"
    config = tmp_cn / "run.yaml"
    config.write_text(json.dumps({"region": "t", "year": 2020, "catalog": str(REPO_ROOT / "data_catalog.yaml"),
                                  "grid": {"crs": "EPSG:32650", "resolution": 30,
                                           "bounds": [500000, 4399940, 500090, 4400000]}, "services": {}}))
    cases = [(["--period", "2019-07", "--config", str(config)], "outside the run's year 2020"),
             (["--period", "2020-09"], "none of the 4 scene(s) falls in period 2020-09"),
             (["--period", "2020-7-1"], "YYYY or YYYY-MM")]
    for extra, match in cases:
        res = runner.invoke(app, ["ingest", "composite", *map(str, july), *extra, "--out", str(out)])
        assert res.exit_code == 1 and match in res.output, res.output
        assert not out.exists()
    undated = write_tif(tmp_cn / "undated.tif", A, nodata=float("nan"), transform=T30)
    with pytest.raises(InputDataError, match="no acquisition date"):
        cp.composite_scenes([undated], "max")
    # on the run grid and in its year: fine
    res = runner.invoke(app, ["ingest", "composite", *map(str, july), "--config", str(config), "--out", str(out)])
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as src:
        assert src.tags()["period"] == "2020" and src.tags()["n_scenes"] == "4"


def test_scene_then_composite_end_to_end(tmp_cn):
    """Two Landsat products of one month → `eco ingest scene` twice → `eco ingest composite`."""
    outs = []
    for day, scale in (("2020-07-15", 2.0e-5), ("2020-07-31", 2.2e-5)):
        pid = LANDSAT_ID.replace("20200715", day.replace("-", ""))
        folder = landsat_product(tmp_cn / pid, product_id=pid, date=day, scaling=((scale, -0.1), (2.75e-5, -0.2)))
        out = tmp_cn / f"ndvi_{day}.tif"
        assert runner.invoke(app, ["ingest", "scene", str(folder), "--out", str(out)]).exit_code == 0
        outs.append(out)
    comp = cp.composite_scenes(outs, "max", "2020-07")
    # (0, 0): red 10000 → 0.1 (first) or 0.12 (second); nir 0.35 → max(0.25/0.45, 0.23/0.47) = 0.25/0.45
    assert float(comp.composite.values[0, 0]) == pytest.approx(0.25 / 0.45, abs=1e-6)
    assert [s["scene_id"][17:25] for s in comp.report["scenes"]] == ["20200715", "20200731"]


def test_slovenia_series_with_cloud_mask(real, tmp_cn):
    folder = real / "eolearn-slovenia-s2-patch"
    series, clouds = folder / "ndvi_timeseries_s2.tif", folder / "cloud_mask_s2cloudless.tif"
    out = tmp_cn / "slo_2016_max.tif"
    res = runner.invoke(app, ["ingest", "composite", str(series), "--mask", str(clouds), "--rule", "max",
                              "--period", "2016", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    with rasterio.open(series) as a, rasterio.open(clouds) as c:
        dates = [d for d in a.descriptions]
        bands = [i for i, d in enumerate(dates, start=1) if d and d.startswith("2016")]
        ref = np.where(c.read(bands) == 1, np.nan, a.read(bands))
    used = [s for s in report["scenes"] if s["used"]]
    keep = [i for i, s in enumerate(report["scenes"]) if s["used"]]
    assert len(report["scenes"]) == len(bands) and report["undated_bands"][str(series)] == list(range(69, 101))
    with rasterio.open(out) as got, rasterio.open(cp.counts_path(out)) as n:
        np.testing.assert_allclose(got.read(1), np.nanmax(ref[keep], axis=0), atol=0)
        np.testing.assert_array_equal(n.read(1), np.isfinite(ref).sum(axis=0))
    assert len(used) == report["used"] <= len(bands)
