"""Windowed reads of a run's per-pixel rasters for many threads at once (the API's worker
threads valuing footprints side by side).

rasterio (GDAL) datasets must not be used by two threads at once, and opening a COG per
request costs ~10 ms and throws away its decoded blocks. :class:`WindowReader` keeps:

- a pool of open dataset sets (:class:`DatasetPool`), one set lent to one thread at a time;
- one cache of decoded blocks shared by every thread (:class:`BlockCache`, least recently
  used out first, bounded in bytes). A 1 km² footprint on a 10 m grid touches 1–4 blocks of
  512 × 512 px per raster, ~2–3 ms of CPU each to decode (ZSTD + floating-point predictor);
  with the cache a footprint next to an earlier one reads no file at all. GDAL's own block
  cache belongs to each dataset, so it is not shared between the sets of the pool.

Values are returned exactly as stored (dtype of the file); nothing is resampled.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

#: Most sets of open rasters a reader keeps; a thread beyond that waits for one (reads are
#: CPU-bound decoding: more sets than busy cores add no speed).
MAX_DATASET_SETS = 4

#: Default size of the shared cache of decoded blocks, bytes (≈ 128 float32 blocks of 512²).
BLOCK_CACHE_BYTES = 512 * 2**20


class DatasetPool:
    """Open rasterio datasets of a fixed list of rasters, lent as whole sets to one thread
    at a time. A set is opened when every open set is in use, up to ``max_sets``; beyond
    that a thread waits for a set to come back. Sets stay open until :meth:`close`.
    """

    def __init__(self, paths: list[Path], max_sets: int = MAX_DATASET_SETS):
        self.paths = list(paths)
        self.max_sets = max(1, int(max_sets))
        self._idle: list[dict[Path, Any]] = []
        self._all: list[dict[Path, Any]] = []
        self._opening = 0
        self._cond = threading.Condition()

    @contextmanager
    def borrow(self) -> Iterator[dict[Path, Any]]:
        """``{path: open dataset}`` for the calling thread alone until the block ends."""
        datasets = None
        with self._cond:
            while not self._idle and len(self._all) + self._opening >= self.max_sets:
                self._cond.wait()
            if self._idle:
                datasets = self._idle.pop()
            else:
                self._opening += 1  # a slot taken; the files are opened outside the lock
        if datasets is None:
            try:
                datasets = {p: rasterio.open(p) for p in self.paths}
            finally:
                with self._cond:
                    self._opening -= 1
                    if datasets is not None:
                        self._all.append(datasets)
                    else:
                        self._cond.notify()
        ok = False
        try:
            yield datasets
            ok = True
        finally:
            if ok:
                with self._cond:
                    self._idle.append(datasets)
                    self._cond.notify()
            else:  # a read failed: do not lend a dataset in an unknown state again
                self._drop(datasets)

    @property
    def size(self) -> int:
        """Number of dataset sets open (at most ``max_sets``)."""
        return len(self._all)

    def _drop(self, datasets: dict[Path, Any]) -> None:
        with self._cond:
            self._all = [d for d in self._all if d is not datasets]
            self._cond.notify()
        for ds in datasets.values():
            ds.close()

    def close(self) -> None:
        """Close every set (call when no read is running)."""
        with self._cond:
            sets, self._all, self._idle = self._all, [], []
        for datasets in sets:
            for ds in datasets.values():
                ds.close()


class BlockCache:
    """Decoded blocks by key, least recently used dropped first once ``max_bytes`` is
    passed; safe for many threads (the lock is held for dictionary work only)."""

    def __init__(self, max_bytes: int = BLOCK_CACHE_BYTES):
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self._blocks: OrderedDict[Any, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> np.ndarray | None:
        with self._lock:
            block = self._blocks.get(key)
            if block is None:
                self.misses += 1
                return None
            self._blocks.move_to_end(key)
            self.hits += 1
            return block

    def put(self, key: Any, block: np.ndarray) -> None:
        if block.nbytes > self.max_bytes:
            return
        block.setflags(write=False)  # shared by threads: nobody may change it
        with self._lock:
            old = self._blocks.pop(key, None)
            if old is not None:
                self.nbytes -= old.nbytes
            self._blocks[key] = block
            self.nbytes += block.nbytes
            while self.nbytes > self.max_bytes:
                _, dropped = self._blocks.popitem(last=False)
                self.nbytes -= dropped.nbytes

    def clear(self) -> None:
        with self._lock:
            self._blocks.clear()
            self.nbytes = 0


class WindowReader:
    """Band 1 of each raster of ``paths`` read by window, from any number of threads.

    All rasters must share one block layout per file (true of COGs); each file's own block
    shape, size and dtype are read once at start.

    Parameters
    ----------
    paths : list of path
        Single-band rasters (the run's value and physical COGs).
    cache_bytes : int
        Size of the shared cache of decoded blocks (bytes); 0 turns the cache off.
    max_sets : int
        Most sets of open datasets (see :class:`DatasetPool`).
    """

    def __init__(self, paths: list[Path], *, cache_bytes: int = BLOCK_CACHE_BYTES,
                 max_sets: int = MAX_DATASET_SETS):
        self.paths = list(paths)
        self.cache = BlockCache(cache_bytes)
        self.pool = DatasetPool(self.paths, max_sets)
        self._layout: dict[Path, tuple[int, int, int, int, np.dtype]] = {}
        for p in self.paths:
            with rasterio.open(p) as src:
                bh, bw = src.block_shapes[0]
                self._layout[p] = (int(bh), int(bw), src.height, src.width, np.dtype(src.dtypes[0]))

    def read(self, window: Window) -> dict[Path, np.ndarray]:
        """``{path: array}`` of ``window`` (whole pixels inside every raster) for every
        raster, in each file's dtype."""
        r0, c0 = int(window.row_off), int(window.col_off)
        h, w = int(window.height), int(window.width)
        wanted: dict[tuple[int, int, int], tuple[Path, int, int]] = {}
        for i, p in enumerate(self.paths):
            bh, bw, _, _, _ = self._layout[p]
            for bi in range(r0 // bh, (r0 + h - 1) // bh + 1 if h else 0):
                for bj in range(c0 // bw, (c0 + w - 1) // bw + 1 if w else 0):
                    wanted[(i, bi, bj)] = (p, bi, bj)
        blocks: dict[tuple[int, int, int], np.ndarray] = {}
        missing = []
        for key in wanted:
            block = self.cache.get(key) if self.cache.max_bytes > 0 else None
            if block is None:
                missing.append(key)
            else:
                blocks[key] = block
        if missing:
            with self.pool.borrow() as datasets:
                for key in missing:
                    p, bi, bj = wanted[key]
                    bh, bw, height, width, _ = self._layout[p]
                    win = Window(bj * bw, bi * bh, min(bw, width - bj * bw), min(bh, height - bi * bh))
                    blocks[key] = datasets[p].read(1, window=win)
            if self.cache.max_bytes > 0:
                for key in missing:
                    self.cache.put(key, blocks[key])
        out = {}
        for i, p in enumerate(self.paths):
            bh, bw, _, _, dtype = self._layout[p]
            arr = np.empty((h, w), dtype=dtype)
            for (k, bi, bj), block in blocks.items():
                if k != i:
                    continue
                # the part of block (bi, bj) inside the window, in window and block coordinates
                y0, y1 = max(r0, bi * bh), min(r0 + h, bi * bh + block.shape[0])
                x0, x1 = max(c0, bj * bw), min(c0 + w, bj * bw + block.shape[1])
                arr[y0 - r0:y1 - r0, x0 - c0:x1 - c0] = block[y0 - bi * bh:y1 - bi * bh, x0 - bj * bw:x1 - bj * bw]
            out[p] = arr
        return out

    def close(self) -> None:
        """Close the open datasets and empty the cache (no read may be running)."""
        self.pool.close()
        self.cache.clear()
