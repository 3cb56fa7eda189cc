"""Fixtures for the ingest tests: the shared real samples and Unicode temp dirs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT / ".." / "shared"
REAL = SHARED / "data" / "real"


@pytest.fixture
def real() -> Path:
    """``../shared/data/real`` or skip the test when it is absent."""
    if not REAL.is_dir():
        pytest.skip("../shared/data/real is absent")
    return REAL


@pytest.fixture
def tmp_cn(tmp_path_factory) -> Path:
    """A temp dir whose name has Chinese characters (paths must survive Unicode)."""
    return tmp_path_factory.mktemp("生态_输入_")


def write_tif(path, array, *, crs="EPSG:32650", transform=None, nodata=None, descriptions=None, tags=None):
    """Write a (bands, rows, cols) or (rows, cols) array as a GeoTIFF."""
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[None]
    transform = transform or Affine(30.0, 0, 500000.0, 0, -30.0, 4400000.0)
    profile = dict(driver="GTiff", width=arr.shape[2], height=arr.shape[1], count=arr.shape[0],
                   dtype=arr.dtype.name, crs=crs, transform=transform, nodata=nodata,
                   tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
        for i, d in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, d)
        if tags:
            dst.update_tags(**tags)
    return Path(path)
