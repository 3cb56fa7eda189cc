"""Zones on the run grid for the reports: a label raster of a zone set and the window + mask
of one zone (pixel-centre rule: a pixel belongs to the zone that holds its centre).

Class areas counted this way (land-cover transitions, ecological land) are whole-pixel
counts × pixel area; the GEP tables themselves use exact coverage fractions
(:mod:`ecoraster.zonal`), so for zones much larger than a pixel the two agree to within the
boundary pixels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from rasterio import features
from rasterio.windows import Window, from_bounds

from ..grid import Grid


def pixel_area_m2(grid: Grid) -> float:
    return abs(float(grid.transform.a) * float(grid.transform.e))


def label_raster(geoms, grid: Grid) -> np.ndarray:
    """int32 raster on ``grid``: 1 + position of the zone holding each pixel centre, 0 outside."""
    shapes = [(g, i + 1) for i, g in enumerate(geoms) if g is not None and not g.is_empty]
    return features.rasterize(shapes, out_shape=grid.shape, transform=grid.transform, fill=0, dtype="int32")


def zone_window(geom, grid: Grid) -> tuple[Window, np.ndarray]:
    """The grid window around ``geom`` and the mask (True = pixel centre inside) on it."""
    w = from_bounds(*geom.bounds, transform=grid.transform).round_offsets(op="floor").round_lengths(op="ceil")
    rows, cols = grid.shape
    r0, c0 = max(0, int(w.row_off)), max(0, int(w.col_off))
    r1, c1 = min(rows, int(w.row_off + w.height) + 1), min(cols, int(w.col_off + w.width) + 1)
    win = Window(c0, r0, max(0, c1 - c0), max(0, r1 - r0))
    transform = grid.transform @ grid.transform.translation(c0, r0)
    if win.width == 0 or win.height == 0:
        return win, np.zeros((0, 0), dtype=bool)
    mask = features.geometry_mask([geom], out_shape=(int(win.height), int(win.width)), transform=transform,
                                  invert=True)
    return win, mask


def read_window(array, win: Window) -> np.ndarray:
    """A window of a lazy (xarray / dask) grid array as numpy."""
    data = getattr(array, "data", array)
    r0, c0 = int(win.row_off), int(win.col_off)
    block = data[r0:r0 + int(win.height), c0:c0 + int(win.width)]
    return np.asarray(block.compute() if hasattr(block, "compute") else block)


def class_area_by_zone(labels: np.ndarray, classes: np.ndarray, n_zones: int, codes, pixel_area: float,
                       nodata: int = 0) -> pd.DataFrame:
    """Area (ha) per zone (rows 0..n_zones-1) of the pixels whose class is in ``codes``; also
    the zone's valid land-cover area. Pixel-centre rule."""
    lab = np.asarray(labels).ravel()
    cls = np.asarray(classes).ravel()
    valid = (lab > 0) & (cls != nodata)
    sel = valid & np.isin(cls, np.asarray(list(codes)))
    ha = pixel_area / 10_000.0
    total = np.bincount(lab[valid], minlength=n_zones + 1)[1:] * ha
    inside = np.bincount(lab[sel], minlength=n_zones + 1)[1:] * ha
    return pd.DataFrame({"area_ha_landcover": total.astype("float64"), "class_area_ha": inside.astype("float64")})
