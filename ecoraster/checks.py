"""Plausibility checks of inputs before and during a run: units, physical ranges, coverage
of the grid, parameter tables and zone sets.

- **Units.** A catalogue entry's ``units`` must parse (pint, :mod:`ecoraster.units`) and
  convert to the unit the service's :class:`~ecoraster.spec.InputSpec` declares. A compatible
  but different unit (``m/yr`` for ``mm/yr``) is converted on read (×1000); an annual flow
  and a per-year total (``mm`` vs ``mm/yr``) are taken as the same over a one-year period.
- **Ranges.** ``configs/parameters/input_ranges.yaml`` gives a physical range per input id.
  ``eco validate`` checks a decimated read (GDAL uses overviews when the file has them);
  :func:`guard_raster` enforces it on every pixel during compute: a value outside fails the
  run naming the dataset, the value and the pixel (row, column and x, y on the run grid).
- **Coverage.** Share of the grid each raster input covers (partial → warning with numbers),
  each zone set's overlap with the grid (none → error), zone geometry type, duplicate ids,
  CRS, zero-byte and CSV files.
- **Tables.** Declared numeric columns must be finite, within ``table_columns`` bounds.

Warnings go to the ``ecoraster.checks`` logger (shown on stderr by ``eco``); errors are
:class:`~ecoraster.spec.Issue` lists (validation) or :class:`InputRangeError` (compute).
"""

from __future__ import annotations

import logging
import math
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import EcorasterError, InputDataError, UnitError
from .spec import Issue

if TYPE_CHECKING:
    import xarray as xr

    from .context import ServiceContext

log = logging.getLogger(__name__)

#: unit strings that name no physical quantity (class codes, flags): never converted
NON_PHYSICAL = {"class", "0/1", "-", "quantity_unit", "value_unit"}
#: dimensionless spellings → pint's "1"
_DIMENSIONLESS = {"1", "fraction", "ratio", "dimensionless", "index", "unitless"}
#: a raster covering less than this share of the grid is reported
COVERAGE_WARN = 0.999


class InputRangeError(InputDataError):
    """A raster or table value is outside the physical range declared for its input kind."""


# -- units ---------------------------------------------------------------------------------
@lru_cache(maxsize=256)
def unit_transform(src: str, dst: str) -> tuple[float, float, str]:
    """``(scale, offset, note)`` with ``value_in_dst = value_in_src × scale + offset``.

    ``mm/yr`` ↔ ``mm`` (an annual total over the one-year accounting period) are taken as
    equal. Raises :class:`UnitError` when the dimensions differ (``K`` for ``mm/yr``)."""
    from pint.errors import DimensionalityError

    from . import units

    s, d = src.strip(), dst.strip()
    if s == d:
        return 1.0, 0.0, ""
    if s in NON_PHYSICAL or d in NON_PHYSICAL:
        raise UnitError(f"{src!r} is not convertible to {dst!r}")
    ureg = units.registry()
    a = ureg.Unit("") if s in _DIMENSIONLESS else units.parse(s)
    b = ureg.Unit("") if d in _DIMENSIONLESS else units.parse(d)
    note = ""
    for cand, why in ((a, ""), (a * ureg.year, "annual flow over one year"),
                      (a / ureg.year, "total over the one-year accounting period")):
        try:
            y0 = ureg.Quantity(0.0, cand).to(b).magnitude
            y1 = ureg.Quantity(1.0, cand).to(b).magnitude
        except DimensionalityError:
            continue
        except Exception as exc:  # offset units in compound expressions
            raise UnitError(f"{src!r} → {dst!r}: {exc}") from None
        note = why
        scale, offset = float(y1 - y0), float(y0)
        if not (scale == 1.0 and offset == 0.0):
            note = f"{src} → {dst} (× {scale:g}{f' + {offset:g}' if offset else ''}){'; ' + note if note else ''}"
        return scale, offset, note
    raise UnitError(f"{src!r} is not convertible to {dst!r} "
                    f"({a.dimensionality or 'dimensionless'} vs {b.dimensionality or 'dimensionless'})")


def input_units_transform(ctx: ServiceContext, input_id: str) -> tuple[float, float, str]:
    """Transform from an input's catalogue units to the units its spec declares (identity when
    either side declares none, or for class rasters)."""
    ispec = ctx.spec.input(input_id)
    entry = ctx.entry(input_id)
    if ispec.categorical or not ispec.units or not entry.units or ispec.units in NON_PHYSICAL:
        return 1.0, 0.0, ""
    try:
        return unit_transform(entry.units, ispec.units)
    except UnitError as exc:
        raise UnitError(f"datasets.{entry.id}.units = {entry.units!r} ({entry.uri}): not convertible to "
                        f"{ispec.units!r}, the unit of {ctx.spec.id}.{input_id} — {exc}") from None


