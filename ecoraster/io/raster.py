"""Streaming raster output: dask arrays → Cloud-Optimized GeoTIFFs, with float64 totals.

``write_rasters`` computes the output arrays block by block (a few blocks at a time, so
memory stays bounded), writes each block into a tiled temporary GeoTIFF and, in the same
pass, accumulates float64 sums and valid-pixel counts. The temporary file is then
translated to a COG (GDAL ``COG`` driver: 512 tiles, ZSTD (default) or DEFLATE + predictor,
overviews) under another temporary name and renamed into place only when every output of
the call is complete. A failure leaves the previous files untouched and no partial file
behind.

Speed: the next batch of blocks is computed (dask) while the current one is written; each
output has its own writer thread, which writes its blocks, builds their factor-2 overview
and sums them (GIL-free numba kernels), so several outputs are written side by side; GDAL's
block cache is capped at :data:`GDAL_CACHE_BYTES` and glibc's malloc arenas at two, so
memory stays bounded whatever the raster size. ZSTD level 1 compresses about as well as
DEFLATE level 6 on our rasters at less than half the CPU time; rasters that are piecewise
constant by class use predictor 2, continuous float rasters predictor 3 (see
``bench/README.md``).
"""

from __future__ import annotations

import logging
import os
import time
from functools import lru_cache
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from concurrent.futures import ThreadPoolExecutor

import dask
import numpy as np
import rasterio
import rasterio.shutil
from numba import njit, prange
from affine import Affine
from rasterio.enums import Resampling
from rasterio.windows import Window

from ..grid import Grid, check_representable

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]

#: GDAL block cache while writing (the COG driver otherwise fills up to 5 % of the RAM).
GDAL_CACHE_BYTES = 256 * 2**20
#: COG translations run side by side (each also compresses with GDAL threads).
COG_TRANSLATE_WORKERS = 1


@dataclass(frozen=True)
class COGProfile:
    """Creation options for our COGs (rasterio/GDAL ``COG`` driver)."""

    compress: str = "ZSTD"
    blocksize: int = 512
    level: int = 1
    overview_resampling_continuous: str = "AVERAGE"
    overview_resampling_categorical: str = "MODE"

    def options(self, dtype: str, categorical: bool, per_class: bool = False) -> dict[str, Any]:
        """GDAL ``COG`` creation options. Predictor: horizontal differencing (2) for integers
        and for float rasters that are piecewise constant by class (``per_class``), floating
        point (3) for continuous float fields."""
        predictor = "FLOATING_POINT" if np.dtype(dtype).kind == "f" and not per_class else "STANDARD"
        return {
            "driver": "COG",
            "COMPRESS": self.compress,
            "LEVEL": self.level,
            "PREDICTOR": predictor,
            "BLOCKSIZE": self.blocksize,
            "BIGTIFF": "IF_SAFER",
            "OVERVIEWS": "AUTO",
            "OVERVIEW_RESAMPLING": self.overview_resampling_categorical if categorical
            else self.overview_resampling_continuous,
            "NUM_THREADS": "ALL_CPUS",
        }


DEFAULT_COG = COGProfile()


@dataclass
class RasterOutput:
    """One raster to write: the array and what to say about it."""

    path: Path
    data: Any  # dask or numpy 2-D array on the grid
    nodata: float
    units: str
    description: str = ""
    dtype: str = "float32"
    categorical: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    #: piecewise constant by class (e.g. a pool lookup): written with predictor 2, not 3
    per_class: bool = False


@dataclass
class RasterStats:
    """Float64 statistics of the valid pixels of a written raster."""

    path: str
    units: str
    total: float
    valid_pixels: int
    minimum: float | None
    maximum: float | None

    @property
    def mean(self) -> float | None:
        return self.total / self.valid_pixels if self.valid_pixels else None


@njit(nogil=True, cache=True)
def _row_stats(block, nodata, sums, counts, mins, maxs):
    """Per-row float64 sum, count, min and max of the valid pixels of a 2-D block (one
    pass; NaN is never valid; ``nodata`` NaN means only NaN is nodata)."""
    rows, cols = block.shape
    nan_nodata = nodata != nodata
    for r in prange(rows):
        s = 0.0
        n = 0
        lo = np.inf
        hi = -np.inf
        for c in range(cols):
            v = np.float64(block[r, c])
            if v != v or (not nan_nodata and v == nodata):
                continue
            s += v
            n += 1
            if v < lo:
                lo = v
            if v > hi:
                hi = v
        sums[r] = s
        counts[r] = n
        mins[r] = lo
        maxs[r] = hi


