"""Zonal statistics with exactextract as the engine (coverage fractions, float64)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio

from ..errors import EcorasterError, MissingCRSError, MissingFileError, TableError

log = logging.getLogger(__name__)

_ROW = "__zone_row"

#: Statistics this module computes, by name.
ZONAL_STATS = ("sum", "mean", "count")


def read_zones_for(zones: gpd.GeoDataFrame | str | os.PathLike, id_field: str, crs) -> gpd.GeoDataFrame:
    """Zones as a GeoDataFrame in ``crs`` with valid geometries and a unique ``id_field``."""
    if not isinstance(zones, gpd.GeoDataFrame):
        path = str(zones)
        if not Path(path).exists():
            raise MissingFileError(path, field="zones")
        zones = gpd.read_file(path)
        source = path
    else:
        source = "zones"
    if zones.crs is None:
        raise MissingCRSError(source, field="zones")
    if id_field not in zones.columns:
        raise TableError(f"{source}: no field {id_field!r} (fields: {', '.join(map(str, zones.columns))})")
    dup = zones[id_field][zones[id_field].duplicated()].unique()
    if len(dup):
        raise TableError(f"{source}: field {id_field!r} has duplicate ids: {', '.join(map(str, dup[:10]))}")
    zones = zones[[id_field, "geometry"]].copy()
    invalid = ~zones.geometry.is_valid
    if invalid.any():
        zones.loc[invalid, "geometry"] = zones.geometry[invalid].make_valid()
    return zones.to_crs(crs)


def zonal_stats(
    rasters: Mapping[str, str | os.PathLike] | str | os.PathLike,
    zones: gpd.GeoDataFrame | str | os.PathLike,
    id_field: str,
    stats: Sequence[str] = ("sum",),
    *,
    progress: bool = False,
) -> pd.DataFrame:
    """Coverage-weighted statistics of each raster over each zone.

    Parameters
    ----------
    rasters : mapping name → path, or one path
        Rasters on any grid; nodata pixels are skipped.
    zones : GeoDataFrame or path
        Polygons; reprojected to each raster's CRS.
    id_field : str
        Unique zone id field; it becomes the index of the result.
    stats : sequence of ``sum`` | ``mean`` | ``count``
        ``sum`` = Σ value × covered fraction (units of the raster × pixel, e.g. Mg C);
        ``mean`` = that sum / Σ covered fraction of valid pixels; ``count`` = Σ covered
        fraction of valid pixels (in pixels).

    Returns
    -------
    pandas.DataFrame
        One row per zone (all zones, in input order), columns ``<name>_<stat>``, float64.
    """
    from exactextract import exact_extract

    unknown = [s for s in stats if s not in ZONAL_STATS]
    if unknown:
        raise TableError(f"unknown zonal stat(s) {unknown}; use {', '.join(ZONAL_STATS)}")
    if not isinstance(rasters, Mapping):
        rasters = {Path(str(rasters)).stem: rasters}
    result: pd.DataFrame | None = None
    for name, path in rasters.items():
        path = str(path)
        if not Path(path).exists():
            raise MissingFileError(path, field=f"rasters.{name}")
        with rasterio.open(path) as src:
            if src.crs is None:
                raise MissingCRSError(path)
            crs = src.crs
        zs = read_zones_for(zones, id_field, crs)
        ids = zs[id_field].to_numpy()
        # exactextract treats some column names (e.g. "id") specially: pass a row number instead
        zs = gpd.GeoDataFrame({_ROW: np.arange(len(zs))}, geometry=zs.geometry.to_numpy(), crs=zs.crs)
        ops = sorted({"sum", "count"} | set(stats))
        try:
            df = exact_extract(path, zs, ops, include_cols=[_ROW], output="pandas", progress=progress)
        except Exception as exc:  # exactextract raises RuntimeError with GDAL text
            raise EcorasterError(f"zonal statistics of {path} failed: {exc}") from exc
        df = df.sort_values(_ROW)
        df.index = pd.Index(ids[df[_ROW].to_numpy()], name=id_field)
        out = pd.DataFrame(index=df.index)
        total = df["sum"].astype("float64").fillna(0.0)
        count = df["count"].astype("float64").fillna(0.0)
        if "sum" in stats:
            out[f"{name}_sum"] = total
        if "mean" in stats:
            out[f"{name}_mean"] = np.where(count > 0, total / count.where(count > 0, 1.0), np.nan)
        if "count" in stats:
            out[f"{name}_count"] = count
        result = out if result is None else result.join(out)
    assert result is not None
    return result
