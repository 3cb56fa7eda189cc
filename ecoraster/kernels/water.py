"""Water conservation kernels (pure numba: arrays in, arrays out; no I/O, no CRS).

Two per-pixel methods of the ``water_conservation`` service:

- :func:`water_balance`: the national guides' water balance Q = (P − R − ET) × A with
  R = P × α(class), negative balances clipped at 0 (the clipped volume kept apart);
- :func:`annual_water_yield`: the InVEST Annual Water Yield model (Budyko curve in Fu's
  form with Zhang's ω), Y = P − AET.

Class lookups use the dense tables of :func:`ecoraster.kernels.lookup.build_lut`
(``lut[code − offset]`` with a ``known`` mask). Continuous inputs arrive as float32 with NaN
for nodata (``ServiceContext.raster(..., nodata=nan)``). Every formula is evaluated in float64;
outputs are stored in the caller's (float32) arrays.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

#: mm of water depth × m² of area → m³.
M3_PER_MM_M2 = 1.0e-3


@njit(cache=True, inline="always")
def _class_index(k, class_nodata, offset, size, known):
    """Index of class ``k`` in a dense table, or −1 for nodata / unknown codes."""
    if k == class_nodata:
        return -1
    i = k - offset
    if i < 0 or i >= size or not known[i]:
        return -1
    return i


@njit(parallel=True, cache=True)
def water_balance(classes, class_nodata, precip, aet, offset, known, alpha, include,
                  row_area_m2, out_nodata, q_m3, clipped_m3):
    """Water conservation by the water-balance method, per pixel, in m³.

    ``balance = P − P·α − ET`` [mm/yr]; ``q_m3 = max(balance, 0) × A × 10⁻³`` and
    ``clipped_m3 = max(−balance, 0) × A × 10⁻³`` (the volume removed by clipping negative
    balances, e.g. open water where ET > P).

    Parameters
    ----------
    classes : 2-D int array
        GEP ecosystem class codes (``configs/classes/gep_ecosystem_classes.csv``).
    class_nodata : int
        Nodata code of ``classes``.
    precip, aet : 2-D float arrays, mm/yr
        Annual precipitation P and actual evapotranspiration ET; NaN = nodata.
        Negative values are invalid input and give nodata.
    offset, known : from ``build_lut``
        Dense lookup shared by ``alpha`` and ``include``.
    alpha : 1-D float64
        Mean surface-runoff coefficient α of each class, as a fraction (0..1).
    include : 1-D bool
        Whether the class counts for the service; excluded classes (cropland, built-up in
        most guides) get 0 m³ and nothing clipped.
    row_area_m2 : 1-D float64
        Pixel area A [m²] of each row.
    out_nodata : float
        Written where any input is nodata or the class is not in the table.
    q_m3, clipped_m3 : 2-D float arrays
        Filled in place, m³ per pixel per year.

    References
    ----------
    Qwr = Σ (Pᵢ − Rᵢ − ETᵢ) × Aᵢ × 10⁻³, Rᵢ = Pᵢ × αᵢ: 生态系统生产总值核算技术指南 (MEE/CAEP 2020),
    水源涵养量; the same structure in DB11/T 2059-2022 and the 甘孜 GEP case study (生态学报 2017,
    37(19)); see ``docs/gep-methods.md`` §3.1.
    """
    rows, cols = classes.shape
    size = known.size
    for r in prange(rows):
        to_m3 = row_area_m2[r] * M3_PER_MM_M2
        for c in range(cols):
            i = _class_index(classes[r, c], class_nodata, offset, size, known)
            p = np.float64(precip[r, c])
            et = np.float64(aet[r, c])
            if i < 0 or not (p >= 0.0) or not (et >= 0.0):  # NaN fails both tests
                q_m3[r, c] = out_nodata
                clipped_m3[r, c] = out_nodata
                continue
            if not include[i]:
                q_m3[r, c] = 0.0
                clipped_m3[r, c] = 0.0
                continue
            balance = p - p * alpha[i] - et
            if balance >= 0.0:
                q_m3[r, c] = balance * to_m3
                clipped_m3[r, c] = 0.0
            else:
                q_m3[r, c] = 0.0
                clipped_m3[r, c] = -balance * to_m3


@njit(cache=True)
def budyko_aet_fraction(precip, eto, kc, root_depth, soil_depth, pawc, vegetated, seasonality_z):
    """AET / P of one pixel by the InVEST Annual Water Yield model (float64).

    Vegetated classes: Fu's curve with Zhang's ω,
    ``AET/P = 1 + PET/P − (1 + (PET/P)^ω)^(1/ω)``, ``ω = Z·AWC/P + 1.25`` capped at 5,
    ``AWC = min(root depth, soil depth) × PAWC`` [mm], ``PET = Kc × ET0``; the result is
    capped by the dryness index ``PET/P``. Other classes: ``min(Kc × ET0, P) / P``.

    Parameters
    ----------
    precip, eto : float, mm/yr
        Precipitation (> 0) and reference evapotranspiration ET0.
    kc : float
        Crop / vegetation evapotranspiration coefficient of the class.
    root_depth, soil_depth : float, mm
        Root depth of the class; depth to the root-restricting layer.
    pawc : float
        Plant-available water content, fraction.
    vegetated : bool
        ``LULC_veg`` of the class.
    seasonality_z : float
        Z, the seasonality of precipitation (InVEST: 1..30).

    References
    ----------
    InVEST User's Guide 3.20, "Annual Water Yield", eqs. 1–4 (Fu 1981; Zhang et al. 2004;
    Donohue et al. 2012 for ω); ``fractp_op`` of natcap.invest 3.20.2 for the caps.
    """
    pet = kc * eto
    if vegetated:
        phi = pet / precip
        awc = (root_depth if root_depth < soil_depth else soil_depth) * pawc
        w = awc / precip * seasonality_z + 1.25
        if w > 5.0:
            w = 5.0
        fu = 1.0 + phi - (1.0 + phi ** w) ** (1.0 / w)
        return phi if phi < fu else fu
    return (pet if pet < precip else precip) / precip


@njit(parallel=True, cache=True)
def annual_water_yield(classes, class_nodata, precip, eto, soil_depth, pawc, offset, known,
                       kc, root_depth, vegetated, seasonality_z, row_area_m2, out_nodata,
                       yield_mm, yield_m3, aet_mm):
    """Annual water yield per pixel (mm and m³) and AET (mm), the InVEST AWY model.

    ``Y = (1 − AET/P) × P`` with AET/P from :func:`budyko_aet_fraction`.

    Parameters
    ----------
    classes : 2-D int array
        Land-cover codes of the biophysical table.
    class_nodata : int
        Nodata code of ``classes``.
    precip, eto, soil_depth, pawc : 2-D float arrays
        P [mm/yr], ET0 [mm/yr], depth to the root-restricting layer [mm], PAWC [fraction];
        NaN = nodata. P = 0 gives nodata, as in InVEST (AET/P is undefined); negative
        inputs give nodata too.
    offset, known : from ``build_lut``
        Dense lookup shared by ``kc``, ``root_depth`` and ``vegetated``.
    kc, root_depth : 1-D float64
        Kc [-] and root depth [mm] per class.
    vegetated : 1-D bool
        ``LULC_veg`` per class.
    seasonality_z : float
        Z.
    row_area_m2 : 1-D float64
        Pixel area [m²] of each row.
    out_nodata : float
        Written where any input is nodata.
    yield_mm, yield_m3, aet_mm : 2-D float arrays
        Filled in place: water yield [mm/yr], its volume [m³/yr per pixel], AET [mm/yr].
    """
    rows, cols = classes.shape
    size = known.size
    for r in prange(rows):
        to_m3 = row_area_m2[r] * M3_PER_MM_M2
        for c in range(cols):
            i = _class_index(classes[r, c], class_nodata, offset, size, known)
            p = np.float64(precip[r, c])
            e0 = np.float64(eto[r, c])
            soil = np.float64(soil_depth[r, c])
            pw = np.float64(pawc[r, c])
            if i < 0 or not (p > 0.0) or not (e0 >= 0.0) or not (soil >= 0.0) or not (pw >= 0.0):
                yield_mm[r, c] = out_nodata
                yield_m3[r, c] = out_nodata
                aet_mm[r, c] = out_nodata
                continue
            fraction = budyko_aet_fraction(p, e0, kc[i], root_depth[i], soil, pw, vegetated[i],
                                           seasonality_z)
            y = (1.0 - fraction) * p
            yield_mm[r, c] = y
            yield_m3[r, c] = y * to_m3
            aet_mm[r, c] = fraction * p