@lru_cache(maxsize=1)
def _glibc():
    """The C library if it is glibc (has ``malloc_trim`` and ``mallopt``), else None."""
    import ctypes
    import ctypes.util

    try:
        name = ctypes.util.find_library("c")
        lib = ctypes.CDLL(name) if name else None
        return lib if lib is not None and hasattr(lib, "malloc_trim") and hasattr(lib, "mallopt") else None
    except OSError:
        return None


def release_memory() -> None:
    """Give freed heap back to the OS (glibc ``malloc_trim``; a no-op elsewhere).

    Blocks freed by the dask, numba and GDAL threads stay in glibc's per-thread arenas and
    keep the RSS high long after a write (1.4 GB → 0.6 GB after writing 3 × 100 Mpx)."""
    if (libc := _glibc()) is not None:
        libc.malloc_trim(0)


@lru_cache(maxsize=None)
def _set_arena_max(n: int) -> None:
    if (libc := _glibc()) is not None:
        libc.mallopt(-8, n)  # M_ARENA_MAX, from glibc's malloc.h


def limit_malloc_arenas(n: int = 2) -> None:
    """Cap glibc's malloc arenas (``mallopt(M_ARENA_MAX, n)``, once per value; a no-op
    elsewhere).

    Every thread that allocates (dask workers, the writer threads, GDAL) otherwise gets its
    own arena, which keeps freed blocks: peak RSS of a 3-output 100 Mpx write 1.5 GB with
    the default arenas, 0.9 GB with 2, at the same speed (``bench/README.md``). Called by
    the CLI at start-up, before the threads exist, and by :func:`write_rasters` for library
    and flow users; same effect as ``MALLOC_ARENA_MAX=2``. Set ``ECORASTER_MALLOC_ARENAS=0``
    to leave the allocator alone."""
    n = int(os.environ.get("ECORASTER_MALLOC_ARENAS", n))
    if n > 0:
        _set_arena_max(n)


def block_stats(block: np.ndarray, nodata: float) -> tuple[float, int, float, float]:
    """(sum, count, min, max) of the valid pixels of ``block``, float64, one pass."""
    rows = block.shape[0]
    sums, mins, maxs = np.empty(rows), np.empty(rows), np.empty(rows)
    counts = np.empty(rows, dtype=np.int64)
    _row_stats(block, float(nodata), sums, counts, mins, maxs)
    return float(np.sum(sums)), int(counts.sum()), float(mins.min(initial=np.inf)), float(maxs.max(initial=-np.inf))


@njit(nogil=True, cache=True)
def _halve_average(block, nodata, out):
    """``out[i, j]`` = mean of the valid pixels of ``block[2i:2i+2, 2j:2j+2]`` (float64 sum),
    ``nodata`` where none is valid: GDAL's AVERAGE overview at factor 2, edges included."""
    rows, cols = block.shape
    nan_nodata = np.isnan(nodata)
    for i in prange(out.shape[0]):
        for j in range(out.shape[1]):
            total = 0.0
            n = 0
            for r in range(2 * i, min(2 * i + 2, rows)):
                for c in range(2 * j, min(2 * j + 2, cols)):
                    v = block[r, c]
                    if np.isnan(v) or (not nan_nodata and v == nodata):
                        continue
                    total += v
                    n += 1
            out[i, j] = total / n if n else nodata


