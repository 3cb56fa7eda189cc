"""Pure kernels for optical indices (no I/O): NDVI, SAVI, QA masks, FVC, LAI, histograms.

The FVC → LAI relation is :mod:`ecoraster.kernels.vegetation`; histograms and percentiles
are :mod:`ecoraster.kernels.histogram`.

Invalid pixels are NaN in float outputs.
"""

from __future__ import annotations

import numba
import numpy as np

from .histogram import class_histogram, percentile
from .vegetation import fvc_dimidiate

#: NDVI histogram: 20 000 bins of width 1e-4 over [-1, 1] (percentile error ≤ 5e-5).
NDVI_BINS = 20000


@numba.njit(cache=True, nogil=True)
def ndvi_block(red, nir, valid):
    """NDVI = (NIR − Red) / (NIR + Red) (Rouse et al. 1974), NaN where invalid or NIR + Red ≤ 0.

    ``red``, ``nir``: surface reflectance (unitless); ``valid``: bool.
    """
    out = np.empty(red.shape, dtype=np.float32)
    for i in range(red.shape[0]):
        for j in range(red.shape[1]):
            r, n = red[i, j], nir[i, j]
            s = n + r
            if valid[i, j] and s > 0 and np.isfinite(s):
                v = (n - r) / s
                out[i, j] = min(1.0, max(-1.0, v))
            else:
                out[i, j] = np.nan
    return out


@numba.njit(cache=True, nogil=True)
def savi_block(red, nir, valid, soil_l):
    """SAVI = (1 + L)(NIR − Red) / (NIR + Red + L) (Huete 1988), NaN where invalid."""
    out = np.empty(red.shape, dtype=np.float32)
    for i in range(red.shape[0]):
        for j in range(red.shape[1]):
            r, n = red[i, j], nir[i, j]
            d = n + r + soil_l
            if valid[i, j] and d > 0:
                out[i, j] = (1.0 + soil_l) * (n - r) / d
            else:
                out[i, j] = np.nan
    return out


@numba.njit(cache=True, nogil=True)
def bits_clear(qa, bit_mask):
    """True where none of the bits of ``bit_mask`` is set in the QA word."""
    out = np.empty(qa.shape, dtype=np.bool_)
    for i in range(qa.shape[0]):
        for j in range(qa.shape[1]):
            out[i, j] = (np.int64(qa[i, j]) & bit_mask) == 0
    return out


@numba.njit(cache=True, nogil=True)
def class_in_set(codes, keep_lut):
    """True where ``keep_lut[code]`` is set (codes outside the LUT are False)."""
    out = np.empty(codes.shape, dtype=np.bool_)
    n = keep_lut.shape[0]
    for i in range(codes.shape[0]):
        for j in range(codes.shape[1]):
            c = np.int64(codes[i, j])
            out[i, j] = 0 <= c < n and keep_lut[c]
    return out


def ndvi_histogram(ndvi, classes, class_index, n_classes):
    """Counts of NDVI per class in ``NDVI_BINS`` bins over [-1, 1] (float64 counts; values
    outside in the end bins). ``class_index[code]`` is the row of a class (−1: ignore the
    pixel); with a single class pass ``classes`` of zeros and ``class_index = [0]``.
    :func:`ecoraster.kernels.histogram.class_histogram`."""
    hist = np.zeros((n_classes, NDVI_BINS), dtype=np.float64)
    class_histogram(ndvi[None], classes, -1, class_index, -1.0, 1.0, False, hist)
    return hist


def histogram_percentile(hist_row: np.ndarray, percentile_: float) -> float:
    """NDVI at ``percentile_`` (0..100) of one histogram row over [-1, 1] (bin centre); NaN if empty."""
    return percentile(hist_row, percentile_ / 100.0, -1.0, 1.0)


@numba.njit(cache=True, nogil=True)
def dimidiate_fvc(ndvi, classes, soil_lut, veg_lut):
    """FVC = clip((NDVI − NDVIsoil) / (NDVIveg − NDVIsoil), 0, 1) per class (dimidiate pixel
    model, Gutman & Ignatov 1998); NaN where NDVI is NaN or the class has no end-members."""
    out = np.empty(ndvi.shape, dtype=np.float32)
    n = soil_lut.shape[0]
    for i in range(ndvi.shape[0]):
        for j in range(ndvi.shape[1]):
            v = ndvi[i, j]
            c = np.int64(classes[i, j])
            if not np.isfinite(v) or c < 0 or c >= n:
                out[i, j] = np.nan
                continue
            s, g = soil_lut[c], veg_lut[c]
            if not (np.isfinite(s) and np.isfinite(g)) or g <= s:
                out[i, j] = np.nan
                continue
            out[i, j] = fvc_dimidiate(v, s, g, 1.0)
    return out


@numba.njit(cache=True, nogil=True)
def lai_log_relation(x, a, b, c, lai_max):
    """LAI = −ln((a − x) / b) / c clipped to [0, lai_max]; ``lai_max`` where x ≥ a; NaN stays NaN."""
    out = np.empty(x.shape, dtype=np.float32)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            v = x[i, j]
            if not np.isfinite(v):
                out[i, j] = np.nan
            elif v >= a:
                out[i, j] = lai_max
            else:
                lai = -np.log((a - v) / b) / c
                out[i, j] = min(lai_max, max(0.0, lai))
    return out
