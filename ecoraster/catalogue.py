"""The product catalogue (生态产品目录清单): product classes, standard profiles, and the
catalogue table of a run (one row per product × spatial unit) with GEP per unit.

- ``configs/products.yaml``: product code → code, name, first- and second-level class,
  physical unit and method, valuation method.
- ``configs/profiles/<id>.yaml``: which products count under a standard (``mee2020``,
  ``ndrc2022`` …), which are contested, which classes tables are allocated to.

Catalogue fields follow DB11/T 2059-2022 Annex A (✔ the annex exists; its field list ✱):
code, first-level class, second-level class, product, physical quantity and unit, method,
value, price, price year, source, confidence, spatial unit, standard profile.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import yamlio
from .errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
LEVEL1 = ("物质产品", "调节服务", "文化服务")

#: Catalogue columns, in order.
CATALOGUE_COLUMNS = [
    "code", "level1", "level2", "product", "name_zh", "unit_set", "unit_id", "unit_name",
    "quantity", "quantity_unit", "physical_method", "valuation_method", "value_cny",
    "price", "price_unit", "price_year", "price_id", "price_source", "source", "confidence",
    "profile", "counted", "contested",
]


class Product(BaseModel):
    """One ecological product of ``configs/products.yaml``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    code: str
    name_zh: str
    name_en: str
    level1: str
    level2: str
    physical_unit: str
    physical_method: str = ""
    valuation_method: str = ""


class Indicator(BaseModel):
    """How a standard treats one product: its clause or annex, the methods it allows, and whether
    ecoraster computes it yet (``implemented: false`` → a run states it as missing, never fails)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    clause: str = ""
    methods: tuple[str, ...] = ()
    implemented: bool = True


class Profile(BaseModel):
    """A standard profile: the products that count, the contested ones, allocation classes;
    optionally each product's clause and methods (``indicators``) and the products counted net of
    what comes from outside the region (``net_of_external``, GB/T 46869-2025's GEP definition)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    prices: str | None = None
    material_value_rule: str | None = None
    products: tuple[str, ...]
    contested: tuple[str, ...] = ()
    eligible_classes: dict[str, tuple[int, ...]] = Field(default_factory=dict)
    indicators: dict[str, Indicator] = Field(default_factory=dict)
    net_of_external: dict[str, str] = Field(default_factory=dict)
    source_path: str | None = None

    def missing(self, computed: set[str] | frozenset[str]) -> list[str]:
        """Counted products a run did not compute, each with the reason (not implemented / not configured)."""
        out = []
        for pid in self.products:
            if pid in computed:
                continue
            ind = self.indicators.get(pid)
            why = "not implemented in ecoraster" if ind is not None and not ind.implemented else "not in this run"
            clause = f", {ind.clause}" if ind is not None and ind.clause else ""
            out.append(f"{pid} ({why}{clause})")
        return out

    def counts(self, product: str) -> bool:
        return product in self.products

    def is_contested(self, product: str) -> bool:
        return product in self.contested


@lru_cache(maxsize=8)
def _load_products_cached(path: str, mtime: float) -> dict[str, Product]:
    raw = yamlio.read_mapping(Path(path), field="products")
    out: dict[str, Product] = {}
    for pid, body in (raw.get("products") or {}).items():
        try:
            product = Product.model_validate({"id": pid, **(body or {})})
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ConfigError(f"{path}: products.{pid}.{'.'.join(map(str, err['loc']))} = "
                              f"{err.get('input')!r}: {err['msg']}") from None
        if product.level1 not in LEVEL1:
            raise ConfigError(f"{path}: products.{pid}.level1 = {product.level1!r}: use one of {', '.join(LEVEL1)}")
        out[pid] = product
    return out


def load_products(path: str | os.PathLike | None = None) -> dict[str, Product]:
    """Products by code from ``configs/products.yaml`` (or ``path``)."""
    p = Path(path) if path else CONFIGS / "products.yaml"
    return _load_products_cached(str(p.resolve()), p.stat().st_mtime if p.exists() else 0.0)


def products_version(path: str | os.PathLike | None = None) -> str:
    p = Path(path) if path else CONFIGS / "products.yaml"
    return str(yamlio.read_mapping(p, field="products").get("version", "unversioned"))


def load_profile(name_or_path: str | os.PathLike) -> Profile:
    """A standard profile by id (``configs/profiles/<id>.yaml``) or by path; every product it
    names must exist in ``configs/products.yaml``."""
    p = Path(name_or_path)
    if p.suffix.lower() not in (".yaml", ".yml"):
        p = CONFIGS / "profiles" / f"{name_or_path}.yaml"
    raw = yamlio.read_mapping(p, field="profile")
    try:
        profile = Profile.model_validate({**raw, "source_path": str(p)})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"{p}: {'.'.join(map(str, err['loc']))} = {err.get('input')!r}: {err['msg']}") from None
    known = load_products()
    for field_name, codes in (("products", profile.products), ("contested", profile.contested),
                              ("eligible_classes", tuple(profile.eligible_classes)),
                              ("indicators", tuple(profile.indicators)),
                              ("net_of_external", tuple(profile.net_of_external))):
        unknown = [c for c in codes if c not in known]
        if unknown:
            raise ConfigError(f"{p}: {field_name}: unknown product code(s) {', '.join(unknown)} "
                              f"(not in {CONFIGS / 'products.yaml'})")
    return profile