# -- ranges --------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def range_table() -> dict[str, Any]:
    """``configs/parameters/input_ranges.yaml`` as a mapping."""
    from . import yamlio
    from .resources import config_path

    return yamlio.read_mapping(config_path("parameters", "input_ranges.yaml"), field="input_ranges")


def input_range(ctx: ServiceContext, input_id: str) -> tuple[float, float] | None:
    """(min, max) of an input in the units its spec declares, or None if no range is declared."""
    ispec = ctx.spec.input(input_id)
    row = (range_table().get("inputs") or {}).get(input_id)
    if row is None or ispec.categorical or not ispec.units:
        return None
    lo, hi = row.get("min", -math.inf), row.get("max", math.inf)
    try:
        scale, offset, _ = unit_transform(str(row["units"]), ispec.units)
    except UnitError:
        return None
    lo, hi = lo * scale + offset, hi * scale + offset
    return (min(lo, hi), max(lo, hi))


def _outside(block: np.ndarray, nodata: float | None, lo: float, hi: float) -> np.ndarray:
    """Boolean mask of valid (not nodata) values outside [lo, hi]; non-finite values are outside."""
    with np.errstate(invalid="ignore"):
        bad = ~((block >= lo) & (block <= hi))
    if nodata is not None:
        bad &= ~(np.isnan(block) if np.isnan(nodata) else block == nodata)
    return bad


def _range_message(dataset: str, uri: str, where: str, value: float, lo: float, hi: float, units: str,
                   location: str, n: int | None = None) -> str:
    count = f" ({n} pixel(s) in this block)" if n else ""
    return (f"datasets.{dataset} ({uri}) for {where}: value {value:g} {units} at {location} is outside "
            f"the physical range [{lo:g}, {hi:g}] {units}{count} (configs/parameters/input_ranges.yaml); "
            f"check the units and fill values of the file")


def guard_raster(ctx: ServiceContext, input_id: str, arr: xr.DataArray) -> xr.DataArray:
    """The aligned input converted to its spec's units and checked against its physical range
    pixel by pixel while it is computed (lazy: one ``map_blocks``). Identity when the input
    has neither a conversion nor a range."""
    import dask.array as da

    scale, offset, note = input_units_transform(ctx, input_id)
    rng = input_range(ctx, input_id)
    if rng is None and scale == 1.0 and offset == 0.0:
        return arr
    if note:
        log.warning("%s.%s: converting %s", ctx.spec.id, input_id, note)
    entry = ctx.entry(input_id)
    nodata = arr.attrs.get("nodata")
    nodata = None if nodata is None else float(nodata)
    lo, hi = rng if rng is not None else (-math.inf, math.inf)
    units = ctx.spec.input(input_id).units or ""
    transform = ctx.grid.transform
    where = f"{ctx.spec.id}.{input_id}"

    def block_fn(block: np.ndarray, block_info=None) -> np.ndarray:
        out = block
        if scale != 1.0 or offset != 0.0:
            valid = ~(np.isnan(block) if nodata is None or np.isnan(nodata) else block == nodata)
            out = np.where(valid, block * scale + offset, block).astype(block.dtype, copy=False)
        if rng is not None:
            bad = _outside(out, nodata, lo, hi)
            if bad.any():
                idx = np.unravel_index(int(np.flatnonzero(bad)[0]), bad.shape)
                loc = block_info[0]["array-location"] if block_info else [(0, 0)] * out.ndim
                row, col = loc[-2][0] + idx[-2], loc[-1][0] + idx[-1]
                x, y = transform * (col + 0.5, row + 0.5)
                raise InputRangeError(_range_message(
                    entry.id, entry.uri, where, float(out[idx]), lo, hi, units,
                    f"row {row}, col {col} of the run grid (x={x:.1f}, y={y:.1f})", int(bad.sum())))
        return out

    data = da.map_blocks(block_fn, arr.data, dtype=arr.dtype)
    return arr.copy(data=data)


