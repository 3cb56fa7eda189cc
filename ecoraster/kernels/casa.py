"""CASA light-use-efficiency NPP, soil heterotrophic respiration and NEP (pure numba kernels).

Arrays in, arrays out: no paths, no CRS, no logging. Continuous inputs are float32 with NaN
as nodata; class codes are integers with an explicit nodata code. Every sum over periods is
float64.

Formulas (gep-methods §3.8; 池源 et al. 2018, doi:10.5846/stxb201705301000; 潘竞虎 et al. 2017;
朱文泉 et al. 2006; Potter et al. 1993):

- NPP = Σ_periods APAR × ε,  APAR = SOL × FPAR × 0.5,  ε = Tε1 × Tε2 × Wε × εmax (g C m⁻²)
- FPAR = w × FPAR_NDVI + (1 − w) × FPAR_SR, each a linear stretch between the class's 5 % and
  95 % NDVI (or SR = (1 + NDVI)/(1 − NDVI)) onto [FPARmin, FPARmax]
- Tε1 = 0.8 + 0.02 Topt − 0.0005 Topt²  (Topt: temperature of the period of highest NDVI)
- Tε2 = 1.184 / (1 + exp[0.2 (Topt − 10 − T)]) / (1 + exp[0.3 (T − Topt − 10)]), set to half its
  value at Topt when T is more than 10 °C above or 13 °C below Topt
- Wε = 0.5 + 0.5 E/Ep
- Rh = a [exp(b T) + ln(c R + 1)] × days × f per month (g C m⁻² month⁻¹), T °C, R mm/month
- sequestration basis (GB/T 46869-2025 A.7 / MEE 2020 固碳 methods ◐): NEP, α·NPP or rate × area per
  class; the priced basis is max(basis, 0), the negative part is a carbon source (never priced)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from .classes import class_row as _row
from .classes import row_index
from .histogram import class_histogram, percentile

#: Number of NDVI bins in (0, 1] for the per-class percentile histogram (bin width 0.001).
NDVI_BINS = 1000


def build_row_index(codes: np.ndarray) -> np.ndarray:
    """Dense ``code → table row`` index (int64, −1 where a code has no row): :func:`classes.row_index`."""
    return row_index(codes)


def ndvi_class_histogram(classes, class_nodata, row_of_code, ndvi, counts):
    """Add, per class row, the counts of NDVI values in (0, 1] binned by 1/``NDVI_BINS``
    (``ndvi`` 3-D (periods, rows, cols), NaN = nodata; ``counts`` (n_class_rows, NDVI_BINS)
    int64, accumulated in place). Only positive NDVI counts: the percentiles describe the
    vegetated signal of a class. :func:`ecoraster.kernels.histogram.class_histogram`."""
    class_histogram(ndvi, classes, class_nodata, row_of_code, 0.0, 1.0, True, counts)


def percentile_from_histogram(counts: np.ndarray, q: float) -> float:
    """NDVI at quantile ``q`` (0..1) of one class's histogram over (0, 1] (bin centre), NaN if empty."""
    return percentile(counts, q, 0.0, 1.0)


@njit(cache=True)
def _t_epsilon2_curve(t, topt):
    return 1.184 / (1.0 + math.exp(0.2 * (topt - 10.0 - t))) / (1.0 + math.exp(0.3 * (t - topt - 10.0)))


@njit(cache=True)
def t_epsilon2(t, topt):
    """Tε2 (dimensionless): high / low temperature stress on ε, T and Topt in °C."""
    if t - topt > 10.0 or topt - t > 13.0:
        return 0.5 * _t_epsilon2_curve(topt, topt)
    return _t_epsilon2_curve(t, topt)


@njit(cache=True)
def fpar(ndvi, lo, hi, fpar_min, fpar_max, w_ndvi):
    """FPAR (0..1) from NDVI and the class's NDVI 5 % / 95 % bounds ``lo`` < ``hi`` < 1.

    NDVI ≤ 0 (water, snow, bare soil) absorbs no PAR: 0. Otherwise NDVI is clamped to
    [lo, hi], then FPAR = w × FPAR_NDVI + (1 − w) × FPAR_SR.
    """
    if ndvi <= 0.0:
        return 0.0
    nd = min(max(ndvi, lo), hi)
    span = fpar_max - fpar_min
    if hi - lo < 1e-9:
        return fpar_max if nd >= hi else fpar_min
    f_ndvi = (nd - lo) / (hi - lo) * span + fpar_min
    sr = (1.0 + nd) / (1.0 - nd)
    sr_lo = (1.0 + lo) / (1.0 - lo)
    sr_hi = (1.0 + hi) / (1.0 - hi)
    f_sr = (sr - sr_lo) / (sr_hi - sr_lo) * span + fpar_min
    return w_ndvi * f_ndvi + (1.0 - w_ndvi) * f_sr