# ---------------------------------------------------------------------------------------
# the catalogue table of a run
# ---------------------------------------------------------------------------------------

def catalogue_rows(
    quantities: pd.DataFrame,
    values: pd.DataFrame,
    *,
    unit_set: str,
    unit_names: pd.Series | None,
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
    unit_set : str
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
                "unit_set": unit_set,
                "unit_id": str(zone_id),
                "unit_name": str(unit_names.get(zone_id, "")) if unit_names is not None else "",
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


def gep_by_unit(catalogue: pd.DataFrame) -> pd.DataFrame:
    """GEP per spatial unit: Σ value of counted products, with and without contested ones, and
    the three first-level sums (CNY)."""
    keys = ["unit_set", "unit_id", "unit_name"]
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
    """Sums per unit and first-level (``level=1``) or second-level (``level=2``) class.

    Quantities are only summed within one second-level class and one unit of measure.
    """
    keys = ["unit_set", "unit_id", "unit_name", "level1"] + (["level2"] if level == 2 else [])
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
    and ``catalogue.xlsx`` (sheets 目录清单 / 一级分类 / 二级分类 / GEP / 说明); zone sets with
    more than ``xlsx_max_zones`` zones (e.g. parcels) only go to CSV and Parquet."""
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
    sizes = catalogue.groupby("unit_set")["unit_id"].nunique()
    left_out = sorted(sizes[sizes > xlsx_max_zones].index)
    book = catalogue[~catalogue["unit_set"].isin(left_out)]
    if left_out:
        meta = {**meta, "xlsx_left_out": f"zone sets {', '.join(left_out)} (> {xlsx_max_zones} zones): "
                                        "see catalogue.csv / catalogue.parquet"}
    gep = gep_by_unit(book)
    about = pd.DataFrame({"key": list(meta), "value": [json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list))
                                                        else v for v in meta.values()]})
    with pd.ExcelWriter(paths["catalogue_xlsx"], engine="openpyxl") as xl:
        book.to_excel(xl, sheet_name="目录清单", index=False)
        summarise(book, 1).to_excel(xl, sheet_name="一级分类", index=False)
        summarise(book, 2).to_excel(xl, sheet_name="二级分类", index=False)
        gep.to_excel(xl, sheet_name="GEP", index=False)
        about.to_excel(xl, sheet_name="说明", index=False)
    return paths
