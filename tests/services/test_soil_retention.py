"""Soil retention (土壤保持): hand-worked kernels (pit fill, MFD, accumulation, streams, slope, LS,
S, C, K, R), a hand-worked rusle_cn run, and the InVEST SDR oracle on two places
(tests/services/data/soil_retention/*_invest.npz, made by scripts/run_invest_sdr_oracle.py)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from ecoraster.kernels import hydrology as hyd
from ecoraster.kernels import soil as soilk
from ecoraster.pipeline import run as execute_run

from ._helpers import write_run

REPO = Path(__file__).resolve().parents[2]
ORACLE = Path(__file__).parent / "data" / "soil_retention"


# ------------------------------------------------------------------------------------------
# hydrology kernels
# ------------------------------------------------------------------------------------------

def test_fill_depressions_by_hand():
    # a 5×5 bowl: rim 5 m, a notch at 3 m on the east edge, a 1 m pit in the middle and a 2 m pixel
    # beside it. Everything inside drains only over the notch → filled to 3 m; rim untouched.
    dem = np.full((5, 5), 5.0, dtype=np.float32)
    dem[1:4, 1:4] = 4.0
    dem[2, 2] = 1.0
    dem[2, 1] = 2.0
    dem[2, 4] = 3.0  # the notch (edge pixel: drains off the raster)
    raised = hyd.fill_depressions(dem)
    expect = np.full((5, 5), 5.0, dtype=np.float32)
    expect[1:4, 1:4] = 4.0
    expect[2, 1:4] = 4.0
    expect[2, 4] = 3.0
    # the inner 3×3 spills over the lowest pour point: the 4 m ring pixels next to the notch (their
    # height 4 > 3 is above the notch, so the pit fills to 4, the lowest inner rim)
    expect[2, 2] = 4.0
    expect[2, 1] = 4.0
    np.testing.assert_array_equal(dem, expect)
    assert raised == 2


def test_fill_keeps_nodata_as_drain():
    # a pit next to a nodata hole drains into it: nothing raised
    dem = np.array([[5, 5, 5], [5, 1, np.nan], [5, 5, 5]], dtype=np.float32)
    assert hyd.fill_depressions(dem) == 0
    assert dem[1, 1] == 1


def test_flow_dir_mfd_weights_by_hand():
    # centre 10; E 9 (drop 1), S 8 (drop 2), SE 7 (drop 3/√2 = 2.1213); others 11
    # shares ÷ 5.1213: E int(0.5 + 15·0.19526) = 3, S int(0.5 + 15·0.39053) = 6, SE int(0.5 + 15·0.41421) = 6
    dem = np.full((3, 3), 11.0, dtype=np.float32)
    dem[1, 1], dem[1, 2], dem[2, 1], dem[2, 2] = 10, 9, 8, 7
    fd = hyd.flow_dir_mfd(dem)
    w = [(int(fd[1, 1]) >> (4 * i)) & 0xF for i in range(8)]  # E, NE, N, NW, W, SW, S, SE
    assert w == [3, 0, 0, 0, 0, 0, 6, 6]


def test_accumulation_and_streams_on_a_ramp():
    # one row falling east: each pixel drains east only; the last one drains off the raster
    # accumulation 1, 2, 3, 4; threshold 3 → outlet (4) and pixel 3 are stream; pixel 2 (2 < 0.7·3) is not
    dem = np.array([[4.0, 3.0, 2.0, 1.0]], dtype=np.float32)
    fd = hyd.flow_dir_mfd(dem)
    acc = hyd.flow_accumulation_mfd(fd)
    np.testing.assert_allclose(acc, [[1, 2, 3, 4]])
    st = hyd.extract_streams_mfd(acc, fd, 3.0, 0.7)
    np.testing.assert_array_equal(st, [[0, 0, 1, 1]])


def test_flat_drains_toward_its_outlet():
    # a flat row of 4 at 5 m with a 1 m pixel at the east end: the flat drains east, step by step
    dem = np.array([[5.0, 5.0, 5.0, 5.0, 1.0]], dtype=np.float32)
    fd = hyd.flow_dir_mfd(dem)
    east = [(int(v) & 0xF) for v in fd[0, :4]]
    assert east == [15, 15, 15, 15]
    acc = hyd.flow_accumulation_mfd(fd)
    np.testing.assert_allclose(acc, [[1, 2, 3, 4, 5]])


def test_slope_percent_plane_and_edges():
    # z = 0.1·x on 30 m pixels: 10 % everywhere, edges included (pygeoprocessing's fall-backs)
    x = np.arange(6) * 30.0
    dem = np.tile(0.1 * x, (5, 1)).astype(np.float32)
    out = np.empty_like(dem)
    hyd.slope_percent(dem, 30.0, 30.0, out)
    np.testing.assert_allclose(out, 10.0, rtol=1e-5)


# ------------------------------------------------------------------------------------------
# factor kernels
# ------------------------------------------------------------------------------------------

def test_ls_invest_by_hand():
    # slope 5 %, acc 1 (nothing upslope): θ = atan 0.05, x = sinθ + cosθ = 1.04869, m = 0.4 (3.5 < 5 ≤ 5)
    # L = 900^1.4 / (30^2.4 · x^0.4 · 22.13^0.4) = 1.10815; S = 10.8 sinθ + 0.03 = 0.56933; LS = 0.63090
    # slope 20 %, acc 101: up = √(100·900) = 300, β = (sinθ/0.0896)/(3 sinθ^0.8 + 0.56) = 1.59191, m = 0.61418
    # L = ((1200)^1.61418 − 300^1.61418)/(30^2.61418 · x^m · 22.13^m) = 1.55035; S = 16.8 sinθ − 0.5 = 2.79475
    # LS = 4.33283; with l_max = 1 → L clamped: LS = 2.79475
    slope = np.array([[5.0, 20.0]])
    acc = np.array([[1.0, 101.0]])
    out = np.empty((1, 2))
    soilk.ls_invest(slope, acc, 30.0, 122.0, out)
    np.testing.assert_allclose(out, [[0.630897, 4.332830]], rtol=1e-5)
    soilk.ls_invest(slope, acc, 30.0, 1.0, out)
    np.testing.assert_allclose(out[0, 1], 2.794751, rtol=1e-5)


def test_ls_rusle_cn_and_liu_s_by_hand():
    # slope 10 % → θ = 5.7106°: m = 0.5 (> 5°), S = 16.8 sinθ − 0.5 = 1.17166 (5–10° branch)
    # acc 3 → λ = 90 m: L = (90/22.13)^0.5 = 2.01665; LS = 2.36283; acc 100 → λ capped at 300 m
    upper, m = np.array([1.0, 3.0, 5.0, 90.0]), np.array([0.2, 0.3, 0.4, 0.5])
    out = np.empty((1, 2))
    soilk.ls_rusle_cn(np.array([[10.0, 10.0]]), np.array([[3.0, 100.0]]), 30.0, 300.0, upper, m, out)
    np.testing.assert_allclose(out[0, 0], 2.01665 * 1.17166, rtol=1e-4)
    np.testing.assert_allclose(out[0, 1], (300 / 22.13) ** 0.5 * 1.17166, rtol=1e-4)
    # Liu's three branches: 3° → 10.8 sin + 0.03; 12° → 21.91 sin − 0.96
    assert soilk.s_liu(math.radians(3)) == pytest.approx(10.8 * 0.0523360 + 0.03, rel=1e-6)
    assert soilk.s_liu(math.radians(12)) == pytest.approx(21.91 * 0.2079117 - 0.96, rel=1e-6)


def test_c_k_r_by_hand():
    # Cai: FVC 50 % → 0.6508 − 0.3436·log10(50) = 0.067034; 0 → 1; 80 % → 0
    assert soilk.c_cai(0.5) == pytest.approx(0.067034, abs=1e-6)
    assert soilk.c_cai(0.0) == 1.0 and soilk.c_cai(0.8) == 0.0
    # EPIC, loam 41/40/19 % and 1 % OC: 0.359816 · 0.889943 · 0.920880 · 0.999862 = 0.294840 (US) × 0.1317
    assert float(soilk.k_epic(41, 40, 19, 1.0)) == pytest.approx(0.0388304, rel=1e-5)
    # monthly Wischmeier–Smith: 12 × 100 mm: each month 1.735·10^(1.5·log10(100²/1200) − 0.8188) = 6.33472;
    # R = 12 · 6.33472 · 17.02 = 1293.80
    monthly = np.full((12, 1), 100.0)
    assert float(soilk.r_monthly_wischmeier(monthly)[0]) == pytest.approx(1293.80, rel=1e-5)
    # annual power law 0.0534 · 1200^1.6548 = 6652.28
    assert float(soilk.r_annual_power(1200.0, 0.0534, 1.6548)) == pytest.approx(6652.28, rel=1e-5)
    # daily model, one year, two erosive days of 20 mm and a 5 mm day: P̄d12 = 20, P̄y12 = 40,
    # β = 0.8363 + 18.144/20 + 24.455/40 = 2.354; α = 21.586·β^−7.1891; R = α·2·20^β
    beta = 0.8363 + 18.144 / 20 + 24.455 / 40
    expect = 21.586 * beta ** -7.1891 * 2 * 20 ** beta
    assert float(soilk.r_daily_zhang(np.array([20.0, 20.0, 5.0]), 1)) == pytest.approx(expect, rel=1e-9)


def test_flatten_noise_keeps_hills():
    # a flat field with ±1 m noise: relief ≤ 3 m → slope 0; a 30 m hill step keeps its slope
    rng = np.random.default_rng(0)
    dem = (20 + rng.uniform(-1, 1, (12, 12))).astype(np.float32)
    dem[:, 9:] += 30
    slope = np.empty_like(dem)
    hyd.slope_percent(dem, 30.0, 30.0, slope)
    soilk.flatten_noise(slope, dem, 2, 3.0)
    assert (slope[:, :6] == 0).all()
    assert (slope[:, 8:10] > 10).all()


# ------------------------------------------------------------------------------------------
# rusle_cn run by hand
# ------------------------------------------------------------------------------------------

def test_rusle_cn_run_by_hand(tmp_zh, raster_writer):
    # plane falling 10 % eastward, 30 m pixels, 7 rows × 8 cols; R 5000, K 0.03, NDVI 0.5, class 11 (P 1);
    # the last column is a lake (class 42, no soil). MFD on the plane: E 6, NE 4, SE 4 (of 14), so on the
    # middle row the accumulation of column j is j + 1 → column 2: λ = 90 m, L = (90/22.13)^0.5 = 2.01665,
    # S = 1.17166 → LS = 2.36283; FVC = (0.5 − 0.05)/(0.86 − 0.05) = 0.55556, C = 0.6508 − 0.3436·log10(55.556)
    # = 0.051312; avoided = 5000·0.03·2.36283·(1 − 0.051312) = 336.238 t/ha/yr; × 0.09 ha = 30.2614 t.
    rows, cols = 7, 8
    x = np.arange(cols) * 30.0
    dem = np.tile(100 - 0.1 * x, (rows, 1)).astype(np.float32)
    eco = np.full((rows, cols), 11, dtype=np.int16)
    eco[:, -1] = 42
    files = {
        "dem": raster_writer(tmp_zh / "dem.tif", dem, nodata=-9999.0),
        "eco": raster_writer(tmp_zh / "eco.tif", eco, nodata=-1),
        "r": raster_writer(tmp_zh / "r.tif", np.full((rows, cols), 5000, np.float32), nodata=-1.0),
        "k": raster_writer(tmp_zh / "k.tif", np.full((rows, cols), 0.03, np.float32), nodata=-1.0),
        "ndvi": raster_writer(tmp_zh / "ndvi.tif", np.full((rows, cols), 0.5, np.float32), nodata=-9.0),
    }
    datasets = {k: {"kind": "raster", "uri": p.name} for k, p in files.items()}
    cfg = write_run(tmp_zh, "soil_retention", datasets,
                    {"dem": "dem", "ecosystem": "eco", "erosivity": "r", "erodibility": "k", "ndvi": "ndvi"},
                    method="rusle_cn", params={"flat_relief_m": 0}, grid_like="dem")
    res = execute_run(cfg, tmp_zh / "ws").services["soil_retention"]
    with rasterio.open(res.outputs["avoided_erosion"].path) as src:
        av = src.read(1)
    with rasterio.open(res.outputs["soil_retention_t"].path) as src:
        t = src.read(1)
    assert av[3, 2] == pytest.approx(336.238, rel=1e-4)
    assert t[3, 2] == pytest.approx(30.2614, rel=1e-4)
    assert (av[:, -1] == 0).all()  # lake: no soil, no retention


# ------------------------------------------------------------------------------------------
# InVEST SDR oracle
# ------------------------------------------------------------------------------------------

def _compare(ws: Path, oracle: Path) -> dict:
    """Per-pixel relative difference of avoided erosion off InVEST's streams, and the totals."""
    exp = np.load(oracle)
    ref = exp["avoided_erosion"].astype(np.float64)
    with rasterio.open(ws / "soil_retention" / "avoided_erosion.tif") as src:
        ours = src.read(1).astype(np.float64)
        ours[ours == src.nodata] = np.nan
    off = exp["stream"] == 0
    both = off & np.isfinite(ref) & np.isfinite(ours)
    rel = np.abs(ours[both] - ref[both]) / np.maximum(np.abs(ref[both]), 1e-9)
    rel = rel[ref[both] > 1e-6]
    return {"median": float(np.median(rel)), "p95": float(np.percentile(rel, 95)),
            "total": float(np.nansum(ours[off]) / np.nansum(ref[off]) - 1), "n": int(both.sum()),
            "n_ref": int((off & np.isfinite(ref)).sum())}


