"""Performance edits of ecoraster/io/raster.py made on the water branch: one-pass numba
statistics and the pipelined writer (next batch computed while the current one is written)."""

import dask.array as da
import numpy as np
import pytest
import rasterio

from ecoraster.grid import Grid
from ecoraster.io.raster import RasterOutput, block_stats, write_rasters

from ..conftest import TEST_CRS


@pytest.mark.parametrize("dtype,nodata", [("float32", -9999.0), ("float32", np.nan), ("float64", 0.0),
                                          ("int16", -1), ("uint8", 255)])
def test_block_stats_equal_numpy(dtype, nodata):
    rng = np.random.default_rng(1)
    block = (rng.random((37, 53)) * 200).astype(dtype)
    block[3, :] = nodata if not (np.isnan(nodata) and block.dtype.kind != "f") else block[3, :]
    if block.dtype.kind == "f":
        block[5, 7] = np.nan  # NaN is never valid
    valid = ~np.isnan(block.astype(np.float64)) & (block != nodata if not np.isnan(nodata) else True)
    vals = block[valid].astype(np.float64)
    total, count, lo, hi = block_stats(block, nodata)
    assert count == vals.size
    assert total == pytest.approx(vals.sum(), rel=1e-13)
    assert (lo, hi) == (vals.min(), vals.max())


def test_block_stats_all_nodata():
    total, count, lo, hi = block_stats(np.full((4, 4), -1.0, np.float32), -1.0)
    assert (total, count) == (0.0, 0) and lo == np.inf and hi == -np.inf


def test_pipelined_batches_write_every_block_once(tmp_zh):
    grid = Grid.from_bounds(TEST_CRS, (39_500_000, 4_300_000, 39_500_000 + 10 * 700, 4_300_000 + 10 * 650), 10)
    rng = np.random.default_rng(5)
    a = rng.random(grid.shape).astype(np.float32)
    a[rng.random(grid.shape) < 0.1] = -1.0
    b = (a * 2).astype(np.float32)
    outs = [RasterOutput(tmp_zh / "a.tif", da.from_array(a, chunks=128), -1.0, "mm"),
            RasterOutput(tmp_zh / "b.tif", da.from_array(b, chunks=128), -2.0, "m3")]
    # 6 × 6 = 36 blocks in batches of 1, 2 and 5 blocks (the last batch partial)
    for batch in (1, 2, 5):
        stats = write_rasters(outs, grid, blocks_per_batch=batch)
        with rasterio.open(tmp_zh / "a.tif") as src:
            np.testing.assert_array_equal(src.read(1), a)
            assert src.compression.name.upper() == "ZSTD" and src.overviews(1)
        with rasterio.open(tmp_zh / "b.tif") as src:
            np.testing.assert_array_equal(src.read(1), b)
        va = a[a != -1.0].astype(np.float64)
        assert stats[str(tmp_zh / "a.tif")].valid_pixels == va.size
        assert stats[str(tmp_zh / "a.tif")].total == pytest.approx(va.sum(), rel=1e-12)
        assert stats[str(tmp_zh / "b.tif")].valid_pixels == int((b != -2.0).sum())  # −1 × 2 = nodata −2
