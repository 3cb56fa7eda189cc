"""Climate grids (NetCDF, GRIB, GeoTIFF) → unit-converted, time-aggregated layers on a Grid.

::

    t2m = open_climate("era5-2mt-2019-03-uk.grib")            # units from GRIB_UNIT ([C])
    t2m = convert_units(t2m, "degC")
    daily = aggregate_time(t2m, "D", "mean")
    p = open_monthly_series(sorted(glob("precip_gura_*.tif")), year=2019, units="mm")
    p_year = aggregate_time(p, "YS", "sum").isel(time=0)
    p_grid = to_grid(p_year, run_grid, resampling="bilinear")

Everything stays lazy (dask) until computed, except :func:`to_grid`, which materialises the
(coarse, 2-D) source field once and warps it chunk by chunk.

GRIB is read with ``GRIB_NORMALIZE_UNITS=NO``: GDAL 3.10 labels the ERA5 GRIB1 2 m
temperature ``[C]`` while its values are still K (checked against the NetCDF copy); without
normalisation the ``GRIB_UNIT`` band tag says ``[K]``, which we read. Temperatures are also
checked for plausibility against their unit (a "°C" field with a median of 280 fails).
"""

from __future__ import annotations

import re
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import rasterio
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import reproject

from ..errors import InputDataError, MissingFileError, UnitError
from ..grid import DEFAULT_CHUNK, RESAMPLING, Grid
from ._common import georef
from .units import linear_conversion, parse_units

NETCDF_SUFFIXES = {".nc", ".nc4", ".cdf"}
GRIB_SUFFIXES = {".grib", ".grb", ".grib2", ".grb2"}
_X_NAMES = ("x", "lon", "longitude")
_Y_NAMES = ("y", "lat", "latitude")


def open_climate(
    path: str | Path,
    variable: str | None = None,
    *,
    units: str | None = None,
    crs=None,
    time_chunk: int = 24,
) -> xr.DataArray:
    """Open one climate variable lazily as ``(time, y, x)`` or ``(y, x)``.

    Parameters
    ----------
    path : path
        NetCDF (CF), GRIB (via GDAL) or GeoTIFF.
    variable : str, optional
        NetCDF variable; required when the file has several gridded variables.
    units : str, optional
        Declared units when the file has none (GeoTIFF) or to override it.
    crs : CRS-like, optional
        Default EPSG:4326 for lat/lon grids (GRIB's sphere is treated as WGS 84, ECMWF's
        convention for its lat/lon grids).
    time_chunk : int
        Time steps per dask chunk.

    Returns
    -------
    DataArray with ``attrs["units"]`` (as in the file), ``attrs["source"]``, CRS
    (rioxarray); nodata as NaN (float).
    """
    p = Path(path)
    if not p.exists():
        raise MissingFileError(str(p), field="climate")
    suffix = p.suffix.lower()
    if suffix in NETCDF_SUFFIXES:
        arr = _open_netcdf(p, variable, time_chunk)
    elif suffix in GRIB_SUFFIXES:
        arr = _open_grib(p, time_chunk)
    else:
        arr = _open_geotiff(p, time_chunk)
    if units is not None:
        arr.attrs["units"] = units
    if not arr.attrs.get("units"):
        raise UnitError(f"{p}: variable {arr.name!r} has no units; declare them (units=...)")
    parse_units(arr.attrs["units"])  # fail now on a unit pint cannot read
    _check_temperature_plausible(arr, p)
    arr.attrs["source"] = str(p)
    if crs is not None:
        arr = arr.rio.write_crs(crs)
    elif arr.rio.crs is None or suffix in GRIB_SUFFIXES:
        arr = arr.rio.write_crs("EPSG:4326")
    return arr