def _run_example(tmp: Path, folder: Path) -> Path:
    """The example config, unchanged, in a copy of the repo layout whose example folder holds ``folder``'s files."""
    root = tmp / "repo"
    (root / "configs" / "examples").mkdir(parents=True)
    (root / "catalogs").mkdir()
    shutil.copy(REPO / "configs/examples/soil_retention_invest.yaml", root / "configs/examples")
    shutil.copy(REPO / "catalogs/soil.yaml", root / "catalogs")
    shutil.copytree(folder, root / "data/examples/soil_retention")
    ws = tmp / "ws"
    execute_run(root / "configs/examples/soil_retention_invest.yaml", ws, services=["soil_retention"])
    return ws


@pytest.mark.parametrize("place, folder", [("wuhan", "soil_retention"), ("texas", "soil_retention_texas")])
def test_invest_example_matches_invest_sdr(tmp_zh, place, folder):
    oracle = ORACLE / f"{place}_invest.npz"
    if not oracle.exists():
        pytest.skip(f"{oracle} not made (scripts/run_invest_sdr_oracle.py)")
    ws = _run_example(tmp_zh, REPO / "data/examples" / folder)
    d = _compare(ws, oracle)
    assert d["n"] >= 0.98 * d["n_ref"], d
    assert d["median"] <= 0.01, d
    assert d["p95"] <= 0.10, d
    assert abs(d["total"]) <= 0.02, d