@njit(cache=True)
def rh_period(t, p, months, a, b, c, days, fraction):
    """Soil heterotrophic respiration of one period (g C m⁻²).

    ``t`` mean temperature (°C), ``p`` precipitation of the period (mm), ``months`` the
    period's length in months; the monthly regression is applied to the period's mean month
    (R = p / months) and multiplied by ``months``.
    """
    r_month = max(p, 0.0) / months
    return a * (math.exp(b * t) + math.log(c * r_month + 1.0)) * days * fraction * months


class CasaParams(NamedTuple):
    """The scalar parameters of :func:`casa_block` (one record instead of 20 positional
    arguments; numba passes it as a typed tuple). Build with floats and bools."""

    use_aet: bool        #: True: E = AET; False: E = min(P, PET)
    months: float        #: months per period (1 for 12 periods, 12 for an annual surrogate)
    par_fraction: float  #: PAR share of SOL (0.5)
    fpar_min: float      #: FPARmin (0.001)
    fpar_max: float      #: FPARmax (0.95)
    w_ndvi: float        #: weight of FPAR_NDVI (0.5)
    t_cutoff: float      #: ε = 0 in periods with T ≤ t_cutoff (−10 °C)
    rh_a: float          #: Rh regression constants (0.22, 0.0912, 0.3145, 30 d, 0.465)
    rh_b: float
    rh_c: float
    rh_days: float
    rh_fraction: float
    co2_factor: float    #: t CO₂ per t C of the basis (44/12, or 1.63 / cf)
    co2_on_nep: bool     #: CO₂ basis NEP (else NPP)
    o2_factor: float     #: t O₂ per t C of the basis (32/12, or 1.19 / cf)
    o2_on_nep: bool      #: O₂ basis NEP (else NPP)
    clip_negative: bool  #: a negative basis counts 0 in CO₂ / O₂


