"""What a zone table adds beside its GeoParquet and GeoPackage: QGIS styles inside the
GeoPackage (GEP per ha as the default, GEP, each product's value) and, for zone sets too
large for ``catalogue.xlsx`` (parcels), a workbook with one row per zone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd

from ..standards import load_products
from .product_catalogue import XLSX_MAX_ZONES
from .qgis_styles import write_layer_styles
from .xlsx import write_zone_workbook


def write_zone_extras(gdf: gpd.GeoDataFrame, written: gpd.GeoDataFrame, folder: Path, name: str,
                      meta: dict[str, Any], zh_names: dict[str, str]) -> dict[str, Path]:
    """Styles into ``<name>.gpkg`` (``written`` is the frame as stored, with its field names);
    ``<name>.xlsx`` when the zone set has more than ``XLSX_MAX_ZONES`` zones.

    ``gdf`` has the English columns; ``zh_names`` maps them to the GeoPackage's Chinese
    names (empty when the GeoPackage is in English)."""
    field = {c: zh_names.get(c, c) for c in gdf.columns}
    products = load_products()
    styles = [(field["gep_per_ha"], "GEP per ha 每公顷GEP", "GEP per ha (CNY/ha)"),
              (field["gep"], "GEP 生态产品总值", "GEP (CNY)")]
    for c in gdf.columns:
        if c.endswith("_value") and c[: -len("_value")] in products:
            p = products[c[: -len("_value")]]
            styles.append((field[c], f"{p.name_zh} {p.name_en}"[:60], f"{p.name_zh} {p.name_en} value (CNY)"))
    gpkg = folder / f"{name}.gpkg"
    write_layer_styles(gpkg, name, written.drop(columns="geometry"), styles)
    out: dict[str, Path] = {}
    if len(gdf) > XLSX_MAX_ZONES:
        units = dict(meta.get("units") or {})
        out[f"{name}_xlsx"] = write_zone_workbook(gdf.drop(columns="geometry"), folder / f"{name}.xlsx", units,
                                                  zh_names or {c: c for c in gdf.columns}, sheet=name)
    return out
