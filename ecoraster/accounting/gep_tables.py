"""Products of a run: the catalogue (目录清单), parcel / township / wetland GEP tables, STAC.

Stage hook of a run (see ``ecoraster.pipeline.stages``): :func:`build_products` receives the service
results and the zonal tables and writes, under ``out_dir/products/``:

- ``<zone set>.parquet`` (GeoParquet 1.x with the bbox covering column, geometry in the grid
  CRS) and ``<zone set>.gpkg`` — one row per zone: id, name, ``area_ha``, ``covered_area_ha``
  (the part inside the run grid), ``P_qty`` / ``P_value`` per product P, ``gep``,
  ``gep_excl_contested``, ``gep_per_ha`` (per hectare of the covered area). For the zone
  set ``parcels`` the id column is ``parcel_id`` (the contract with the parcel-query API),
  for the others ``zone_id``. Parquet schema metadata ``ecoraster`` = JSON
  ``{"units": {column: unit}, "price_year", "region", "year", "profile", "counted", "contested"}``
  (``contested``: the counted products left out of ``gep_excl_contested``, read by the query
  API, ``eco parcel / site / compare`` and the map).
- ``catalogue.csv`` (UTF-8 with BOM) / ``.parquet`` / ``.xlsx``: one row per product × unit
  (each zone of each zone set, and the whole region ``region``).
- ``products.json``: mass balance of partition zone sets, partition checks, notes (merged
  into ``run.json``).

and ``out_dir/stac/catalog.json`` (see :mod:`ecoraster.accounting.stac`).

GEP per unit = Σ value of the products the standard profile counts; ``gep_excl_contested``
leaves out the contested ones (oxygen release, evaporation-based climate regulation;
gep-methods.md §9).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from ..spec import ServiceResult
from ..standards import Profile, load_products
from .product_catalogue import catalogue_rows, write_catalogue
from .zone_files import write_zone_extras

log = logging.getLogger(__name__)

#: Relative difference above which a partition's Σ zones ≠ raster total is flagged.
MASS_BALANCE_RTOL = 1e-6


@dataclass
class ProductColumns:
    """Which raster (zonal column ``<service>.<output>``) holds a product's quantity / value."""

    product: str
    qty_column: str | None = None
    qty_units: str = ""
    qty_total: float | None = None
    value_column: str | None = None
    value_total: float | None = None
    price: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)


def product_columns(results: dict[str, ServiceResult]) -> tuple[dict[str, ProductColumns], list[str]]:
    """Products found in the results (physical and value outputs with a ``product``)."""
    found: dict[str, ProductColumns] = {}
    notes: list[str] = []
    for sid, res in results.items():
        valuation = res.metadata.get("valuation", {})
        allocation = res.metadata.get("allocation", {})
        for oid, rec in res.outputs.items():
            if not rec.product or rec.per != "pixel" or rec.kind not in ("physical", "value"):
                continue
            pc = found.setdefault(rec.product, ProductColumns(rec.product))
            col = f"{sid}.{oid}"
            if rec.kind == "physical":
                if pc.qty_column:
                    notes.append(f"product {rec.product}: {col} ignored, quantity already from {pc.qty_column}")
                    continue
                pc.qty_column, pc.qty_units, pc.qty_total = col, rec.units, rec.total
                pc.source = {"source": f"{sid}.{oid}", **allocation.get(oid, {}).get("source", {})}
                if oid in valuation:
                    v = valuation[oid]
                    pc.price = {"price": v["value"], "price_unit": v["unit"], "price_year": v["price_year"],
                                "price_id": v["price_id"], "price_source": v["source"], "confidence": v["confidence"]}
            else:
                if pc.value_column:
                    notes.append(f"product {rec.product}: {col} ignored, value already from {pc.value_column}")
                    continue
                pc.value_column, pc.value_total = col, rec.total
                if oid in allocation and not pc.price:
                    a = allocation[oid]
                    pc.price = {"price_year": a.get("price_year"), "price_source": a.get("value_source", ""),
                                "price_id": "", "confidence": a.get("confidence", "")}
    return found, notes