# ------------------------------------------------------------------------------------------
# phase 2: windbreak and sand fixation (RWEQ), coastal protection
# ------------------------------------------------------------------------------------------

def test_rweq_by_hand():
    from ecoraster.kernels import wind

    # X = 1, z = 50 m: Q_max = 109.8, S = 150.71, SL = 2·50/150.71²·109.8·exp(−(50/150.71)²) = 0.433029 kg/m²
    assert wind.soil_loss(1.0, 50.0) == pytest.approx(0.433029, rel=1e-5)
    # cover 50 %: C = exp(−0.0438·50) = 0.111917 → SL_a = 0.0104206; fixation 0.422608 kg/m²
    pot, act = np.empty((1, 1)), np.empty((1, 1))
    one = np.ones((1, 1))
    wind.sand_fixation(one, one, one, one, np.full((1, 1), 50.0), 50.0, pot, act)
    assert pot[0, 0] - act[0, 0] == pytest.approx(0.422608, rel=1e-5)
    # EF (60/25/15 %, OM 1 %, CaCO₃ 1 %) = (29.09 + 18.6 + 4.25 + 1.32 − 2.59 − 0.95)/100 = 0.4972
    assert float(wind.erodible_fraction(60, 25, 15, 1, 1)) == pytest.approx(0.4972)
    # SCF = 1/(1 + 0.0066·225 + 0.021) = 0.399042; K' without ridges, Crr 1 cm = exp(−0.127) = 0.880734
    assert float(wind.crust_factor(15, 1)) == pytest.approx(0.399042, rel=1e-5)
    assert float(wind.roughness_factor(0, 100, 1)) == pytest.approx(0.880734, rel=1e-5)


