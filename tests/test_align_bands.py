"""grid.align_bands: every band of a multi-band raster on the run grid, lazily, as align_to gives it."""

from __future__ import annotations

import numpy as np

from ecoraster.grid import Grid, align_bands, align_to
from tests.lazy import raise_if_dask_computes
from tests.services._helpers import write_bands


def test_align_bands_equals_align_to_band_by_band_and_stays_lazy(tmp_zh):
    data = np.arange(3 * 5 * 7, dtype=np.float32).reshape(3, 5, 7)
    data[1, 2, 3] = -9999.0  # nodata in band 2 only
    path = write_bands(tmp_zh / "stack.tif", data)
    grid = Grid.from_raster(path)
    with raise_if_dask_computes():
        bands = align_bands(path, grid, "bilinear", 3, chunk=4)
    assert [b.chunks for b in bands] == [((4, 1), (4, 3))] * 3
    for k, band in enumerate(bands, start=1):
        ref = align_to(path, grid, "bilinear", band=k, dtype="float32", nodata=float("nan"), chunk=4)
        np.testing.assert_array_equal(band.compute(), ref.values)
    got = bands[1].compute()
    assert np.isnan(got[2, 3]) and got[0, 0] == 35.0  # band 2 starts at 5 × 7 = 35
