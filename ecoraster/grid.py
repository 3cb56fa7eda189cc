"""The run's target grid and the one alignment step every raster goes through.

A :class:`Grid` is a CRS, an affine transform and a shape (rows, cols). ``align_to``
returns a lazy, dask-backed :class:`xarray.DataArray` of any raster on that grid:
each chunk is read (same grid: a plain window read) or warped (other grid: GDAL warp of
just that window) when dask computes it, so memory stays bounded by the chunk size
whatever the raster size. The graph holds paths and numbers only, so it runs on a
distributed cluster as well as on local threads.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import rasterio
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine
from dask.base import tokenize
from rasterio.crs import CRS
from rasterio.enums import Resampling as RioResampling
from rasterio.errors import RasterioError
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window

from .errors import (
    GridMismatchError,
    MissingCRSError,
    MissingFileError,
    NodataNotRepresentableError,
    NodataUndefinedError,
    NoOverlapError,
)
from .io.integrity import checked_read, read_error

log = logging.getLogger(__name__)

#: Default chunk edge in pixels (2048² float32 = 16 MiB per chunk).
DEFAULT_CHUNK = 2048

RESAMPLING = {
    "nearest": RioResampling.nearest,
    "mode": RioResampling.mode,
    "bilinear": RioResampling.bilinear,
    "cubic": RioResampling.cubic,
    "average": RioResampling.average,
    "sum": RioResampling.sum,
    "min": RioResampling.min,
    "max": RioResampling.max,
}


@dataclass(frozen=True)
class Grid:
    """A raster grid: CRS, affine transform (north-up) and shape ``(rows, cols)``."""

    crs: CRS
    transform: Affine
    shape: tuple[int, int]

    def __repr__(self) -> str:
        epsg = self.crs.to_epsg()
        crs = f"EPSG:{epsg}" if epsg else self.crs.to_string()[:40]
        return f"Grid({crs}, res={self.res}, shape={self.shape}, bounds={tuple(round(b, 3) for b in self.bounds)})"

    def __post_init__(self) -> None:
        if self.transform.b != 0 or self.transform.d != 0:
            raise GridMismatchError(f"rotated grids are not supported: transform {tuple(self.transform)[:6]}")
        if self.shape[0] <= 0 or self.shape[1] <= 0:
            raise GridMismatchError(f"grid shape must be positive, got {self.shape}")

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_raster(cls, path: str | Path) -> Grid:
        """The grid of an existing raster file."""
        path = str(path)
        if "://" not in path and not Path(path).exists():
            raise MissingFileError(path)
        with rasterio.open(path) as src:
            if src.crs is None:
                raise MissingCRSError(path)
            return cls(CRS.from_user_input(src.crs), src.transform, (src.height, src.width))

    @classmethod
    def from_bounds(cls, crs: Any, bounds: tuple[float, float, float, float], resolution: float) -> Grid:
        """A grid covering ``bounds`` (left, bottom, right, top) in ``crs``, snapped
        outward to multiples of ``resolution`` (metres or degrees of that CRS)."""
        left, bottom, right, top = bounds
        res = float(resolution)
        left = math.floor(left / res) * res
        bottom = math.floor(bottom / res) * res
        right = math.ceil(right / res) * res
        top = math.ceil(top / res) * res
        cols = int(round((right - left) / res))
        rows = int(round((top - bottom) / res))
        return cls(CRS.from_user_input(crs), Affine(res, 0, left, 0, -res, top), (rows, cols))

    # -- geometry -----------------------------------------------------------------------
    @property
    def height(self) -> int:
        return self.shape[0]

    @property
    def width(self) -> int:
        return self.shape[1]

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size (x, y) as positive numbers, in CRS units."""
        return abs(self.transform.a), abs(self.transform.e)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        left, top = self.transform.c, self.transform.f
        right = left + self.transform.a * self.width
        bottom = top + self.transform.e * self.height
        return (min(left, right), min(top, bottom), max(left, right), max(top, bottom))

    @property
    def is_geographic(self) -> bool:
        return bool(self.crs.is_geographic)

    def window_transform(self, row_off: int, col_off: int) -> Affine:
        return self.transform @ Affine.translation(col_off, row_off)

    @cached_property
    def _row_area_cache(self) -> np.ndarray:
        return self._compute_row_areas()

    def row_areas_m2(self) -> np.ndarray:
        """Area in m² of one pixel in each row, float64, length ``rows``.

        Projected CRS: |a·e| × (linear unit in metres)², the same for every row.
        Geographic CRS: the area of the cell on the CRS's ellipsoid (pyproj Geod), which
        shrinks towards the poles.
        """
        return self._row_area_cache

    def _compute_row_areas(self) -> np.ndarray:
        rows = self.height
        if not self.is_geographic:
            unit = self.crs.linear_units_factor[1] if self.crs.linear_units_factor else 1.0
            area = abs(self.transform.a * self.transform.e) * unit * unit
            return np.full(rows, area, dtype=np.float64)
        from pyproj import CRS as PCRS
        from pyproj import Geod

        geod = PCRS.from_user_input(self.crs.to_wkt()).get_geod() or Geod(ellps="WGS84")
        dlon = abs(self.transform.a)
        out = np.empty(rows, dtype=np.float64)
        lon0 = self.transform.c
        for r in range(rows):
            lat_top = self.transform.f + self.transform.e * r
            lat_bot = lat_top + self.transform.e
            area, _ = geod.polygon_area_perimeter(
                [lon0, lon0 + dlon, lon0 + dlon, lon0], [lat_bot, lat_bot, lat_top, lat_top]
            )
            out[r] = abs(area)
        return out

    def pixel_area_m2(self) -> float:
        """Area of one pixel in m² (projected grids only; use ``row_areas_m2`` otherwise)."""
        if self.is_geographic:
            raise GridMismatchError("pixel area varies by row on a geographic grid; use row_areas_m2()")
        return float(self.row_areas_m2()[0])

    def same_as(self, other: Grid, rel_tol: float = 1e-9) -> bool:
        """True if both grids have the same CRS, shape and (almost) the same transform."""
        if self.shape != other.shape or self.crs != other.crs:
            return False
        scale = max(self.res)
        return all(
            math.isclose(a, b, rel_tol=rel_tol, abs_tol=scale * 1e-6)
            for a, b in zip(tuple(self.transform)[:6], tuple(other.transform)[:6])
        )

    def chunks(self, chunk: int = DEFAULT_CHUNK) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Dask chunks for this grid with square chunks of edge ``chunk`` pixels."""
        return da.core.normalize_chunks((chunk, chunk), self.shape)

    def coords(self) -> dict[str, np.ndarray]:
        """Pixel-centre x and y coordinates (for xarray)."""
        xs = self.transform.c + self.transform.a * (np.arange(self.width) + 0.5)
        ys = self.transform.f + self.transform.e * (np.arange(self.height) + 0.5)
        return {"y": ys, "x": xs}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (for manifests and STAC ``proj:`` fields)."""
        epsg = self.crs.to_epsg()
        return {
            "crs": f"EPSG:{epsg}" if epsg else self.crs.to_wkt(),
            "transform": list(tuple(self.transform)[:6]),
            "shape": list(self.shape),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Grid:
        return cls(CRS.from_user_input(d["crs"]), Affine(*d["transform"]), tuple(d["shape"]))


# ---------------------------------------------------------------------------------------
# alignment
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SourceInfo:
    """What ``align_to`` needs to know of a source raster (read once, eagerly)."""

    path: str
    band: int
    crs: CRS
    transform: Affine
    shape: tuple[int, int]
    dtype: str
    nodata: float

    @property
    def grid(self) -> Grid:
        return Grid(self.crs, self.transform, self.shape)


def inspect_source(
    path: str | Path,
    *,
    band: int = 1,
    crs: Any = None,
    nodata: float | None = None,
    field: str | None = None,
) -> SourceInfo:
    """Open a raster's header and check it is usable: exists, has a CRS, has nodata.

    ``crs`` / ``nodata`` override what the file says (from the catalogue). Raises
    :class:`MissingFileError`, :class:`MissingCRSError` or :class:`NodataUndefinedError`
    naming the file and ``field``.
    """
    path = str(path)
    if "://" not in path and not Path(path).exists():
        raise MissingFileError(path, field=field)
    with rasterio.open(path) as src:
        src_crs = CRS.from_user_input(crs) if crs is not None else src.crs
        if src_crs is None:
            raise MissingCRSError(path, field=field)
        nd = nodata if nodata is not None else src.nodatavals[band - 1]
        if nd is None:
            raise NodataUndefinedError(path, field=field)
        return SourceInfo(path, band, src_crs, src.transform, (src.height, src.width),
                          src.dtypes[band - 1], float(nd))


def check_representable(nodata: float, dtype: Any, where: str) -> None:
    """Raise if ``nodata`` cannot be stored exactly in ``dtype``."""
    dt = np.dtype(dtype)
    if np.isnan(nodata):
        if dt.kind != "f":
            raise NodataNotRepresentableError(nodata, str(dt), where)
        return
    if dt.kind in "iu":
        info = np.iinfo(dt)
        if not (float(nodata).is_integer() and info.min <= nodata <= info.max):
            raise NodataNotRepresentableError(nodata, str(dt), where)
    elif dt.kind == "f":
        if np.isinf(nodata):
            return
        with np.errstate(over="ignore"):
            cast = dt.type(nodata)
        if not np.isfinite(cast):
            raise NodataNotRepresentableError(nodata, str(dt), where)


def _pixel_offset(src: Grid, dst: Grid) -> tuple[int, int] | None:
    """(row, col) offset of dst's origin in src pixels if both grids share CRS, pixel
    size and pixel edges; otherwise None (a warp is needed)."""
    if src.crs != dst.crs:
        return None
    sa, se, da_, de = src.transform.a, src.transform.e, dst.transform.a, dst.transform.e
    if not (math.isclose(sa, da_, rel_tol=1e-9) and math.isclose(se, de, rel_tol=1e-9)):
        return None
    col = (dst.transform.c - src.transform.c) / sa
    row = (dst.transform.f - src.transform.f) / se
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    return int(round(row)), int(round(col))


def _read_chunk(
    info: SourceInfo,
    grid: Grid,
    resampling: str,
    dtype: str,
    dst_nodata: float,
    row0: int,
    row1: int,
    col0: int,
    col1: int,
) -> np.ndarray:
    """Read rows [row0, row1) × cols [col0, col1) of ``grid`` from the source."""
    h, w = row1 - row0, col1 - col0
    out = np.full((h, w), dst_nodata, dtype=dtype)
    offset = _pixel_offset(info.grid, grid)
    with rasterio.open(info.path) as src:
        if offset is not None:
            # Same pixel lattice: a plain window read of the overlapping part.
            r_src0, c_src0 = row0 + offset[0], col0 + offset[1]
            rs0, cs0 = max(r_src0, 0), max(c_src0, 0)
            rs1, cs1 = min(r_src0 + h, info.shape[0]), min(c_src0 + w, info.shape[1])
            if rs1 > rs0 and cs1 > cs0:
                block = checked_read(src, info.band, window=Window(cs0, rs0, cs1 - cs0, rs1 - rs0))
                if np.isnan(info.nodata):
                    invalid = np.isnan(block)
                else:
                    invalid = block == info.nodata
                    if block.dtype.kind == "f":
                        invalid |= np.isnan(block)
                target = out[rs0 - r_src0: rs1 - r_src0, cs0 - c_src0: cs1 - c_src0]
                target[...] = block.astype(dtype, copy=False)
                target[invalid] = dst_nodata
        else:
            try:
                reproject(
                    source=rasterio.band(src, info.band),
                    destination=out,
                    src_crs=info.crs,
                    src_transform=info.transform,
                    src_nodata=info.nodata,
                    dst_transform=grid.window_transform(row0, col0),
                    dst_crs=grid.crs,
                    dst_nodata=dst_nodata,
                    resampling=RESAMPLING[resampling],
                )
            except RasterioError as exc:  # a block of the source that GDAL cannot read: one line
                raise read_error(info.path, exc, None, src.block_shapes[0], (src.height, src.width)) from None
    return out


def align_to(
    source: str | Path | SourceInfo,
    grid: Grid,
    resampling: str = "nearest",
    *,
    dtype: Any = None,
    nodata: float | None = None,
    src_nodata: float | None = None,
    src_crs: Any = None,
    band: int = 1,
    chunk: int = DEFAULT_CHUNK,
    name: str | None = None,
    field: str | None = None,
) -> xr.DataArray:
    """Lazily align a raster to ``grid``.

    Parameters
    ----------
    source : path or SourceInfo
        The raster to read.
    grid : Grid
        The run's target grid.
    resampling : str
        ``nearest`` / ``mode`` for classes; ``bilinear`` / ``average`` for continuous
        values; ``sum`` to preserve totals of counts. Declared per input kind in the
        catalogue.
    dtype, nodata : optional
        Output dtype and nodata (default: the source's). Source nodata pixels and pixels
        outside the source become ``nodata``.
    src_nodata, src_crs : optional
        Overrides for a source that lacks them (from the catalogue).

    Returns
    -------
    xarray.DataArray
        2-D (y, x), dask-backed, chunks of ``chunk`` pixels; ``attrs`` hold ``nodata``,
        ``source`` and ``resampling``; the CRS is written with rioxarray.
    """
    info = source if isinstance(source, SourceInfo) else inspect_source(
        source, band=band, crs=src_crs, nodata=src_nodata, field=field
    )
    if resampling not in RESAMPLING:
        raise GridMismatchError(f"{info.path}: unknown resampling {resampling!r}; use one of {sorted(RESAMPLING)}")
    out_dtype = np.dtype(dtype or info.dtype).name
    out_nodata = float(info.nodata if nodata is None else nodata)
    check_representable(out_nodata, out_dtype, f"{info.path} aligned as {out_dtype}")
    _check_overlap(info, grid)

    row_chunks, col_chunks = grid.chunks(chunk)
    token = tokenize(info, _mtime(info.path), grid.to_dict(), resampling, out_dtype, out_nodata, chunk)
    key = f"align-{Path(info.path).stem}-{token}"
    graph: dict = {}
    r0 = 0
    for i, rh in enumerate(row_chunks):
        c0 = 0
        for j, cw in enumerate(col_chunks):
            graph[(key, i, j)] = (_read_chunk, info, grid, resampling, out_dtype, out_nodata,
                                  r0, r0 + rh, c0, c0 + cw)
            c0 += cw
        r0 += rh
    arr = da.Array(graph, key, chunks=(row_chunks, col_chunks), dtype=out_dtype,
                   meta=np.empty((0, 0), dtype=out_dtype))
    result = xr.DataArray(
        arr, dims=("y", "x"), coords=grid.coords(), name=name or Path(info.path).stem,
        attrs={"nodata": out_nodata, "_FillValue": out_nodata, "source": info.path,
               "resampling": resampling},
    )
    return result.rio.write_crs(grid.crs).rio.write_transform(grid.transform)


def _mtime(path: str) -> float:
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return 0.0


def _check_overlap(info: SourceInfo, grid: Grid) -> None:
    src_bounds = info.grid.bounds
    try:
        in_grid = transform_bounds(info.crs, grid.crs, *src_bounds, densify_pts=21)
    except Exception as exc:
        raise GridMismatchError(f"{info.path}: cannot transform its bounds to {grid.crs}: {exc}") from None
    gl, gb, gr, gt = grid.bounds
    il, ib, ir, it = in_grid
    if not (il < gr and ir > gl and ib < gt and it > gb):
        raise NoOverlapError(info.path, in_grid, grid.bounds, str(grid.crs))


def _read_bands_chunk(path: str, shape: tuple[int, int], nodata: tuple[float, ...], offset: tuple[int, int],
                      row0: int, row1: int, col0: int, col1: int) -> np.ndarray:
    """Rows [row0, row1) × cols [col0, col1) of the grid from every band of a source on the
    grid's lattice (``offset`` = grid origin in source pixels): float32 (bands, rows, cols),
    NaN outside the source or where a band is nodata."""
    n = len(nodata)
    out = np.full((n, row1 - row0, col1 - col0), np.nan, dtype=np.float32)
    rs0, cs0 = row0 + offset[0], col0 + offset[1]
    a0, b0 = max(rs0, 0), max(cs0, 0)
    a1, b1 = min(rs0 + (row1 - row0), shape[0]), min(cs0 + (col1 - col0), shape[1])
    if a1 <= a0 or b1 <= b0:
        return out
    with rasterio.open(path) as src:
        data = checked_read(src, list(range(1, n + 1)), window=Window(b0, a0, b1 - b0, a1 - a0))
    target = out[:, a0 - rs0:a1 - rs0, b0 - cs0:b1 - cs0]
    target[...] = data
    for b, nd in enumerate(nodata):
        if not np.isnan(nd):
            target[b][data[b] == nd] = np.nan
    return out


def align_bands(
    source: str | Path,
    grid: Grid,
    resampling: str,
    n_bands: int,
    *,
    src_crs: Any = None,
    src_nodata: float | None = None,
    chunk: int = DEFAULT_CHUNK,
    name: str | None = None,
    field: str | None = None,
) -> list[da.Array]:
    """Bands 1..``n_bands`` of a multi-band raster aligned lazily to ``grid``: float32, NaN =
    nodata (e.g. the 12 monthly bands of a CASA input).

    A source on the grid's pixel lattice is read with one window read of all bands per
    block (one open and one decode of each tile instead of one per band); any other source
    goes through :func:`align_to` band by band (reprojection / resampling). The overlap is
    checked as for :func:`align_to`.
    """
    infos = [inspect_source(source, band=b, crs=src_crs, nodata=src_nodata, field=field)
             for b in range(1, n_bands + 1)]
    offset = _pixel_offset(infos[0].grid, grid)
    if offset is None:
        return [align_to(info, grid, resampling, dtype="float32", nodata=float("nan"), chunk=chunk,
                         name=f"{name or Path(info.path).stem}_{info.band}").data for info in infos]
    if resampling not in RESAMPLING:
        raise GridMismatchError(f"{infos[0].path}: unknown resampling {resampling!r}; use one of {sorted(RESAMPLING)}")
    _check_overlap(infos[0], grid)
    nodata = tuple(float(info.nodata) for info in infos)
    row_chunks, col_chunks = grid.chunks(chunk)
    token = tokenize(infos[0].path, _mtime(infos[0].path), nodata, grid.to_dict(), offset, chunk)
    key = f"align-bands-{Path(infos[0].path).stem}-{token}"
    graph: dict = {}
    r0 = 0
    for i, rh in enumerate(row_chunks):
        c0 = 0
        for j, cw in enumerate(col_chunks):
            graph[(key, 0, i, j)] = (_read_bands_chunk, infos[0].path, infos[0].shape, nodata, offset,
                                     r0, r0 + rh, c0, c0 + cw)
            c0 += cw
        r0 += rh
    stack = da.Array(graph, key, chunks=((n_bands,), row_chunks, col_chunks), dtype=np.float32,
                     meta=np.empty((0, 0, 0), dtype=np.float32))
    return [stack[b] for b in range(n_bands)]
