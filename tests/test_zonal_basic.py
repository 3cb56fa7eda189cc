import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from ecoraster.errors import TableError
from ecoraster.zonal import zonal_stats

from .conftest import TEST_CRS, TEST_ORIGIN


def test_coverage_weighted_sum_mean_and_empty_zones(tmp_zh, raster_writer):
    # 2×2 raster of 10 m pixels: [[1, 2], [3, nodata]]
    data = np.array([[1, 2], [3, -1]], dtype=np.float32)
    path = raster_writer(tmp_zh / "v.tif", data, nodata=-1.0, res=10.0)
    x0, y0 = TEST_ORIGIN
    zones = gpd.GeoDataFrame({"pid": ["half", "tiny", "outside", "with_nodata"]}, geometry=[
        box(x0, y0 - 10, x0 + 5, y0),            # left half of pixel (0,0): 0.5 × 1 = 0.5
        box(x0 + 12, y0 - 8, x0 + 14, y0 - 6),   # 2×2 m inside pixel (0,1): 0.04 × 2 = 0.08
        box(x0 + 100, y0 + 100, x0 + 110, y0 + 110),
        box(x0, y0 - 20, x0 + 20, y0 - 10),      # bottom row: 3 + nodata → sum 3, mean 3
    ], crs=TEST_CRS)
    df = zonal_stats({"v": path}, zones, "pid", stats=("sum", "mean", "count"))
    assert list(df.index) == ["half", "tiny", "outside", "with_nodata"]
    assert df.loc["half", "v_sum"] == pytest.approx(0.5)
    assert df.loc["tiny", "v_sum"] == pytest.approx(0.08)
    assert df.loc["tiny", "v_mean"] == pytest.approx(2.0)
    assert df.loc["outside", "v_sum"] == 0.0 and np.isnan(df.loc["outside", "v_mean"])
    assert df.loc["with_nodata", "v_sum"] == pytest.approx(3.0)
    assert df.loc["with_nodata", "v_mean"] == pytest.approx(3.0)
    assert df["v_sum"].dtype == np.float64


def test_duplicate_ids_are_refused(tmp_zh, raster_writer):
    path = raster_writer(tmp_zh / "v.tif", np.ones((2, 2), np.float32), nodata=-1.0)
    zones = gpd.GeoDataFrame({"pid": [1, 1]}, geometry=[box(0, 0, 1, 1)] * 2, crs=TEST_CRS)
    with pytest.raises(TableError, match="duplicate ids: 1"):
        zonal_stats(path, zones, "pid")
