"""Map pure per-pixel kernels over aligned dask chunks.

Kernels never see paths or CRSs. The only geometry a kernel may need is the pixel area of
each row of its block (``row_area_m2``), which this module passes in; that keeps kernels
exact on geographic grids, where the pixel area changes with latitude.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dask.array as da
import numpy as np

from .grid import Grid


def map_blocks_with_area(
    func: Callable[..., np.ndarray],
    *arrays: da.Array,
    grid: Grid,
    dtype: Any = np.float32,
    **kwargs: Any,
) -> da.Array:
    """Apply ``func(*blocks, row_area_m2=<1-D float64>, **kwargs) -> block`` chunk by chunk.

    All ``arrays`` must be on ``grid`` with identical chunks (they come from ``align_to``
    with the run's chunk size). The result is lazy.
    """
    if not arrays:
        raise ValueError("map_blocks_with_area needs at least one array")
    chunks = arrays[0].chunks
    for a in arrays[1:]:
        if a.chunks != chunks:
            raise ValueError(f"arrays have different chunks: {a.chunks} vs {chunks}")
    areas = grid.row_areas_m2()

    def _block(*blocks: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        r0, r1 = block_info[None]["array-location"][0]
        return func(*blocks, row_area_m2=areas[r0:r1], **kwargs)

    return da.map_blocks(_block, *arrays, dtype=dtype, meta=np.empty((0, 0), dtype=dtype))


def map_blocks_pixelwise(
    func: Callable[..., np.ndarray], *arrays: da.Array, dtype: Any = np.float32, **kwargs: Any
) -> da.Array:
    """Apply ``func(*blocks, **kwargs) -> block`` chunk by chunk (no geometry needed)."""
    return da.map_blocks(func, *arrays, dtype=dtype, meta=np.empty((0, 0), dtype=dtype), **kwargs)
