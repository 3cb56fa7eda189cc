"""The one per-class histogram and percentile (pure numba / numpy; no I/O).

Used for the per-class NDVI 5 % / 95 % bounds of CASA (bins over (0, 1]) and the FVC
end-members of optical ingestion (bins over [−1, 1]). A percentile read from a histogram is
the centre of the bin holding the inverted-CDF quantile: error ≤ half a bin width.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .classes import class_row


@njit(cache=True)
def class_histogram(values, classes, class_nodata, row_of_code, lo, hi, inside_only, counts):
    """Add per class row the counts of ``values`` in ``counts.shape[1]`` equal bins over [lo, hi].

    Parameters
    ----------
    values : 3-D float (layers, rows, cols), NaN = nodata; every layer counts.
    classes : 2-D int (rows, cols), class codes; rows from ``row_of_code``
        (:func:`ecoraster.kernels.classes.row_index`); nodata / unknown codes are skipped.
    lo, hi : float, the histogram's range.
    inside_only : bool
        True: count only values in (lo, hi] (e.g. positive NDVI); False: count every finite
        value, those outside [lo, hi] in the first / last bin.
    counts : 2-D (n_class_rows, n_bins), accumulated in place.
    """
    n_bins = counts.shape[1]
    layers, rows, cols = values.shape
    for r in range(rows):
        for c in range(cols):
            k = class_row(classes[r, c], class_nodata, row_of_code)
            if k < 0:
                continue
            for m in range(layers):
                v = values[m, r, c]
                if inside_only:
                    if not (v > lo) or v > hi:  # NaN, ≤ lo or > hi
                        continue
                elif not np.isfinite(v):
                    continue
                b = int((v - lo) / (hi - lo) * n_bins)
                if b >= n_bins:
                    b = n_bins - 1
                if b < 0:
                    b = 0
                counts[k, b] += 1


def percentile(counts: np.ndarray, q: float, lo: float, hi: float) -> float:
    """Value at quantile ``q`` (0..1) of one histogram row over [lo, hi] (bin centre); NaN if empty."""
    total = counts.sum()
    if total == 0:
        return float("nan")
    cum = np.cumsum(counts)
    b = int(np.searchsorted(cum, q * total, side="left"))
    return lo + (min(b, counts.size - 1) + 0.5) * (hi - lo) / counts.size