@njit(parallel=True, cache=True)
def casa_block(classes, class_nodata, row_of_code, emax, ndvi_lo, ndvi_hi, rh_on,
               ndvi, sol, temp, precip, aet, pet, p, row_area_m2, out_nodata, out):
    """Annual NPP, Rh, NEP, CO₂ and O₂ per pixel of one block.

    Parameters
    ----------
    classes : 2-D int (rows, cols)
        GEP ecosystem class codes; ``class_nodata`` or a code without a table row → nodata.
    row_of_code : 1-D int64
        :func:`build_row_index` of the table's codes.
    emax, ndvi_lo, ndvi_hi, rh_on : 1-D float64 per table row
        εmax (g C/MJ), NDVI 5 % / 95 % bounds, 1.0 if Rh is counted on the class else 0.0.
    ndvi, sol, temp, precip, aet, pet : 3-D float32 (periods, rows, cols), NaN = nodata
        NDVI (−1..1; outside → nodata), solar radiation (MJ m⁻² per period), mean air
        temperature (°C), precipitation (mm per period), actual and potential
        evapotranspiration (mm per period). Negative SOL, P, AET, PET count as 0.
    p : CasaParams
        The scalar parameters. With ``p.use_aet`` False, E = min(P, PET) and ``aet`` is
        ignored (pass any array of the same shape).
    row_area_m2 : 1-D float64 (rows)
        Pixel area of each row (m²).
    out : 3-D float32 (5, rows, cols)
        Filled with NPP, Rh, NEP (t C/yr per pixel), CO₂ (t CO₂/yr), O₂ (t O₂/yr);
        ``out_nodata`` where any input is nodata in any period.
    """
    periods, rows, cols = ndvi.shape
    for r in prange(rows):
        t_per_g = row_area_m2[r] * 1e-6  # g C m⁻² → t C per pixel
        for c in range(cols):
            k = _row(classes[r, c], class_nodata, row_of_code)
            valid = k >= 0
            best = -2.0
            topt = 0.0
            if valid:
                for m in range(periods):
                    v = ndvi[m, r, c]
                    if (np.isnan(v) or v < -1.0 or v > 1.0 or np.isnan(sol[m, r, c])
                            or np.isnan(temp[m, r, c]) or np.isnan(precip[m, r, c])
                            or np.isnan(pet[m, r, c]) or (p.use_aet and np.isnan(aet[m, r, c]))):
                        valid = False
                        break
                    if v > best:
                        best = v
                        topt = temp[m, r, c]
            if not valid:
                for i in range(5):
                    out[i, r, c] = out_nodata
                continue
            t_eps1 = max(0.8 + 0.02 * topt - 0.0005 * topt * topt, 0.0)
            npp = 0.0
            rh = 0.0
            for m in range(periods):
                t = np.float64(temp[m, r, c])
                pr = max(np.float64(precip[m, r, c]), 0.0)
                if emax[k] > 0.0 and t > p.t_cutoff:
                    ep = max(np.float64(pet[m, r, c]), 0.0)
                    e = max(np.float64(aet[m, r, c]), 0.0) if p.use_aet else min(pr, ep)
                    ratio = 1.0 if ep <= 0.0 else min(e / ep, 1.0)
                    w_eps = 0.5 + 0.5 * ratio
                    f = fpar(np.float64(ndvi[m, r, c]), ndvi_lo[k], ndvi_hi[k], p.fpar_min, p.fpar_max, p.w_ndvi)
                    apar = max(np.float64(sol[m, r, c]), 0.0) * f * p.par_fraction
                    npp += apar * t_eps1 * t_epsilon2(t, topt) * w_eps * emax[k]
                if rh_on[k] > 0.0:
                    rh += rh_period(t, pr, p.months, p.rh_a, p.rh_b, p.rh_c, p.rh_days, p.rh_fraction)
            nep = npp - rh
            co2_basis = nep if p.co2_on_nep else npp
            o2_basis = nep if p.o2_on_nep else npp
            if p.clip_negative:
                co2_basis = max(co2_basis, 0.0)
                o2_basis = max(o2_basis, 0.0)
            out[0, r, c] = npp * t_per_g
            out[1, r, c] = rh * t_per_g
            out[2, r, c] = nep * t_per_g
            out[3, r, c] = co2_basis * t_per_g * p.co2_factor
            out[4, r, c] = o2_basis * t_per_g * p.o2_factor


#: Sequestration methods of :func:`sequestration_basis` (index = ``method``); 3 = NPP (LY/T 1721 O₂ route).
NEP_METHODS = ("npp_minus_rh", "alpha_npp", "rate", "npp")


@njit(parallel=True, cache=True)
def sequestration_basis(classes, class_nodata, row_of_code, method, counted, alpha, rate_t_ha,
                        npp, nep, row_area_m2, out_nodata, basis, source):
    """The carbon basis (t C per pixel) of CO₂ fixed / O₂ released, and the carbon-source memo.

    Per pixel of class row k, with ``npp`` and ``nep`` the NPP / NEP of :func:`casa_block` (t C):

    - method 0 NEP = NPP − Rh, 1 α·NPP, 3 NPP: b = NEP, α_k·NPP or NPP where ``counted[k]`` > 0
      (cropland is not counted: its harvest is a material product), else 0;
    - method 2 固碳速率 × area: b = rate_k (t C/ha/yr) × pixel area (ha), every class.

    ``basis`` = max(b, 0) (priced); ``source`` = max(−b, 0) (a carbon source, reported, never
    priced). ``out_nodata`` where the class or NPP is nodata.
    """
    rows, cols = classes.shape
    for r in prange(rows):
        ha = row_area_m2[r] * 1e-4
        for c in range(cols):
            k = _row(classes[r, c], class_nodata, row_of_code)
            if k < 0 or npp[r, c] == out_nodata:
                basis[r, c] = out_nodata
                source[r, c] = out_nodata
                continue
            if method == 2:
                b = rate_t_ha[k] * ha
            elif counted[k] <= 0.0:
                b = 0.0
            elif method == 1:
                b = alpha[k] * np.float64(npp[r, c])
            elif method == 3:
                b = np.float64(npp[r, c])
            else:
                b = np.float64(nep[r, c])
            basis[r, c] = max(b, 0.0)
            source[r, c] = max(-b, 0.0)
