"""Air purification kernels: dry deposition on leaves, and per-class purification capacity
(pure numba: arrays in, arrays out; no paths, no CRS).

Continuous inputs are float32 with NaN as nodata; class codes are integers with an explicit
nodata code; every accumulation is float64.

Deposition (i-Tree Eco style; Nowak et al. 2013; gep-methods §4):
    removal [kg] = Vd [m/s] × C [kg/m³] × L × t [s] × (1 − resuspension) × pixel area [m²]
with L = LAI for particles (Vd per unit leaf area) and L = canopy cover 1 − exp(−k LAI) for
gases (a constant canopy-level Vd per class).

Capacity (national GEP guides; gep-methods §3.6):
    capacity [kg] = q(class) [kg/ha/a] × pixel area [ha];  purified = capacity × min(1, E / Σ capacity)
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .classes import class_row as _row
from .vegetation import lai_from_ndvi  # noqa: F401  (the one NDVI → LAI relation)


@njit(parallel=True, cache=True)
def deposition(classes, class_nodata, row_of_code, class_factor, lai, conc, conc_to_kg_m3,
               wind, use_wind_table, vd_by_wind, resusp_by_wind, vd_const, resusp_const,
               per_leaf_area, k_ext, seconds, row_area_m2, out_nodata, out):
    """Pollutant removed by dry deposition per pixel and year (kg).

    Parameters
    ----------
    classes : 2-D int, GEP class codes; nodata or codes without a table row → nodata.
    row_of_code : 1-D int64, code → table row (``kernels.casa.build_row_index``).
    class_factor : 1-D float64 per table row
        Particles: the class's multiplier of Vd (1 trees, 0.5 grass/crops, 0 no leaves).
        Gases: the class's canopy Vd in m/s (with ``vd_const`` = 1).
    lai : 2-D float32, leaf area index (m²/m²); NaN → nodata, negative → 0.
    conc : 2-D float32, concentration in the input's unit; NaN → nodata, negative → 0.
    conc_to_kg_m3 : float, 1e-9 for µg/m³, 1e-6 for mg/m³.
    wind : 2-D float32, mean wind speed (m/s); only read if ``use_wind_table``.
    vd_by_wind, resusp_by_wind : 1-D float64 by wind class 0..n−1 (m/s; fraction 0..1)
        Wind class = round(wind speed), clipped to [0, n − 1].
    vd_const, resusp_const : float, Vd (m/s) and resuspended fraction when no wind table.
    per_leaf_area : bool, L = LAI (True) or canopy cover 1 − exp(−k LAI) (False).
    k_ext : float, canopy extinction coefficient k.
    seconds : float, deposition time per year (s).
    row_area_m2 : 1-D float64, pixel area of each row (m²).
    out : 2-D float32, filled with kg/yr per pixel, ``out_nodata`` where any input is nodata.
    """
    rows, cols = classes.shape
    n_wind = vd_by_wind.size
    for r in prange(rows):
        area = row_area_m2[r]
        for c in range(cols):
            kr = _row(classes[r, c], class_nodata, row_of_code)
            leaf = lai[r, c]
            cc = conc[r, c]
            if kr < 0 or np.isnan(leaf) or np.isnan(cc):
                out[r, c] = out_nodata
                continue
            if use_wind_table:
                ws = wind[r, c]
                if np.isnan(ws):
                    out[r, c] = out_nodata
                    continue
                w = int(math.floor(max(np.float64(ws), 0.0) + 0.5))
                w = min(w, n_wind - 1)
                vd = vd_by_wind[w]
                rs = resusp_by_wind[w]
            else:
                vd = vd_const
                rs = resusp_const
            leaf64 = max(np.float64(leaf), 0.0)
            weight = leaf64 if per_leaf_area else 1.0 - math.exp(-k_ext * leaf64)
            c_kg = max(np.float64(cc), 0.0) * conc_to_kg_m3
            out[r, c] = vd * class_factor[kr] * c_kg * weight * seconds * (1.0 - rs) * area


@njit(parallel=True, cache=True)
def capacity_row_sums(classes, class_nodata, row_of_code, q_kg_ha, row_area_m2, sums):
    """Regional capacity per pollutant, one float64 sum per block row.

    ``q_kg_ha`` (n_table_rows, n_pollutants) kg/ha/a; ``sums`` (rows, n_pollutants) float64
    is filled with Σ_cols q × area_ha of each row (nodata and unknown codes add nothing);
    the caller sums over rows (deterministic, no races).
    """
    rows, cols = classes.shape
    n_poll = q_kg_ha.shape[1]
    for r in prange(rows):
        ha = row_area_m2[r] / 10_000.0
        for j in range(n_poll):
            sums[r, j] = 0.0
        for c in range(cols):
            kr = _row(classes[r, c], class_nodata, row_of_code)
            if kr < 0:
                continue
            for j in range(n_poll):
                sums[r, j] += q_kg_ha[kr, j] * ha


@njit(parallel=True, cache=True)
def capacity_allocated(classes, class_nodata, row_of_code, q_kg_ha, scale, row_area_m2, out_nodata, out):
    """``out = q(class) [kg/ha/a] × area [ha] × scale`` per pixel (kg/yr); nodata or unknown
    class → ``out_nodata``. ``scale`` = min(1, E / Σ capacity) allocates a capped regional
    total back to the pixels in proportion to their capacity (1.0 = uncapped)."""
    rows, cols = classes.shape
    for r in prange(rows):
        ha = row_area_m2[r] / 10_000.0
        for c in range(cols):
            kr = _row(classes[r, c], class_nodata, row_of_code)
            if kr < 0:
                out[r, c] = out_nodata
            else:
                out[r, c] = q_kg_ha[kr] * ha * scale
