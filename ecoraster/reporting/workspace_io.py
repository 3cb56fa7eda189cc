"""Where the reports read a finished run workspace: one small function per path or table,
so that a change of the workspace layout is fixed here only.

The run contract (see :mod:`ecoraster.query.workspace` and :mod:`ecoraster.products`):
``run.json``; ``products/catalogue.{csv,parquet,xlsx}``; ``products/<zone set>.{parquet,gpkg}``;
``stac/catalog.json``; per-pixel value and physical rasters listed in ``run.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import MissingFileError, QueryError
from ..query.workspace import RunWorkspace


def open_run(path: str | os.PathLike) -> RunWorkspace:
    """A finished run (folder with ``run.json``) through the query side's reader."""
    return RunWorkspace.open(path)


def manifest_path(ws: RunWorkspace) -> Path:
    return ws.root / "run.json"


def products_dir(ws: RunWorkspace) -> Path:
    return ws.root / "products"


def stac_dir(ws: RunWorkspace) -> Path:
    return ws.root / "stac"


def catalogue_path(ws: RunWorkspace, suffix: str = "parquet") -> Path:
    return products_dir(ws) / f"catalogue.{suffix}"


def zone_table_path(ws: RunWorkspace, zone_set: str, suffix: str = "parquet") -> Path:
    return products_dir(ws) / f"{zone_set}.{suffix}"


def read_catalogue(ws: RunWorkspace) -> pd.DataFrame:
    """The run's catalogue (one row per product × zone; an older workspace's ``unit_*``
    columns read as ``zone_*``)."""
    from ..accounting.product_catalogue import read_catalogue as read

    path = catalogue_path(ws)
    if not path.is_file():
        raise MissingFileError(str(path), field="workspace")
    return read(path)


def read_zone_table(ws: RunWorkspace, zone_set: str):
    """A zone set's GEP table (GeoDataFrame; id column ``parcel_id`` or ``zone_id``)."""
    import geopandas as gpd

    path = zone_table_path(ws, zone_set)
    if not path.is_file():
        have = sorted(p.stem for p in products_dir(ws).glob("*.parquet") if p.stem != "catalogue")
        raise QueryError(f"{ws.root}: no zone set {zone_set!r} (products/{zone_set}.parquet); "
                         f"the run has: {', '.join(have) or 'none'}")
    gdf = gpd.read_parquet(path)
    return gdf.drop(columns=["bbox"], errors="ignore")


def zone_id_column(zone_set: str) -> str:
    return "parcel_id" if zone_set == "parcels" else "zone_id"


def zone_sets(ws: RunWorkspace) -> list[str]:
    """Zone sets of the run (from its config)."""
    return list((ws.config.get("zones") or {}).keys())


def run_notes(ws: RunWorkspace) -> list[dict[str, str]]:
    """Every service note of the run (clipped values, unpriced products …)."""
    out = []
    for sid, res in (ws.manifest.get("results") or {}).items():
        for note in res.get("notes") or []:
            out.append({"run": ws.root.name, "year": ws.year, "service": sid, "note": str(note)})
    return out


def valuation_report(ws: RunWorkspace) -> dict[str, Any]:
    """The run's valuation section (price table, CPI, price year; valued / unpriced products)."""
    v = ws.manifest.get("valuation")
    if isinstance(v, dict):
        return v
    path = ws.root / "valuation.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def cpi_path(ws: RunWorkspace) -> Path:
    """The CPI series the run valued with (else the project's default)."""
    from ..resources import config_path

    p = valuation_report(ws).get("cpi_path")
    return Path(p) if p and Path(p).is_file() else config_path("prices", "cpi_china.csv")


def raster_output(ws: RunWorkspace, service: str, output_id: str) -> Path | None:
    """Path of one output raster listed in ``run.json`` (``None`` if the run lacks it)."""
    out = ((ws.manifest.get("results") or {}).get(service) or {}).get("outputs", {}).get(output_id)
    if not out:
        return None
    return ws._resolve(out["path"], service)


def run_config(ws: RunWorkspace):
    """The run's resolved :class:`~ecoraster.config.RunConfig` (from ``run.json``)."""
    from ..config import RunConfig

    return RunConfig.model_validate(ws.config)
