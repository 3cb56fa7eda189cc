"""Class → value lookup kernels (pure numba: arrays in, arrays out; no I/O, no CRS)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .classes import DENSE_LUT_MAX_RANGE, class_lut

__all__ = ["DENSE_LUT_MAX_RANGE", "build_lut", "lookup_times_area", "difference", "count_small_codes"]


def build_lut(codes: np.ndarray, values: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """A dense lookup for ``codes`` (int64, sorted) → ``values`` (float64).

    Returns ``(offset, lut, known)`` where ``lut[code - offset]`` is the value and
    ``known[code - offset]`` says whether the code is in the table. For code ranges wider
    than :data:`DENSE_LUT_MAX_RANGE` the kernels fall back to binary search, signalled by
    an empty ``lut``.
    """
    codes = np.asarray(codes, dtype=np.int64)
    lut = class_lut(codes, np.asarray(values, dtype=np.float64), fill=0.0) if codes.size else None
    if lut is None:
        return 0, np.zeros(0), np.zeros(0, dtype=np.bool_)
    known = class_lut(codes, True, fill=False, offset=lut.offset, size=lut.size, dtype=np.bool_)
    assert known is not None
    return lut.offset, lut.values, known.values


@njit(parallel=True, cache=True)
def lookup_times_area(classes, class_nodata, offset, lut, known, codes, values,
                      row_factor, out_nodata, out):
    """``out[r, c] = value(classes[r, c]) × row_factor[r]`` (float64 product, stored in out).

    Parameters
    ----------
    classes : 2-D int array
        Class codes (e.g. LULC).
    class_nodata : int
        Nodata code of ``classes``; those pixels get ``out_nodata``.
    offset, lut, known : from :func:`build_lut`
        Dense lookup; if ``lut`` is empty, ``codes``/``values`` are binary-searched.
    row_factor : 1-D float64, one per row
        E.g. the pixel area in ha of each row: Mg C/ha × ha → Mg C per pixel.
    out : 2-D float array
        Filled in place. Codes missing from the table also get ``out_nodata`` (they are
        reported before computing by ``tables.check_codes``).
    """
    rows, cols = classes.shape
    dense = lut.size > 0
    for r in prange(rows):
        f = row_factor[r]
        for c in range(cols):
            k = classes[r, c]
            if k == class_nodata:
                out[r, c] = out_nodata
                continue
            if dense:
                i = k - offset
                if i < 0 or i >= lut.size or not known[i]:
                    out[r, c] = out_nodata
                else:
                    out[r, c] = lut[i] * f
            else:
                i = np.searchsorted(codes, k)
                if i < codes.size and codes[i] == k:
                    out[r, c] = values[i] * f
                else:
                    out[r, c] = out_nodata


@njit(parallel=True, cache=True)
def difference(a, b, nodata, out):
    """``out = b − a`` where both are valid, else ``nodata`` (float64 arithmetic)."""
    rows, cols = a.shape
    for r in prange(rows):
        for c in range(cols):
            x = a[r, c]
            y = b[r, c]
            if x == nodata or y == nodata or np.isnan(x) or np.isnan(y):
                out[r, c] = nodata
            else:
                out[r, c] = np.float64(y) - np.float64(x)


@njit(nogil=True, cache=True)
def count_small_codes(block, offset, counts):
    """``counts[v - offset] += 1`` for every pixel value ``v`` of an integer ``block`` whose
    codes fit a dense table (8- and 16-bit rasters: 256 or 65,536 bins). One pass, no copy."""
    flat = block.ravel()
    for i in range(flat.size):
        counts[np.int64(flat[i]) - offset] += 1
