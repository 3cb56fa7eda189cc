import math

import numpy as np
import pytest

from ecoraster.errors import (
    EcorasterError,
    MissingCRSError,
    MissingFileError,
    NodataNotRepresentableError,
    NodataUndefinedError,
    NoOverlapError,
)
from ecoraster.grid import Grid, align_to, check_representable

from .conftest import TEST_CRS, TEST_ORIGIN


def test_from_bounds_snaps_outward():
    g = Grid.from_bounds(TEST_CRS, (100.0, 205.0, 391.0, 500.0), 30.0)
    # left 100 → 90, bottom 205 → 180, right 391 → 420, top 500 → 510
    assert g.bounds == (90.0, 180.0, 420.0, 510.0)
    assert g.shape == (11, 11)
    assert g.pixel_area_m2() == 900.0


def test_geographic_row_areas_shrink_poleward():
    g = Grid.from_bounds("EPSG:4326", (114.0, 30.0, 114.01, 30.02), 0.01)
    areas = g.row_areas_m2()
    # spherical estimate of a 0.01° cell at 30.005°N: R² · Δλ · (sin φ2 − sin φ1), R = 6371 km
    r = 6_371_000.0
    est = r * r * math.radians(0.01) * (math.sin(math.radians(30.01)) - math.sin(math.radians(30.0)))
    assert areas[1] == pytest.approx(est, rel=5e-3)
    assert areas[0] < areas[1]  # row 0 is the northern row


def test_align_same_grid_equals_file(tmp_zh, raster_writer):
    data = np.arange(120, dtype=np.int16).reshape(10, 12)
    path = raster_writer(tmp_zh / "a.tif", data, nodata=-1)
    grid = Grid.from_raster(path)
    arr = align_to(path, grid, "nearest", chunk=4)
    assert arr.data.chunks == ((4, 4, 2), (4, 4, 4))
    np.testing.assert_array_equal(arr.values, data)   # dask chunks == numpy read
    assert arr.attrs["nodata"] == -1


def test_align_pads_outside_with_nodata(tmp_zh, raster_writer):
    data = np.ones((4, 4), dtype=np.uint8)
    path = raster_writer(tmp_zh / "b.tif", data, nodata=0)
    # grid shifted by 2 pixels left and up, 6×6: the source fills rows/cols 2..5
    grid = Grid.from_bounds(TEST_CRS, (TEST_ORIGIN[0] - 60, TEST_ORIGIN[1] - 120,
                                       TEST_ORIGIN[0] + 120, TEST_ORIGIN[1] + 60), 30.0)
    out = align_to(path, grid, "nearest", chunk=4).values
    expected = np.zeros((6, 6), dtype=np.uint8)
    expected[2:, 2:] = 1
    np.testing.assert_array_equal(out, expected)


def test_align_resamples_to_coarser_grid(tmp_zh, raster_writer):
    data = np.array([[1, 1, 2, 2], [1, 3, 2, 2], [4, 4, 5, 5], [4, 4, 5, 6]], dtype=np.float32)
    path = raster_writer(tmp_zh / "c.tif", data, nodata=-9999.0)
    grid = Grid.from_bounds(TEST_CRS, (TEST_ORIGIN[0], TEST_ORIGIN[1] - 120, TEST_ORIGIN[0] + 120,
                                       TEST_ORIGIN[1]), 60.0)
    avg = align_to(path, grid, "average").values
    # 2×2 blocks: (1+1+1+3)/4 = 1.5, 2, 4, (5+5+5+6)/4 = 5.25
    np.testing.assert_allclose(avg, [[1.5, 2.0], [4.0, 5.25]])
    mode = align_to(path, grid, "mode").values
    np.testing.assert_array_equal(mode, [[1, 2], [4, 5]])


def test_align_reprojects_between_crs(tmp_zh, raster_writer):
    data = np.full((20, 20), 7, dtype=np.uint8)
    path = raster_writer(tmp_zh / "d.tif", data, nodata=0)
    src = Grid.from_raster(path)
    from rasterio.warp import transform_bounds

    b = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    inner = (b[0] + 0.001, b[1] + 0.001, b[2] - 0.001, b[3] - 0.001)
    grid = Grid.from_bounds("EPSG:4326", inner, 0.0005)
    out = align_to(path, grid, "nearest", chunk=3).values
    assert set(np.unique(out)) == {7}


def test_error_missing_file(tmp_zh):
    with pytest.raises(MissingFileError, match="nope.tif"):
        align_to(tmp_zh / "nope.tif", Grid.from_bounds(TEST_CRS, (0, 0, 30, 30), 30), "nearest")


def test_error_missing_crs(tmp_zh, raster_writer):
    path = raster_writer(tmp_zh / "nocrs.tif", np.ones((2, 2), np.uint8), nodata=0, crs=None)
    with pytest.raises(MissingCRSError, match="nocrs.tif.*no CRS"):
        align_to(path, Grid.from_bounds(TEST_CRS, (0, 0, 30, 30), 30), "nearest")


def test_error_nodata_undefined(tmp_zh, raster_writer):
    path = raster_writer(tmp_zh / "nond.tif", np.ones((2, 2), np.uint8))
    with pytest.raises(NodataUndefinedError, match="nond.tif.*no nodata"):
        align_to(path, Grid.from_raster(path), "nearest")
    # a nodata declared in the catalogue makes it usable
    assert align_to(path, Grid.from_raster(path), "nearest", src_nodata=0).attrs["nodata"] == 0


def test_error_no_overlap(tmp_zh, raster_writer):
    path = raster_writer(tmp_zh / "far.tif", np.ones((2, 2), np.uint8), nodata=0)
    far = Grid.from_bounds(TEST_CRS, (39_000_000, 3_000_000, 39_000_300, 3_000_300), 30)
    with pytest.raises(NoOverlapError, match="far.tif does not overlap"):
        align_to(path, far, "nearest")


def test_nodata_must_be_representable():
    with pytest.raises(NodataNotRepresentableError, match="-1.*uint8"):
        check_representable(-1, "uint8", "x.tif")
    with pytest.raises(NodataNotRepresentableError):
        check_representable(float("nan"), "int16", "x.tif")
    check_representable(-9999.0, "float32", "x.tif")
    with pytest.raises(NodataNotRepresentableError):
        check_representable(1e40, "float32", "x.tif")
    assert issubclass(NodataNotRepresentableError, (EcorasterError, ValueError))


def test_aligned_array_carries_crs_and_transform(tmp_zh, raster_writer):
    path = raster_writer(tmp_zh / "crs.tif", np.ones((3, 4), np.uint8), nodata=0)
    grid = Grid.from_raster(path)
    arr = align_to(path, grid, "nearest")
    assert arr.rio.crs.to_epsg() == 4527
    assert tuple(arr.rio.transform())[:6] == tuple(grid.transform)[:6]
