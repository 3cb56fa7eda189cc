"""ZoneWeights: reuse across rasters, cache, raster forms, reprojection, mass balance,
partition check and errors."""

from __future__ import annotations

import logging

import dask.array as da
import geopandas as gpd
import numpy as np
import pytest
import shapely
import xarray as xr

from ecoraster.errors import EcorasterError, GridMismatchError, MissingFileError, TableError
from ecoraster.zonal import ZoneWeights, check_partition, zonal_stats
from ecoraster.zonal.synthetic import random_raster, voronoi_parcels

from zonal_helpers import X0, Y0, make_grid, write_raster


@pytest.fixture(scope="module")
def case():
    grid = make_grid(60, 80)
    left, bottom, right, top = grid.bounds
    parcels = voronoi_parcels((left - 20, bottom - 20, right + 20, top + 20), 300, 4527, seed=11)
    return grid, parcels


def test_weights_reused_equal_separate_runs(work, case):
    grid, parcels = case
    paths = {f"年{y}": write_raster(work / f"服务_{y}.tif", random_raster(grid, seed=y), grid) for y in (2020, 2021, 2022)}
    weights = ZoneWeights.build(parcels, grid, "parcel_id")
    together = weights.apply(paths, stats=("sum", "mean", "count"))
    for name, path in paths.items():
        alone = ZoneWeights.build(parcels, grid, "parcel_id").apply({name: path}, stats=("sum", "mean", "count"))
        assert together[alone.columns].equals(alone)
    via_api = zonal_stats(paths, parcels, "parcel_id", stats=("sum", "mean", "count"))
    assert via_api.equals(together)
    assert set(via_api.attrs["mass_balance"]) == set(paths)


def test_cache_round_trip(work, case, caplog):
    grid, parcels = case
    cache = work / "缓存"
    first = ZoneWeights.build(parcels, grid, "parcel_id", cache_dir=cache)
    files = list(cache.glob("zonal-*.npz"))
    assert len(files) == 1
    with caplog.at_level(logging.INFO, logger="ecoraster.zonal.weights"):
        second = ZoneWeights.build(parcels, grid, "parcel_id", cache_dir=cache)
    assert "from cache" in caplog.text
    for k in ("p_ptr", "p_zone", "p_col", "p_frac", "r_ptr", "r_zone", "r_c0", "r_c1"):
        assert np.array_equal(getattr(first, k), getattr(second, k))
    assert second.ids.equals(first.ids) and second.grid.same_as(grid)
    # other geometry or other grid → other key
    moved = parcels.copy()
    moved["geometry"] = moved.geometry.translate(0.5, 0)
    ZoneWeights.build(moved, grid, "parcel_id", cache_dir=cache)
    ZoneWeights.build(parcels, make_grid(60, 81), "parcel_id", cache_dir=cache)
    assert len(list(cache.glob("zonal-*.npz"))) == 3


def test_raster_forms_agree(work, case):
    grid, parcels = case
    data = random_raster(grid, seed=4, nodata=-9999.0)
    path = write_raster(work / "形式.tif", data, grid)
    weights = ZoneWeights.build(parcels, grid, "parcel_id")
    ref = weights.apply({"v": path})
    as_nan = np.where(data == -9999.0, np.nan, data)
    for form in (as_nan, da.from_array(as_nan, chunks=(17, 80)),
                 xr.DataArray(da.from_array(data, chunks=(25, 40)), dims=("y", "x"), attrs={"nodata": -9999.0}),
                 (path, 1)):
        got = weights.apply({"v": form})
        np.testing.assert_allclose(got.to_numpy(), ref.to_numpy(), rtol=1e-13, equal_nan=True)


def test_zones_in_other_crs_are_reprojected(work, case):
    grid, parcels = case
    path = write_raster(work / "投影.tif", random_raster(grid, seed=8), grid)
    in_4326 = parcels.to_crs(4326)
    ours = zonal_stats({"v": path}, in_4326, "parcel_id", stats=("sum", "count"))
    ref = zonal_stats({"v": path}, in_4326, "parcel_id", stats=("sum", "count"), engine="exactextract")
    rel = np.abs(ours.to_numpy() - ref.to_numpy()) / np.maximum(np.abs(ref.to_numpy()), 1e-300)
    assert np.median(rel) < 1e-12 and rel.max() < 1e-6
    # the round trip 4527 → 4326 → 4527 moves vertices by ~1e-9 m only
    direct = ZoneWeights.build(parcels, grid, "parcel_id").apply({"v": path}, stats=("sum",))
    np.testing.assert_allclose(ours["v_sum"], direct["v_sum"], rtol=1e-6)


