"""Kernels of the wetland and lake services: flood regulation (洪水调蓄), water purification
(水质净化) and climate regulation (气候调节).

Pure functions: numbers and arrays in, numbers and arrays out; no paths, no CRS. The per-body
formulas are plain float64 functions (a body is a handful of numbers); the per-pixel parts are
numba kernels that fill an output block in place.

References (gep-methods.md): §3.4 flood regulation (饶恩明 et al., 生态学报 2014, 34(21); 甘孜
2017), §3.7 water purification (Q_j = min(Σ q_ij A_i, L_j)), §3.9 climate regulation
(electricity-equivalent method, 甘孜 2017 / 博文静 2017; ET-energy variant).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

#: latent heat and unit constants used by the climate kernels
KJ_PER_KWH = 3600.0
WATER_DENSITY_KG_M3 = 1000.0


# --------------------------------------------------------------------------------------
# flood regulation, per water body
# --------------------------------------------------------------------------------------
def lake_storage_m3(area_km2: float, a: float, b: float, turnovers: float = 1.0) -> float:
    """Flood storage of a lake, C = e^a · A^b · T (10⁴ m³) returned in m³.

    ``area_km2`` is the lake area A in km² (normal water level), ``a`` and ``b`` the regional
    regression coefficients of 饶恩明 et al. 2014 (eastern plain lakes 4.924 / 1.128), ``turnovers``
    the number of times the storage is used per year (T, 1 by default). A 10 km² eastern-plain
    lake: e^4.924 × 10^1.128 = 137.54 × 13.43 = 1847 (10⁴ m³) = 1.847 × 10⁷ m³.
    """
    if area_km2 <= 0.0:
        return 0.0
    return math.exp(a) * area_km2 ** b * turnovers * 1.0e4


def reservoir_storage_m3(total_capacity_m3: float, factor: float = 0.35) -> float:
    """Flood storage of a reservoir, C = 0.35 × total storage capacity (m³) (甘孜 2017 ✔)."""
    return max(total_capacity_m3, 0.0) * factor


def marsh_storage_m3(area_m2: float, detention_depth_m: float = 0.3, soil_depth_m: float = 0.0,
                     theta_s: float = 0.0, theta: float = 0.0) -> float:
    """Flood storage of a marsh, C = S × H (+ S × soil depth × (θs − θ)) in m³.

    H = effective surface detention depth (0.3 m ✔ 甘孜): a 2 km² marsh stores
    2 × 10⁶ m² × 0.3 m = 6 × 10⁵ m³. The soil term (✱ some guides) is off when ``soil_depth_m`` is 0.
    """
    if area_m2 <= 0.0:
        return 0.0
    soil = soil_depth_m * max(theta_s - theta, 0.0)
    return area_m2 * (detention_depth_m + soil)


# --------------------------------------------------------------------------------------
# per-pixel spreading of per-body (or per-unit) quantities
# --------------------------------------------------------------------------------------
@njit(parallel=True, cache=True)
def spread_by_index(index, valid, per_m2, row_area_m2, out_nodata, out):
    """``out = per_m2[index] × pixel area`` where ``index ≥ 0``; 0 on other valid pixels;
    ``out_nodata`` where ``valid`` is False.

    Parameters
    ----------
    index : 2-D int32
        Body (or unit) row of each pixel, −1 for none.
    valid : 2-D bool
        Pixel has data (its land-cover class is not nodata).
    per_m2 : 1-D float64
        Quantity of each body divided by its pixel area (unit per m²), so the pixels of a body
        sum to its quantity.
    row_area_m2 : 1-D float64
        Pixel area of each row (m²).
    """
    rows, cols = index.shape
    for r in prange(rows):
        a = row_area_m2[r]
        for c in range(cols):
            if not valid[r, c]:
                out[r, c] = out_nodata
                continue
            k = index[r, c]
            out[r, c] = per_m2[k] * a if k >= 0 else 0.0


@njit(cache=True)
def index_area_sums(index, row_area_m2, n):
    """Σ pixel area (m², float64) of each index value 0..n−1 over one block."""
    sums = np.zeros(n, dtype=np.float64)
    rows, cols = index.shape
    for r in range(rows):
        a = row_area_m2[r]
        for c in range(cols):
            k = index[r, c]
            if k >= 0:
                sums[k] += a
    return sums


# --------------------------------------------------------------------------------------
# water purification: capacity per pixel, capped per accounting unit
# --------------------------------------------------------------------------------------
@njit(cache=True)
def capacity_unit_sums(classes, class_nodata, row_of_code, q, unit_index, row_area_m2, n_units):
    """Σ capacity (t/yr, float64) per unit and pollutant over one block.

    ``q`` (n_classes, n_pollutants) is the removal capacity in t per m² per year of each class
    row; ``row_of_code`` maps a class code to its row (−1: no capacity). Pixels outside every
    unit (``unit_index`` −1) are summed into the extra last row ``n_units``.
    """
    n_pol = q.shape[1]
    sums = np.zeros((n_units + 1, n_pol), dtype=np.float64)
    rows, cols = classes.shape
    for r in range(rows):
        a = row_area_m2[r]
        for c in range(cols):
            k = classes[r, c]
            if k == class_nodata or k < 0 or k >= row_of_code.size:
                continue
            i = row_of_code[k]
            if i < 0:
                continue
            u = unit_index[r, c]
            if u < 0:
                u = n_units
            for j in range(n_pol):
                sums[u, j] += q[i, j] * a
    return sums


@njit(parallel=True, cache=True)
def capacity_capped(classes, class_nodata, row_of_code, q_col, unit_index, factor, row_area_m2,
                    out_nodata, out):
    """Purified quantity per pixel: capacity (q × area) × the unit's allocation factor.

    ``factor[u] = min(capacity_u, load_u) / capacity_u`` (1 when the load does not bind);
    ``factor[n_units]`` applies outside every unit. Nodata class → ``out_nodata``; a class
    without capacity → 0.
    """
    rows, cols = classes.shape
    last = factor.size - 1
    for r in prange(rows):
        a = row_area_m2[r]
        for c in range(cols):
            k = classes[r, c]
            if k == class_nodata:
                out[r, c] = out_nodata
                continue
            if k < 0 or k >= row_of_code.size or row_of_code[k] < 0:
                out[r, c] = 0.0
                continue
            u = unit_index[r, c]
            f = factor[last] if u < 0 else factor[u]
            out[r, c] = q_col[row_of_code[k]] * a * f


def cap_factors(capacity: np.ndarray, load: np.ndarray) -> np.ndarray:
    """Allocation factor per unit: min(capacity, load) / capacity; NaN load (unknown) → 1
    (no cap); zero capacity → 0. float64 in, float64 out."""
    capacity = np.asarray(capacity, dtype=np.float64)
    load = np.asarray(load, dtype=np.float64)
    out = np.ones_like(capacity)
    known = np.isfinite(load)
    pos = capacity > 0
    m = known & pos
    out[m] = np.minimum(capacity[m], load[m]) / capacity[m]
    out[~pos] = 0.0
    return out


# --------------------------------------------------------------------------------------
# climate regulation
# --------------------------------------------------------------------------------------
def hot_day_fractions(dates, tmean_c, year: int, threshold_c: float = 26.0) -> tuple[np.ndarray, np.ndarray, int]:
    """Hot days (daily mean temperature > ``threshold_c``) of ``year`` per month.

    Returns (hot days per month (12,), days with a temperature per month (12,), missing days of
    the year). ``dates`` are numpy datetime64[D]; ``tmean_c`` daily means in °C (NaN = missing).
    """
    dates = np.asarray(dates, dtype="datetime64[D]")
    t = np.asarray(tmean_c, dtype=np.float64)
    years = dates.astype("datetime64[Y]").astype(int) + 1970
    sel = (years == year) & np.isfinite(t)
    months = dates[sel].astype("datetime64[M]").astype(int) % 12
    hot = np.bincount(months[t[sel] > threshold_c], minlength=12).astype(np.int64)
    have = np.bincount(months, minlength=12).astype(np.int64)
    days_in_year = 366 if (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)) else 365
    return hot, have, int(days_in_year - have.sum())


def month_days(year: int) -> np.ndarray:
    """Days of each month of ``year`` (12,)."""
    starts = np.arange(f"{year}-01", f"{year + 1}-01", dtype="datetime64[M]")
    return ((starts + 1).astype("datetime64[D]") - starts.astype("datetime64[D]")).astype(np.int64)


@njit(parallel=True, cache=True)
def climate_kwh(classes, class_nodata, kind_of_code, et_hot_mm, row_area_m2, veg_kwh_per_m3, water_kwh_per_m3,
                out_nodata, out_veg, out_water):
    """Electricity-equivalent of evapotranspiration on hot days (kWh per pixel).

    ``kind_of_code[k]``: 1 vegetation, 2 water surface, 0 neither (for class code k).
    ``et_hot_mm``: ET (vegetation) or evaporation (water) over the hot days, mm; NaN = no data.
    Evaporated volume V = ET/1000 × area (m³); vegetation kWh = V × ``veg_kwh_per_m3``
    (= ρ q / 3600 / EER), water kWh = V × ``water_kwh_per_m3`` (= ρ q / 3600 + y).
    Nodata class or ET → ``out_nodata`` in both outputs; other kinds → 0.
    """
    rows, cols = classes.shape
    for r in prange(rows):
        a = row_area_m2[r]
        for c in range(cols):
            k = classes[r, c]
            e = et_hot_mm[r, c]
            if k == class_nodata or np.isnan(e):
                out_veg[r, c] = out_nodata
                out_water[r, c] = out_nodata
                continue
            kind = kind_of_code[k] if 0 <= k < kind_of_code.size else 0
            v = max(e, 0.0) / 1000.0 * a
            out_veg[r, c] = v * veg_kwh_per_m3 if kind == 1 else 0.0
            out_water[r, c] = v * water_kwh_per_m3 if kind == 2 else 0.0


@njit(parallel=True, cache=True)
def climate_epp_kwh(classes, class_nodata, row_of_code, epp_kj_m2_d, kind, hot_days, eer, water_eer,
                    humid_kwh_per_kj, row_area_m2, out_nodata, out_veg, out_water):
    """The EPP-table route: kJ m⁻² d⁻¹ × area × hot days / 3600 (÷ EER for vegetation), kWh.

    gep-methods §3.9 writes E_pt = Σ EPP_i × S_i × d × 10⁻⁶ / (3600 r); with EPP in kJ m⁻² d⁻¹
    and S in m² the energy is kJ and kWh = kJ / 3600 (the 10⁻⁶ belongs to the source's own unit
    layout and is not applied here). ``kind[row]``: 1 vegetation (÷ EER), 2 water (+ the humidifier
    term: evaporated mass = energy / q, so ``humid_kwh_per_kj`` = y / (q ρ) in kWh per kJ; the
    latent term ÷ ``water_eer``, 1 unless the profile divides water by r too).
    """
    rows, cols = classes.shape
    for r in prange(rows):
        a = row_area_m2[r]
        for c in range(cols):
            k = classes[r, c]
            if k == class_nodata:
                out_veg[r, c] = out_nodata
                out_water[r, c] = out_nodata
                continue
            i = row_of_code[k] if 0 <= k < row_of_code.size else -1
            out_veg[r, c] = 0.0
            out_water[r, c] = 0.0
            if i < 0:
                continue
            kwh = epp_kj_m2_d[i] * a * hot_days / KJ_PER_KWH
            if kind[i] == 1:
                out_veg[r, c] = kwh / eer
            elif kind[i] == 2:
                out_water[r, c] = kwh / water_eer + epp_kj_m2_d[i] * a * hot_days * humid_kwh_per_kj


# --------------------------------------------------------------------------------------
# connected water bodies (8-neighbour, one class per body), labelled in place
# --------------------------------------------------------------------------------------
@njit(cache=True)
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True)
def label_patches(classes, class_nodata, is_body, exclude, use_exclude, out):
    """Label 8-connected patches of equal body class into ``out`` (int32, −1 off bodies).

    Two raster passes with a union-find forest (no full-size temporaries: the only large array is
    ``out``). ``is_body[k]``: class k forms bodies. Pixels where ``use_exclude`` and ``exclude``
    are skipped (they belong to an analyst's polygon). Labels are 0..n−1 in order of first
    appearance (raster order). Returns (n, class code of each label).
    """
    rows, cols = classes.shape
    parent = np.empty(4096, dtype=np.int32)
    n = 0
    for r in range(rows):
        for c in range(cols):
            k = classes[r, c]
            if k == class_nodata or k < 0 or k >= is_body.size or not is_body[k] or (use_exclude and exclude[r, c]):
                out[r, c] = -1
                continue
            best = -1
            for dr, dc in ((0, -1), (-1, -1), (-1, 0), (-1, 1)):
                rr, cc = r + dr, c + dc
                if rr < 0 or cc < 0 or cc >= cols:
                    continue
                lbl = out[rr, cc]
                if lbl < 0 or classes[rr, cc] != k:
                    continue
                root = _find(parent, lbl)
                if best < 0:
                    best = root
                elif root != best:
                    if root < best:
                        parent[best] = root
                        best = root
                    else:
                        parent[root] = best
            if best < 0:
                if n == parent.size:
                    grown = np.empty(parent.size * 2, dtype=np.int32)
                    grown[:n] = parent[:n]
                    parent = grown
                parent[n] = n
                best = n
                n += 1
            out[r, c] = best
    compact = np.full(n, -1, dtype=np.int32)
    m = 0
    for i in range(n):
        root = _find(parent, i)
        if compact[root] < 0:
            compact[root] = m
            m += 1
        compact[i] = compact[root]
    code_of = np.zeros(m, dtype=np.int64)
    for r in range(rows):
        for c in range(cols):
            lbl = out[r, c]
            if lbl >= 0:
                out[r, c] = compact[lbl]
                code_of[compact[lbl]] = classes[r, c]
    return m, code_of
