"""Hand-worked coverage cases on a 2 × 2 grid of 10 m pixels, both engines.

Local coordinates in the comments: X metres east of the grid's left edge, Y metres
north of its bottom edge; the grid spans X 0–20, Y 0–20. Pixels: UL (row 0, col 0),
UR (0, 1), LL (1, 0), LR (1, 1); pixel values 1, 2 / 3, 4.
"""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pytest
import shapely

from ecoraster.zonal import ZoneWeights, zonal_stats

from zonal_helpers import X0, Y0, make_grid, write_raster

BOTTOM = Y0 - 20.0


def P(*xy):
    """Polygon from local (X, Y) pairs."""
    return shapely.Polygon([(X0 + x, BOTTOM + y) for x, y in xy])


def B(x0, y0, x1, y1):
    return shapely.box(X0 + x0, BOTTOM + y0, X0 + x1, BOTTOM + y1)


VALUES = np.array([[1, 2], [3, 4]], dtype=np.float32)

CASES = {
    # Triangle (0,20) (20,20) (10,0), area 200 m² = 2 px. Left edge X = (20 - Y)/2,
    # right edge X = 10 + Y/2.
    #   UL: ∫_10^20 (10 - (20 - Y)/2) dY = ∫ Y/2 dY = (400 - 100)/4 = 75 m² → 0.75
    #   UR: mirror image of UL → 0.75
    #   LL: ∫_0^10 (10 - (20 - Y)/2) dY = ∫ Y/2 dY = 25 m² → 0.25;   LR: mirror → 0.25
    #   sum = 0.75·1 + 0.75·2 + 0.25·3 + 0.25·4 = 4.0, count = 2.0
    "triangle": (P((0, 20), (20, 20), (10, 0)), {(0, 0): .75, (0, 1): .75, (1, 0): .25, (1, 1): .25}),
    # 3 m × 4 m inside UL: 12 m² → 0.12 of one pixel
    "small": (B(2, 12, 5, 16), {(0, 0): .12}),
    # 4 m × 2 m across the UL/UR border at X = 10: 2 × 2 = 4 m² each side → 0.04 + 0.04
    "small_split": (B(8, 15, 12, 17), {(0, 0): .04, (0, 1): .04}),
    # X -5..5, Y 5..15 crosses the left grid edge: inside are X 0..5 × Y 10..15 in UL
    # (25 m² → 0.25) and X 0..5 × Y 5..10 in LL (0.25); the half outside is dropped
    "edge": (B(-5, 5, 5, 15), {(0, 0): .25, (1, 0): .25}),
    # whole grid minus a 10 × 10 hole at X 5..15, Y 5..15: the hole takes 25 m² of
    # every pixel → 0.75 each
    "hole": (shapely.Polygon(B(0, 0, 20, 20).exterior.coords, [B(5, 5, 15, 15).exterior.coords[::-1]]),
             {(0, 0): .75, (0, 1): .75, (1, 0): .75, (1, 1): .75}),
    # two parts: X 2..4 × Y 12..18 in UL (12 m² → 0.12) and X 12..20 × Y 0..5 in LR
    # (40 m² → 0.40)
    "multi": (shapely.MultiPolygon([B(2, 12, 4, 18), B(12, 0, 20, 5)]), {(0, 0): .12, (1, 1): .40}),
    # entirely outside the grid → sum 0, count 0, mean NaN
    "outside": (B(100, 100, 120, 130), {}),
    # a diagonal square (diamond) centred on the grid's middle point, half-diagonal 5 m:
    # 50 m², a right triangle of 12.5 m² in each pixel → 0.125 each
    "diamond": (P((10, 5), (15, 10), (10, 15), (5, 10)), {(0, 0): .125, (0, 1): .125, (1, 0): .125, (1, 1): .125}),
}


def expected(cover: dict, values: np.ndarray, nodata=None):
    s = c = 0.0
    for (r, col), f in cover.items():
        v = values[r, col]
        if nodata is not None and v == nodata:
            continue
        s += f * float(v)
        c += f
    return s, c, (s / c if c > 0 else math.nan)


@pytest.fixture
def zones():
    return gpd.GeoDataFrame({"zid": list(CASES)}, geometry=[g for g, _ in CASES.values()], crs=4527)


