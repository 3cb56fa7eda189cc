"""Shared test fixtures: small rasters in a projected CRS, temp folders with Chinese names,
and the location of ../shared (tests that need it skip cleanly when it is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".numba_cache"))

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

#: CGCS2000 / 3-degree Gauss-Krüger zone 39 (Tianjin); a hand-picked origin inside it.
TEST_CRS = "EPSG:4527"
TEST_ORIGIN = (39_499_980.0, 4_350_000.0)  # on the 30 m and 60 m lattices


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` next to the repo; skip the test when it is absent."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip("../shared/data is not available")
    return path


@pytest.fixture
def tmp_zh(tmp_path: Path) -> Path:
    """A temp folder whose name has Chinese characters (paths must survive Unicode)."""
    path = tmp_path / "生态产品_测试"
    path.mkdir()
    return path


def write_raster(path: Path, array: np.ndarray, *, nodata=None, res: float = 30.0,
                 origin: tuple[float, float] = TEST_ORIGIN, crs: str | None = TEST_CRS) -> Path:
    """Write a single-band GeoTIFF (north-up, square pixels of ``res`` metres)."""
    array = np.asarray(array)
    profile = dict(driver="GTiff", width=array.shape[1], height=array.shape[0], count=1,
                   dtype=array.dtype, transform=Affine(res, 0, origin[0], 0, -res, origin[1]))
    if crs is not None:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array, 1)
    return path


@pytest.fixture
def raster_writer():
    return write_raster


#: Marks by place: every test of a folder / file gets its marker (see pyproject's markers).
_MARKS_BY_PATH = (("tests/flows/", "flows"), ("tests/e2e/", "e2e"), ("tests/test_notebook.py", "e2e"),
                  ("tests/query/test_map_page_e2e.py", "browser"), ("tests/test_kernels.py", "unit"),
                  ("tests/test_grid.py", "unit"), ("tests/pipeline/test_cache.py", "unit"))


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.fspath)).resolve().relative_to(REPO).as_posix()
        for prefix, mark in _MARKS_BY_PATH:
            if path.startswith(prefix):
                item.add_marker(getattr(pytest.mark, mark))
