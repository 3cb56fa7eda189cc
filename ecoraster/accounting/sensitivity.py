"""Sensitivity of a finished run's GEP: per product and zone, the value at low / central / high.

Central = the run's catalogue value. The range combines, for each product,

- the price: every named price option of the product in the run's price table
  (``configs/prices/*.yaml``; e.g. carbon ``market`` vs ``shadow``), rebased to the run's price
  year by the same rules as the run (:func:`ecoraster.prices.rebase`);
- the physical quantity: the factor range declared for the ✱ parameters of its model in
  ``configs/parameters/sensitivity_ranges.yaml`` (products absent there: 1 / 1).

value_low = quantity × q_low × min(price options), value_high = quantity × q_high × max(price
options) — value is linear in quantity and price, so no service is re-run. Written to
``products/sensitivity.csv``; the region's GEP range (with and without the contested items) is
added to ``products/products.json`` → ``gep_region``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from .. import yamlio
from ..errors import EcorasterError, MissingFileError
from ..prices import CPI, PriceTable, rebase
from ..resources import config_path
from .product_catalogue import read_catalogue

RANGES = config_path("parameters", "sensitivity_ranges.yaml", must_exist=False)


def quantity_ranges(path: Path = RANGES) -> dict[str, dict[str, Any]]:
    """Per product: {low, high, parameters, confidence} from the ranges table."""
    if not Path(path).is_file():
        return {}
    return dict(yamlio.read_mapping(Path(path), field="sensitivity_ranges").get("ranges") or {})


def price_range(table: PriceTable, cpi: CPI, product: str, price_year: int, central: float) -> tuple[float, float, str]:
    """(lowest, highest price, what they are) over the product's named options in ``price_year``;
    the central price when the product has no options or an option cannot be rebased."""
    values = {}
    for option in table.options(product):
        try:
            entry = table.for_product(product, option, price_year)
            if entry is not None:
                values[option] = rebase(table, entry, cpi, price_year).value
        except EcorasterError as exc:
            values[f"{option} (n/a: {exc})"] = math.nan
    ok = {k: v for k, v in values.items() if math.isfinite(v)}
    if not ok:
        return central, central, "central price only"
    lo, hi = min(ok, key=ok.get), max(ok, key=ok.get)
    return min(ok[lo], central), max(ok[hi], central), f"price options {lo} {ok[lo]:.4g} … {hi} {ok[hi]:.4g}"


def run_sensitivity(workspace: str | Path, ranges_path: Path = RANGES) -> pd.DataFrame:
    """Write ``products/sensitivity.csv`` for the run at ``workspace`` and the GEP range into
    ``products/products.json``; return the table (one row per product × zone)."""
    ws = Path(workspace)
    cat_path = ws / "products" / "catalogue.parquet"
    val_path = ws / "valuation.json"
    for p in (cat_path, val_path):
        if not p.is_file():
            raise MissingFileError(str(p), field="workspace")
    cat = read_catalogue(cat_path)
    valuation = json.loads(val_path.read_text(encoding="utf-8"))
    table = PriceTable.load(valuation["price_table_path"])
    cpi = CPI(table.cpi_path)
    year = int(valuation["price_year"])
    qranges = quantity_ranges(ranges_path)
    rows = []
    per_product: dict[str, tuple[float, float, float, float, str]] = {}
    for product, group in cat.groupby("product", sort=False):
        price = group["price"].dropna()
        central_price = float(price.iloc[0]) if len(price) else math.nan
        q = qranges.get(product, {})
        q_lo, q_hi = float(q.get("low", 1.0)), float(q.get("high", 1.0))
        if math.isfinite(central_price) and central_price > 0:
            p_lo, p_hi, p_note = price_range(table, cpi, product, year, central_price)
            per_product[product] = (q_lo, q_hi, p_lo / central_price, p_hi / central_price, p_note)
        else:  # valued by its statistics table (no unit price) or not valued: no price range
            per_product[product] = (q_lo, q_hi, 1.0, 1.0, "value from the statistics table" if
                                    group["value_cny"].notna().any() else "not valued")
    for rec in cat.itertuples(index=False):
        q_lo, q_hi, f_lo, f_hi, p_note = per_product[rec.product]
        central = float(rec.value_cny) if pd.notna(rec.value_cny) else math.nan
        rows.append({"zone_set": rec.zone_set, "zone_id": rec.zone_id, "product": rec.product,
                     "counted": bool(rec.counted), "contested": bool(rec.contested),
                     "quantity": rec.quantity, "quantity_unit": rec.quantity_unit,
                     "low": central * q_lo * f_lo, "central": central, "high": central * q_hi * f_hi,
                     "quantity_factor_low": q_lo, "quantity_factor_high": q_hi,
                     "price_factor_low": f_lo, "price_factor_high": f_hi, "price_range": p_note,
                     "parameters": qranges.get(rec.product, {}).get("parameters", "")})
    out = pd.DataFrame(rows)
    out.to_csv(ws / "products" / "sensitivity.csv", index=False, encoding="utf-8-sig")
    region = out[(out["zone_set"] == "region") & out["counted"]]
    kept = region[~region["contested"]]
    summary = {"gep_low": float(region["low"].fillna(0).sum()), "gep_high": float(region["high"].fillna(0).sum()),
               "gep_excl_contested_low": float(kept["low"].fillna(0).sum()),
               "gep_excl_contested_high": float(kept["high"].fillna(0).sum()),
               "sensitivity": "products/sensitivity.csv"}
    report_path = ws / "products" / "products.json"
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else {}
    report.setdefault("gep_region", {}).update(summary)
    report_path.write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    return out


def gep_range_by_zone(sensitivity: pd.DataFrame) -> pd.DataFrame:
    """GEP low / high per zone (counted products), with and without the contested ones (CNY)."""
    keys = ["zone_set", "zone_id"]
    counted = sensitivity[sensitivity["counted"].astype(bool)].copy()
    for c in ("low", "high"):
        counted[c] = counted[c].fillna(0.0)
    kept = counted[~counted["contested"].astype(bool)]
    out = pd.concat([counted.groupby(keys)[["low", "high"]].sum().add_prefix("gep_").add_suffix("_cny"),
                     kept.groupby(keys)[["low", "high"]].sum().add_prefix("gep_excl_contested_").add_suffix("_cny")],
                    axis=1).fillna(0.0)
    return out.reset_index()


__all__ = ["run_sensitivity", "quantity_ranges", "price_range", "gep_range_by_zone"]