def test_sand_fixation_run_by_hand(tmp_zh, raster_writer):
    # WF chosen so that X = WF·EF·SCF·K' = 1: WF = 1/(0.4972·0.399042·0.880734) = 5.72236 kg/m;
    # NDVI 0.455 → SC = (0.455 − 0.05)/(0.86 − 0.05) = 50 % → 0.422608 kg/m² × 900 m² / 1000 = 0.380347 t
    wf = 1 / (0.4972 * 0.39904229848 * 0.880733672597)
    files = {"wf": raster_writer(tmp_zh / "wf.tif", np.full((3, 4), wf, np.float32), nodata=-1.0),
             "ndvi": raster_writer(tmp_zh / "ndvi.tif", np.full((3, 4), 0.455, np.float32), nodata=-9.0)}
    datasets = {k: {"kind": "raster", "uri": p.name} for k, p in files.items()}
    cfg = write_run(tmp_zh, "sand_fixation", datasets, {"weather_factor": "wf", "ndvi": "ndvi"}, grid_like="wf")
    res = execute_run(cfg, tmp_zh / "ws").services["sand_fixation"]
    assert res.totals["sand_fixation_t_total"][0] == pytest.approx(12 * 0.380347, rel=1e-4)


def test_coastal_protection_synthetic_coast():
    from affine import Affine
    from shapely.geometry import LineString, box

    from ecoraster.services.coastal_protection import length_per_pixel, protected_coast

    # coast along y = 0 from x = 0 to 10 km; marsh A 3 km long and 600 m wide (x 2000..5000), marsh B 80 m wide
    # (x 6000..7000, narrower than the 100 m belt → does not count). snap 1 m: protected = 1999..5001 = 3002 m
    coast = LineString([(0, 0), (10_000, 0)])
    marsh = box(2000, -600, 5000, 0).union(box(6000, -80, 7000, 0))
    prot = protected_coast(coast, marsh, 100.0, 1.0)
    assert prot.length == pytest.approx(3002.0, abs=1e-6)
    # on a 100 m grid over x 0..10 km, y −50..50: 3002 m spread over 32 pixels of row 0, total kept
    km = length_per_pixel(prot, Affine(100, 0, 0, 0, -100, 50), (1, 100))
    assert km.sum() == pytest.approx(3002.0, abs=1e-6)
    assert km[0, 25] == pytest.approx(100.0) and km[0, 19] == pytest.approx(1.0) and km[0, 50] == pytest.approx(1.0)


