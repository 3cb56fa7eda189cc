"""Soil-loss factor kernels (pure numba / numpy: arrays in, arrays out; no I/O, no CRS).

RUSLE soil retention A_retained = R·K·LS·(1 − C·P) (gep-methods.md §3.2) with two sets of
factor forms:

- InVEST 3.20 SDR (:func:`ls_invest`): Desmet & Govers (1996) L with the square root of the
  upslope area, InVEST's slope-class exponent m (0.2 ≤ 1 %, 0.3 ≤ 3.5 %, 0.4 ≤ 5 %, 0.5 ≤ 9 %,
  β/(1+β) above), the ``l_max`` clamp on L, and S = 10.8 sinθ + 0.03 (slope < 9 %) or
  16.8 sinθ − 0.5 (McCool et al. 1987).
- Chinese guide (:func:`ls_rusle_cn`): L = (λ/22.13)^m with m by slope class in degrees and
  S by Liu Baoyuan et al. (1994, 2000): 10.8 sinθ + 0.03 (θ < 5°), 16.8 sinθ − 0.5
  (5° ≤ θ < 10°), 21.91 sinθ − 0.96 (θ ≥ 10°).

and the factor models: C from fractional vegetation cover (Cai Chongfa et al. 2000),
K by EPIC (Williams 1990), R from monthly, annual or daily precipitation. The coefficients
are arguments; their values, units and sources live in ``configs/parameters/soil_*.csv``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

#: Slope-length unit plot length of the USLE, m.
UNIT_PLOT_M = 22.13
#: US customary K (t·acre·h / (100·acre·ft·tonf·in)) → SI t·ha·h / (ha·MJ·mm).
K_US_TO_SI = 0.1317


@njit(cache=True, inline="always")
def _m_invest(percent_slope, sin_theta):
    if percent_slope <= 1.0:
        return 0.2
    if percent_slope <= 3.5:
        return 0.3
    if percent_slope <= 5.0:
        return 0.4
    if percent_slope <= 9.0:
        return 0.5
    beta = (sin_theta / 0.0896) / (3.0 * sin_theta ** 0.8 + 0.56)
    return beta / (1.0 + beta)


@njit(parallel=True, cache=True)
def ls_invest(slope_pct, acc, cell_size, l_max, out):
    """InVEST 3.20 SDR LS factor (``sdr._calculate_ls_factor``), per pixel, dimensionless.

    ``slope_pct``: slope in percent (Horn, pit-filled DEM); ``acc``: MFD flow accumulation in
    pixels including the pixel itself; ``cell_size``: pixel edge in m. With D = cell_size,
    A = √((acc − 1)·D²) (InVEST's "square root of catchment area", ADR-0001), θ = atan(slope/100)
    and x = |sinθ| + |cosθ| (InVEST evaluates its aspect term on the slope angle)::

        L = ((A + D²)^(m+1) − A^(m+1)) / (D^(m+2) · x^m · 22.13^m),  L ≤ l_max
        LS = L · S

    NaN in either input gives NaN.
    """
    rows, cols = slope_pct.shape
    area = cell_size * cell_size
    for r in prange(rows):
        for c in range(cols):
            s = slope_pct[r, c]
            a = acc[r, c]
            if math.isnan(s) or math.isnan(a):
                out[r, c] = np.nan
                continue
            theta = math.atan(s / 100.0)
            sin_t = math.sin(theta)
            x = abs(sin_t) + abs(math.cos(theta))
            if s < 9.0:
                s_factor = 10.8 * sin_t + 0.03
            else:
                s_factor = 16.8 * sin_t - 0.5
            m = _m_invest(s, sin_t)
            up = math.sqrt((a - 1.0) * area)
            el = (((up + area) ** (m + 1.0) - up ** (m + 1.0))
                  / (cell_size ** (m + 2.0) * x ** m * UNIT_PLOT_M ** m))
            if el > l_max:
                el = l_max
            out[r, c] = el * s_factor


@njit(cache=True, inline="always")
def s_liu(theta):
    """Liu Baoyuan's slope-steepness factor for slope angle ``theta`` [rad]."""
    deg = math.degrees(theta)
    sin_t = math.sin(theta)
    if deg < 5.0:
        return 10.8 * sin_t + 0.03
    if deg < 10.0:
        return 16.8 * sin_t - 0.5
    return 21.91 * sin_t - 0.96


@njit(parallel=True, cache=True)
def ls_rusle_cn(slope_pct, acc, cell_size, lambda_max, m_upper_deg, m_values, out):
    """Chinese-guide LS = (λ/22.13)^m · S_Liu(θ), per pixel, dimensionless.

    λ = min(acc · D, ``lambda_max``) [m]: the upslope area per unit contour width (acc pixels
    of D² over a width D), capped at the longest slope length overland flow keeps before
    it concentrates. m = ``m_values[k]`` for the first class k with θ ≤ ``m_upper_deg[k]``
    (degrees; the last class is open-ended). NaN in either input gives NaN.
    """
    rows, cols = slope_pct.shape
    nm = m_values.size
    for r in prange(rows):
        for c in range(cols):
            s = slope_pct[r, c]
            a = acc[r, c]
            if math.isnan(s) or math.isnan(a):
                out[r, c] = np.nan
                continue
            theta = math.atan(s / 100.0)
            deg = math.degrees(theta)
            m = m_values[nm - 1]
            for k in range(nm - 1):
                if deg <= m_upper_deg[k]:
                    m = m_values[k]
                    break
            lam = min(a * cell_size, lambda_max)
            out[r, c] = (lam / UNIT_PLOT_M) ** m * s_liu(theta)


@njit(cache=True)
def flatten_noise(slope_pct, dem, radius, relief_m):
    """Set slope to 0 where the DEM's local relief is within its noise, in place.

    Where max − min of the DEM over the (2·radius + 1)² window around a pixel is at most
    ``relief_m`` [m], the slope Horn's stencil finds there is SRTM noise on a flat floodplain
    (±2 m noise alone makes 3 % slopes at 30 m); such pixels get slope 0. Returns the count.
    """
    rows, cols = dem.shape
    n = 0
    for r in range(rows):
        for c in range(cols):
            if math.isnan(slope_pct[r, c]):
                continue
            lo = np.inf
            hi = -np.inf
            for rr in range(max(r - radius, 0), min(r + radius + 1, rows)):
                for cc in range(max(c - radius, 0), min(c + radius + 1, cols)):
                    z = dem[rr, cc]
                    if not math.isnan(z):
                        lo = min(lo, z)
                        hi = max(hi, z)
            if hi - lo <= relief_m:
                slope_pct[r, c] = 0.0
                n += 1
    return n


@njit(cache=True, inline="always")
def c_cai(fvc):
    """Cover-management factor C from fractional vegetation cover ``fvc`` (0..1), Cai et al.
    (2000): C = 1 at 0; 0.6508 − 0.3436·log₁₀(100·fvc) for 0 < fvc ≤ 0.783; 0 above."""
    if fvc <= 0.0:
        return 1.0
    if fvc > 0.783:
        return 0.0
    return min(1.0, 0.6508 - 0.3436 * math.log10(100.0 * fvc))


@njit(cache=True, inline="always")
def fvc_dimidiate(ndvi, ndvi_soil, ndvi_veg):
    """Fractional vegetation cover by the dimidiate pixel model, clipped to 0..1."""
    f = (ndvi - ndvi_soil) / (ndvi_veg - ndvi_soil)
    return min(1.0, max(0.0, f))


@njit(parallel=True, cache=True)
def c_from_ndvi(ndvi, ndvi_soil, ndvi_veg, out):
    """C factor per pixel from NDVI: FVC by the dimidiate pixel model, then Cai et al. (2000);
    NaN in → NaN out."""
    rows, cols = ndvi.shape
    for r in prange(rows):
        for c in range(cols):
            v = ndvi[r, c]
            out[r, c] = np.nan if math.isnan(v) else c_cai(fvc_dimidiate(v, ndvi_soil, ndvi_veg))


def k_epic(sand, silt, clay, org_carbon):
    """Soil erodibility K by EPIC (Williams 1990), SI units t·ha·h/(ha·MJ·mm).

    Fractions in percent (sand, silt, clay of the fine earth; organic carbon of the soil)::

        K = [0.2 + 0.3·exp(−0.0256·SAN·(1 − SIL/100))] · [SIL/(CLA + SIL)]^0.3
            · [1 − 0.25·C/(C + exp(3.72 − 2.95·C))] · [1 − 0.7·SN1/(SN1 + exp(−5.51 + 22.9·SN1))]
            × 0.1317,   SN1 = 1 − SAN/100

    Works on scalars or numpy arrays (float64).
    """
    san = np.asarray(sand, dtype=np.float64)
    sil = np.asarray(silt, dtype=np.float64)
    cla = np.asarray(clay, dtype=np.float64)
    c = np.asarray(org_carbon, dtype=np.float64)
    sn1 = 1.0 - san / 100.0
    f_csand = 0.2 + 0.3 * np.exp(-0.0256 * san * (1.0 - sil / 100.0))
    f_clsi = (sil / (cla + sil)) ** 0.3
    f_orgc = 1.0 - 0.25 * c / (c + np.exp(3.72 - 2.95 * c))
    f_hisand = 1.0 - 0.7 * sn1 / (sn1 + np.exp(-5.51 + 22.9 * sn1))
    return f_csand * f_clsi * f_orgc * f_hisand * K_US_TO_SI


def r_monthly_wischmeier(monthly_mm, annual_mm=None):
    """Rainfall erosivity R [MJ·mm/(ha·h·yr)] from 12 monthly totals (Wischmeier & Smith 1978
    regression, as used for China by many GEP studies)::

        R = Σᵢ 1.735 · 10^(1.5·log₁₀(Pᵢ²/P) − 0.8188) × 17.02

    ``monthly_mm``: array of shape (12, ...) in mm; P = their sum unless ``annual_mm`` given.
    The factor 17.02 converts US units (hundreds of ft·tonf·in/(acre·h·yr)) to SI.
    Months with Pᵢ = 0 add nothing.
    """
    pm = np.asarray(monthly_mm, dtype=np.float64)
    p = pm.sum(axis=0) if annual_mm is None else np.asarray(annual_mm, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(pm > 0, 1.735 * 10.0 ** (1.5 * np.log10(pm ** 2 / p) - 0.8188), 0.0)
    return terms.sum(axis=0) * 17.02


def r_annual_power(annual_mm, alpha, beta):
    """R = α·P^β [MJ·mm/(ha·h·yr)] from annual precipitation P [mm] (e.g. 章文波 et al. 2002
    annual model α = 0.0534, β = 1.6548)."""
    return alpha * np.asarray(annual_mm, dtype=np.float64) ** beta


def r_daily_zhang(daily_mm, years, threshold_mm=12.0):
    """R [MJ·mm/(ha·h·yr)] from a daily rainfall series, 章文波 et al. (2002) half-month model,
    averaged over ``years``.

    Erosive days have P_d ≥ 12 mm. With P̄d12 the mean daily erosive rainfall and P̄y12 the mean
    annual erosive rainfall over the series::

        β = 0.8363 + 18.144/P̄d12 + 24.455/P̄y12,   α = 21.586·β^(−7.1891)
        R = α · Σ P_d^β / years

    ``daily_mm``: array (days, ...) of daily totals in mm.
    """
    d = np.asarray(daily_mm, dtype=np.float64)
    erosive = np.where(d >= threshold_mm, d, 0.0)
    n_days = (d >= threshold_mm).sum(axis=0)
    total = erosive.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pd12 = total / n_days
        py12 = total / years
        beta = 0.8363 + 18.144 / pd12 + 24.455 / py12
        alpha = 21.586 * beta ** -7.1891
        r = alpha * (np.where(d >= threshold_mm, d, 0.0) ** beta).sum(axis=0) / years
    return np.where(n_days > 0, r, 0.0)