def _zone_frames(table: pd.DataFrame, cols: dict[str, ProductColumns]) -> tuple[pd.DataFrame, pd.DataFrame]:
    qty = pd.DataFrame(index=table.index)
    val = pd.DataFrame(index=table.index)
    for pid, pc in cols.items():
        qty[pid] = table[pc.qty_column].astype("float64") if pc.qty_column in table.columns else np.nan
        val[pid] = table[pc.value_column].astype("float64") if pc.value_column in table.columns else np.nan
    return qty, val


def gep_columns(qty: pd.DataFrame, val: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """``P_qty`` / ``P_value`` per product, ``gep`` and ``gep_excl_contested`` (CNY, float64)."""
    out = pd.DataFrame(index=qty.index)
    for pid in qty.columns:
        out[f"{pid}_qty"] = qty[pid].astype("float64")
        out[f"{pid}_value"] = val[pid].astype("float64")
    counted = [p for p in val.columns if profile.counts(p)]
    out["gep"] = val[counted].fillna(0.0).sum(axis=1).astype("float64") if counted else 0.0
    kept = [p for p in counted if not profile.is_contested(p)]
    out["gep_excl_contested"] = val[kept].fillna(0.0).sum(axis=1).astype("float64") if kept else 0.0
    return out


def _area_ha(gdf: gpd.GeoDataFrame) -> np.ndarray:
    g = gdf if not gdf.crs.is_geographic else gdf.to_crs(gdf.estimate_utm_crs())
    return (g.geometry.area.to_numpy(dtype="float64") / 10_000.0)


def _covered_area_ha(gdf: gpd.GeoDataFrame, grid) -> np.ndarray:
    """Area (ha) of each zone inside the run grid's footprint: the part the rasters can cover
    (a district only 14 % inside the grid must not be averaged over its whole area)."""
    from shapely.geometry import box

    footprint = gpd.GeoSeries([box(*grid.bounds)], crs=grid.crs).to_crs(gdf.crs).iloc[0]
    inside = gpd.GeoDataFrame(geometry=gdf.geometry.intersection(footprint), crs=gdf.crs)
    return _area_ha(inside)


def zh_field_names(columns: list[str], id_column: str) -> dict[str, str]:
    """English → Chinese field names for the GeoPackage (``地块编号``, ``面积_公顷`` …)."""
    products = load_products()
    names = {id_column: "地块编号" if id_column == "parcel_id" else "单元编号", "name": "名称",
             "area_ha": "面积_公顷", "covered_area_ha": "核算覆盖面积_公顷", "gep": "GEP_元", "gep_excl_contested": "GEP不含争议项_元",
             "gep_per_ha": "GEP_元每公顷"}
    for c in columns:
        for suffix, zh in (("_qty", "实物量"), ("_value", "价值量")):
            if c.endswith(suffix) and c[: -len(suffix)] in products:
                names[c] = f"{products[c[: -len(suffix)]].name_zh}_{zh}"
    return names


def write_zone_table(gdf: gpd.GeoDataFrame, folder: Path, name: str, meta: dict[str, Any],
                     field_names: str = "en") -> dict[str, Path]:
    """``<name>.parquet`` (GeoParquet, bbox covering column, schema metadata ``ecoraster``) and
    ``<name>.gpkg`` (English or Chinese field names)."""
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    pq_path, gpkg_path = folder / f"{name}.parquet", folder / f"{name}.gpkg"
    gdf.to_parquet(pq_path, write_covering_bbox=True, index=False)
    table = pq.read_table(pq_path)
    metadata = {**(table.schema.metadata or {}), b"ecoraster": json.dumps(meta, ensure_ascii=False).encode()}
    pq.write_table(table.replace_schema_metadata(metadata), pq_path)
    out = gdf
    id_column = gdf.columns[0]
    zh = zh_field_names(list(gdf.columns), id_column)
    if field_names == "zh":
        out = gdf.rename(columns=zh)
    if gpkg_path.exists():
        gpkg_path.unlink()
    # the zone id is a column of its own: the index is never written (it would repeat or shadow the id)
    out.to_file(gpkg_path, driver="GPKG", layer=name, index=False)
    written = {f"{name}_parquet": pq_path, f"{name}_gpkg": gpkg_path}
    written.update(write_zone_extras(gdf, out, folder, name, meta, zh if field_names == "zh" else {}))
    return written


def run_field_names(plan) -> str:
    """One field-name choice for every GeoPackage of a run: ``zh`` when any zone dataset's
    catalogue entry asks for ``options: {field_names: zh}``, else ``en``."""
    for zs in plan.config.zones.values():
        if plan.catalog.get(zs.dataset).options.get("field_names") == "zh":
            return "zh"
    return "en"


def read_zone_set(plan, name: str) -> gpd.GeoDataFrame:
    """A run's zone set in the grid CRS; a declared ``datum: gcj02`` is converted to WGS 84 first."""
    zs = plan.config.zones[name]
    entry = plan.catalog.get(zs.dataset, field=f"zones.{name}.dataset")
    if zs.datum:
        from ..ingest.vectors import read_zones

        return read_zones(entry.uri, layer=entry.layer, datum=zs.datum, crs=entry.crs).to_crs(plan.grid.crs)
    zones = gpd.read_file(entry.uri, layer=entry.layer)
    if zones.crs is None and entry.crs:
        zones = zones.set_crs(entry.crs)
    return zones.to_crs(plan.grid.crs)




def _partition_report(zones: gpd.GeoDataFrame, id_field: str) -> dict[str, Any]:
    """Overlaps and gaps of a zone set declared a partition (:func:`ecoraster.zonal.check_partition`)."""
    from ..zonal import check_partition

    rep = check_partition(zones, id_field)
    return {"ok": bool(rep.ok), "overlap_area_m2": rep.overlap_area, "gap_area_m2": rep.gap_area,
            "n_overlaps": rep.n_overlaps, "n_gaps": rep.n_gaps, "union_area_m2": rep.union_area,
            "zones_area_m2": rep.zones_area, "checked_by": "ecoraster.zonal.check_partition"}


def _zone_set_balance(csv_path: Path) -> dict[str, Any]:
    """Mass balance of a partition, as the zonal stage measured it (``<zone set>.mass_balance.json``:
    Σ zones vs the raster total inside their union, per raster; no second pass over the rasters)."""
    path = csv_path.with_suffix(".mass_balance.json")
    balance = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return {k: {"zones_sum": v.get("zones_total"), "raster_total_inside": v.get("inside_total"),
                "difference": v.get("abs_diff"), "relative": v.get("rel_diff"),
                "ok": abs(v.get("rel_diff") or 0.0) <= max(v.get("tolerance", 0.0), MASS_BALANCE_RTOL),
                "checked_by": "ecoraster.zonal (zonal stage)"} for k, v in balance.items()}


def build_products(plan, results: dict[str, ServiceResult], zonal_tables: dict[str, Path],
                   out_dir: Path, *, field_names: str | None = None, stac: bool = True,
                   layout: Callable[[Path], Path] | None = None) -> dict[str, Path]:
    """Write the run's products under ``out_dir``; return them by name.

    Parameters
    ----------
    field_names : ``"en"`` | ``"zh"``, optional
        Field names of the GeoPackages. Default: the zone dataset's catalogue option
        ``field_names``, else ``en``.
    stac : bool
        Also write ``stac/catalog.json``.
    layout : callable, optional
        Where a file sits relative to ``out_dir`` once the run is committed (for STAC links).
    """
    out_dir = Path(out_dir)
    folder = out_dir / "products"
    folder.mkdir(parents=True, exist_ok=True)
    setup = plan.require_valuation()
    profile = setup.profile
    cols, notes = product_columns(results)
    cfg = plan.config
    meta_base = {"price_year": setup.price_year, "region": cfg.region, "year": cfg.year, "profile": profile.id,
                 "price_table": setup.table.id, "price_table_version": setup.table.version,
                 "counted": [p for p in cols if profile.counts(p)],
                 "contested": [p for p in cols if profile.counts(p) and profile.is_contested(p)]}
    units = {pid: pc.qty_units for pid, pc in cols.items()}
    prices = {pid: pc.price for pid, pc in cols.items()}
    sources = {pid: pc.source for pid, pc in cols.items()}
    written: dict[str, Path] = {}
    report: dict[str, Any] = {"notes": notes, "zone_sets": {}}
    missing = profile.missing(frozenset(cols))
    if missing:
        report["missing_products"] = missing
        notes.append(f"profile {profile.id} counts {len(missing)} product(s) this run did not compute (GEP "
                     f"excludes them): {'; '.join(missing)}")
    if profile.net_of_external:
        notes.append(f"profile {profile.id} counts net of products from outside the region: "
                     + "; ".join(f"{k}: {v}" for k, v in profile.net_of_external.items()))

    # the whole region: raster totals
    region_qty = pd.DataFrame({pid: [pc.qty_total if pc.qty_total is not None else np.nan] for pid, pc in cols.items()},
                              index=pd.Index([cfg.region]))
    region_val = pd.DataFrame({pid: [pc.value_total if pc.value_total is not None else np.nan]
                               for pid, pc in cols.items()}, index=pd.Index([cfg.region]))
    parts = [catalogue_rows(region_qty, region_val, zone_set="region",
                            zone_names=pd.Series({cfg.region: cfg.region_name or cfg.region}),
                            units=units, prices=prices, sources=sources, profile=profile)]

    for name, csv_path in zonal_tables.items():
        zs = cfg.zones[name]
        table = pd.read_parquet(Path(csv_path).with_suffix(".parquet"))
        if zs.id_field in table.columns:
            table = table.set_index(zs.id_field)
        qty, val = _zone_frames(table, cols)
        zones = read_zone_set(plan, name)
        zones = zones.set_index(zones[zs.id_field].to_numpy())
        names = zones[zs.name_field] if zs.name_field and zs.name_field in zones.columns else None
        parts.append(catalogue_rows(qty, val, zone_set=name, zone_names=names, units=units, prices=prices,
                                    sources=sources, profile=profile))
        id_column = "parcel_id" if name == "parcels" else "zone_id"
        body = gep_columns(qty, val, profile)
        area = pd.Series(_area_ha(zones), index=zones.index).reindex(body.index)
        covered = pd.Series(_covered_area_ha(zones, plan.grid), index=zones.index).reindex(body.index)
        # per hectare of the area the grid covers (the GEP of the rest is not computed)
        body["gep_per_ha"] = np.where(covered > 0, body["gep"] / covered.where(covered > 0, 1.0), np.nan)
        front = pd.DataFrame({id_column: body.index.astype(str)}, index=body.index)
        if names is not None:
            front["name"] = names.reindex(body.index).astype(str)
        front["area_ha"] = area.astype("float64")
        front["covered_area_ha"] = covered.astype("float64")
        gdf = gpd.GeoDataFrame(pd.concat([front, body], axis=1),
                               geometry=zones.geometry.reindex(body.index).to_numpy(), crs=zones.crs)
        gdf = gdf.rename_axis(None)  # the id is a column; a named index would clash with it when written
        col_units = {id_column: "", "area_ha": "ha", "covered_area_ha": "ha", "gep": "CNY", "gep_excl_contested": "CNY", "gep_per_ha": "CNY/ha"}
        for pid in qty.columns:
            col_units[f"{pid}_qty"] = units.get(pid, "")
            col_units[f"{pid}_value"] = "CNY"
        switch = field_names or run_field_names(plan)
        written.update(write_zone_table(gdf, folder, name, {**meta_base, "units": col_units, "zone_set": name,
                                                            "field_names_gpkg": switch}, switch))
        zreport: dict[str, Any] = {"n_zones": len(gdf), "partition": zs.partition}
        if zs.partition:
            zreport["partition_check"] = _partition_report(zones.reset_index(drop=True), zs.id_field)
            zreport["mass_balance"] = _zone_set_balance(Path(csv_path))
        report["zone_sets"][name] = zreport

    catalogue = pd.concat(parts, ignore_index=True)
    written.update(write_catalogue(catalogue, folder, meta_base))
    # boolean masks, not DataFrame.query: with numexpr installed (a rio-tiler dependency) pandas
    # hands query strings to numexpr, which fails on these columns
    region_counted = (catalogue["zone_set"] == "region") & catalogue["counted"].astype(bool)
    report["gep_region"] = {
        "gep": float(catalogue.loc[region_counted, "value_cny"].fillna(0).sum()),
        "gep_excl_contested": float(catalogue.loc[region_counted & ~catalogue["contested"].astype(bool),
                                                  "value_cny"].fillna(0).sum()),
        "units": "CNY", "price_year": setup.price_year}
    (folder / "products.json").write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str),
                                          encoding="utf-8")
    written["products_report"] = folder / "products.json"
    if stac:
        from .stac import write_stac

        written["stac"] = write_stac(plan, results, written, out_dir, layout)
    return written