def _open_netcdf(p: Path, variable: str | None, time_chunk: int) -> xr.DataArray:

    ds = xr.open_dataset(p, chunks={}, decode_coords="all", mask_and_scale=True)
    gridded = [v for v in ds.data_vars if ds[v].ndim >= 2]
    if variable is None:
        if len(gridded) != 1:
            raise InputDataError(f"{p}: {len(gridded)} gridded variables {gridded}; name one (variable=...)")
        variable = gridded[0]
    if variable not in ds.data_vars:
        raise InputDataError(f"{p}: no variable {variable!r} (variables: {list(ds.data_vars)})")
    arr = ds[variable]
    rename = {d: "x" for d in arr.dims if d in _X_NAMES}
    rename.update({d: "y" for d in arr.dims if d in _Y_NAMES})
    arr = arr.rename(rename)
    if {"x", "y"} - set(arr.dims):
        raise InputDataError(f"{p}: variable {variable!r} has dims {arr.dims}; need lon/lat or x/y")
    if "time" in arr.dims:
        arr = arr.chunk({"time": time_chunk})
    arr = arr.rio.set_spatial_dims(x_dim="x", y_dim="y")
    arr.attrs = {"units": arr.attrs.get("units", ""), "long_name": arr.attrs.get("long_name", variable)}
    return arr.astype(np.float32) if arr.dtype != np.float32 else arr


def _open_grib(p: Path, time_chunk: int) -> xr.DataArray:
    """GRIB through GDAL with ``GRIB_NORMALIZE_UNITS=NO``: GDAL 3.10 labels ERA5 GRIB1
    2 m temperature ``[C]`` while the values stay in K; without normalisation the label is
    the true ``[K]``. Bands are read lazily, ``time_chunk`` bands per dask chunk."""
    with rasterio.Env(GRIB_NORMALIZE_UNITS="NO"), rasterio.open(p) as src:
        tags = [src.tags(b) for b in range(1, src.count + 1)]
        grid = Grid(src.crs, src.transform, (src.height, src.width))
        nodata = src.nodatavals[0]
    unit_set = {t.get("GRIB_UNIT", "") for t in tags}
    elements = {t.get("GRIB_ELEMENT", "") for t in tags}
    if len(unit_set) != 1 or len(elements) != 1:
        raise InputDataError(f"{p}: bands hold several elements {sorted(elements)} / units {sorted(unit_set)}; split the file")
    times = pd.to_datetime([int(t["GRIB_VALID_TIME"].split()[0]) for t in tags], unit="s")
    parts = []
    for b0 in range(1, len(tags) + 1, time_chunk):
        b1 = min(b0 + time_chunk, len(tags) + 1)
        task = dask.delayed(_read_grib_bands)(str(p), b0, b1, nodata)
        parts.append(da.from_delayed(task, shape=(b1 - b0, *grid.shape), dtype=np.float32))
    arr = xr.DataArray(da.concatenate(parts, axis=0), dims=("time", "y", "x"),
                       coords={"time": times, **grid.coords()}, name=elements.pop().lower() or p.stem)
    arr = arr.rio.write_transform(grid.transform)
    arr.attrs = {"units": unit_set.pop(), "long_name": tags[0].get("GRIB_COMMENT", "")}
    return arr


def _read_grib_bands(path: str, b0: int, b1: int, nodata) -> np.ndarray:
    with rasterio.Env(GRIB_NORMALIZE_UNITS="NO"), rasterio.open(path) as src:
        block = src.read(list(range(b0, b1))).astype(np.float32)
    if nodata is not None:
        block[block == nodata] = np.nan
    return block


def _open_geotiff(p: Path, time_chunk: int) -> xr.DataArray:

    arr = rioxarray.open_rasterio(p, chunks={"band": time_chunk}, masked=True)
    with rasterio.open(p) as src:
        units = src.tags().get("units") or src.tags(1).get("units") or (src.units[0] if src.units else None)
    if arr.sizes["band"] == 1:
        arr = arr.isel(band=0, drop=True)
    arr.name = p.stem
    arr.attrs = {"units": units or ""}
    return arr.astype(np.float32)


