"""Wind erosion kernels, RWEQ (Revised Wind Erosion Equation; Fryrear et al. 1998, 2000), for
windbreak and sand fixation (防风固沙, gep-methods.md §3.3). Pure numba / numpy, no I/O.

Soil loss by wind at downwind distance z [m] for a field whose factors multiply to X::

    Q_max = 109.8 · X                         [kg/m]    maximum transport capacity
    S     = 150.71 · X^(−0.3711)              [m]       critical field length
    SL    = 2·z / S² · Q_max · exp(−(z/S)²)   [kg/m²]

Potential loss (bare soil): X = WF · EF · SCF · K'; actual loss: X · C with the vegetation factor
C = exp(−0.0438 · SC) (SC vegetation cover in %). Sand fixation = SL_potential − SL_actual.

Factors (Fryrear et al. 1998, as used in Chinese GEP studies):

- WF weather factor [kg/m] = Wf · ρ_air/g · SW · SD (wind factor, soil wetness, snow cover): an input.
- EF erodible fraction = (29.09 + 0.31·Sa + 0.17·Si + 0.33·Sa/Cl − 2.59·OM − 0.95·CaCO₃)/100 (percent).
- SCF soil crust factor = 1 / (1 + 0.0066·Cl² + 0.021·OM²).
- K' surface roughness factor = exp(1.86·Kr − 2.41·Kr^0.934 − 0.127·Crr), Kr = 0.2·ΔH²/L [cm].
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


def erodible_fraction(sand, silt, clay, organic_matter, caco3):
    """EF (0..1) from sand, silt, clay, organic matter and CaCO₃ in percent."""
    sa, si, cl = (np.asarray(v, dtype=np.float64) for v in (sand, silt, clay))
    om, ca = np.asarray(organic_matter, dtype=np.float64), np.asarray(caco3, dtype=np.float64)
    return np.clip((29.09 + 0.31 * sa + 0.17 * si + 0.33 * sa / cl - 2.59 * om - 0.95 * ca) / 100.0, 0.0, 1.0)


def crust_factor(clay, organic_matter):
    """SCF from clay and organic matter in percent."""
    cl, om = np.asarray(clay, dtype=np.float64), np.asarray(organic_matter, dtype=np.float64)
    return 1.0 / (1.0 + 0.0066 * cl ** 2 + 0.021 * om ** 2)


def roughness_factor(ridge_height_cm, ridge_spacing_cm, random_roughness_cm):
    """K' from the ridge roughness Kr = 0.2·ΔH²/L and the random roughness Crr [cm]."""
    kr = 0.2 * np.asarray(ridge_height_cm, dtype=np.float64) ** 2 / np.asarray(ridge_spacing_cm, dtype=np.float64)
    return np.exp(1.86 * kr - 2.41 * kr ** 0.934 - 0.127 * np.asarray(random_roughness_cm, dtype=np.float64))


@njit(cache=True, inline="always")
def soil_loss(x, z):
    """RWEQ soil loss SL [kg/m²] at downwind distance ``z`` [m] for the factor product ``x``."""
    if x <= 0.0:
        return 0.0
    q_max = 109.8 * x
    s = 150.71 * x ** -0.3711
    return 2.0 * z / (s * s) * q_max * math.exp(-((z / s) ** 2))


@njit(parallel=True, cache=True)
def sand_fixation(wf, ef, scf, kprime, cover_pct, z, potential, actual):
    """Potential and actual RWEQ soil loss per pixel [kg/m²]; NaN in any factor → NaN.
    Sand fixation is ``potential − actual``."""
    rows, cols = wf.shape
    for r in prange(rows):
        for c in range(cols):
            x = wf[r, c] * ef[r, c] * scf[r, c] * kprime[r, c]
            sc = cover_pct[r, c]
            if math.isnan(x) or math.isnan(sc):
                potential[r, c] = np.nan
                actual[r, c] = np.nan
                continue
            potential[r, c] = soil_loss(x, z)
            actual[r, c] = soil_loss(x * math.exp(-0.0438 * sc), z)
