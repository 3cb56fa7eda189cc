"""Valuation and allocation kernels (pure numba: arrays in, arrays out; no I/O, no CRS)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def scale_valid(values, nodata, factor, out_nodata, out):
    """``out = values × factor`` (float64 product) where ``values`` is valid, else ``out_nodata``.

    Parameters
    ----------
    values : 2-D float array
        Physical quantity per pixel (e.g. m³).
    nodata : float
        Nodata of ``values`` (NaN is always treated as nodata too).
    factor : float
        CNY per unit of ``values`` (price rebased to the price year × unit conversion).
    out : 2-D float array
        Filled in place with CNY per pixel.
    """
    rows, cols = values.shape
    for r in prange(rows):
        for c in range(cols):
            v = values[r, c]
            if v == nodata or np.isnan(v):
                out[r, c] = out_nodata
            else:
                out[r, c] = np.float64(v) * factor


@njit(cache=True)
def unit_weight_sums(unit_index, classes, class_nodata, eligible, weight, weight_nodata, use_weight,
                     row_area_m2, n_units):
    """Σ weight of eligible pixels per statistical unit (float64), for one block.

    Parameters
    ----------
    unit_index : 2-D int32
        Statistical unit of each pixel (0..n_units−1), −1 outside every unit.
    classes : 2-D int
        Ecosystem class of each pixel; ``class_nodata`` pixels are never eligible.
    eligible : 1-D bool
        ``eligible[k]`` for class code k (codes beyond its length are not eligible).
    weight : 2-D float
        Productivity proxy (NDVI, NPP …); ignored when ``use_weight`` is False (area weight).
        Nodata, NaN and values ≤ 0 weigh nothing.
    row_area_m2 : 1-D float64
        Pixel area of each row; weights are × area so that pixels of different size count fairly.

    Returns
    -------
    1-D float64 of length ``n_units``.
    """
    sums = np.zeros(n_units, dtype=np.float64)
    rows, cols = unit_index.shape
    for r in range(rows):
        a = row_area_m2[r]
        for c in range(cols):
            u = unit_index[r, c]
            if u < 0:
                continue
            w = _pixel_weight(classes[r, c], class_nodata, eligible, weight, weight_nodata, use_weight, r, c)
            if w > 0.0:
                sums[u] += w * a
    return sums


@njit(cache=True)
def _pixel_weight(k, class_nodata, eligible, weight, weight_nodata, use_weight, r, c):
    if k == class_nodata or k < 0 or k >= eligible.size or not eligible[k]:
        return 0.0
    if not use_weight:
        return 1.0
    w = weight[r, c]
    if w == weight_nodata or np.isnan(w) or w <= 0.0:
        return 0.0
    return np.float64(w)


@njit(parallel=True, cache=True)
def spread(unit_index, classes, class_nodata, eligible, weight, weight_nodata, use_weight,
           row_area_m2, per_weight, out_nodata, out):
    """``out = weight × area × per_weight[unit]`` on eligible pixels, 0 on other pixels of a
    unit, ``out_nodata`` outside every unit.

    ``per_weight[u] = total[u] / Σ_u (weight × area)`` (from :func:`unit_weight_sums`), so the
    pixels of unit u sum to ``total[u]``.
    """
    rows, cols = unit_index.shape
    for r in prange(rows):
        a = row_area_m2[r]
        for c in range(cols):
            u = unit_index[r, c]
            if u < 0:
                out[r, c] = out_nodata
                continue
            w = _pixel_weight(classes[r, c], class_nodata, eligible, weight, weight_nodata, use_weight, r, c)
            out[r, c] = w * a * per_weight[u] if w > 0.0 else 0.0
