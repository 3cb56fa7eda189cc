"""Pure numpy kernels for station interpolation: IDW and ordinary kriging (dual form).

No I/O, no CRS: coordinates are metres in a projected CRS.

References
----------
Shepard, D. (1968) A two-dimensional interpolation function for irregularly-spaced data.
Proc. 23rd ACM National Conference, 517-524 (inverse distance weighting).
Cressie, N. (1993) Statistics for Spatial Data, rev. ed., Wiley, §2.4 (variogram models)
and §3.2 (ordinary kriging).
Dubrule, O. (1983) Cross validation of kriging in a unique neighborhood. Math. Geol.
15(6):687-699 (leave-one-out errors from the inverse kriging matrix).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

#: Distances below this (m) count as zero: a target on a station gets γ = 0 (exact
#: interpolation) even after a lon/lat round trip moved it by micrometres.
ZERO_DISTANCE_M = 1e-3


def spherical_variogram(h: np.ndarray, nugget: float, psill: float, range_m: float) -> np.ndarray:
    """Spherical model γ(h) = c0 + c·(1.5 h/a − 0.5 (h/a)³) for 0 < h ≤ a, c0 + c beyond; γ(0) = 0.

    ``h`` and ``range_m`` in metres; ``nugget``, ``psill`` in (value units)².
    """
    h = np.asarray(h, dtype=np.float64)
    r = np.minimum(h / range_m, 1.0)
    g = nugget + psill * (1.5 * r - 0.5 * r ** 3)
    return np.where(h > ZERO_DISTANCE_M, g, 0.0)


def exponential_variogram(h: np.ndarray, nugget: float, psill: float, range_m: float) -> np.ndarray:
    """Exponential model γ(h) = c0 + c·(1 − exp(−3h/a)) (``range_m`` = practical range); γ(0) = 0."""
    h = np.asarray(h, dtype=np.float64)
    g = nugget + psill * (1.0 - np.exp(-3.0 * h / range_m))
    return np.where(h > ZERO_DISTANCE_M, g, 0.0)


VARIOGRAM_MODELS = {"spherical": spherical_variogram, "exponential": exponential_variogram}


def empirical_variogram(xy: np.ndarray, z: np.ndarray, n_lags: int, max_lag: float):
    """Binned semivariance ½(zᵢ − zⱼ)² of all station pairs.

    Returns
    -------
    (lag_centres_m, semivariance, pair_counts) for the non-empty bins.
    """
    i, j = np.triu_indices(len(z), k=1)
    d = np.hypot(xy[i, 0] - xy[j, 0], xy[i, 1] - xy[j, 1])
    sv = 0.5 * (z[i] - z[j]) ** 2
    edges = np.linspace(0.0, max_lag, n_lags + 1)
    which = np.digitize(d, edges) - 1
    ok = (which >= 0) & (which < n_lags)
    counts = np.bincount(which[ok], minlength=n_lags).astype(np.float64)
    sums = np.bincount(which[ok], weights=sv[ok], minlength=n_lags)
    dsum = np.bincount(which[ok], weights=d[ok], minlength=n_lags)
    keep = counts > 0
    return dsum[keep] / counts[keep], sums[keep] / counts[keep], counts[keep]


def idw_predict(xy: np.ndarray, z: np.ndarray, targets: np.ndarray, power: float, k: int) -> np.ndarray:
    """Inverse-distance-weighted estimate at ``targets`` from the ``k`` nearest stations.

    z₀ = Σ wᵢ zᵢ / Σ wᵢ with wᵢ = dᵢ^−p; a target on a station takes its value.
    """
    tree = cKDTree(xy)
    k = min(k, len(z))
    d, idx = tree.query(targets, k=k)
    if k == 1:
        return z[idx].astype(np.float64)
    return _idw_from_neighbours(d, z[idx], power)


def _idw_from_neighbours(d: np.ndarray, zn: np.ndarray, power: float) -> np.ndarray:
    exact = d[:, 0] == 0.0
    with np.errstate(divide="ignore"):
        w = 1.0 / np.where(d > 0, d, np.inf) ** power
    out = np.sum(w * zn, axis=1) / np.sum(w, axis=1)
    out[exact] = zn[exact, 0]
    return out


def idw_loocv(xy: np.ndarray, z: np.ndarray, power: float, k: int) -> np.ndarray:
    """Leave-one-out IDW estimates at each station (its own value excluded)."""
    tree = cKDTree(xy)
    kk = min(k + 1, len(z))
    d, idx = tree.query(xy, k=kk)
    est = np.empty(len(z))
    for s in range(len(z)):
        others = idx[s] != s
        est[s] = _idw_from_neighbours(d[s][others][None, :], z[idx[s][others]][None, :], power)[0]
    return est


def kriging_matrix(xy: np.ndarray, model, params: tuple[float, float, float]) -> np.ndarray:
    """Ordinary kriging system matrix [[Γ, 1], [1ᵀ, 0]] with Γᵢⱼ = γ(|xᵢ − xⱼ|)."""
    n = len(xy)
    d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
    a = np.ones((n + 1, n + 1))
    a[:n, :n] = model(d, *params)
    a[n, n] = 0.0
    return a


def kriging_dual_weights(a: np.ndarray, z: np.ndarray) -> np.ndarray:
    """α = A⁻¹ [z; 0]: the estimate at any point is z₀ = Σ αᵢ γ(dᵢ₀) + αₙ (dual kriging)."""
    rhs = np.append(np.asarray(z, dtype=np.float64), 0.0)
    return np.linalg.solve(a, rhs)


def kriging_predict(xy: np.ndarray, alpha: np.ndarray, targets: np.ndarray, model, params, batch: int = 65536) -> np.ndarray:
    """Ordinary kriging estimates at ``targets`` (m) from the dual weights ``alpha``."""
    out = np.empty(len(targets))
    for s in range(0, len(targets), batch):
        t = targets[s:s + batch]
        d = np.hypot(t[:, None, 0] - xy[None, :, 0], t[:, None, 1] - xy[None, :, 1])
        out[s:s + batch] = model(d, *params) @ alpha[:-1] + alpha[-1]
    return out


def kriging_loocv_errors(a: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Leave-one-out errors zᵢ − ẑ₋ᵢ = αᵢ / (A⁻¹)ᵢᵢ (Dubrule 1983), variogram held fixed."""
    inv = np.linalg.inv(a)
    n = len(alpha) - 1
    return alpha[:n] / np.diag(inv)[:n]
