"""Scratch arrays: a whole 2-D array spilled to a ``.npy`` file and read back by windows.

Whole-raster steps (the flow routing of soil retention) hold arrays that the block-by-block
writing after them only reads window by window. Kept in memory they add their full size to the
peak of the write (a float64 accumulation is 0.8 GB at 100 Mpx); memory-mapped, every page
the windows touch stays resident in the process and counts in its RSS. A :class:`ScratchArray`
reads each window with positioned reads (``os.pread``) instead: the bytes pass through the
kernel's page cache, which the kernel frees when it needs to, and the process holds only the
window. It has ``shape``, ``dtype``, ``ndim`` and basic slicing, so ``dask.array.from_array``
takes it as it is; it pickles by path (a Dask cluster's workers open the file themselves).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np


class ScratchArray:
    """A read-only 2-D C-ordered array in a ``.npy`` file, read by windows."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd: int | None = None
        self._lock = threading.Lock()
        with open(self.path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(fh)
            self._offset = fh.tell()
        if fortran or len(shape) != 2 or dtype.hasobject:
            raise ValueError(f"{self.path}: a scratch array is a 2-D C-ordered numeric array (got {shape}, {dtype})")
        self.shape: tuple[int, int] = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        self.ndim = 2

    @classmethod
    def save(cls, path: str | os.PathLike, array: np.ndarray) -> ScratchArray:
        """Write ``array`` (2-D) to ``path`` and return its reader; the caller may then free it."""
        np.save(path, np.ascontiguousarray(array), allow_pickle=False)
        return cls(path)

    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]

    def __len__(self) -> int:
        return self.shape[0]

    def _descriptor(self) -> int:
        if self._fd is None:
            with self._lock:
                if self._fd is None:
                    self._fd = os.open(self.path, os.O_RDONLY)
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass

    def read(self, row0: int, row1: int, col0: int, col1: int) -> np.ndarray:
        """Rows ``row0:row1``, columns ``col0:col1`` (clipped to the array), as a new array."""
        rows, cols = self.shape
        row0, row1 = max(0, min(row0, rows)), max(0, min(row1, rows))
        col0, col1 = max(0, min(col0, cols)), max(0, min(col1, cols))
        out = np.empty((max(row1 - row0, 0), max(col1 - col0, 0)), dtype=self.dtype)
        if out.size == 0:
            return out
        item = self.dtype.itemsize
        fd = self._descriptor()
        if col0 == 0 and col1 == cols:  # whole rows: one read
            self._read_into(fd, out.reshape(-1).view(np.uint8), self._offset + row0 * cols * item)
            return out
        for i in range(out.shape[0]):
            self._read_into(fd, out[i].view(np.uint8), self._offset + ((row0 + i) * cols + col0) * item)
        return out

    def _read_into(self, fd: int, buf: np.ndarray, offset: int) -> None:
        view = memoryview(buf)
        done = 0
        while done < len(view):
            n = os.preadv(fd, [view[done:]], offset + done)
            if n <= 0:
                raise OSError(f"{self.path}: short read at byte {offset + done}")
            done += n

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (2 - len(key))
        if len(key) != 2 or not all(isinstance(k, slice) and k.step in (None, 1) for k in key):
            return self.read(0, self.shape[0], 0, self.shape[1])[key]
        (r0, r1, _), (c0, c1, _) = (k.indices(n) for k, n in zip(key, self.shape))
        return self.read(r0, r1, c0, c1)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self.read(0, self.shape[0], 0, self.shape[1])
        return whole if dtype is None else whole.astype(dtype)
