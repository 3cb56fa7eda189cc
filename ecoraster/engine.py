"""The one block engine: map pure kernels over aligned dask chunks, lazily.

Kernels never see paths or CRSs. The only geometry a kernel may need is the pixel area of
each row of its block (``row_area_m2``, 1-D float64, m²), which this module passes in when
it is given the ``grid``; that keeps kernels exact on geographic grids, where the pixel area
changes with latitude. Every block loop of the services goes through one of three calls:

``map_blocks(func, *arrays, grid=None, n_out=1, dtype=float32, in_nodata=None, out_nodata=None, window=False, **kw)``
    ``func(*blocks, [row_area_m2=…,] [window=((r0, r1), (c0, c1)),] **kw)`` returns one block (rows, cols), or a stack
    (n_out, rows, cols) for several outputs from one kernel call; the result is one lazy
    array, or a tuple of ``n_out`` lazy arrays (computed together — e.g. by
    ``ServiceContext.write`` — the kernel runs once per block)::

        npp, rh = map_blocks(casa_like, classes, ndvi, grid=grid, n_out=2)

``reduce_blocks(func, *arrays, grid=None, shape=(), dtype=float64, **kw)``
    ``func(*blocks, [row_area_m2=…,] **kw)`` returns a per-block partial of ``shape`` (a
    histogram, a sum per class or per zone); the partials are summed by a dask tree
    reduction in ``dtype`` (float64 by default: sums never accumulate in float32). The
    result is lazy: call ``.compute()``::

        total_ha = reduce_blocks(lambda c, row_area_m2: np.float64(...), classes, grid=grid).compute()

``map_overlap(func, *arrays, depth=1, grid=None, boundary=nan, dtype=float32, **kw)``
    For neighbourhood kernels (slope, flow direction on a DEM): ``func`` sees each block
    with a halo of ``depth`` pixels on every side (beyond the raster edge: ``boundary``,
    a constant, or ``"nearest"`` / ``"reflect"``) and returns a block of the same, haloed
    shape; the halo is trimmed off. ``row_area_m2`` covers the haloed rows (rows beyond the
    edge repeat the edge row's area). The result equals ``func`` on the whole array::

        slope = map_overlap(slope_kernel, dem, depth=1, grid=grid, boundary=np.nan)

Nodata is masked in one place: pass ``in_nodata`` (one value per input; ``None`` = only NaN
counts as nodata for float inputs, nothing for integer inputs) and ``out_nodata``, and every
output pixel where any input is nodata becomes ``out_nodata`` after the kernel ran — the
kernel need not test nodata itself (pygeoprocessing's ``raster_map`` rule). Kernels that
handle nodata themselves (class codes without a table row) leave both unset.

All arrays of one call must be on the same grid with identical chunks (they come from
``align_to`` / ``ServiceContext.raster`` with the run's chunk size); a mismatch is an error,
never a silent rechunk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dask.array as da
import numpy as np

from .grid import Grid

__all__ = ["map_blocks", "reduce_blocks", "map_overlap", "block_chunk", "map_blocks_with_area",
           "map_blocks_pixelwise"]

#: Upper bound of the bytes of one block's inputs for :func:`block_chunk`.
BLOCK_BYTES = 160 * 2**20


def block_chunk(n_float_bands: int, run_chunk: int, block_bytes: int = BLOCK_BYTES) -> int:
    """Chunk edge (pixels) such that one block's inputs stay under ``block_bytes``: the run's
    chunk halved (not below 256) while ``n_float_bands`` float32 bands, their stacked copies
    and an int64 class band would not fit (for kernels that read many bands, e.g. 12 monthly
    periods of six CASA inputs)."""
    chunk = run_chunk
    while chunk > 256 and chunk * chunk * (8 * n_float_bands + 8) > block_bytes:
        chunk //= 2
    return chunk


def _check_chunks(arrays: Sequence[da.Array], what: str) -> None:
    if not arrays:
        raise ValueError(f"{what} needs at least one array")
    chunks = arrays[0].chunks
    for a in arrays[1:]:
        if a.chunks != chunks:
            raise ValueError(f"{what}: arrays have different chunks: {a.chunks} vs {chunks}")


def _starts(chunks: tuple[int, ...]) -> np.ndarray:
    return np.cumsum((0,) + tuple(chunks))


def _invalid(blocks: Sequence[np.ndarray], in_nodata: Sequence[float | None]) -> np.ndarray:
    """True where any input block is nodata (its value, or NaN for floats)."""
    bad = np.zeros(blocks[0].shape[-2:], dtype=bool)
    for b, nd in zip(blocks, in_nodata):
        if b.dtype.kind == "f":
            bad |= np.isnan(b) if b.ndim == 2 else np.isnan(b).any(axis=0)
        if nd is not None and not (isinstance(nd, float) and np.isnan(nd)):
            hit = b == nd
            bad |= hit if b.ndim == 2 else hit.any(axis=0)
    return bad


def _masked(func: Callable[..., np.ndarray], in_nodata: Sequence[float | None] | None,
            out_nodata: float | None) -> Callable[..., np.ndarray]:
    if out_nodata is None:
        return func

    def wrapped(*blocks: np.ndarray, **kwargs: Any) -> np.ndarray:
        out = func(*blocks, **kwargs)
        nodata = list(in_nodata) if in_nodata is not None else [None] * len(blocks)
        bad = _invalid(blocks, nodata)
        if bad.any():
            out = np.array(out, copy=True) if not out.flags.writeable else out
            out[..., bad] = out_nodata
        return out

    return wrapped


def map_blocks(
    func: Callable[..., np.ndarray],
    *arrays: da.Array,
    grid: Grid | None = None,
    n_out: int = 1,
    dtype: Any = np.float32,
    in_nodata: Sequence[float | None] | None = None,
    out_nodata: float | None = None,
    window: bool = False,
    **kwargs: Any,
) -> da.Array | tuple[da.Array, ...]:
    """Apply ``func(*blocks, [row_area_m2=…,] [window=…,] **kwargs)`` block by block, lazily.

    ``func`` returns a (rows, cols) block, or (n_out, rows, cols) when ``n_out`` > 1; the
    result is then a tuple of ``n_out`` lazy 2-D arrays sharing one kernel call per block.
    ``row_area_m2`` (m² per pixel of each block row) is passed when ``grid`` is given;
    ``window=((row0, row1), (col0, col1))``, the block's place in the array, when ``window``.
    """
    _check_chunks(arrays, "map_blocks")
    kernel = _masked(func, in_nodata, out_nodata)
    dtype = np.dtype(dtype)
    starts = _starts(arrays[0].chunks[0])
    col_starts = _starts(arrays[0].chunks[1])
    areas = grid.row_areas_m2() if grid is not None else None

    def block(*blocks: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        if areas is None and not window:
            return kernel(*blocks, **kwargs)
        i, j = block_info[0]["chunk-location"][-2:]
        extra: dict[str, Any] = {}
        if areas is not None:
            extra["row_area_m2"] = areas[starts[i]:starts[i + 1]]
        if window:
            extra["window"] = ((int(starts[i]), int(starts[i + 1])), (int(col_starts[j]), int(col_starts[j + 1])))
        return kernel(*blocks, **extra, **kwargs)

    if n_out == 1:
        return da.map_blocks(block, *arrays, dtype=dtype, meta=np.empty((0, 0), dtype=dtype))
    stack = da.map_blocks(block, *arrays, new_axis=0, chunks=((n_out,), *arrays[0].chunks[-2:]),
                          dtype=dtype, meta=np.empty((0, 0, 0), dtype=dtype))
    return tuple(stack[k] for k in range(n_out))


def reduce_blocks(
    func: Callable[..., Any],
    *arrays: da.Array,
    grid: Grid | None = None,
    shape: tuple[int, ...] = (),
    dtype: Any = np.float64,
    split_every: int = 4,
    **kwargs: Any,
) -> da.Array:
    """Per-block partials of ``func(*blocks, [row_area_m2=…,] **kwargs)`` (each of
    ``shape``), summed by a dask tree reduction in ``dtype``. Lazy: ``.compute()`` it.

    Memory stays bounded at any raster size: one partial per block, summed ``split_every``
    at a time. Use ``dtype=np.int64`` for counts (histograms)."""
    _check_chunks(arrays, "reduce_blocks")
    dtype = np.dtype(dtype)
    shape = tuple(int(s) for s in shape)
    starts = _starts(arrays[0].chunks[0])
    areas = grid.row_areas_m2() if grid is not None else None

    def block(*blocks: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        if areas is None:
            part = func(*blocks, **kwargs)
        else:
            i = block_info[0]["chunk-location"][0]
            part = func(*blocks, row_area_m2=areas[starts[i]:starts[i + 1]], **kwargs)
        part = np.asarray(part, dtype=dtype)
        if part.shape != shape:
            raise ValueError(f"reduce_blocks: a partial has shape {part.shape}, declared {shape}")
        return part[None, None]

    rows, cols = arrays[0].chunks[-2:]
    per_block = da.map_blocks(
        block, *arrays, new_axis=list(range(2, 2 + len(shape))) or None,
        chunks=(tuple(1 for _ in rows), tuple(1 for _ in cols), *((s,) for s in shape)),
        dtype=dtype, meta=np.empty((0,) * (2 + len(shape)), dtype=dtype))
    return per_block.sum(axis=(0, 1), dtype=dtype, split_every=split_every)


def map_overlap(
    func: Callable[..., np.ndarray],
    *arrays: da.Array,
    depth: int = 1,
    grid: Grid | None = None,
    boundary: float | str = np.nan,
    dtype: Any = np.float32,
    in_nodata: Sequence[float | None] | None = None,
    out_nodata: float | None = None,
    **kwargs: Any,
) -> da.Array:
    """Apply a neighbourhood kernel with a halo of ``depth`` pixels, lazily.

    ``func(*haloed_blocks, [row_area_m2=…,] **kwargs)`` gets blocks extended by ``depth``
    rows and columns on every side (``boundary`` beyond the raster edge: a constant such
    as NaN, or ``"nearest"`` / ``"reflect"``) and returns an array of the haloed shape;
    the halo is trimmed off. ``row_area_m2`` has one entry per haloed row. The result has
    the chunks of the inputs and equals ``func`` applied to the whole (padded) array.
    Nodata masking (``in_nodata`` / ``out_nodata``) tests each pixel itself, not its
    neighbours: a kernel decides what a nodata neighbour means. A constant ``boundary`` must
    be representable in every input's dtype (NaN for float DEMs; the nodata code for class
    rasters). Chunks smaller than ``depth`` are merged for the computation; the result has
    the inputs' chunks again.
    """
    _check_chunks(arrays, "map_overlap")
    if depth < 1:
        raise ValueError(f"map_overlap: depth must be ≥ 1, got {depth}")
    if boundary == "none":
        raise ValueError("map_overlap: boundary 'none' leaves edge blocks without a halo; give a value")
    dtype = np.dtype(dtype)
    original = arrays[0].chunks
    work = [da.overlap.ensure_minimum_chunksize(depth, c) for c in original]
    if tuple(work) != tuple(original):
        arrays = tuple(a.rechunk(tuple(work)) for a in arrays)
    kernel = _masked(func, in_nodata, out_nodata)
    starts = _starts(arrays[0].chunks[0])
    areas = None
    if grid is not None:
        areas = np.pad(grid.row_areas_m2(), depth, mode="edge")  # index = haloed row + depth

    def block(*blocks: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        if areas is None:
            return kernel(*blocks, **kwargs)
        i = block_info[0]["chunk-location"][0]
        # haloed rows [start − depth, stop + depth) → padded index [start, stop + 2 depth)
        return kernel(*blocks, row_area_m2=areas[starts[i]:starts[i + 1] + 2 * depth], **kwargs)

    out = da.map_overlap(block, *arrays, depth={0: depth, 1: depth}, boundary={0: boundary, 1: boundary},
                         trim=True, dtype=dtype, meta=np.empty((0, 0), dtype=dtype))
    return out.rechunk(original) if out.chunks != original else out


# -- the earlier names, kept for callers outside the services ------------------------------

def map_blocks_with_area(func: Callable[..., np.ndarray], *arrays: da.Array, grid: Grid,
                         dtype: Any = np.float32, **kwargs: Any) -> da.Array:
    """``map_blocks(func, *arrays, grid=grid, dtype=dtype, **kwargs)`` (one output)."""
    return map_blocks(func, *arrays, grid=grid, dtype=dtype, **kwargs)  # type: ignore[return-value]


def map_blocks_pixelwise(func: Callable[..., np.ndarray], *arrays: da.Array, dtype: Any = np.float32,
                         **kwargs: Any) -> da.Array:
    """``map_blocks(func, *arrays, dtype=dtype, **kwargs)`` (no geometry, one output)."""
    return map_blocks(func, *arrays, dtype=dtype, **kwargs)  # type: ignore[return-value]