def test_wuhan_soil_k_table():
    # all 31 Wuhan soil units link to HWSD v2.0; loam units (TEXTURE_USDA 9) get the EPIC K of 41/40/19 % and
    # 1 % OC worked out above (0.0388304); water bodies (WR, 11927) get 0
    from ecoraster.services.soil_retention import read_k_table

    codes, k = read_k_table(str(REPO / "configs/parameters/soil_k_wuhan_hwsd.csv"))
    assert codes.size == 31
    kk = dict(zip(codes.tolist(), k.tolist()))
    assert kk[11495] == pytest.approx(0.0388304, rel=1e-5)
    assert kk[11927] == 0.0


def test_invest_sdr_validation_names_missing_codes(tmp_zh, raster_writer):
    # land-cover code 9 has no row in the biophysical table: one error naming both files and the code
    dem = raster_writer(tmp_zh / "dem.tif", np.arange(20, dtype=np.float32).reshape(4, 5), nodata=-9999.0)
    lulc = raster_writer(tmp_zh / "lulc.tif", np.array([[1] * 5, [1] * 5, [9] * 5, [1] * 5], np.uint8), nodata=255)
    r = raster_writer(tmp_zh / "r.tif", np.full((4, 5), 5000, np.float32), nodata=-1.0)
    (tmp_zh / "bio.csv").write_text("lucode,usle_c,usle_p\n1,0.1,1\n", encoding="utf-8")
    datasets = {"dem": {"kind": "raster", "uri": dem.name}, "lulc": {"kind": "raster", "uri": lulc.name},
                "r": {"kind": "raster", "uri": r.name}, "bio": {"kind": "table", "uri": "bio.csv"}}
    cfg = write_run(tmp_zh, "soil_retention", datasets, {"dem": "dem", "lulc": "lulc", "erosivity": "r",
                                                         "erodibility": "r", "biophysical_table": "bio"},
                    method="invest_sdr", grid_like="dem")
    from ecoraster.pipeline import validate_run

    issues = [str(i) for i in validate_run(cfg)]
    assert len(issues) == 1 and "9" in issues[0] and "bio.csv" in issues[0] and "lulc.tif" in issues[0], issues


