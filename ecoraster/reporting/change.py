"""Change over time between two runs (two years, or a baseline and a scenario).

Per product and per unit (region, districts, wetland units, parcels — every zone set the two
catalogues share):

- quantity change: q_B − q_A (physical unit of the product);
- value change at constant prices of year Y (default: the later run's price year):
  V_B × f_B − V_A × f_A, each quantity valued at the unit price of Y. Where a run priced in
  Y (the reference: B, A or C) valued the same output, f = p_Y / p, its unit price over the
  row's: the reference's valuation already rebased each price by its kind
  (``ecoraster.prices``: cost and shadow prices with the CPI, fee / tax rates and market
  prices of their own year as they are, a derived price part by part). Otherwise a cost or
  shadow price, or a statistics value (no unit price), is rebased with the CPI, f = CPI(price
  year → Y) (``configs/prices/cpi_china.csv``, the CPI the runs valued with; gep-methods.md
  preamble); a fee / tax or market price falls back to the CPI too, flagged. Column
  ``price_basis`` says which. The nominal change V_B − V_A is reported beside it;
- GEP growth rate: (GEP_B − GEP_A) / GEP_A at constant prices (GEP = Σ value of the products the
  profile counts; also without the contested items);
- split of the change into land-cover change and everything else, with a counterfactual run C
  (the later run's drivers — climate, statistics, prices — on the earlier land cover):
  land-cover effect = V_B − V_C, other drivers = V_C − V_A (sum = V_B − V_A, all at constant
  prices). :func:`run_counterfactual` makes C with the library (land cover swapped in the config).

Difference rasters (COG, CNY per pixel at constant prices and physical units per pixel) are
written with the project's COG writer; a pixel that is nodata in one run and valid in the other
counts as 0 there (land that gained or lost the product), nodata in both stays nodata.

Outputs (``-o DIR``): ``change_gep.{csv,parquet}`` (per unit), ``change_products.{csv,parquet}``
(per unit × product), ``change.xlsx`` (zone sets of ≤ 500 zones), ``landcover_transitions.csv``
(region, ha), ``rasters/*.tif``, ``change.html`` (offline summary with a map) and ``change.json``.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import QueryError
from ..query.workspace import RunWorkspace
from . import workspace_io as wio
from .xlsx import about_sheet

#: Raster nodata of the difference rasters.
DIFF_NODATA = -9999.0
#: Zone sets with more zones than this stay out of the workbook (as the catalogue does).
XLSX_MAX_ZONES = 500
#: Input names that hold the run's main land cover (GEP ecosystem classes).
LANDCOVER_INPUTS = ("ecosystem", "classes", "lulc")

KEYS = ["zone_set", "zone_id"]


# ---------------------------------------------------------------------------------------
# land cover of a run and the counterfactual run
# ---------------------------------------------------------------------------------------

def main_landcover(config) -> str:
    """The dataset id of a run's main land cover: the id most often given to the services'
    ``ecosystem`` / ``classes`` inputs (carbon storage's ``lulc_bas`` / ``lulc_alt`` aside)."""
    services = config["services"] if isinstance(config, dict) else config.model_dump()["services"]
    ids = Counter(v for s in services.values() if s.get("enabled", True)
                  for k, v in (s.get("inputs") or {}).items() if k in LANDCOVER_INPUTS and isinstance(v, str))
    if not ids:
        raise QueryError("run config: no service input named ecosystem / classes / lulc (no land cover found)")
    return ids.most_common(1)[0][0]


def counterfactual_config(later, earlier_landcover: str):
    """The later run's config with its main land cover replaced by ``earlier_landcover``
    everywhere it is a service input (carbon storage, a stock outside GEP, is left out)."""
    from ..config import RunConfig

    raw = later.model_dump(mode="json") if isinstance(later, RunConfig) else dict(later)
    current = main_landcover(raw)
    services = {}
    for sid, s in raw["services"].items():
        if sid == "carbon_storage":
            continue
        inputs = {k: (earlier_landcover if v == current else v) for k, v in (s.get("inputs") or {}).items()}
        services[sid] = {**s, "inputs": inputs}
    # the earlier land cover is read in the later year on purpose (its valid_years are the earlier run's)
    allowed = sorted({*raw.get("allow_outside_years", []), earlier_landcover})
    raw = {**raw, "services": services, "allow_outside_years": allowed}
    return RunConfig.model_validate(raw)


def run_counterfactual(earlier: RunWorkspace, later: RunWorkspace, workspace: str | os.PathLike, *,
                       progress=None) -> RunWorkspace:
    """Run the library on the later run's config with the earlier run's land cover; return C."""
    from ..pipeline import run as execute_run

    cfg = counterfactual_config(wio.run_config(later), main_landcover(earlier.config))
    execute_run(cfg, workspace, progress=progress)
    return wio.open_run(workspace)


def landcover_array(ws: RunWorkspace):
    """The run's main land cover as GEP ecosystem classes on the run grid (lazy, uint8, nodata 0)."""
    from ..grid import align_to

    cfg = wio.run_config(ws)
    entry = cfg.load_catalog().get(main_landcover(ws.config), field="land cover")
    if entry.reclass:
        from ..ingest.landcover import reclassify

        return reclassify(entry.uri, entry.reclass, ws.grid, band=entry.band, src_nodata=entry.nodata,
                          src_crs=entry.crs, resampling="mode", chunk=cfg.chunk, check=False)
    return align_to(entry.uri, ws.grid, "mode", chunk=cfg.chunk, src_nodata=entry.nodata, src_crs=entry.crs)


def class_names() -> dict[int, str]:
    """GEP ecosystem class code → Chinese name (``configs/classes/gep_ecosystem_classes.csv``)."""
    from ..resources import config_path

    t = pd.read_csv(config_path("classes", "gep_ecosystem_classes.csv"), encoding="utf-8-sig", comment="#")
    return dict(zip(t["code"].astype(int), t["name_zh"]))


def landcover_transitions(lc_a: np.ndarray, lc_b: np.ndarray, pixel_area_m2: float,
                          mask: np.ndarray | None = None, nodata: int = 0) -> pd.DataFrame:
    """Transition matrix in ha: rows = class at A, columns = class at B (GEP class codes).

    ``mask`` (bool, True = inside) restricts the count; pixels nodata in either year are left out.
    """
    a = np.asarray(lc_a).astype(np.int64).ravel()
    b = np.asarray(lc_b).astype(np.int64).ravel()
    keep = (a != nodata) & (b != nodata)
    if mask is not None:
        keep &= np.asarray(mask, dtype=bool).ravel()
    a, b = a[keep], b[keep]
    if a.size == 0:
        return pd.DataFrame()
    codes = np.union1d(np.unique(a), np.unique(b))
    ia, ib = np.searchsorted(codes, a), np.searchsorted(codes, b)
    counts = np.bincount(ia * len(codes) + ib, minlength=len(codes) ** 2).reshape(len(codes), len(codes))
    ha = counts.astype(np.float64) * pixel_area_m2 / 10_000.0
    return pd.DataFrame(ha, index=pd.Index(codes, name="class_a"), columns=pd.Index(codes, name="class_b"))


def named_matrix(matrix: pd.DataFrame) -> pd.DataFrame:
    """Transition matrix with ``code 名称`` labels and row / column totals (ha)."""
    names = class_names()
    m = matrix.copy()
    m.index = [f"{c} {names.get(int(c), '')}".strip() for c in m.index]
    m.columns = [f"{c} {names.get(int(c), '')}".strip() for c in m.columns]
    m["合计 (A)"] = m.sum(axis=1)
    m.loc["合计 (B)"] = m.sum(axis=0)
    m.index.name = "A \\ B (ha)"
    return m


# ---------------------------------------------------------------------------------------
# constant prices
# ---------------------------------------------------------------------------------------

def at_constant_prices(catalogue: pd.DataFrame, ws: RunWorkspace, price_year: int,
                       reference: RunWorkspace | None = None) -> pd.DataFrame:
    """The catalogue with ``const_factor``, ``value_const`` (CNY of ``price_year``), ``cpi_factor``
    and ``price_basis``. ``reference`` is the run priced in ``price_year`` (``ws`` itself when
    its price year is ``price_year``): its unit prices revalue the fee / tax and market-priced
    rows (module doc); every other row is rebased with the CPI. A row without a price year
    uses the run's."""
    from ..prices import CPI, DATED_KINDS

    cpi = CPI(wio.cpi_path(ws))
    years = catalogue["price_year"].astype("Float64").fillna(float(ws.price_year or ws.year)).astype(int)
    factors = {y: cpi.factor(y, price_year, where=f"{ws.root}") for y in sorted(set(years))}
    out = catalogue.copy()
    out["price_year"] = years.to_numpy()
    out["cpi_factor"] = years.map(factors).to_numpy(dtype="float64")
    valued = wio.valuation_report(ws).get("valued") or {}
    ref_valued = (wio.valuation_report(reference).get("valued") or {}) if reference is not None else {}
    const, basis = [], []
    for source, row_year, f_cpi in zip(out.get("source", pd.Series([None] * len(out))), out["price_year"],
                                       out["cpi_factor"]):
        rec = valued.get(source) if isinstance(source, str) else None
        ref = ref_valued.get(source) if isinstance(source, str) else None
        kind = (rec or {}).get("kind")
        p_row = float((rec or {}).get("factor_cny_per_unit") or 0.0)
        if rec and ref and ref.get("physical_units") == rec.get("physical_units") and p_row > 0:
            const.append(float(ref["factor_cny_per_unit"]) / p_row)
            basis.append(f"unit price of {price_year} ({ref.get('price_id')})")
        elif int(row_year) == price_year:
            const.append(1.0)
            basis.append(f"price of {price_year}")
        elif kind in DATED_KINDS:
            const.append(f_cpi)
            basis.append(f"cpi ({kind} price: no run priced in {price_year} values this output)")
        else:
            const.append(f_cpi)
            basis.append("cpi" if rec else "cpi (no unit price recorded)")
    out["const_factor"] = np.asarray(const, dtype="float64")
    out["price_basis"] = basis
    out["value_const"] = out["value_cny"].astype("float64") * out["const_factor"]
    return out


def _pct(new: pd.Series, old: pd.Series) -> pd.Series:
    old = old.astype("float64")
    return ((new - old) / old.where(old != 0)).astype("float64")


def product_changes(cat_a: pd.DataFrame, cat_b: pd.DataFrame, cat_c: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per unit × product: quantities, nominal and constant-price values of A and B, their
    changes and (with C) the land-cover / other split. Catalogues from :func:`at_constant_prices`."""
    info = ["zone_name", "name_zh", "level1", "level2", "quantity_unit", "counted", "contested"]
    take = ["quantity", "value_cny", "value_const", "price_year", "cpi_factor", "const_factor", "price_basis"]
    a = cat_a[[*KEYS, "product", *take]].rename(columns={c: f"{c}_a" for c in take})
    b = cat_b[[*KEYS, "product", *info, *take]].rename(columns={c: f"{c}_b" for c in take})
    m = b.merge(a, on=[*KEYS, "product"], how="outer", indicator=True)
    # units only in A: take their descriptive fields from A
    only_a = m["_merge"] == "right_only"  # b is the left frame of the merge
    if only_a.any():
        m[info] = m[info].astype(object)  # NaN-padded bool / str columns take A's values as they are
        ainfo = cat_a.set_index([*KEYS, "product"])[info]
        idx = pd.MultiIndex.from_frame(m.loc[only_a, [*KEYS, "product"]])
        m.loc[only_a, info] = ainfo.reindex(idx).to_numpy()
    m = m.drop(columns="_merge")
    out = m[[*KEYS, "zone_name", "product", "name_zh", "level1", "level2", "counted", "contested",
             "quantity_unit"]].copy()
    out["quantity_a"], out["quantity_b"] = m["quantity_a"], m["quantity_b"]
    out["quantity_change"] = m["quantity_b"] - m["quantity_a"]
    out["quantity_change_pct"] = _pct(m["quantity_b"], m["quantity_a"])
    out["price_year_a"], out["price_year_b"] = m["price_year_a"], m["price_year_b"]
    out["price_basis_a"], out["price_basis_b"] = m["price_basis_a"], m["price_basis_b"]
    out["value_a_nominal"], out["value_b_nominal"] = m["value_cny_a"], m["value_cny_b"]
    out["value_change_nominal"] = m["value_cny_b"].fillna(0) - m["value_cny_a"].fillna(0)
    out["value_a_const"], out["value_b_const"] = m["value_const_a"], m["value_const_b"]
    out["value_change_const"] = m["value_const_b"].fillna(0) - m["value_const_a"].fillna(0)
    out["value_change_const_pct"] = _pct(m["value_const_b"], m["value_const_a"])
    if cat_c is not None:
        c = cat_c[[*KEYS, "product", "value_const"]].rename(columns={"value_const": "value_c_const"})
        out = out.merge(c, on=[*KEYS, "product"], how="left")
        out["change_landcover"] = out["value_b_const"].fillna(0) - out["value_c_const"].fillna(0)
        out["change_other"] = out["value_c_const"].fillna(0) - out["value_a_const"].fillna(0)
    for col in ("counted", "contested"):  # a product of one run only: missing flags are False
        out[col] = [bool(v) if v is not None and v == v else False for v in out[col]]
    return out.reset_index(drop=True)


def gep_changes(products: pd.DataFrame) -> pd.DataFrame:
    """Per unit: GEP of A and B (nominal and constant prices), change, growth rate, the same
    without the contested items, and the land-cover / other split when present (CNY)."""
    counted = products[products["counted"]].copy()
    value_cols = [c for c in ("value_a_nominal", "value_b_nominal", "value_a_const", "value_b_const",
                              "value_c_const", "change_landcover", "change_other") if c in counted.columns]
    counted[value_cols] = counted[value_cols].fillna(0.0)
    g = counted.groupby(KEYS, sort=False)
    out = g["zone_name"].first().to_frame()
    rename = {"value_a_nominal": "gep_a_nominal", "value_b_nominal": "gep_b_nominal", "value_a_const": "gep_a_const",
              "value_b_const": "gep_b_const", "value_c_const": "gep_c_const",
              "change_landcover": "gep_change_landcover", "change_other": "gep_change_other"}
    for col in value_cols:
        out[rename[col]] = g[col].sum()
    out["gep_change_nominal"] = out["gep_b_nominal"] - out["gep_a_nominal"]
    out["gep_change_const"] = out["gep_b_const"] - out["gep_a_const"]
    out["gep_growth_rate"] = _pct(out["gep_b_const"], out["gep_a_const"])
    kept = counted[~counted["contested"]].groupby(KEYS, sort=False)
    out["gep_excl_contested_a_const"] = kept["value_a_const"].sum()
    out["gep_excl_contested_b_const"] = kept["value_b_const"].sum()
    out["gep_excl_contested_growth_rate"] = _pct(out["gep_excl_contested_b_const"], out["gep_excl_contested_a_const"])
    return out.reset_index()


# ---------------------------------------------------------------------------------------
# difference rasters
# ---------------------------------------------------------------------------------------

def _same_grid(a: RunWorkspace, b: RunWorkspace) -> None:
    da_, db_ = a.grid.to_dict(), b.grid.to_dict()
    if da_ != db_:
        raise QueryError(f"{a.root} and {b.root} are on different grids ({da_} vs {db_}); the difference rasters "
                         "need the same grid (give both configs the same `grid: {like: …}`)")


def _diff_block(b, a, fb, fa, nd_b, nd_a, out_nodata):
    vb, va = b != nd_b, a != nd_a
    if np.isnan(nd_b):
        vb = ~np.isnan(b)
    if np.isnan(nd_a):
        va = ~np.isnan(a)
    diff = np.where(vb, b * fb, 0.0) - np.where(va, a * fa, 0.0)
    return np.where(vb | va, diff, out_nodata)


def difference_rasters(a: RunWorkspace, b: RunWorkspace, out_dir: Path, factors_a: dict[str, float],
                       factors_b: dict[str, float], counted: set[str], *, price_year: int) -> dict[str, Any]:
    """Per product present in both runs: ``<product>_value_change.tif`` (CNY per pixel, constant
    prices of ``price_year``) and ``<product>_qty_change.tif`` (physical unit per pixel); and
    ``gep_value_change.tif`` (Σ of the counted products). Returns their totals."""
    import dask.array as dsa

    from ..grid import align_to
    from ..io.raster import RasterOutput, write_rasters

    _same_grid(a, b)
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs, gep_parts = [], []
    chunk = wio.run_config(b).chunk
    for product in b.products:
        for kind in ("value", "physical"):
            la, lb = a.layer(product, kind), b.layer(product, kind)
            if la is None or lb is None:
                continue
            ra = align_to(la.path, b.grid, "nearest", dtype="float64", chunk=chunk)
            rb = align_to(lb.path, b.grid, "nearest", dtype="float64", chunk=chunk)
            fa = factors_a.get(product, 1.0) if kind == "value" else 1.0
            fb = factors_b.get(product, 1.0) if kind == "value" else 1.0
            data = dsa.map_blocks(_diff_block, rb.data, ra.data, fb, fa, float(rb.attrs["nodata"]),
                                  float(ra.attrs["nodata"]), DIFF_NODATA, dtype=np.float64)
            suffix = "value_change" if kind == "value" else "qty_change"
            units = "CNY" if kind == "value" else lb.units
            about = (f"change of the value of {product}, B − A [CNY per pixel, {price_year} prices]" if kind == "value"
                     else f"change of the quantity of {product}, B − A [{units} per pixel]")
            tags = {"kind": f"{kind}_change", "product": product, "run_a": str(a.root), "run_b": str(b.root),
                    "year_a": str(a.year), "year_b": str(b.year)}
            if kind == "value":
                tags["price_year"] = str(price_year)
                if product in counted:
                    gep_parts.append(data)
            outputs.append(RasterOutput(path=out_dir / f"{product}_{suffix}.tif", data=data, nodata=DIFF_NODATA,
                                        units=units, description=about, dtype="float32", tags=tags))
    if gep_parts:
        stack = dsa.stack(gep_parts)
        gep = dsa.where((stack != DIFF_NODATA).any(axis=0), dsa.where(stack == DIFF_NODATA, 0.0, stack).sum(axis=0),
                        DIFF_NODATA)
        outputs.append(RasterOutput(path=out_dir / "gep_value_change.tif", data=gep, nodata=DIFF_NODATA, units="CNY",
                                    description=f"change of GEP (counted products), B − A [CNY per pixel, "
                                                f"{price_year} prices]", dtype="float32",
                                    tags={"kind": "value_change", "product": "gep", "price_year": str(price_year)}))
    stats = write_rasters(outputs, b.grid)
    return {Path(p).name: {"path": str(p), "units": s.units, "total": s.total, "valid_pixels": s.valid_pixels}
            for p, s in stats.items()}


# ---------------------------------------------------------------------------------------
# the whole comparison
# ---------------------------------------------------------------------------------------

@dataclass
class ChangeResult:
    gep: pd.DataFrame
    products: pd.DataFrame
    transitions: pd.DataFrame
    meta: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


def compare_runs(run_a: str | os.PathLike | RunWorkspace, run_b: str | os.PathLike | RunWorkspace, *,
                 counterfactual: str | os.PathLike | RunWorkspace | None = None, price_year: int | None = None,
                 out_dir: str | os.PathLike | None = None, rasters: bool = True,
                 transitions: bool = True) -> ChangeResult:
    """Compare run A (earlier / baseline) with run B (later / scenario); see the module doc."""
    a = run_a if isinstance(run_a, RunWorkspace) else wio.open_run(run_a)
    b = run_b if isinstance(run_b, RunWorkspace) else wio.open_run(run_b)
    c = counterfactual if counterfactual is None or isinstance(counterfactual, RunWorkspace) \
        else wio.open_run(counterfactual)
    year = int(price_year or b.price_year or b.year)
    priced_in_year = [w for w in (b, a, c) if w is not None and int(w.price_year or w.year) == year]
    reference = priced_in_year[0] if priced_in_year else None
    cat_a = at_constant_prices(wio.read_catalogue(a), a, year, reference)
    cat_b = at_constant_prices(wio.read_catalogue(b), b, year, reference)
    cat_c = at_constant_prices(wio.read_catalogue(c), c, year, reference) if c is not None else None
    products = product_changes(cat_a, cat_b, cat_c)
    gep = gep_changes(products)
    meta: dict[str, Any] = {"run_a": str(a.root), "run_b": str(b.root), "counterfactual": str(c.root) if c else None,
            "year_a": a.year, "year_b": b.year, "price_year_a": a.price_year, "price_year_b": b.price_year,
            "constant_price_year": year, "cpi": str(wio.cpi_path(b)), "region": b.region,
            "region_name": b.region_name or b.region, "profile": b.profile,
            "landcover_a": main_landcover(a.config), "landcover_b": main_landcover(b.config),
            "formula": "value_const = quantity × the unit price of the run priced in the constant price year "
                       "(p_Y / p × value); else value × CPI(price year → constant price year) (price_basis); "
                       "change_landcover = B − C, "
                       "change_other = C − A (C: the later run's drivers on the earlier land cover)",
            "reference_run": str(reference.root) if reference is not None else None}
    matrix = pd.DataFrame()
    if transitions:
        lc_a, lc_b = landcover_array(a), landcover_array(b)
        _same_grid(a, b)
        px = abs(b.grid.res[0] * b.grid.res[1])
        matrix = landcover_transitions(np.asarray(lc_a.data.compute()), np.asarray(lc_b.data.compute()), px)
    result = ChangeResult(gep=gep, products=products, transitions=matrix, meta=meta)
    if out_dir is not None:
        out = Path(out_dir)
        if rasters:
            region = cat_b[cat_b["zone_set"] == "region"]
            fb = dict(zip(region["product"], region["const_factor"]))
            ra = cat_a[cat_a["zone_set"] == "region"]
            fa = dict(zip(ra["product"], ra["const_factor"]))
            counted = set(region.loc[region["counted"].astype(bool), "product"])
            meta["rasters"] = difference_rasters(a, b, out / "rasters", fa, fb, counted, price_year=year)
        result.files = write_change(result, out)
    return result


def transfer_units(change_dir: str | os.PathLike, zone_set: str = "districts") -> pd.DataFrame:
    """A zone set of an ``eco change`` output as the unit table of the GEP-based transfers
    (:func:`ecoraster.compensation.transfer_table`): ``unit`` (zone id), ``name``, ``gep_cny``
    (GEP of B), ``gep_start_cny`` / ``gep_end_cny`` (A and B at constant prices) and
    ``regulating_gep_cny`` (counted regulating services of B), all CNY at constant prices."""
    folder = Path(change_dir)
    gep = pd.read_parquet(folder / "change_gep.parquet")
    products = pd.read_parquet(folder / "change_products.parquet")
    g = gep[gep["zone_set"] == zone_set]
    if g.empty:
        raise QueryError(f"{folder}: no zone set {zone_set!r} (has: {', '.join(sorted(set(gep['zone_set'])))})")
    reg = products[(products["zone_set"] == zone_set) & (products["level1"] == "调节服务") & products["counted"]]
    reg_sum = reg.groupby("zone_id")["value_b_const"].sum()
    return pd.DataFrame({"unit": g["zone_id"].astype(str).to_numpy(), "name": g["zone_name"].to_numpy(),
                         "gep_cny": g["gep_b_const"].to_numpy(), "gep_start_cny": g["gep_a_const"].to_numpy(),
                         "gep_end_cny": g["gep_b_const"].to_numpy(),
                         "regulating_gep_cny": g["zone_id"].map(reg_sum).fillna(0.0).to_numpy()})


def change_html(result: ChangeResult, out: Path) -> str:
    """A short offline HTML summary: GEP change per zone, the product changes of the region (with
    the land-cover split) and a map of the GEP difference raster."""
    from . import html as H

    m = result.meta
    year = m["constant_price_year"]
    gep_cols = [c for c in ("zone_set", "zone_id", "zone_name", "gep_a_const", "gep_b_const", "gep_change_const",
                            "gep_growth_rate", "gep_change_nominal", "gep_change_landcover", "gep_change_other")
                if c in result.gep.columns]
    heads = {"zone_set": "分区", "zone_id": "编号", "zone_name": "名称", "gep_a_const": f"GEP {m['year_a']}",
             "gep_b_const": f"GEP {m['year_b']}", "gep_change_const": "变化（不变价）", "gep_growth_rate": "增长率",
             "gep_change_nominal": "变化（现价）", "gep_change_landcover": "其中：土地覆被",
             "gep_change_other": "其中：其他因素"}
    region = result.products[(result.products["zone_set"] == "region") & result.products["counted"]]
    sections = [("GEP 变化（元）", H.table(result.gep[result.gep["zone_set"] != "parcels"][gep_cols], headers=heads,
                                       digits={"gep_growth_rate": 4}))]
    sections.append(("分产品变化（全区，不变价）", H.figure(H.bar_chart(
        region["name_zh"].tolist(), (region["value_change_const"] / 1e4).tolist(), title="价值量变化",
        ylabel="万元", signed=True), f"万元，{year} 年价格")))
    raster = out / "rasters" / "gep_value_change.tif"
    if raster.is_file():
        sections.append(("GEP 变化空间分布", H.figure(H.raster_map(raster, title=f"GEP 变化 {m['year_a']}–{m['year_b']}",
                                                            legend="元/像元"), "gep_value_change.tif（绿：增加，红：减少）")))
    if not result.transitions.empty:
        sections.append(("土地覆被转移矩阵（公顷）", H.table(named_matrix(result.transitions), index=True)))
    meta = {"区域": m["region_name"], "期初": f"{m['year_a']}（{m['run_a']}）", "期末": f"{m['year_b']}（{m['run_b']}）",
            "不变价年": year, "反事实": m.get("counterfactual") or "—"}
    notes = [m["formula"]]
    return H.page(f"{m['region_name']} 生态产品总值变化 {m['year_a']}–{m['year_b']}", sections, meta=meta, notes=notes)


def write_change(result: ChangeResult, out: Path) -> dict[str, Path]:
    """CSV (UTF-8 with BOM), Parquet and XLSX of a comparison, plus ``change.json``."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for name, df in (("change_gep", result.gep), ("change_products", result.products)):
        files[f"{name}_csv"] = out / f"{name}.csv"
        df.to_csv(files[f"{name}_csv"], index=False, encoding="utf-8-sig")
        files[f"{name}_parquet"] = out / f"{name}.parquet"
        df.to_parquet(files[f"{name}_parquet"], index=False)
    if not result.transitions.empty:
        files["transitions_csv"] = out / "landcover_transitions.csv"
        named_matrix(result.transitions).to_csv(files["transitions_csv"], encoding="utf-8-sig")
    sizes = result.gep.groupby("zone_set")["zone_id"].nunique()
    big = set(sizes[sizes > XLSX_MAX_ZONES].index)
    files["xlsx"] = out / "change.xlsx"
    about = about_sheet(result.meta)
    with pd.ExcelWriter(files["xlsx"], engine="openpyxl") as xl:
        result.gep[~result.gep["zone_set"].isin(big)].to_excel(xl, sheet_name="GEP变化", index=False)
        result.products[~result.products["zone_set"].isin(big)].to_excel(xl, sheet_name="产品变化", index=False)
        if not result.transitions.empty:
            named_matrix(result.transitions).to_excel(xl, sheet_name="土地覆被转移矩阵_公顷")
        about.to_excel(xl, sheet_name="说明", index=False)
    files["html"] = out / "change.html"
    files["html"].write_text(change_html(result, out), encoding="utf-8")
    files["json"] = out / "change.json"
    region = result.gep[result.gep["zone_set"] == "region"].to_dict(orient="records")
    files["json"].write_text(json.dumps({**result.meta, "region": region, "xlsx_left_out": sorted(big)},
                                        ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    return files
