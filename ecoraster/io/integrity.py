"""Is a raster file whole? Checks of the blocks (tiles or strips) of an input raster.

A corrupt or truncated full-resolution tile can hide behind a GeoTIFF's overviews: a
sampled read (``eco validate``) is served from the overviews and never touches it. Three
checks find it, from cheap to thorough:

- :func:`layout_problem` — every block of a GeoTIFF (full resolution and every overview) lies
  inside the file: GDAL's ``BLOCK_OFFSET_x_y`` / ``BLOCK_SIZE_x_y`` items of the ``TIFF``
  metadata domain against the file size. Reads no pixel; finds truncated files and broken
  offsets. Run by every validation.
- :func:`decode_problem` — every full-resolution block the run needs decodes (one read of
  each block, bounded memory). Finds scrambled bytes in a tile that still fits in the file.
  Run once per file version by ``eco run`` before any computation (remembered in the
  workspace, :mod:`ecoraster.pipeline.verify`).
- :func:`read_error` — turns a GDAL read failure during compute into one
  :class:`CorruptRasterError` line naming the file and the block, instead of a traceback.

Windows are ``(row_off, col_off, height, width)`` in pixels of the full-resolution raster.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import InputDataError

#: pixels (× bands) read at once by :func:`decode_problem` (≈ 64 MB of float32)
DECODE_PIXELS = 16 * 1024 * 1024

_BLOCK_IN_GDAL_MESSAGE = re.compile(r"IReadBlock failed at X offset (\d+), Y offset (\d+)")


class CorruptRasterError(InputDataError):
    """A block of an input raster cannot be read (truncated file, broken offset, bytes that do not decode)."""


Window = tuple[int, int, int, int]


def describe_block(path: str | os.PathLike, bx: int, by: int, block: tuple[int, int],
                   shape: tuple[int, int], level: str = "full resolution") -> str:
    """``FILE: block (col bx, row by) of the full resolution (rows r0–r1, cols c0–c1)``."""
    bh, bw = block
    r0, c0 = by * bh, bx * bw
    r1, c1 = min(r0 + bh, shape[0]), min(c0 + bw, shape[1])
    return f"{path}: block (col {bx}, row {by}) of the {level} (rows {r0}–{r1 - 1}, cols {c0}–{c1 - 1})"


def _blocks_in(window: Window | None, shape: tuple[int, int], block: tuple[int, int]) -> Iterator[tuple[int, int]]:
    r0, c0, h, w = window or (0, 0, *shape)
    bh, bw = block
    for by in range(r0 // bh, (min(r0 + h, shape[0]) - 1) // bh + 1):
        for bx in range(c0 // bw, (min(c0 + w, shape[1]) - 1) // bw + 1):
            yield bx, by


def _layout_of(src: Any, size: int, path: str, window: Window | None, level: str) -> str | None:
    """First block of ``src`` outside a file of ``size`` bytes, with the count of such blocks."""
    bh, bw = src.block_shapes[0]
    shape = (src.height, src.width)
    separate = src.count > 1 and str(getattr(src, "interleaving", "") or "").lower().endswith("band")
    bands = range(1, src.count + 1) if separate else range(1, 2)
    first, bad = None, 0
    for b in bands:
        for bx, by in _blocks_in(window, shape, (bh, bw)):
            off = src.get_tag_item(f"BLOCK_OFFSET_{bx}_{by}", "TIFF", bidx=b)
            if off is None:
                return None  # the driver does not expose its layout: nothing to check
            n = int(src.get_tag_item(f"BLOCK_SIZE_{bx}_{by}", "TIFF", bidx=b) or 0)
            off_i = int(off)
            if off_i == 0 and n == 0:
                continue  # a sparse (absent) block reads as nodata: allowed by GeoTIFF
            if off_i <= 0 or n <= 0 or off_i + n > size:
                bad += 1
                if first is None:
                    where = f"bytes {off_i}–{off_i + n}" if n > 0 else f"offset {off_i} with size {n}"
                    first = (f"{describe_block(path, bx, by, (bh, bw), shape, level)}"
                             f"{f' of band {b}' if separate else ''} lies at {where}, the file has {size} bytes")
    if first is None:
        return None
    more = f" ({bad - 1} more block(s) like it)" if bad > 1 else ""
    return f"{first}{more}: the file is truncated or damaged — copy or download it again"


def layout_problem(path: str | os.PathLike, window: Window | None = None) -> str | None:
    """Why a GeoTIFF's block layout is broken, or None. Reads metadata only.

    Checks every block of the full resolution inside ``window`` (default: all) and every block
    of every overview; a block must lie within the file. Other formats: None."""
    import rasterio

    path = str(path)
    size = Path(path).stat().st_size
    with rasterio.open(path) as src:
        if src.driver != "GTiff":
            return None
        found = _layout_of(src, size, path, window, "full resolution")
        n_overviews = len(src.overviews(1))
    if found:
        return found
    for level in range(n_overviews):
        with rasterio.open(path, overview_level=level) as ovr:
            found = _layout_of(ovr, size, path, None, f"overview {level + 1}")
        if found:
            return found
    return None


def read_error(path: str | os.PathLike, exc: BaseException, window: Window | None = None,
               block: tuple[int, int] | None = None, shape: tuple[int, int] | None = None) -> CorruptRasterError:
    """One line for a read of ``path`` that GDAL refused: the file, the block (from GDAL's message
    when it names one, else the window read) and GDAL's reason."""
    messages = [str(x) for x in (exc.__cause__, exc.__context__, exc) if x is not None]
    detail = next((t for t in messages if "previous exception" not in t), messages[-1])
    m = _BLOCK_IN_GDAL_MESSAGE.search(detail)
    reason = detail[m.end():].lstrip(": ") if m else detail
    if m and block and shape:
        where = describe_block(path, int(m.group(1)), int(m.group(2)), block, shape)
    elif window is not None:
        r0, c0, h, w = window
        where = f"{path}: pixels rows {r0}–{r0 + h - 1}, cols {c0}–{c0 + w - 1}"
    else:
        where = str(path)
    return CorruptRasterError(f"{where} cannot be read ({reason.strip()}): the file is damaged — "
                              f"copy or download it again")


