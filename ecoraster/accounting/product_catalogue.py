"""The product catalogue of a run (生态产品目录清单): one row per product × zone, GEP per
zone, first- and second-level sums, and the writer (CSV, Parquet, Excel).

Catalogue fields follow DB11/T 2059-2022 Annex A (✔ the annex exists; its field list ✱):
code, first-level class, second-level class, product, physical quantity and unit, method,
value, price, price year, source, confidence, zone (spatial unit), standard profile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..standards import LEVEL1, Profile, load_products
from .xlsx import write_catalogue_workbook

#: Catalogue columns, in order.
CATALOGUE_COLUMNS = [
    "code", "level1", "level2", "product", "name_zh", "zone_set", "zone_id", "zone_name",
    "quantity", "quantity_unit", "physical_method", "valuation_method", "value_cny",
    "price", "price_unit", "price_year", "price_id", "price_source", "source", "confidence",
    "profile", "counted", "contested",
]

#: Column names of catalogues written before the zones rename, and their new names.
OLD_COLUMNS = {"unit_set": "zone_set", "unit_id": "zone_id", "unit_name": "zone_name"}


def read_catalogue(path: str | Path) -> pd.DataFrame:
    """A run's ``catalogue.csv`` / ``.parquet``; old workspaces' ``unit_*`` columns are renamed."""
    p = Path(path)
    if p.suffix == ".parquet":
        df = pd.read_parquet(p)
    else:
        df = pd.read_csv(p, encoding="utf-8-sig", dtype={"unit_id": str, "zone_id": str})
    return df.rename(columns=OLD_COLUMNS)



def catalogue_rows(
    quantities: pd.DataFrame,
    values: pd.DataFrame,
    *,
    zone_set: str,
    zone_names: pd.Series | None,
    units: dict[str, str],
    prices: dict[str, dict[str, Any]],
    sources: dict[str, dict[str, Any]],
    profile: Profile,
) -> pd.DataFrame:
    """Catalogue rows of one zone set: one per product × zone.

    Parameters
    ----------
    quantities, values : DataFrame
        Index = zone id; columns = product codes; physical quantity (in ``units[product]``)
        and value (CNY). A product may be missing from either (no price / no quantity).
    zone_set : str
        Name of the zone set (``region``, ``parcels``, ``townships`` …).
    prices : dict product → {price, price_unit, price_year, price_id, price_source, confidence}
    sources : dict product → {source, confidence}
        Where the quantity came from (service and output, or statistics table).
    """
    products = load_products()
    rows = []
    codes = [c for c in dict.fromkeys([*quantities.columns, *values.columns])]
    for zone_id in quantities.index.union(values.index, sort=False):
        for pid in codes:
            prod = products.get(pid)
            qty = quantities.at[zone_id, pid] if pid in quantities.columns and zone_id in quantities.index else None
            val = values.at[zone_id, pid] if pid in values.columns and zone_id in values.index else None
            price = prices.get(pid, {})
            src = sources.get(pid, {})
            rows.append({
                "code": prod.code if prod else "",
                "level1": prod.level1 if prod else "",
                "level2": prod.level2 if prod else "",
                "product": pid,
                "name_zh": prod.name_zh if prod else pid,
                "zone_set": zone_set,
                "zone_id": str(zone_id),
                "zone_name": str(zone_names.get(zone_id, "")) if zone_names is not None else "",
                "quantity": float(qty) if qty is not None and pd.notna(qty) else float("nan"),
                "quantity_unit": units.get(pid, prod.physical_unit if prod else ""),
                "physical_method": prod.physical_method if prod else "",
                "valuation_method": prod.valuation_method if prod else "",
                "value_cny": float(val) if val is not None and pd.notna(val) else float("nan"),
                "price": price.get("price", float("nan")),
                "price_unit": price.get("price_unit", ""),
                "price_year": price.get("price_year"),
                "price_id": price.get("price_id", ""),
                "price_source": price.get("price_source", ""),
                "source": src.get("source", ""),
                "confidence": price.get("confidence") or src.get("confidence", ""),
                "profile": profile.id,
                "counted": profile.counts(pid),
                "contested": profile.is_contested(pid),
            })
    df = pd.DataFrame(rows, columns=CATALOGUE_COLUMNS)
    df["price_year"] = df["price_year"].astype("Int64")
    return df


def gep_by_zone(catalogue: pd.DataFrame) -> pd.DataFrame:
    """GEP per zone: Σ value of counted products, with and without contested ones, and
    the three first-level sums (CNY)."""
    keys = ["zone_set", "zone_id", "zone_name"]
    counted = catalogue[catalogue["counted"].astype(bool)].copy()
    if counted.empty:
        return pd.DataFrame(columns=[*keys, "gep_cny", "gep_excl_contested_cny", *[f"{c}_cny" for c in LEVEL1],
                                     "profile"])
    counted["value_cny"] = counted["value_cny"].fillna(0.0)
    gep = counted.groupby(keys, sort=False)["value_cny"].sum().rename("gep_cny")
    excl = counted[~counted["contested"]].groupby(keys, sort=False)["value_cny"].sum().rename(
        "gep_excl_contested_cny")
    by_level = counted.pivot_table(index=keys, columns="level1", values="value_cny", aggfunc="sum",
                                   sort=False).reindex(columns=list(LEVEL1)).fillna(0.0)
    by_level.columns = [f"{c}_cny" for c in by_level.columns]
    out = pd.concat([gep, excl, by_level], axis=1).fillna(0.0).reset_index()
    out["profile"] = catalogue["profile"].iloc[0] if len(catalogue) else ""
    return out


def summarise(catalogue: pd.DataFrame, level: int) -> pd.DataFrame:
    """Sums per zone and first-level (``level=1``) or second-level (``level=2``) class.

    Quantities are only summed within one second-level class and one unit of measure.
    """
    keys = ["zone_set", "zone_id", "zone_name", "level1"] + (["level2"] if level == 2 else [])
    df = catalogue[catalogue["counted"].astype(bool)]
    if df.empty:
        return pd.DataFrame(columns=[*keys, "value_cny", "products"])
    agg = df.assign(value_cny=df["value_cny"].fillna(0.0)).groupby(keys, sort=False).agg(
        value_cny=("value_cny", "sum"), products=("product", ", ".join),
        quantity=("quantity", "sum"), n_units=("quantity_unit", "nunique"), quantity_unit=("quantity_unit", "first"))
    if level == 2:
        mixed = agg["n_units"] > 1
        agg.loc[mixed, "quantity"] = float("nan")
        agg.loc[mixed, "quantity_unit"] = "mixed"
        agg = agg[["quantity", "quantity_unit", "value_cny", "products"]]
    else:
        agg = agg[["value_cny", "products"]]
    return agg.reset_index()


#: Zone sets with more zones than this are left out of the Excel workbook (they stay in the CSV
#: and Parquet): openpyxl writes ~25,000 cells/s here, so 3,000 parcels × 8 products took ~20 s.
XLSX_MAX_ZONES = 500


def write_catalogue(catalogue: pd.DataFrame, folder: Path, meta: dict[str, Any],
                    xlsx_max_zones: int = XLSX_MAX_ZONES) -> dict[str, Path]:
    """``catalogue.csv`` (UTF-8 with BOM, so Excel shows the Chinese), ``catalogue.parquet``
    and ``catalogue.xlsx`` (sheets 目录清单 / 一级分类 / 二级分类 / GEP / 说明; Chinese headers with
    units, number formats, frozen header row); zone sets with more than ``xlsx_max_zones`` zones
    (e.g. parcels) go to CSV and Parquet and, one row per zone, to ``<zone set>.xlsx``."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    paths = {"catalogue_csv": folder / "catalogue.csv", "catalogue_parquet": folder / "catalogue.parquet",
             "catalogue_xlsx": folder / "catalogue.xlsx"}
    catalogue.to_csv(paths["catalogue_csv"], index=False, encoding="utf-8-sig")
    table = pa.Table.from_pandas(catalogue, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           b"ecoraster": json.dumps(meta, ensure_ascii=False).encode()})
    pq.write_table(table, paths["catalogue_parquet"])
    sizes = catalogue.groupby("zone_set")["zone_id"].nunique()
    left_out = sorted(sizes[sizes > xlsx_max_zones].index)
    book = catalogue[~catalogue["zone_set"].isin(left_out)]
    if left_out:
        meta = {**meta, "xlsx_left_out": f"zone sets {', '.join(left_out)} (> {xlsx_max_zones} zones): "
                                        f"see {', '.join(f'{z}.xlsx' for z in left_out)} (one row per zone) "
                                        "and catalogue.csv / catalogue.parquet"}
    gep = gep_by_zone(book)
    about = pd.DataFrame({"key": list(meta), "value": [json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list))
                                                        else v for v in meta.values()]})
    write_catalogue_workbook(paths["catalogue_xlsx"], {
        "目录清单": book, "一级分类": summarise(book, 1), "二级分类": summarise(book, 2), "GEP": gep,
        "说明": about.rename(columns={"key": "项目 key", "value": "内容 value"})})
    return paths