@pytest.mark.slow
def test_rusle_cn_daily_rainfall_r(tmp_zh, raster_writer):
    # 365 daily bands: 20 mm on two days, 5 mm on the others → R = α·2·20^β with β = 0.8363 + 18.144/20 +
    # 24.455/40, α = 21.586·β^−7.1891 (see test_c_k_r_by_hand); check R = rkls / (LS · K) at a hillslope pixel
    from ._helpers import write_bands

    rows, cols = 5, 6
    dem = np.tile(100 - 0.1 * np.arange(cols) * 30.0, (rows, 1)).astype(np.float32)
    daily = np.full((365, rows, cols), 5.0, dtype=np.float32)
    daily[100], daily[200] = 20.0, 20.0
    files = {"dem": raster_writer(tmp_zh / "dem.tif", dem, nodata=-9999.0),
             "eco": raster_writer(tmp_zh / "eco.tif", np.full((rows, cols), 52, np.int16), nodata=-1),
             "k": raster_writer(tmp_zh / "k.tif", np.full((rows, cols), 0.03, np.float32), nodata=-1.0),
             "ndvi": raster_writer(tmp_zh / "ndvi.tif", np.full((rows, cols), 0.3, np.float32), nodata=-9.0),
             "p": write_bands(tmp_zh / "p.tif", daily, nodata=-9999.0)}
    datasets = {k: {"kind": "raster", "uri": p.name} for k, p in files.items()}
    cfg = write_run(tmp_zh, "soil_retention", datasets, {"dem": "dem", "ecosystem": "eco", "precipitation": "p",
                                                         "erodibility": "k", "ndvi": "ndvi"},
                    method="rusle_cn", params={"flat_relief_m": 0}, grid_like="dem")
    res = execute_run(cfg, tmp_zh / "ws").services["soil_retention"]
    with rasterio.open(res.outputs["rkls"].path) as a, rasterio.open(res.outputs["ls"].path) as b:
        r = a.read(1)[2, 3] / (b.read(1)[2, 3] * 0.03)
    beta = 0.8363 + 18.144 / 20 + 24.455 / 40
    assert r == pytest.approx(21.586 * beta ** -7.1891 * 2 * 20 ** beta, rel=1e-4)
    assert "daily" in res.metadata["r_from"]
