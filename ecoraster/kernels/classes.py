"""The one class → table-row lookup (dense, indexed by ``code − offset``); no I/O.

Every lookup of a class raster in a table goes through :func:`class_lut`: the dense value
tables of ``lookup.build_lut`` (carbon pools, water coefficients), the row index of the CASA
and air kernels (``build_row_index``), the reclass tables of land-cover ingestion
(``ingest_lookup.build_dense_lut``) and the eligible-class masks of the allocation. Kernels
read it with :func:`class_row` (row index, offset 0) or ``values[code − offset]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

#: Largest code range for which a dense table is built by default.
DENSE_LUT_MAX_RANGE = 1 << 20


@dataclass(frozen=True)
class ClassLUT:
    """``values[code − offset]`` is the entry of ``code``; absent codes hold the fill value."""

    offset: int
    values: np.ndarray

    @property
    def size(self) -> int:
        return int(self.values.size)


def class_lut(codes: Any, values: Any = None, *, fill: Any = -1, offset: int | None = None,
              size: int | None = None, max_range: float = DENSE_LUT_MAX_RANGE, dtype: Any = None
              ) -> ClassLUT | None:
    """A dense lookup of ``codes`` (unique integers) → ``values``.

    Parameters
    ----------
    codes : 1-D ints
        The table's class codes.
    values : 1-D array or scalar, optional
        The entry of each code (broadcast if scalar); default: the table row number
        (0, 1, …), making a code → row index.
    fill : scalar
        Entry of codes absent from the table (−1 for a row index, False for a mask).
    offset, size : int, optional
        Code of ``values[0]`` (default: the smallest code; 0 for an index addressed by the
        code itself) and the length (default: up to the largest code).
    max_range : number
        Refuse (return None) when the table would be longer than this.
    dtype : optional
        dtype of the table (default: that of ``values``; int64 for a row index).
    """
    codes = np.asarray(codes, dtype=np.int64).ravel()
    if values is None:
        values = np.arange(codes.size, dtype=np.int64)
    values = np.broadcast_to(np.asarray(values), codes.shape)
    dtype = np.dtype(dtype or values.dtype)
    lo = (int(codes.min()) if codes.size else 0) if offset is None else int(offset)
    if size is None:
        size = (int(codes.max()) - lo + 1) if codes.size else 1
    if size > max_range:
        return None
    if codes.size and (codes.min() < lo or codes.max() >= lo + size):
        raise ValueError(f"class codes {codes.min()}..{codes.max()} outside the table {lo}..{lo + size - 1}")
    table = np.full(size, fill, dtype=dtype)
    table[codes - lo] = values
    return ClassLUT(lo, table)


def row_index(codes: Any) -> np.ndarray:
    """``index[code]`` = table row of ``code`` (int64, −1 where absent); codes ≥ 0."""
    codes = np.asarray(codes, dtype=np.int64)
    if codes.size and codes.min() < 0:
        raise ValueError("class codes must be non-negative")
    lut = class_lut(codes, fill=-1, offset=0, max_range=np.inf)
    assert lut is not None
    return lut.values


@njit(cache=True)
def class_row(code, class_nodata, row_of_code):
    """Table row of a class code from :func:`row_index`, or −1 for nodata / unknown codes."""
    if code == class_nodata or code < 0 or code >= row_of_code.size:
        return -1
    return row_of_code[code]
