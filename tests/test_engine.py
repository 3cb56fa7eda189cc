"""The block engine: map (several outputs), reduce (float64 tree sum), map_overlap (halo),
row areas and nodata handled in one place; nothing computes before it is asked to."""

from __future__ import annotations

import math

import dask
import dask.array as da
import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from ecoraster.engine import map_blocks, map_overlap, reduce_blocks
from ecoraster.grid import Grid
from tests.lazy import raise_if_dask_computes



def _geographic_grid(rows: int, cols: int) -> Grid:
    # 0.01° pixels from 40° N southwards: the pixel area changes with the row
    return Grid(CRS.from_epsg(4326), Affine(0.01, 0, 117.0, 0, -0.01, 40.0), (rows, cols))


def test_map_blocks_several_outputs_one_kernel_call_per_block():
    x = np.arange(7 * 9, dtype=np.float32).reshape(7, 9)
    calls = []

    def kernel(block, *, scale):
        calls.append(block.shape)
        return np.stack([block * scale, block + 1.0]).astype(np.float32)

    arr = da.from_array(x, chunks=(3, 4))  # 3 × 3 = 9 blocks, uneven edges
    with raise_if_dask_computes():
        a, b = map_blocks(kernel, arr, n_out=2, scale=2.0)
    with dask.config.set(scheduler="sync"):
        got_a, got_b = dask.compute(a, b)
    np.testing.assert_array_equal(got_a, x * 2.0)
    np.testing.assert_array_equal(got_b, x + 1.0)
    assert len(calls) == 9  # both outputs from one call per block
    assert a.chunks == arr.chunks


def test_map_blocks_passes_each_block_its_rows_areas():
    grid = _geographic_grid(10, 4)
    zeros = da.zeros(grid.shape, chunks=(3, 2), dtype=np.float32)
    area = map_blocks(lambda z, row_area_m2: np.broadcast_to(row_area_m2[:, None], z.shape).astype(np.float64),
                      zeros, grid=grid, dtype=np.float64)
    expected = np.broadcast_to(grid.row_areas_m2()[:, None], grid.shape)
    np.testing.assert_array_equal(area.compute(), expected)
    # one 0.01° pixel at 40° N is about 1113 m × 853 m ≈ 9.5e5 m²; rows further south are larger
    assert 9.4e5 < expected[0, 0] < 9.6e5 and expected[9, 0] > expected[0, 0]


def test_map_blocks_masks_nodata_in_one_place():
    cls = np.array([[1, 255], [2, 1]], dtype=np.uint8)
    val = np.array([[0.5, 0.5], [np.nan, 2.0]], dtype=np.float32)
    out = map_blocks(lambda c, v: (c * v).astype(np.float32), da.from_array(cls, chunks=1),
                     da.from_array(val, chunks=1), in_nodata=(255, None), out_nodata=-9999.0)
    # (0,1): class nodata 255; (1,0): NaN value → −9999; others 1 × 0.5 and 1 × 2
    np.testing.assert_array_equal(out.compute(), [[0.5, -9999.0], [-9999.0, 2.0]])


def test_map_blocks_refuses_different_chunks():
    with pytest.raises(ValueError, match="different chunks"):
        map_blocks(np.add, da.zeros((4, 4), chunks=2), da.zeros((4, 4), chunks=4))


def test_reduce_blocks_is_a_float64_sum_equal_to_numpy():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1e4, size=(301, 257)).astype(np.float32)
    arr = da.from_array(x, chunks=(64, 50))
    with raise_if_dask_computes():
        total = reduce_blocks(lambda b: b.sum(dtype=np.float64), arr)
    exact = math.fsum(x.astype(np.float64).ravel())
    got = total.compute()
    assert got.dtype == np.float64
    assert got == pytest.approx(exact, rel=1e-13)
    assert got == pytest.approx(np.sum(x, dtype=np.float64), rel=1e-13)


