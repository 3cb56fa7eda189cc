"""``zonal_stats``: one entry point, two engines (ecoraster's weights, exactextract)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import geopandas as gpd
import pandas as pd

from ..errors import MissingFileError, TableError
from ..grid import Grid
from . import exact
from .weights import STATS, ZoneWeights

log = logging.getLogger(__name__)

ENGINES = ("ecoraster", "exactextract")


def zonal_stats(
    rasters: Mapping[str, str | os.PathLike] | str | os.PathLike,
    zones: gpd.GeoDataFrame | str | os.PathLike,
    id_field: str,
    stats: Sequence[str] = ("sum",),
    *,
    progress: bool = False,
    engine: str = "ecoraster",
    cache_dir: str | os.PathLike | None = None,
    mass_balance: bool = True,
) -> pd.DataFrame:
    """Coverage-weighted statistics of each raster over each zone.

    Parameters
    ----------
    rasters : mapping name → path, or one path
        Rasters (band 1); nodata pixels are skipped.
    zones : GeoDataFrame or path
        Polygons; reprojected to each raster's CRS.
    id_field : str
        Unique zone id field; it becomes the index of the result.
    stats : sequence of ``sum`` | ``mean`` | ``count``
        ``sum`` = Σ value × covered fraction (units of the raster × pixel, e.g. Mg C);
        ``mean`` = that sum / Σ covered fraction of valid pixels; ``count`` = Σ covered
        fraction of valid pixels (in pixels).
    progress : bool
        Progress bar (exactextract engine only).
    engine : ``ecoraster`` | ``exactextract``
        ``ecoraster`` computes each grid's coverage once (:class:`ZoneWeights`) and
        reuses it for all rasters on that grid; it also logs a mass balance per raster
        (``result.attrs['mass_balance']``). ``exactextract`` is the reference.
    cache_dir : path, optional
        Where the ``ecoraster`` engine caches weights between runs.
    mass_balance : bool
        ``ecoraster`` engine: check each raster's zone sums against its total inside the
        zones (reads the whole raster). Without it only the rows the zones touch are read
        (a site footprint on a large raster).

    Returns
    -------
    pandas.DataFrame
        One row per zone (all zones, in input order), columns ``<name>_<stat>``, float64.
    """
    if engine == "exactextract":
        return exact.zonal_stats(rasters, zones, id_field, stats, progress=progress)
    if engine != "ecoraster":
        raise TableError(f"unknown zonal engine {engine!r}; use {' or '.join(ENGINES)}")
    unknown = [s for s in stats if s not in STATS]
    if unknown:
        raise TableError(f"unknown zonal stat(s) {unknown}; use {', '.join(STATS)}")
    if not isinstance(rasters, Mapping):
        rasters = {Path(str(rasters)).stem: rasters}
    if not isinstance(zones, gpd.GeoDataFrame):
        path = str(zones)
        if not Path(path).exists():
            raise MissingFileError(path, field="zones")
        zones = gpd.read_file(path)
    weights: dict[str, ZoneWeights] = {}
    parts: list[pd.DataFrame] = []
    balances: dict = {}
    for name, path in rasters.items():
        path = str(path)
        if "://" not in path and not Path(path).exists():
            raise MissingFileError(path, field=f"rasters.{name}")
        grid = Grid.from_raster(path)
        key = json.dumps(grid.to_dict(), sort_keys=True)
        if key not in weights:
            weights[key] = ZoneWeights.build(zones, grid, id_field, cache_dir=cache_dir)
        df = weights[key].apply({name: path}, stats=stats, mass_balance=mass_balance)
        balances.update(df.attrs.pop("mass_balance", {}))
        parts.append(df)
    result = pd.concat(parts, axis=1) if parts else pd.DataFrame(index=pd.Index(zones[id_field], name=id_field))
    result.attrs["mass_balance"] = balances
    return result
