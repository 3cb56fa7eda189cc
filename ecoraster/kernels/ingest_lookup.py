"""Pure lookup kernels for class reclassification (no I/O, no paths, no CRS).

A lookup table is a dense array ``lut`` indexed by ``code - lut_offset``; entries equal to
``MISSING`` mark codes without a table row.
"""

from __future__ import annotations

import numba
import numpy as np

from .classes import class_lut

#: Marker in a dense LUT for "this source code has no row in the table".
MISSING = -1


def build_dense_lut(src_codes: np.ndarray, dst_codes: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense int32 LUT covering ``min(src) .. max(src)``; absent codes are ``MISSING``.

    Parameters
    ----------
    src_codes : array of int
        Source class codes (e.g. WorldCover 10..100), unique.
    dst_codes : array of int
        Target codes (GEP classes 11..72), same length.

    Returns
    -------
    (lut, offset) : (np.ndarray int32, int)
        ``lut[code - offset]`` is the target code of ``code``.
    """
    lut = class_lut(src_codes, np.asarray(dst_codes, dtype=np.int32), fill=MISSING, max_range=np.inf)
    assert lut is not None
    return lut.values, lut.offset


@numba.njit(cache=True, nogil=True)
def reclassify_block(block, lut, lut_offset, src_nodata, has_nodata, out_nodata):
    """Map every pixel of ``block`` through ``lut``.

    Source nodata pixels and codes without a LUT entry become ``out_nodata``.

    Parameters
    ----------
    block : 2-D int array
        Source class codes.
    lut : 1-D int32 array
        Dense LUT (see :func:`build_dense_lut`).
    lut_offset : int
        Code of ``lut[0]``.
    src_nodata : float
        Source nodata value (ignored unless ``has_nodata``).
    has_nodata : bool
        Whether ``src_nodata`` is meaningful.
    out_nodata : int
        Output nodata (0 for GEP classes).

    Returns
    -------
    2-D uint8 array of target codes.
    """
    rows, cols = block.shape
    out = np.empty((rows, cols), dtype=np.uint8)
    n = lut.shape[0]
    for i in range(rows):
        for j in range(cols):
            v = block[i, j]
            if has_nodata and v == src_nodata:
                out[i, j] = out_nodata
                continue
            k = np.int64(v) - lut_offset
            if k < 0 or k >= n or lut[k] == MISSING:
                out[i, j] = out_nodata
            else:
                out[i, j] = lut[k]
    return out


@numba.njit(cache=True, nogil=True)
def uncovered_mask(block, lut, lut_offset, src_nodata, has_nodata):
    """True where a valid (non-nodata) pixel has a code without a LUT entry."""
    rows, cols = block.shape
    out = np.zeros((rows, cols), dtype=np.bool_)
    n = lut.shape[0]
    for i in range(rows):
        for j in range(cols):
            v = block[i, j]
            if has_nodata and v == src_nodata:
                continue
            k = np.int64(v) - lut_offset
            if k < 0 or k >= n or lut[k] == MISSING:
                out[i, j] = True
    return out