def test_mass_balance_flags_overlaps(work, case):
    grid, parcels = case
    data = random_raster(grid, seed=9, nodata=-9999.0)
    path = write_raster(work / "平衡.tif", data, grid)
    ok = ZoneWeights.build(parcels, grid, "parcel_id").mass_balance(path)
    assert ok.ok and abs(ok.rel_diff) < 1e-12 and ok.overlap_px == 0
    valid = data != -9999.0
    assert ok.raster_total == pytest.approx(float(data[valid].astype(np.float64).sum()), rel=1e-12)
    assert ok.inside_total == pytest.approx(ok.raster_total, rel=1e-6)  # parcels cover the grid
    # a duplicate of a 2 × 3 pixel block → counted twice, reported as overlap
    extra = gpd.GeoDataFrame({"parcel_id": [-1]}, geometry=[shapely.box(X0 + 100, Y0 - 130, X0 + 130, Y0 - 110)],
                             crs=4527)
    both = gpd.GeoDataFrame(pd_concat([parcels, extra]), crs=4527)
    bad = ZoneWeights.build(both, grid, "parcel_id").mass_balance(path)
    assert not bad.ok
    assert bad.overlap_px == pytest.approx(6.0, rel=1e-6)
    block = data[11:13, 10:13]
    assert bad.abs_diff == pytest.approx(float(block[block != -9999.0].astype(np.float64).sum()), rel=1e-6)


def pd_concat(frames):
    import pandas as pd

    return pd.concat(frames, ignore_index=True)


def test_check_partition(case):
    _, parcels = case
    good = check_partition(parcels, "parcel_id")
    assert good.ok and good.n_overlaps == 0 and good.n_gaps == 0
    assert good.union_area == pytest.approx(good.zones_area, rel=1e-9)
    # remove one parcel → a gap; add an overlapping square → an overlap
    hole_area = float(parcels.geometry.iloc[5].area)
    broken = pd_concat([parcels.drop(index=5), gpd.GeoDataFrame(
        {"parcel_id": [-1]}, geometry=[shapely.box(X0 + 200, Y0 - 300, X0 + 210, Y0 - 290)], crs=4527)])
    bad = check_partition(gpd.GeoDataFrame(broken, crs=4527), "parcel_id",
                          extent=shapely.box(*parcels.total_bounds))
    assert not bad.ok
    assert bad.overlap_area == pytest.approx(100.0, rel=1e-9)
    assert bad.gap_area == pytest.approx(hole_area, rel=1e-6)
    assert bad.overlaps[0][1] == -1 or bad.overlaps[0][0] == -1
    assert "NOT a partition" in str(bad)


def test_errors(work, case):
    grid, parcels = case
    weights = ZoneWeights.build(parcels, grid, "parcel_id")
    with pytest.raises(MissingFileError, match="缺失.tif"):
        weights.apply({"v": work / "缺失.tif"})
    other = write_raster(work / "别的网格.tif", random_raster(make_grid(60, 81)), make_grid(60, 81))
    with pytest.raises(GridMismatchError, match="别的网格.tif"):
        weights.apply({"v": other})
    with pytest.raises(GridMismatchError, match="shape"):
        weights.apply({"v": np.zeros((3, 3))})
    with pytest.raises(TableError, match="median"):
        weights.apply({"v": np.zeros(grid.shape)}, stats=("median",))
    with pytest.raises(TableError, match="no field 'nope'"):
        ZoneWeights.build(parcels, grid, "nope")
    with pytest.raises(TableError, match="engine"):
        zonal_stats({"v": other}, parcels, "parcel_id", engine="rasterstats")
    dup = parcels.copy()
    dup.loc[1, "parcel_id"] = dup.loc[0, "parcel_id"]
    with pytest.raises(EcorasterError, match="duplicate"):
        ZoneWeights.build(dup, grid, "parcel_id")


def test_large_zone_processed_in_row_blocks(monkeypatch, case):
    """A zone bigger than the working window is done in row blocks, same result."""
    from ecoraster.kernels import coverage

    grid, _ = case
    big = gpd.GeoDataFrame({"zid": [1, 2]}, geometry=[
        shapely.Point(X0 + 400, Y0 - 300).buffer(290.3, 64),
        shapely.Polygon([(X0 - 10, Y0 + 5), (X0 + 805, Y0 - 333.3), (X0 + 33.3, Y0 - 610)])], crs=4527)
    data = random_raster(grid, seed=1, nodata_share=0.0)
    ref = ZoneWeights.build(big, grid, "zid").apply({"v": data})
    monkeypatch.setattr(coverage, "MAX_WINDOW_CELLS", 100)
    small = ZoneWeights.build(big, grid, "zid").apply({"v": data})
    np.testing.assert_allclose(small.to_numpy(), ref.to_numpy(), rtol=1e-12)