# -- validation (cheap) --------------------------------------------------------------------
def _sample(path: str, band: int, max_side: int = 512) -> tuple[np.ndarray, float | None, Any]:
    """A decimated read of one band (GDAL serves it from overviews when present)."""
    import rasterio

    from .io.integrity import checked_read

    with rasterio.open(path) as src:
        factor = max(1, math.ceil(max(src.height, src.width) / max_side))
        shape = (max(1, src.height // factor), max(1, src.width // factor))
        return (checked_read(src, band, out_shape=shape, resampling=rasterio.enums.Resampling.nearest),
                src.nodata, src)


def grid_coverage(ctx: ServiceContext, input_id: str) -> float:
    """Share (0–1) of the run grid's extent inside the input's extent (bounds, in the grid CRS)."""
    from rasterio.warp import transform_bounds

    info = ctx.source_info(input_id)
    il, ib, ir, it = transform_bounds(info.crs, ctx.grid.crs, *info.grid.bounds, densify_pts=21)
    gl, gb, gr, gt = ctx.grid.bounds
    w, h = max(0.0, min(ir, gr) - max(il, gl)), max(0.0, min(it, gt) - max(ib, gb))
    return (w * h) / ((gr - gl) * (gt - gb))


def check_service_inputs(ctx: ServiceContext) -> list[Issue]:
    """Units, sampled range, grid coverage and table checks of a service's given inputs.
    Returns errors; partial coverage is logged as a warning. Never raises."""
    issues: list[Issue] = []
    for ispec in ctx.spec.inputs:
        if not ctx.has(ispec.id) or ispec.kind not in ("raster", "table"):
            continue
        keys = ("services", ctx.spec.id, "inputs", ispec.id)
        try:
            entry = ctx.entry(ispec.id)
            if entry.kind != ispec.kind or "://" in entry.uri or not Path(entry.uri).exists():
                continue  # reported by the generic checks
            if ispec.kind == "table":
                issues.extend(Issue(keys, m) for m in check_table(ctx, ispec.id))
                continue
            scale, offset, _ = input_units_transform(ctx, ispec.id)
            share = grid_coverage(ctx, ispec.id)
            if 0 < share < COVERAGE_WARN:
                log.warning("datasets.%s (%s) for %s.%s covers %.1f %% of the run grid; pixels outside it are "
                            "nodata in every result that uses it", entry.id, entry.uri, ctx.spec.id, ispec.id,
                            100 * share)
            rng = input_range(ctx, ispec.id)
            if rng is None:
                continue
            values, file_nodata, _ = _sample(entry.uri, entry.band)
            nodata = entry.nodata if entry.nodata is not None else file_nodata
            vals = values.astype("float64") * scale + offset
            nd = None if nodata is None else float(nodata) * scale + offset
            bad = _outside(vals, nd, *rng)
            if bad.any():
                v = float(vals[bad][0])
                issues.append(Issue(keys, _range_message(
                    entry.id, entry.uri, f"{ctx.spec.id}.{ispec.id}", v, *rng, ispec.units or "",
                    f"{int(bad.sum())} of {bad.size} sampled pixels (e.g. value {v:g})")))
        except EcorasterError as exc:
            issues.append(Issue(keys, str(exc)))
        except Exception as exc:  # a check must report, never crash
            issues.append(Issue(keys, f"cannot check {ispec.id}: {type(exc).__name__}: {exc}"))
    return issues


def check_table(ctx: ServiceContext, input_id: str) -> list[str]:
    """Declared numeric columns of a parameter table: finite, within ``table_columns`` bounds.
    Messages name the file, the data row (1-based, as pandas reads it), the column and the value."""
    import pandas as pd

    ispec = ctx.spec.input(input_id)
    if not ispec.columns:
        return []
    table = ctx.table(input_id)
    bounds = range_table().get("table_columns") or {}
    uri = ctx.entry(input_id).uri
    problems = []
    for col, col_units in ispec.columns.items():
        if col not in table.columns or col_units in ("class", "quantity_unit", "value_unit", "-"):
            continue
        values = pd.to_numeric(table[col], errors="coerce")
        if not pd.api.types.is_numeric_dtype(table[col]):
            continue  # text columns are checked by the service
        b = bounds.get(col_units) or {}
        lo, hi = float(b.get("min", -math.inf)), float(b.get("max", math.inf))
        arr = values.to_numpy(dtype="float64")
        bad = ~np.isnan(arr) & ~((arr >= lo) & (arr <= hi))  # empty cells are the service's business
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            v = float(arr[i])
            where = f"{uri}: data row {i + 1}, column {col!r} = {v!r}"
            problems.append(f"{where} is outside [{lo:g}, {hi:g}] {col_units}" if math.isfinite(v)
                            else f"{where} is not a finite number")
    return problems


# -- zones ---------------------------------------------------------------------------------
ZONE_GEOMETRIES = {"Polygon", "MultiPolygon", "Polygon Z", "MultiPolygon Z", "Unknown", "Geometry"}


def check_zone_set(plan, name: str, zs, entry) -> list[Issue]:
    """A zone set's file before any compute: not empty, not a table, polygons, with a CRS,
    unique ids, overlapping the run grid (partial overlap → warning). Never raises."""
    import pyogrio

    keys = ("zones", name)
    where = f"zones.{name} ({entry.uri})"
    try:
        first = zone_file_issue(name, entry)
        if first:
            return [first]
        info = pyogrio.read_info(entry.uri, layer=entry.layer, force_total_bounds=True)
        gtype = str(info.get("geometry_type") or "")
        if gtype and gtype not in ZONE_GEOMETRIES:
            return [Issue(keys, f"{where}: geometry type {gtype}; zones must be polygons")]
        crs = info.get("crs") or entry.crs
        if not crs:
            return [Issue(keys, f"{where} has no CRS; declare `crs:` for datasets.{entry.id} in the catalogue")]
        if zs.datum == "gcj02":
            crs = "EPSG:4326"
        issues = []
        df = pyogrio.read_dataframe(entry.uri, layer=entry.layer, columns=[zs.id_field], read_geometry=False)
        ids = df[zs.id_field]
        if ids.isna().any():
            issues.append(Issue((*keys, "id_field"), f"{where}: field {zs.id_field!r} is empty in feature "
                                                     f"{int(np.flatnonzero(ids.isna().to_numpy())[0])}"))
        dup = ids[ids.duplicated()]
        if len(dup):
            issues.append(Issue((*keys, "id_field"), f"{where}: field {zs.id_field!r} value {dup.iloc[0]!r} "
                                                     f"repeats ({len(dup)} duplicate(s))"))
        share = _zone_overlap(info["total_bounds"], crs, plan.grid)
        if share == 0.0:
            issues.append(Issue(keys, f"{where}: the zones do not overlap the run grid at all (zone bounds "
                                      f"{_fmt(info['total_bounds'])} in {crs}; grid {_fmt(plan.grid.bounds)} in "
                                      f"{plan.grid.crs}); every zone would sum to 0"))
        elif share < COVERAGE_WARN:
            log.warning("%s: only %.1f %% of the zones' extent lies inside the run grid; zones outside get "
                        "partial or zero sums", where, 100 * share)
        return issues
    except EcorasterError as exc:
        return [Issue(keys, str(exc))]
    except Exception as exc:
        return [Issue(keys, f"{where}: cannot read zones: {type(exc).__name__}: {exc}")]


def zone_file_issue(name: str, entry) -> Issue | None:
    """A zone file that cannot be polygons at all: empty (0 bytes) or a table (CSV, Excel,
    plain Parquet). Checked before OGR opens it (whose messages name no field)."""
    path = Path(entry.uri)
    where = f"zones.{name} ({entry.uri})"
    if path.is_file() and path.stat().st_size == 0:
        return Issue(("zones", name), f"{where}: the file is empty (0 bytes)")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt", ".xlsx", ".xls") or (suffix == ".parquet" and _not_geoparquet(path)):
        return Issue(("zones", name), f"{where}: a table, not polygons; zones must be a vector file "
                                      f"(GeoPackage, GeoJSON, Shapefile, GeoParquet)")
    return None


def _fmt(b) -> str:
    return "(" + ", ".join(f"{v:.1f}" for v in b) + ")"


def _not_geoparquet(path: Path) -> bool:
    try:
        import pyarrow.parquet as pq

        return b"geo" not in (pq.read_schema(path).metadata or {})
    except Exception:
        return False


def _zone_overlap(bounds, crs, grid) -> float:
    """Share of the zones' bounding box inside the grid (0 = disjoint)."""
    from rasterio.warp import transform_bounds

    il, ib, ir, it = transform_bounds(crs, grid.crs, *bounds, densify_pts=21)
    gl, gb, gr, gt = grid.bounds
    w, h = min(ir, gr) - max(il, gl), min(it, gt) - max(ib, gb)
    if w <= 0 or h <= 0:
        return 0.0
    area = max((ir - il) * (it - ib), 1e-12)
    return min(1.0, (w * h) / area)