def halve_average(block: np.ndarray, nodata: float) -> np.ndarray:
    """The factor-2 AVERAGE overview of a float block (see :func:`_halve_average`)."""
    out = np.empty(((block.shape[0] + 1) // 2, (block.shape[1] + 1) // 2), dtype=block.dtype)
    _halve_average(block, float(nodata), out)
    return out


def overview_factors(shape: tuple[int, int], blocksize: int) -> list[int]:
    """The factors GDAL's COG driver picks with ``OVERVIEWS=AUTO``: halve until a level is
    no larger than one block (e.g. 10,000 px, 512 → 2, 4, 8, 16, 32)."""
    factors, f = [], 2
    while -(-max(shape) // (f // 2)) > blocksize:
        factors.append(f)
        f *= 2
    return factors


def _own_first_overview(out: RasterOutput, chunks, grid: Grid, blocksize: int) -> bool:
    """Whether this output's first overview level is built in the streaming pass: continuous
    float data, blocks that start on even rows and columns, and a raster big enough to get
    overviews. (Categorical outputs keep GDAL's MODE overviews.)"""
    even = all(c % 2 == 0 for c in chunks[0][:-1]) and all(c % 2 == 0 for c in chunks[1][:-1])
    return (np.dtype(out.dtype).kind == "f" and not out.categorical and even
            and len(overview_factors(grid.shape, blocksize)) > 0)


def _blocks(shape: tuple[int, int], chunks: tuple[tuple[int, ...], tuple[int, ...]]):
    r0 = 0
    for i, rh in enumerate(chunks[0]):
        c0 = 0
        for j, cw in enumerate(chunks[1]):
            yield (i, j), Window(c0, r0, cw, rh)
            c0 += cw
        r0 += rh


def write_rasters(
    outputs: Sequence[RasterOutput],
    grid: Grid,
    *,
    profile: COGProfile = DEFAULT_COG,
    progress: ProgressFn | None = None,
    blocks_per_batch: int | None = None,
) -> dict[str, RasterStats]:
    """Compute and write ``outputs`` (all on ``grid``) as COGs; return their stats by path.

    All outputs are computed together block by block, so inputs they share are read once
    per block. Sums are accumulated in float64 over the values as written.
    """
    import dask.array as da

    if not outputs:
        return {}
    limit_malloc_arenas()
    arrays = []
    for out in outputs:
        check_representable(out.nodata, out.dtype, str(out.path))
        arr = out.data if isinstance(out.data, da.Array) else da.from_array(np.asarray(out.data), chunks=2048)
        if tuple(arr.shape) != tuple(grid.shape):
            raise ValueError(f"{out.path}: array shape {arr.shape} differs from grid {grid.shape}")
        arrays.append(arr.astype(out.dtype))
    chunks = arrays[0].chunks
    arrays = [a if a.chunks == chunks else a.rechunk(chunks) for a in arrays]
    block_list = list(_blocks(grid.shape, chunks))
    total_blocks = len(block_list)
    batch = blocks_per_batch or max(2, os.cpu_count() or 2)
    batches = [block_list[i:i + batch] for i in range(0, total_blocks, batch)]

    own_ovr = [_own_first_overview(out, chunks, grid, profile.blocksize) for out in outputs]

    def compute_batch(part):
        return dask.compute(*[arr.blocks[idx] for (idx, _w) in part for arr in arrays])

    tmp_paths = [out.path.with_name(f".{out.path.name}.{os.getpid()}.partial.tif") for out in outputs]
    cog_paths = [out.path.with_name(f".{out.path.name}.{os.getpid()}.cog.tif") for out in outputs]
    sums = np.zeros(len(outputs), dtype=np.float64)
    counts = np.zeros(len(outputs), dtype=np.int64)
    mins = np.full(len(outputs), np.inf)
    maxs = np.full(len(outputs), -np.inf)
    datasets = []
    ovr_datasets: list = []
    t0 = time.monotonic()
    last_log = t0
    env = rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eco-compute")
    # one writer thread per output: its blocks are written in order, outputs side by side
    writers = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"eco-write{n}") for n in range(len(outputs))]
    pending = None
    in_flight: list = []

    def write_block(n: int, block: np.ndarray, window: Window) -> tuple[int, tuple[float, int, float, float]]:
        """Write one block of output ``n`` (and its factor-2 overview); return its stats."""
        block = np.ascontiguousarray(block)
        nodata = float(outputs[n].nodata)
        datasets[n].write(block[np.newaxis], [1], window=window)
        if ovr_datasets[n] is not None:
            half = halve_average(block, nodata)
            ovr_datasets[n].write(half[np.newaxis], [1], window=Window(
                window.col_off // 2, window.row_off // 2, half.shape[1], half.shape[0]))
        return n, block_stats(block, nodata)

    def collect(futures) -> None:
        for fut in futures:
            n, (total, count, lo, hi) = fut.result()
            if count:
                sums[n] += total
                counts[n] += count
                mins[n] = min(mins[n], lo)
                maxs[n] = max(maxs[n], hi)

    try:
        env.__enter__()
        for out, tmp, ovr in zip(outputs, tmp_paths, own_ovr):
            out.path.parent.mkdir(parents=True, exist_ok=True)
            datasets.append(rasterio.open(
                tmp, "w", driver="GTiff", width=grid.width, height=grid.height, count=1,
                dtype=out.dtype, crs=grid.crs, transform=grid.transform, nodata=out.nodata,
                tiled=True, blockxsize=512, blockysize=512, BIGTIFF="IF_SAFER",
            ))
            # the factor-2 overview, built here from the blocks in memory, as the staged file's
            # external .ovr (GDAL then derives the coarser levels from it, not from full resolution)
            if ovr:
                ovr_datasets.append(rasterio.open(
                    Path(f"{tmp}.ovr"), "w", driver="GTiff", width=(grid.width + 1) // 2,
                    height=(grid.height + 1) // 2, count=1, dtype=out.dtype, nodata=out.nodata,
                    crs=grid.crs, transform=grid.transform @ Affine.scale(2), tiled=True,
                    blockxsize=512, blockysize=512, BIGTIFF="IF_SAFER"))
            else:
                ovr_datasets.append(None)
        done = 0
        # batch i + 1 is computed (dask) while batch i is written (one thread per output)
        pending = pool.submit(compute_batch, batches[0])
        for i, part in enumerate(batches):
            results = pending.result()
            pending = pool.submit(compute_batch, batches[i + 1]) if i + 1 < len(batches) else None
            collect(in_flight)  # at most two batches in memory besides the one computing
            k = 0
            in_flight = []
            for (_idx, window) in part:
                for n in range(len(outputs)):
                    in_flight.append(writers[n].submit(write_block, n, results[k], window))
                    k += 1
            del results
            done += len(part)
            if progress:
                progress(done, total_blocks)
            now = time.monotonic()
            if now - last_log > 5:
                log.info("writing %d raster(s): %d/%d blocks", len(outputs), done, total_blocks)
                last_log = now
        collect(in_flight)
        in_flight = []
        factors = overview_factors(grid.shape, profile.blocksize)

        def finish_file(n: int) -> None:
            """Tag and close output ``n``'s staged file; build the levels 4, 8, … of its
            .ovr from level 2 (¼ of the pixels)."""
            out, dst, ovr = outputs[n], datasets[n], ovr_datasets[n]
            dst.set_band_description(1, out.description or out.path.stem)
            dst.set_band_unit(1, out.units)
            dst.update_tags(1, units=out.units, **out.tags)
            dst.update_tags(units=out.units, **out.tags)
            dst.close()
            if ovr is not None:
                ovr.close()
                if len(factors) > 1:
                    with rasterio.open(ovr.name, "r+") as ds:
                        ds.build_overviews([f // 2 for f in factors[1:]], Resampling.average)

        for fut in [writers[n].submit(finish_file, n) for n in range(len(outputs))]:
            fut.result()
        datasets = []
        ovr_datasets = [None if o is None else Path(o.name) for o in ovr_datasets]
        t_staged = time.monotonic()
        log.info("computed and staged %d raster(s) in %.1f s", len(outputs), t_staged - t0)

        def translate(out: RasterOutput, tmp: Path, cog: Path, ovr: Path | None) -> None:
            options = profile.options(out.dtype, out.categorical, out.per_class)
            if ovr is not None:
                options["OVERVIEWS"] = "FORCE_USE_EXISTING"
            with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
                rasterio.shutil.copy(str(tmp), str(cog), **options)
            tmp.unlink()
            if ovr is not None:
                ovr.unlink()

        with ThreadPoolExecutor(max_workers=COG_TRANSLATE_WORKERS, thread_name_prefix="eco-cog") as cogs:
            jobs = zip(outputs, tmp_paths, cog_paths, ovr_datasets)
            for fut in [cogs.submit(translate, *args) for args in jobs]:
                fut.result()
        log.info("translated %d raster(s) to COG in %.1f s", len(outputs), time.monotonic() - t_staged)
        for out, cog in zip(outputs, cog_paths):
            os.replace(cog, out.path)
    except BaseException:
        if pending is not None:
            pending.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        for w in writers:
            w.shutdown(wait=True, cancel_futures=True)
        for dst in [*datasets, *ovr_datasets]:
            try:
                dst.close()
            except Exception:
                pass
        for p in [*tmp_paths, *cog_paths]:
            p.unlink(missing_ok=True)
            Path(f"{p}.ovr").unlink(missing_ok=True)
        raise
    finally:
        pool.shutdown(wait=True)
        for w in writers:
            w.shutdown(wait=True)
        env.__exit__(None, None, None)
    release_memory()
    log.info("wrote %d COG(s) in %.1f s", len(outputs), time.monotonic() - t0)
    return {
        str(out.path): RasterStats(
            str(out.path), out.units, float(sums[n]), int(counts[n]),
            float(mins[n]) if counts[n] else None, float(maxs[n]) if counts[n] else None,
        )
        for n, out in enumerate(outputs)
    }


def read_band_tags(path: str | Path) -> dict[str, str]:
    """Band-1 tags plus the band unit and description (for tests and manifests)."""
    with rasterio.open(path) as src:
        tags = dict(src.tags(1))
        tags.setdefault("units", src.units[0] or "")
        tags["description"] = src.descriptions[0] or ""
        return tags
