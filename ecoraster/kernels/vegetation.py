"""The one NDVI → FVC → LAI relation (pure numba; no I/O).

- FVC by the dimidiate pixel model (Gutman & Ignatov 1998):
  FVC = clip((NDVI − NDVIsoil) / (NDVIveg − NDVIsoil), 0, fvc_max)
- LAI by Beer–Lambert canopy gap fraction (Nilson 1971; Choudhury 1987), 1 − FVC = exp(−k LAI):
  LAI = −ln(1 − min(FVC, fvc_max)) / k

The FVC cap is **0.95**, so LAI ≤ −ln(0.05) / 0.5 ≈ 6.0 with k = 0.5: the saturation of
NDVI-based LAI at about 6 that METRIC also uses (Allen, Tasumi & Trezza 2007, LAI = 6 where
SAVI > 0.687). It replaces the LAI cap of 7.0 (FVC 0.97) that ``ingest.optical.lai`` used; the
air service already capped FVC at 0.95. Coefficients: ``configs/parameters/lai_ndvi.yaml``
(``beer_lambert_fvc``) and, for the air service's run-overridable copy,
``configs/parameters/air_constants.yaml`` (``lai_extinction_k``, ``lai_fvc_max``), each with
source and confidence (✱).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always")
def fvc_dimidiate(ndvi, ndvi_soil, ndvi_veg, fvc_max):
    """FVC (float64, 0..fvc_max) of one NDVI value between the soil and vegetation end-members."""
    f = (np.float64(ndvi) - ndvi_soil) / (ndvi_veg - ndvi_soil)
    return min(max(f, 0.0), fvc_max)


@njit(cache=True, inline="always")
def lai_beer_lambert(fvc, k, fvc_max):
    """LAI (m²/m², float64) of one FVC value: −ln(1 − min(max(FVC, 0), fvc_max)) / k."""
    f = min(max(np.float64(fvc), 0.0), fvc_max)
    return -math.log(1.0 - f) / k


@njit(parallel=True, cache=True)
def lai_from_ndvi(ndvi, ndvi_soil, ndvi_veg, k, fvc_max, out):
    """LAI (m²/m²) from NDVI with fixed end-members; NaN or |NDVI| > 1 → NaN."""
    rows, cols = ndvi.shape
    for r in prange(rows):
        for c in range(cols):
            v = ndvi[r, c]
            if np.isnan(v) or v < -1.0 or v > 1.0:
                out[r, c] = np.nan
                continue
            out[r, c] = lai_beer_lambert(fvc_dimidiate(v, ndvi_soil, ndvi_veg, fvc_max), k, fvc_max)


@njit(cache=True, nogil=True)
def lai_from_fvc(fvc, k, fvc_max):
    """LAI (float32 m²/m²) of an FVC block; NaN stays NaN."""
    out = np.empty(fvc.shape, dtype=np.float32)
    for i in range(fvc.shape[0]):
        for j in range(fvc.shape[1]):
            v = fvc[i, j]
            out[i, j] = np.nan if not np.isfinite(v) else lai_beer_lambert(v, k, fvc_max)
    return out