def _check_temperature_plausible(arr: xr.DataArray, p: Path) -> None:
    """A temperature whose first time step has a median outside −90..60 °C (183..333 K) has
    the wrong unit label: raise before anything is computed on it."""
    unit = parse_units(arr.attrs["units"])
    if unit.dimensionality != parse_units("K").dimensionality:
        return
    first = arr.isel(time=0) if "time" in arr.dims else arr
    first = first.isel(y=slice(None, None, max(1, first.sizes["y"] // 256)),
                       x=slice(None, None, max(1, first.sizes["x"] // 256)))  # ≤ ~256² samples
    median = float(np.nanmedian(np.asarray(first.values, dtype=np.float64)))
    scale, offset = linear_conversion(arr.attrs["units"], "degC")
    as_c = scale * median + offset
    if not -90.0 <= as_c <= 60.0:
        raise InputDataError(
            f"{p}: variable {arr.name!r} labelled {arr.attrs['units']!r} has median {median:.2f}, "
            f"i.e. {as_c:.1f} °C; the unit label is wrong (declare units=...)"
        )


def convert_units(arr: xr.DataArray, to_units: str) -> xr.DataArray:
    """Lazily convert ``arr`` (``attrs["units"]``) to ``to_units`` with pint (``y = a·x + b``).

    K → °C (b = −273.15), m → mm (a = 1000), J/m² → MJ/m² (a = 1e-6), …; :class:`UnitError`
    for a dimension mismatch.
    """
    if "units" not in arr.attrs:
        raise UnitError(f"{arr.attrs.get('source', arr.name)}: no units to convert from")
    scale, offset = linear_conversion(arr.attrs["units"], to_units)
    attrs = dict(arr.attrs)
    out = arr * scale + offset if (scale, offset) != (1.0, 0.0) else arr.copy()
    attrs["units"] = to_units
    out.attrs = attrs
    return out.astype(np.float32)


def aggregate_time(arr: xr.DataArray, freq: str, how: str = "mean", *, min_fraction: float = 0.0) -> xr.DataArray:
    """Resample along ``time``: hourly → daily (``"D"``), → monthly (``"MS"``), → annual (``"YS"``).

    Parameters
    ----------
    freq : str
        pandas frequency of the output periods.
    how : {"mean", "sum", "min", "max"}
        ``sum`` for amounts per step (precipitation in mm per hour or month, radiation in
        MJ/m² per step); ``mean`` for states (temperature). Units are unchanged: the sum
        of hourly mm is the daily amount in mm.
    min_fraction : float
        Output is NaN where fewer than this share of a period's steps are valid.

    Accumulation is in float64; output float32 with ``attrs["cell_methods"]``.
    """
    if how not in ("mean", "sum", "min", "max"):
        raise InputDataError(f"aggregation {how!r}; use mean, sum, min or max")
    if "time" not in arr.dims:
        raise InputDataError(f"{arr.attrs.get('source', arr.name)}: no time dimension to aggregate")
    x = arr.astype(np.float64)
    res = x.resample(time=freq)
    out = getattr(res, how)(skipna=True) if how != "sum" else res.sum(skipna=True, min_count=1)
    if min_fraction > 0:
        valid = x.notnull().resample(time=freq).sum()
        steps = xr.ones_like(x.isel(x=0, y=0, drop=True)).resample(time=freq).sum()
        out = out.where(valid >= min_fraction * steps)
    out = out.astype(np.float32)
    out.attrs = {**arr.attrs, "cell_methods": f"time: {how} (resampled to {freq})"}
    return out.rio.write_crs(arr.rio.crs) if arr.rio.crs is not None else out


def open_monthly_series(paths, *, year: int, units: str | None = None) -> xr.DataArray:
    """Stack 12 monthly GeoTIFFs (month number at the end of each file name, e.g.
    ``precip_gura_7.tif``) into a ``(time, y, x)`` array dated the first of each month."""
    items = []
    for p in paths:
        m = re.search(r"(\d{1,2})$", Path(p).stem)
        if not m or not 1 <= int(m.group(1)) <= 12:
            raise InputDataError(f"{p}: cannot read a month 1..12 at the end of the file name")
        items.append((int(m.group(1)), Path(p)))
    items.sort()
    months = [m for m, _ in items]
    if len(set(months)) != len(months):
        raise InputDataError(f"monthly series has repeated months {months}")
    layers = [open_climate(p, units=units) for _, p in items]
    ref = layers[0]
    for (m, p), lay in zip(items, layers):
        if lay.shape != ref.shape or not np.allclose(lay.rio.transform()[:6], ref.rio.transform()[:6], atol=1e-3):
            raise InputDataError(f"{p}: grid differs from {items[0][1].name} (month {m})")
        lay.coords["x"], lay.coords["y"] = ref.x, ref.y
    stack = xr.concat(layers, dim=pd.Index(pd.to_datetime([f"{year}-{m:02d}-01" for m in months]), name="time"))
    stack.attrs = dict(ref.attrs)
    stack.attrs["source"] = ", ".join(str(p) for _, p in items)
    return stack.rio.write_crs(ref.rio.crs)


def to_grid(arr: xr.DataArray, grid: Grid, resampling: str = "bilinear", *, chunk: int = DEFAULT_CHUNK) -> xr.DataArray:
    """Warp a 2-D climate field onto ``grid``, lazily per output chunk.

    The source field (coarse: e.g. gridMET CONUS 1386×585 float32 = 3 MB) is computed
    once; each output chunk is a GDAL warp of it (``rasterio.warp.reproject``) with NaN
    as nodata.

    Returns
    -------
    float32 DataArray (y, x) on ``grid`` with the source's ``units``; nodata NaN.
    """
    if arr.ndim != 2:
        raise InputDataError(f"{arr.attrs.get('source', arr.name)}: to_grid needs a 2-D field, got dims {arr.dims}")
    if resampling not in RESAMPLING:
        raise InputDataError(f"resampling {resampling!r}; use one of {sorted(RESAMPLING)}")
    src_crs = arr.rio.crs
    if src_crs is None:
        raise InputDataError(f"{arr.attrs.get('source', arr.name)}: field has no CRS")
    src_transform = arr.rio.transform(recalc=True)
    values = np.asarray(arr.transpose("y", "x").values, dtype=np.float32)
    if src_transform.e > 0:  # south-up grid (lat ascending): flip to north-up
        values = values[::-1]
        src_transform = src_transform * Affine.translation(0, values.shape[0]) * Affine.scale(1, -1)
    src = dask.delayed(values)
    row_chunks, col_chunks = grid.chunks(chunk)
    blocks, r0 = [], 0
    for rh in row_chunks:
        c0, row = 0, []
        for cw in col_chunks:
            task = dask.delayed(_warp_window)(src, src_transform, CRS.from_user_input(src_crs), grid,
                                              resampling, r0, r0 + rh, c0, c0 + cw)
            row.append(da.from_delayed(task, shape=(rh, cw), dtype=np.float32))
            c0 += cw
        blocks.append(row)
        r0 += rh
    data = da.block(blocks).rechunk((row_chunks, col_chunks))
    out = georef(xr.DataArray(data, dims=("y", "x"), name=arr.name), grid)
    out.attrs = {**{k: v for k, v in arr.attrs.items() if k != "_FillValue"}, "nodata": float("nan"),
                 "resampling": resampling}
    return out


def _warp_window(values, src_transform, src_crs, grid: Grid, resampling, row0, row1, col0, col1) -> np.ndarray:
    out = np.full((row1 - row0, col1 - col0), np.nan, dtype=np.float32)
    reproject(source=values, destination=out, src_transform=src_transform, src_crs=src_crs,
              src_nodata=np.nan, dst_transform=grid.window_transform(row0, col0), dst_crs=grid.crs,
              dst_nodata=np.nan, resampling=RESAMPLING[resampling])
    return out
