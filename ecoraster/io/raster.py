"""Streaming raster output: dask arrays → Cloud-Optimized GeoTIFFs, with float64 totals.

``write_rasters`` computes the output arrays block by block (a few blocks at a time, so
memory stays bounded), writes each block into a tiled temporary GeoTIFF and, in the same
pass, accumulates float64 sums and valid-pixel counts. The temporary file is then
translated to a COG (GDAL ``COG`` driver: 512 tiles, DEFLATE/ZSTD + predictor, overviews)
under another temporary name and renamed into place only when every output of the call
is complete. A failure leaves the previous files untouched and no partial file behind.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import numpy as np
import rasterio
import rasterio.shutil
from rasterio.windows import Window

from ..grid import Grid, check_representable

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class COGProfile:
    """Creation options for our COGs (rasterio/GDAL ``COG`` driver)."""

    compress: str = "DEFLATE"
    blocksize: int = 512
    level: int = 6
    overview_resampling_continuous: str = "AVERAGE"
    overview_resampling_categorical: str = "MODE"

    def options(self, dtype: str, categorical: bool) -> dict[str, Any]:
        predictor = "FLOATING_POINT" if np.dtype(dtype).kind == "f" else "YES"
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


def _valid_mask(block: np.ndarray, nodata: float) -> np.ndarray:
    if np.isnan(nodata):
        return ~np.isnan(block)
    mask = block != nodata
    if block.dtype.kind == "f":
        mask &= ~np.isnan(block)
    return mask


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
    batch = blocks_per_batch or max(2, 2 * (os.cpu_count() or 2))

    tmp_paths = [out.path.with_name(f".{out.path.name}.{os.getpid()}.partial.tif") for out in outputs]
    cog_paths = [out.path.with_name(f".{out.path.name}.{os.getpid()}.cog.tif") for out in outputs]
    sums = np.zeros(len(outputs), dtype=np.float64)
    counts = np.zeros(len(outputs), dtype=np.int64)
    mins = np.full(len(outputs), np.inf)
    maxs = np.full(len(outputs), -np.inf)
    datasets = []
    t0 = time.monotonic()
    last_log = t0
    try:
        for out, tmp in zip(outputs, tmp_paths):
            out.path.parent.mkdir(parents=True, exist_ok=True)
            datasets.append(rasterio.open(
                tmp, "w", driver="GTiff", width=grid.width, height=grid.height, count=1,
                dtype=out.dtype, crs=grid.crs, transform=grid.transform, nodata=out.nodata,
                tiled=True, blockxsize=512, blockysize=512, BIGTIFF="IF_SAFER",
            ))
        done = 0
        for start in range(0, total_blocks, batch):
            part = block_list[start:start + batch]
            tasks = [arr.blocks[idx] for (idx, _w) in part for arr in arrays]
            results = dask.compute(*tasks)
            k = 0
            for (_idx, window) in part:
                for n, (out, dst) in enumerate(zip(outputs, datasets)):
                    block = np.asarray(results[k])
                    k += 1
                    dst.write(block, 1, window=window)
                    valid = _valid_mask(block, out.nodata)
                    if valid.any():
                        vals = block[valid]
                        sums[n] += np.sum(vals, dtype=np.float64)
                        counts[n] += vals.size
                        mins[n] = min(mins[n], float(vals.min()))
                        maxs[n] = max(maxs[n], float(vals.max()))
            done += len(part)
            if progress:
                progress(done, total_blocks)
            now = time.monotonic()
            if now - last_log > 5:
                log.info("writing %d raster(s): %d/%d blocks", len(outputs), done, total_blocks)
                last_log = now
        for out, dst in zip(outputs, datasets):
            dst.set_band_description(1, out.description or out.path.stem)
            dst.set_band_unit(1, out.units)
            dst.update_tags(1, units=out.units, **out.tags)
            dst.update_tags(units=out.units, **out.tags)
            dst.close()
        datasets = []
        for out, tmp, cog in zip(outputs, tmp_paths, cog_paths):
            rasterio.shutil.copy(str(tmp), str(cog), **profile.options(out.dtype, out.categorical))
            tmp.unlink()
        for out, cog in zip(outputs, cog_paths):
            os.replace(cog, out.path)
    except BaseException:
        for dst in datasets:
            try:
                dst.close()
            except Exception:
                pass
        for p in [*tmp_paths, *cog_paths]:
            p.unlink(missing_ok=True)
        raise
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