@pytest.mark.parametrize("engine", ["ecoraster", "exactextract"])
def test_hand_cases(work, zones, engine):
    grid = make_grid()
    path = write_raster(work / "值.tif", VALUES, grid)
    res = zonal_stats({"v": path}, zones, "zid", stats=("sum", "mean", "count"), engine=engine)
    assert list(res.index) == list(CASES)
    for name, (_, cover) in CASES.items():
        s, c, m = expected(cover, VALUES)
        assert res.loc[name, "v_sum"] == pytest.approx(s, rel=1e-7, abs=1e-12), name
        assert res.loc[name, "v_count"] == pytest.approx(c, rel=1e-7, abs=1e-12), name
        if math.isnan(m):
            assert math.isnan(res.loc[name, "v_mean"]), name
        else:
            assert res.loc[name, "v_mean"] == pytest.approx(m, rel=1e-7), name


def test_triangle_sum_is_exactly_four(work, zones):
    grid = make_grid()
    w = ZoneWeights.build(zones, grid, "zid")
    res = w.apply({"v": VALUES})
    assert res.loc["triangle", "v_sum"] == 4.0  # fractions .75/.25 are exact in float32
    assert res.loc["outside", "v_sum"] == 0.0 and res.loc["outside", "v_count"] == 0.0
    assert math.isnan(res.loc["outside", "v_mean"])


def test_per_pixel_fractions(zones):
    """The weights hold exactly the hand-worked fractions, pixel by pixel (float64 mode)."""
    grid = make_grid()
    w = ZoneWeights.build(zones, grid, "zid", exact64=True)
    got: dict[str, dict] = {name: {} for name in CASES}
    for r in range(2):
        for k in range(w.p_ptr[r], w.p_ptr[r + 1]):
            got[w.ids[w.p_zone[k]]][(r, int(w.p_col[k]))] = float(w.p_frac[k])
        for k in range(w.r_ptr[r], w.r_ptr[r + 1]):
            for c in range(w.r_c0[k], w.r_c1[k]):
                got[w.ids[w.r_zone[k]]][(r, c)] = 1.0
    for name, (_, cover) in CASES.items():
        assert set(got[name]) == set(cover), name
        for px, f in cover.items():
            assert got[name][px] == pytest.approx(f, abs=1e-13), (name, px)


def test_nodata_pixel_is_left_out(work, zones):
    grid = make_grid()
    values = VALUES.copy()
    values[0, 1] = -9999.0  # UR is nodata
    path = write_raster(work / "nodata.tif", values, grid, nodata=-9999.0)
    res = ZoneWeights.build(zones, grid, "zid").apply({"v": path})
    s, c, m = expected(CASES["triangle"][1], values, nodata=-9999.0)
    assert (s, c) == (0.75 * 1 + 0.25 * 3 + 0.25 * 4, 1.25)
    assert res.loc["triangle", "v_sum"] == pytest.approx(s, rel=1e-12)
    assert res.loc["triangle", "v_count"] == pytest.approx(c, rel=1e-12)
    assert res.loc["triangle", "v_mean"] == pytest.approx(m, rel=1e-12)


def test_full_pixels_are_runs():
    """A zone covering whole pixels is stored as runs, not pixel by pixel."""
    grid = make_grid(4, 6)
    zones = gpd.GeoDataFrame({"zid": [1]}, geometry=[shapely.box(X0 + 10, Y0 - 30, X0 + 50, Y0)], crs=4527)
    w = ZoneWeights.build(zones, grid, "zid")
    assert len(w.p_zone) == 0
    assert len(w.r_zone) == 3 and set(zip(w.r_c0, w.r_c1)) == {(1, 5)}
    assert w.coverage().iloc[0] == 12.0


@pytest.mark.parametrize("case", ["small", "edge", "multi", "outside", "diamond"])
def test_without_mass_balance_reads_only_the_zones_rows(work, zones, case):
    # one zone at a time, mass balance off: only the rows the zone touches are read; same hand values
    grid = make_grid()
    path = write_raster(work / "值.tif", VALUES, grid)
    one = zones[zones["zid"] == case]
    res = zonal_stats({"v": path}, one, "zid", stats=("sum", "count"), mass_balance=False)
    s, c, _ = expected(CASES[case][1], VALUES)
    assert res.loc[case, "v_sum"] == pytest.approx(s, rel=1e-7, abs=1e-12)
    assert res.loc[case, "v_count"] == pytest.approx(c, rel=1e-7, abs=1e-12)
    assert "mass_balance" not in res.attrs or res.attrs["mass_balance"] == {}
