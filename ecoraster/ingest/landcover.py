"""Land use / land cover rasters → GEP ecosystem classes (``configs/classes``).

A reclassification table (``configs/landcover/<name>.csv``: ``src_code, src_name,
gep_code, note``) maps a product's codes to the GEP classes 11..72. :func:`check_codes`
scans a raster window by window and lists every code without a row;
:func:`reclassify` returns a lazy uint8 DataArray of GEP codes (nodata 0) on the source
grid or on a target :class:`~ecoraster.grid.Grid`.

Example::

    check_codes("wh2010_refy.tif", "wuhan_plus")
    eco = reclassify("wh2010_refy.tif", "wuhan_plus", grid=run_grid)
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import xarray as xr
from rasterio.windows import Window

from ..errors import MissingFileError, MissingLookupValuesError, TableError
from ..grid import DEFAULT_CHUNK, Grid, align_to, inspect_source
from ..io.integrity import checked_read
from ..resources import config_dirs, config_path
from ..kernels.ingest_lookup import build_dense_lut, reclassify_block, uncovered_mask
from ._common import georef

#: The GEP ecosystem classes, relative to the reference tables (:mod:`ecoraster.resources`).
CLASSES_CSV = ("classes", "gep_ecosystem_classes.csv")

#: Output nodata of GEP class rasters.
GEP_NODATA = 0
REQUIRED_COLUMNS = ("src_code", "src_name", "gep_code", "note")


@dataclass(frozen=True)
class LandcoverTable:
    """A loaded reclassification table.

    ``codes`` are the source codes as written (strings, e.g. ``"0101"``, ``"1104A"``);
    ``raster_codes`` / ``raster_gep`` are the integer-valued rows used for rasters.
    """

    name: str
    path: str
    codes: tuple[str, ...]
    gep_codes: tuple[int, ...]
    raster_codes: np.ndarray
    raster_gep: np.ndarray

    def as_dict(self) -> dict[str, int]:
        """Source code (string) → GEP code."""
        return dict(zip(self.codes, self.gep_codes))


def gep_class_codes() -> set[int]:
    """The GEP ecosystem class codes of ``configs/classes/gep_ecosystem_classes.csv``."""
    with open(config_path(*CLASSES_CSV), newline="", encoding="utf-8") as f:
        return {int(row["code"]) for row in csv.DictReader(f)}


def resolve_table_path(table: str | Path) -> Path:
    """A table name (``"esa_worldcover"``) or a path → the CSV path."""
    p = Path(table)
    if p.suffix.lower() != ".csv" and len(p.parts) == 1:
        p = config_path("landcover", f"{p.name}.csv", must_exist=False)
    if not p.exists():
        known = ", ".join(sorted({x.stem for d in config_dirs() for x in (d / "landcover").glob("*.csv")}))
        raise MissingFileError(str(p), field=f"landcover table (known: {known})")
    return p


def load_table(table: str | Path | LandcoverTable) -> LandcoverTable:
    """Read and check a reclassification table.

    Leading ``#`` lines are comments (the source of the legend). Raises
    :class:`~ecoraster.errors.TableError` naming the file, line and value when a column is
    missing, a code repeats (also as integer: ``0201`` and ``201``), or a ``gep_code`` is not
    a GEP class.
    """
    if isinstance(table, LandcoverTable):
        return table
    path = resolve_table_path(table)
    with open(path, newline="", encoding="utf-8-sig") as f:
        lines = [ln for ln in f if not ln.lstrip().startswith("#")]
    reader = csv.DictReader(lines)
    missing_cols = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing_cols:
        raise TableError(f"{path}: missing column(s) {missing_cols}; need {list(REQUIRED_COLUMNS)}")
    valid_gep = gep_class_codes()
    codes: list[str] = []
    gep: list[int] = []
    ints: dict[int, str] = {}
    for lineno, row in enumerate(reader, start=2):
        code = (row["src_code"] or "").strip()
        if not code:
            raise TableError(f"{path}: row {lineno}: empty src_code")
        try:
            g = int(row["gep_code"])
        except (TypeError, ValueError):
            raise TableError(f"{path}: row {lineno}: gep_code {row['gep_code']!r} is not an integer") from None
        if g not in valid_gep:
            raise TableError(f"{path}: row {lineno}: gep_code {g} is not a GEP class of {CLASSES_CSV[-1]}")
        if code in codes:
            raise TableError(f"{path}: row {lineno}: src_code {code!r} repeats")
        if code.lstrip("-").isdigit():
            as_int = int(code)
            if as_int in ints:
                raise TableError(
                    f"{path}: row {lineno}: src_code {code!r} equals {ints[as_int]!r} as an integer raster code"
                )
            ints[as_int] = code
        codes.append(code)
        gep.append(g)
    if not codes:
        raise TableError(f"{path}: no rows")
    raster_codes = np.array(sorted(ints), dtype=np.int64)
    lookup = dict(zip(codes, gep))
    raster_gep = np.array([lookup[ints[c]] for c in raster_codes], dtype=np.int32)
    return LandcoverTable(path.stem, str(path), tuple(codes), tuple(gep), raster_codes, raster_gep)


def lookup_codes(values, table: str | Path | LandcoverTable, *, where: str = "values") -> np.ndarray:
    """GEP codes for vector attribute values (e.g. a 三调 ``DLBM`` column).

    Values are matched as strings first (``"1104A"``), then as integers (``101`` ↔ ``"0101"``).
    Raises :class:`MissingLookupValuesError` listing every unmatched value and its count.
    """
    tab = load_table(table)
    by_str = tab.as_dict()
    by_int = dict(zip(tab.raster_codes.tolist(), tab.raster_gep.tolist()))
    out = np.zeros(len(values), dtype=np.uint8)
    missing: Counter = Counter()
    for i, v in enumerate(values):
        s = str(v).strip()
        if s in by_str:
            out[i] = by_str[s]
        elif s.lstrip("-").isdigit() and int(s) in by_int:
            out[i] = by_int[int(s)]
        else:
            missing[s] += 1
    if missing:
        raise MissingLookupValuesError(dict(missing), where, tab.path, column="src_code")
    return out


def _check_integer_dtype(path: str, dtype: str) -> None:
    if np.dtype(dtype).kind not in "iu":
        raise TableError(f"{path}: land-cover raster has dtype {dtype}; class codes must be an integer type")


def check_codes(
    source: str | Path,
    table: str | Path | LandcoverTable,
    *,
    band: int = 1,
    src_nodata: float | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> dict[int, int]:
    """Scan a land-cover raster window by window and check every code has a table row.

    Parameters
    ----------
    source : path
        Land-cover raster (integer class codes).
    table : name, path or LandcoverTable
        Reclassification table.
    src_nodata : float, optional
        Source nodata if the file declares none (those pixels are skipped).
    chunk : int
        Window edge in pixels; memory is bounded by ``chunk²`` pixels.

    Returns
    -------
    dict
        Pixel count per source code (nodata excluded), counted in int64.

    Raises
    ------
    MissingLookupValuesError
        Listing every code without a row and its pixel count.
    """
    tab = load_table(table)
    path = str(source)
    if not Path(path).exists():
        raise MissingFileError(path, field="landcover")
    lut, offset = build_dense_lut(tab.raster_codes, tab.raster_gep)
    counts: Counter = Counter()
    missing: Counter = Counter()
    with rasterio.open(path) as src:
        _check_integer_dtype(path, src.dtypes[band - 1])
        nd = src_nodata if src_nodata is not None else src.nodatavals[band - 1]
        has_nd = nd is not None
        nd_value = float(nd) if has_nd else 0.0
        for row0 in range(0, src.height, chunk):
            for col0 in range(0, src.width, chunk):
                win = Window(col0, row0, min(chunk, src.width - col0), min(chunk, src.height - row0))
                block = checked_read(src, band, window=win)
                valid = block != nd_value if has_nd else np.ones(block.shape, dtype=bool)
                vals, n = np.unique(block[valid], return_counts=True)
                counts.update(dict(zip(vals.tolist(), n.tolist())))
                bad = uncovered_mask(block, lut, offset, nd_value, has_nd)
                if bad.any():
                    vals, n = np.unique(block[bad], return_counts=True)
                    missing.update(dict(zip(vals.tolist(), n.tolist())))
    if missing:
        raise MissingLookupValuesError(dict(missing), path, tab.path, column="src_code")
    return dict(sorted(counts.items()))


def reclassify_array(codes: np.ndarray, table: str | Path | LandcoverTable, src_nodata: float | None = None) -> np.ndarray:
    """In-memory reclassification of a numpy array of codes (uint8 GEP codes, nodata 0)."""
    tab = load_table(table)
    lut, offset = build_dense_lut(tab.raster_codes, tab.raster_gep)
    has_nd = src_nodata is not None
    return reclassify_block(np.ascontiguousarray(codes), lut, offset,
                            float(src_nodata) if has_nd else 0.0, has_nd, GEP_NODATA)


def reclassify(
    source: str | Path,
    table: str | Path | LandcoverTable,
    grid: Grid | None = None,
    *,
    band: int = 1,
    src_nodata: float | None = None,
    src_crs=None,
    resampling: str = "mode",
    chunk: int = DEFAULT_CHUNK,
    check: bool = True,
) -> xr.DataArray:
    """Lazy GEP ecosystem-class raster from a land-cover raster.

    Parameters
    ----------
    source : path
        Land-cover raster with integer codes.
    table : name, path or LandcoverTable
        e.g. ``"esa_worldcover"``, ``"clcd"``, ``"sandiao_level2"``, ``"wuhan_plus"``.
    grid : Grid, optional
        Target grid; default the source's own grid. Codes are resampled (``mode`` or
        ``nearest``) *before* the lookup, so every output pixel is one source code.
    src_nodata, src_crs : optional
        Overrides for a source that lacks them.
    chunk : int
        Dask chunk edge in pixels.
    check : bool
        Scan the source first with :func:`check_codes` (raises before any long work).

    Returns
    -------
    xarray.DataArray
        uint8, dims (y, x), dask-backed; 0 = nodata; attrs ``units="class"``,
        ``nodata=0``, ``table``.
    """
    tab = load_table(table)
    info = inspect_source(source, band=band, crs=src_crs, nodata=src_nodata, field="landcover")
    _check_integer_dtype(info.path, info.dtype)
    if resampling not in ("mode", "nearest"):
        raise TableError(f"{info.path}: resampling {resampling!r} mixes class codes; use 'mode' or 'nearest'")
    if check:
        check_codes(info.path, tab, band=band, src_nodata=info.nodata, chunk=chunk)
    target = grid or info.grid
    codes = align_to(info, target, resampling, chunk=chunk, name="landcover_codes")
    lut, offset = build_dense_lut(tab.raster_codes, tab.raster_gep)
    nd = float(codes.attrs["nodata"])
    data = codes.data.map_blocks(
        reclassify_block, lut, offset, nd, True, GEP_NODATA, dtype=np.uint8,
        meta=np.empty((0, 0), dtype=np.uint8),
    )
    out = georef(xr.DataArray(data, dims=("y", "x"), name="ecosystem_class"), target)
    out.attrs = {"units": "class", "nodata": GEP_NODATA, "_FillValue": GEP_NODATA,
                 "table": tab.path, "source": info.path, "resampling": resampling,
                 "classes": "configs/" + "/".join(CLASSES_CSV)}
    return out
