"""ecoraster's engine against exactextract (the oracle) and against shapely clip areas."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely

from ecoraster.grid import Grid
from ecoraster.zonal import ZoneWeights
from ecoraster.zonal.synthetic import random_raster, voronoi_parcels

from zonal_helpers import SLOVENIA, X0, Y0, float32_bound, make_grid, write_raster

exactextract = pytest.importorskip("exactextract")


def oracle(path, zones, id_field, bands=None):
    df = exactextract.exact_extract(str(path), zones, ["sum", "count"], include_cols=[id_field], output="pandas")
    return df.set_index(id_field)


def rel_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    rel = np.abs(a - b) / np.maximum(np.abs(b), 1e-300)
    rel[(a == 0) & (b == 0)] = 0.0
    return rel


# -- real parcels ------------------------------------------------------------------------

@pytest.mark.skipif(not (SLOVENIA / "lulc_raba_parcels.gpkg").exists(), reason="shared Slovenia data absent")
def test_slovenia_raba_parcels_match_exactextract():
    """88 RABA parcels (25 m² – 69 ha, many crossing the patch edge) over 100 NDVI
    bands: every sum and count within 1e-9 relative of exactextract."""
    parcels = gpd.read_file(SLOVENIA / "lulc_raba_parcels.gpkg")
    raster = SLOVENIA / "ndvi_timeseries_s2.tif"
    weights = ZoneWeights.build(parcels, Grid.from_raster(raster), "index")
    with rasterio.open(raster) as src:
        n_bands = src.count
    ours = weights.apply({f"b{b}": (raster, b) for b in range(1, n_bands + 1)}, stats=("sum", "count"))
    ref = oracle(raster, parcels, "index").reindex(ours.index)
    assert ours.index.equals(pd.Index(parcels["index"], name="index"))
    for b in range(1, n_bands + 1):
        for stat in ("sum", "count"):
            a = ours[f"b{b}_{stat}"].to_numpy()
            e = ref[f"band_{b}_{stat}"].fillna(0.0).to_numpy()
            assert rel_diff(a, e).max() <= 1e-9, (b, stat)
    balance = ours.attrs["mass_balance"]["b1"]
    assert balance.ok and abs(balance.rel_diff) < 1e-12  # the parcels tile the patch


# -- generated parcels -------------------------------------------------------------------

@pytest.fixture(scope="module")
def voronoi_case(tmp_path_factory):
    """2,500 Voronoi parcels (a third in clusters: many under 1 pixel) over a 150 × 120
    grid plus a 50 m margin (edge-crossing parcels), and extra zones: a polygon with two
    holes, a multipolygon, a zone outside, a parcel-sized zone straddling a corner."""
    work = tmp_path_factory.mktemp("沃罗诺伊_地块")
    grid = make_grid(150, 120)
    left, bottom, right, top = grid.bounds
    parcels = voronoi_parcels((left - 50, bottom - 50, right + 50, top + 50), 2500, 4527, seed=7)
    extra = [
        shapely.Polygon(shapely.box(X0 + 103.3, Y0 - 391.7, X0 + 377.1, Y0 - 117.2).exterior.coords,
                        [shapely.box(X0 + 150.5, Y0 - 300.25, X0 + 200.75, Y0 - 200.5).exterior.coords,
                         shapely.Point(X0 + 300.3, Y0 - 250.1).buffer(33.3, 16).exterior.coords]),
        shapely.MultiPolygon([shapely.Point(X0 + 500.4, Y0 - 600.6).buffer(47.7, 8),
                              shapely.box(X0 + 804.4, Y0 - 1004.1, X0 + 806.2, Y0 - 1001.9)]),
        shapely.box(X0 - 5000, Y0 + 5000, X0 - 4000, Y0 + 6000),
        shapely.Point(X0 + 1200, Y0 - 1500).buffer(31.4, 32),
    ]
    extra_ids = [-1, -2, -3, -4]
    zones = pd.concat([parcels, gpd.GeoDataFrame({"parcel_id": extra_ids}, geometry=extra, crs=4527)],
                      ignore_index=True)
    data = random_raster(grid, seed=3, nodata=-9999.0, nodata_share=0.03)
    path = write_raster(work / "随机值.tif", data, grid)
    return grid, parcels, zones, data, path


def test_voronoi_parcels_match_exactextract(voronoi_case):
    grid, parcels, zones, data, path = voronoi_case
    areas = zones.area.to_numpy()
    assert (areas[:-4] < 100).sum() > 100  # many parcels under one 10 m pixel
    weights = ZoneWeights.build(zones, grid, "parcel_id")
    ours = weights.apply({"v": path})
    ref = oracle(path, zones, "parcel_id").reindex(ours.index)
    valid = np.where(data == -9999.0, 0.0, data)
    for stat, values in (("sum", valid), ("count", np.ones(1))):
        a = ours[f"v_{stat}"].to_numpy()
        e = ref[stat].fillna(0.0).to_numpy()
        rel = rel_diff(a, e)
        # most zones agree to 1e-9; the others only by exactextract's float32 fractions
        assert (rel <= 1e-9).mean() >= 0.97, stat
        assert np.all(np.abs(a - e) <= 1e-9 * np.abs(e) + float32_bound(weights, values)), stat
    # zone outside the grid: kept, sum 0, mean NaN
    assert ours.loc[-3, "v_sum"] == 0 and ours.loc[-3, "v_count"] == 0 and np.isnan(ours.loc[-3, "v_mean"])
    # zone sums of the partition add up to the raster's total inside the parcels
    balance = ZoneWeights.build(parcels, grid, "parcel_id").mass_balance(path)
    assert balance.ok and abs(balance.rel_diff) < 1e-12 and balance.overlap_px == 0
    assert balance.covered_px == pytest.approx(grid.height * grid.width, rel=1e-6)
    assert balance.inside_total == pytest.approx(balance.raster_total, rel=1e-6)


def _shapely_sums(zones: gpd.GeoDataFrame, grid: Grid, data: np.ndarray) -> np.ndarray:
    """Σ value × area(zone ∩ pixel) / pixel area, pixel by pixel with shapely, in
    coordinates relative to the grid origin (exact to ~1e-13 of a pixel)."""
    t = grid.transform
    t = type(t)(t.a, 0, 0.0, 0, t.e, 0.0)
    out = np.zeros(len(zones))
    for i, geom in enumerate(shapely.transform(zones.geometry.values, lambda xy: xy - [grid.transform.c, grid.transform.f])):
        minx, miny, maxx, maxy = geom.bounds
        c0, c1 = max(int(np.floor((minx - t.c) / t.a)), 0), min(int(np.ceil((maxx - t.c) / t.a)), grid.width)
        r0, r1 = max(int(np.floor((maxy - t.f) / t.e)), 0), min(int(np.ceil((miny - t.f) / t.e)), grid.height)
        if c1 <= c0 or r1 <= r0:
            continue
        rows, cols = np.mgrid[r0:r1, c0:c1]
        boxes = shapely.box(t.c + cols * t.a, t.f + (rows + 1) * t.e, t.c + (cols + 1) * t.a, t.f + rows * t.e)
        frac = shapely.area(shapely.intersection(boxes, geom)) / (t.a * -t.e)
        out[i] = float(np.sum(frac * data[r0:r1, c0:c1]))
    return out


def test_float64_mode_matches_shapely_clip_areas(voronoi_case):
    """With ``exact64`` the coverage is exact to ~1e-12 against shapely's intersections
    in grid-local coordinates (an oracle independent of exactextract), although the
    zones come in 39,500,000 m coordinates."""
    grid, _, zones, _, _ = voronoi_case
    sample = zones.iloc[::10]
    data = random_raster(grid, seed=5, nodata_share=0.0).astype(np.float64)
    expect = _shapely_sums(sample, grid, data)
    ours64 = ZoneWeights.build(sample, grid, "parcel_id", exact64=True).apply({"v": data})["v_sum"].to_numpy()
    ours32 = ZoneWeights.build(sample, grid, "parcel_id").apply({"v": data})["v_sum"].to_numpy()
    assert rel_diff(ours64, expect).max() < 1e-12
    assert rel_diff(ours32, expect).max() < 1e-6  # float32 fractions
