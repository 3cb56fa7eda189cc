"""Helpers for the zonal tests: small grids, rasters, the shared real data next to the
repository (``../shared``), if present, and the tolerance against exactextract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS

from ecoraster.grid import Grid

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
SLOVENIA = SHARED / "data" / "real" / "eolearn-slovenia-s2-patch"

#: A realistic origin in EPSG:4527 (CGCS2000 / 3-degree GK zone 39, with zone prefix).
X0, Y0 = 39_500_000.0, 3_300_020.0


def make_grid(rows: int = 2, cols: int = 2, res: float = 10.0, x0: float = X0, y0: float = Y0,
              epsg: int = 4527) -> Grid:
    return Grid(CRS.from_epsg(epsg), Affine(res, 0, x0, 0, -res, y0), (rows, cols))


def write_raster(path: Path, data: np.ndarray, grid: Grid, nodata: float | None = -9999.0) -> Path:
    profile = dict(driver="GTiff", width=grid.width, height=grid.height, count=1, dtype=str(data.dtype),
                   crs=grid.crs, transform=grid.transform, nodata=nodata, tiled=True,
                   blockxsize=16 * max(1, grid.width // 256 + 1), blockysize=16)
    if grid.width < 16 or grid.height < 16:
        profile.update(tiled=False)
        profile.pop("blockxsize")
        profile.pop("blockysize")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return path


def float32_bound(weights, values: np.ndarray, rel: float = 1e-9) -> np.ndarray:
    """Per-zone allowance for comparing with exactextract: ``rel`` plus one float32 unit
    (2**-24 of a pixel) for every partial pixel, times the largest |value|. exactextract
    keeps fractions in float32; where the exact fraction lies within ~1e-12 of a float32
    rounding tie its arithmetic and ours may round to neighbouring float32 values."""
    n_partial = np.bincount(weights.p_zone, minlength=weights.n_zones)
    vmax = float(np.nanmax(np.abs(values)))
    return n_partial * 2.0 ** -24 * vmax