def test_reduce_blocks_vector_partials_with_row_areas():
    grid = _geographic_grid(9, 5)
    cls = np.array([[1, 2, 2, 0, 1]] * 9, dtype=np.int64)
    arr = da.from_array(cls, chunks=(4, 3))

    def area_per_class(c, *, row_area_m2):
        out = np.zeros(3, dtype=np.float64)
        for k in range(3):
            out[k] = ((c == k) * row_area_m2[:, None]).sum()
        return out

    got = reduce_blocks(area_per_class, arr, grid=grid, shape=(3,)).compute()
    col = grid.row_areas_m2().sum()
    # every row has one pixel of class 0, two of class 1, two of class 2
    np.testing.assert_allclose(got, [col, 2 * col, 2 * col], rtol=1e-14)


def test_reduce_blocks_counts_in_int64():
    arr = da.from_array(np.array([[1, 2], [2, 2]]), chunks=1)
    got = reduce_blocks(lambda b: np.bincount(b.ravel(), minlength=3), arr, shape=(3,), dtype=np.int64).compute()
    assert got.dtype == np.int64 and list(got) == [0, 1, 3]


def _mean3x3(block: np.ndarray) -> np.ndarray:
    """3×3 mean of the valid neighbours (NaN-aware), NaN at the outer ring of the block."""
    out = np.full(block.shape, np.nan, dtype=np.float32)
    windows = np.stack([block[1 + dr:block.shape[0] - 1 + dr, 1 + dc:block.shape[1] - 1 + dc]
                        for dr in (-1, 0, 1) for dc in (-1, 0, 1)])
    with np.errstate(invalid="ignore"):
        out[1:-1, 1:-1] = np.nanmean(windows, axis=0)
    return out


@pytest.mark.parametrize("chunks", [(4, 5), (7, 3), (1, 2)])
def test_map_overlap_equals_numpy_on_the_whole_array(chunks):
    rng = np.random.default_rng(7)
    dem = rng.uniform(0, 100, size=(13, 11)).astype(np.float32)
    dem[5, 5] = np.nan
    whole = _mean3x3(np.pad(dem, 1, constant_values=np.nan))[1:-1, 1:-1]  # edges included
    arr = da.from_array(dem, chunks=chunks)
    with raise_if_dask_computes():
        got = map_overlap(_mean3x3, arr, depth=1, boundary=np.nan)
    assert got.chunks == arr.chunks
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(got.compute(), whole, rtol=1e-6)
    # corner by hand: mean of dem[0:2, 0:2] (the rest of the 3×3 window is outside)
    assert whole[0, 0] == pytest.approx(dem[0:2, 0:2].mean(), rel=1e-6)


def test_map_overlap_depth_two_and_haloed_row_areas():
    grid = _geographic_grid(9, 4)
    arr = da.zeros(grid.shape, chunks=(1, 4), dtype=np.float64)  # chunks smaller than the halo

    def rows_area(block, *, row_area_m2):
        assert row_area_m2.shape[0] == block.shape[0]
        return np.broadcast_to(row_area_m2[:, None], block.shape).copy()

    got = map_overlap(rows_area, arr, depth=2, grid=grid, boundary=0.0, dtype=np.float64).compute()
    np.testing.assert_array_equal(got, np.broadcast_to(grid.row_areas_m2()[:, None], grid.shape))


def test_map_blocks_window_gives_each_block_its_place():
    arr = da.zeros((5, 7), chunks=(2, 3), dtype=np.int64)

    def where(block, *, window):
        (r0, r1), (c0, c1) = window
        assert block.shape == (r1 - r0, c1 - c0)
        return (np.arange(r0, r1)[:, None] * 100 + np.arange(c0, c1)[None, :]).astype(np.int64)

    got = map_blocks(where, arr, window=True, dtype=np.int64).compute()
    np.testing.assert_array_equal(got, np.arange(5)[:, None] * 100 + np.arange(7)[None, :])