def decode_problem(path: str | os.PathLike, window: Window | None = None) -> str | None:
    """Read every full-resolution block of ``path`` inside ``window`` (default: all), all bands;
    the first block that does not decode, or None. Memory stays under :data:`DECODE_PIXELS`."""
    import rasterio
    from rasterio.errors import RasterioError
    from rasterio.windows import Window as RWindow

    path = str(path)
    with rasterio.open(path) as src:
        bh, bw = src.block_shapes[0]
        shape = (src.height, src.width)
        r0, c0, h, w = window or (0, 0, *shape)
        r1, c1 = min(r0 + h, shape[0]), min(c0 + w, shape[1])
        # whole blocks: from the first block row / column of the window to the last
        ra, ca = (r0 // bh) * bh, (c0 // bw) * bw
        step_cols = max(bw, (DECODE_PIXELS // max(bh * src.count, 1)) // bw * bw)
        for rr in range(ra, r1, bh):
            for cc in range(ca, c1, step_cols):
                win = (rr, cc, min(bh, shape[0] - rr), min(step_cols, shape[1] - cc))
                try:
                    src.read(window=RWindow(win[1], win[0], win[3], win[2]))
                except RasterioError as exc:
                    return str(read_error(path, exc, win, (bh, bw), shape))
    return None


def checked_read(src: Any, *args: Any, window: Any = None, **kwargs: Any) -> Any:
    """``src.read(*args, window=window, **kwargs)`` of an open rasterio dataset; a block GDAL
    cannot read becomes one :class:`CorruptRasterError` naming the file and the block."""
    from rasterio.errors import RasterioError

    try:
        return src.read(*args, window=window, **kwargs)
    except RasterioError as exc:
        win = None if window is None else (int(window.row_off), int(window.col_off),
                                           int(window.height), int(window.width))
        raise read_error(src.name, exc, win, src.block_shapes[0], (src.height, src.width)) from None
