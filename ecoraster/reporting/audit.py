"""Audit report (领导干部自然资源资产离任审计) for one unit and a tenure (start year, end year).

From two runs — A at the start of the tenure, B at its end — for one zone of a zone set:

- natural-resource stock changes: the land-cover transition matrix in ha (GEP ecosystem
  classes, pixel-centre rule, :mod:`.zones`), and the carbon stock change (Mg C) from the
  carbon-storage service of run B (its ``lulc_bas`` / ``lulc_alt`` years are stated; a stock,
  not part of GEP);
- GEP change by product at constant prices (:mod:`.change`);
- the parcels with the largest GEP losses inside the unit (parcel representative point in the
  unit), at constant prices;
- notes: every contested product (oxygen release, evaporation-based climate regulation: their
  values are shown and GEP is given without them) and every clipped or unpriced item the runs
  reported (e.g. negative water balances clipped to 0).

Writes ``audit_<unit>.html`` (printable, A4) and ``audit_<unit>.xlsx``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio.windows

from ..errors import QueryError
from ..query.workspace import RunWorkspace
from . import html as H
from . import workspace_io as wio
from .xlsx import about_sheet
from .change import compare_runs, landcover_array, landcover_transitions, named_matrix
from .zones import pixel_area_m2, read_window, zone_window

#: Words in a run note that mark a clipped / capped / left-out item.
CLIPPED_WORDS = ("clipped", "capped", "not counted", "no price", "unpriced", "left out", "ignored", "not subtracted")


@dataclass
class AuditResult:
    unit: str
    zone_name: str
    zone_set: str
    start_year: int | None
    end_year: int | None
    transitions: pd.DataFrame
    carbon: pd.DataFrame
    products: pd.DataFrame
    gep: dict[str, Any]
    losses: pd.DataFrame
    notes: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    change_map: tuple[np.ndarray, tuple[float, float, float, float]] | None = None


#: Categories of :func:`transition_categories`: code → (colour, label).
CHANGE_LEGEND = {1: ("#d9d9d9", "未变化"), 2: ("#c0392b", "生态用地 → 非生态用地"),
                 3: ("#27ae60", "非生态用地 → 生态用地"), 4: ("#f39c12", "其他类型变化")}


def transition_categories(lc_a: np.ndarray, lc_b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per pixel inside ``mask``: 1 unchanged, 2 ecological → not, 3 not → ecological, 4 other
    change (ecological classes of ``configs/reporting/assessment.yaml``); 0 outside or nodata."""
    from .assessment import load_indicators

    eco = np.asarray(load_indicators()[1])
    ea, eb = np.isin(lc_a, eco), np.isin(lc_b, eco)
    out = np.where(lc_a == lc_b, 1, np.where(ea & ~eb, 2, np.where(~ea & eb, 3, 4)))
    return np.where(mask & (lc_a != 0) & (lc_b != 0), out, 0).astype(np.uint8)


def _unit_geometry(ws: RunWorkspace, zone_set: str, unit: str):
    gdf = wio.read_zone_table(ws, zone_set)
    idc = wio.zone_id_column(zone_set)
    hit = gdf[gdf[idc].astype(str) == str(unit)]
    if hit.empty:
        sample = ", ".join(gdf[idc].astype(str).head(8))
        raise QueryError(f"{wio.zone_table_path(ws, zone_set)}: no {idc} {unit!r} (e.g. {sample})")
    row = hit.iloc[0]
    return row.geometry, str(row.get("name", "") or unit)


def carbon_stock_change(ws: RunWorkspace, geom) -> pd.DataFrame:
    """Carbon stock at the two land-cover dates of run B's carbon-storage service and its change,
    summed over the unit's pixels (Mg C)."""
    import rasterio

    rows = []
    inputs = ((wio.run_config(ws).services.get("carbon_storage") or None))
    if inputs is None:
        return pd.DataFrame(columns=["item", "landcover", "value", "unit"])
    labels = {"c_storage_bas": inputs.inputs.get("lulc_bas"), "c_storage_alt": inputs.inputs.get("lulc_alt"),
              "c_change": f"{inputs.inputs.get('lulc_bas')} → {inputs.inputs.get('lulc_alt')}"}
    win, mask = zone_window(geom, ws.grid)
    for oid, lc in labels.items():
        path = wio.raster_output(ws, "carbon_storage", oid)
        if path is None or not path.exists():
            continue
        with rasterio.open(path) as src:
            data = src.read(1, window=win, masked=True)
            units = src.tags(1).get("units") or src.tags().get("units") or "Mg C"
        vals = np.where(mask & ~np.ma.getmaskarray(data), np.ma.getdata(data).astype(np.float64), 0.0)
        rows.append({"item": oid, "landcover": lc, "value": float(vals.sum()), "unit": units})
    return pd.DataFrame(rows)


def _notes(a: RunWorkspace, b: RunWorkspace, products: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, p in products[products["contested"]].iterrows():
        rows.append({"kind": "contested 争议项", "run": "A/B", "item": p["product"],
                     "note": f"{p['name_zh']}: value A {p['value_a_const']:,.0f}, B {p['value_b_const']:,.0f} CNY "
                             "(constant prices); GEP is also given without it"})
    for ws, tag in ((a, "A"), (b, "B")):
        for n in wio.run_notes(ws):
            kind = "clipped / left out 截断或未计" if any(w in n["note"].lower() for w in CLIPPED_WORDS) else "note 说明"
            rows.append({"kind": kind, "run": f"{tag} {ws.year}", "item": n["service"], "note": n["note"]})
        val = wio.valuation_report(ws)
        for key, prod in (val.get("unpriced") or {}).items():
            rows.append({"kind": "unpriced 未定价", "run": f"{tag} {ws.year}", "item": key, "note": str(prod)})
    return pd.DataFrame(rows, columns=["kind", "run", "item", "note"])


def audit(run_a: str | os.PathLike | RunWorkspace, run_b: str | os.PathLike | RunWorkspace, unit: str, *,
          zone_set: str = "districts", start_year: int | None = None, end_year: int | None = None,
          top: int = 10, price_year: int | None = None) -> AuditResult:
    """Build the audit of ``unit`` (an id of ``zone_set``) between run A and run B."""
    a = run_a if isinstance(run_a, RunWorkspace) else wio.open_run(run_a)
    b = run_b if isinstance(run_b, RunWorkspace) else wio.open_run(run_b)
    for given, ws, what in ((start_year, a, "start"), (end_year, b, "end")):
        if given is not None and ws.year is not None and int(given) != int(ws.year):
            raise QueryError(f"--{what}-year {given}: run {ws.root} is of year {ws.year}; give the run of the "
                             f"tenure's {what} year")
    geom, zone_name = _unit_geometry(b, zone_set, unit)
    ch = compare_runs(a, b, price_year=price_year, rasters=False, transitions=False)
    products = ch.products[(ch.products["zone_set"] == zone_set) & (ch.products["zone_id"].astype(str) == str(unit))]
    gep_row = ch.gep[(ch.gep["zone_set"] == zone_set) & (ch.gep["zone_id"].astype(str) == str(unit))]
    gep = gep_row.iloc[0].to_dict() if len(gep_row) else {}
    # land-cover transitions inside the unit
    win, mask = zone_window(geom, b.grid)
    lc_a, lc_b = read_window(landcover_array(a), win), read_window(landcover_array(b), win)
    matrix = landcover_transitions(lc_a, lc_b, pixel_area_m2(b.grid), mask=mask)
    carbon = carbon_stock_change(b, geom)
    bounds = rasterio.windows.bounds(win, b.grid.transform)
    change_map = transition_categories(lc_a, lc_b, mask)
    # parcels with the largest losses
    losses = pd.DataFrame()
    if "parcels" in set(ch.gep["zone_set"]) and wio.zone_table_path(b, "parcels").is_file():
        parcels = wio.read_zone_table(b, "parcels")
        inside = parcels[parcels.geometry.representative_point().within(geom)]["parcel_id"].astype(str)
        pg = ch.gep[(ch.gep["zone_set"] == "parcels") & ch.gep["zone_id"].astype(str).isin(set(inside))]
        losses = pg.sort_values("gep_change_const").head(top)
        losses = losses[losses["gep_change_const"] < 0][["zone_id", "zone_name", "gep_a_const", "gep_b_const",
                                                          "gep_change_const", "gep_growth_rate"]]
    meta = {"unit": unit, "zone_name": zone_name, "zone_set": zone_set, "start_year": a.year, "end_year": b.year,
            "run_a": str(a.root), "run_b": str(b.root), "constant_price_year": ch.meta["constant_price_year"],
            "landcover_a": ch.meta["landcover_a"], "landcover_b": ch.meta["landcover_b"],
            "pixel_rule": "land cover and carbon: pixel-centre rule; GEP: exact coverage fractions"}
    return AuditResult(unit=str(unit), zone_name=zone_name, zone_set=zone_set, start_year=a.year, end_year=b.year,
                       transitions=matrix, carbon=carbon, products=products.reset_index(drop=True), gep=gep,
                       losses=losses.reset_index(drop=True), notes=_notes(a, b, products), meta=meta,
                       change_map=(change_map, (bounds[0], bounds[2], bounds[1], bounds[3])))


PRODUCT_HEADERS = {"name_zh": "产品", "level1": "一级分类", "quantity_unit": "实物量单位", "quantity_a": "期初实物量",
                   "quantity_b": "期末实物量", "quantity_change": "实物量变化", "value_a_const": "期初价值量 (元)",
                   "value_b_const": "期末价值量 (元)", "value_change_const": "价值量变化 (元)",
                   "value_change_const_pct": "变化率", "contested": "争议项"}


def _pct_text(x) -> str:
    return "" if x is None or not np.isfinite(x) else f"{100.0 * x:.2f} %"


def write_audit(res: AuditResult, out_dir: str | os.PathLike) -> dict[str, Path]:
    """``audit_<unit>.html`` (printable) and ``audit_<unit>.xlsx``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"audit_{res.unit}"
    year = res.meta["constant_price_year"]
    prod = res.products[[c for c in PRODUCT_HEADERS if c in res.products.columns]]
    g = res.gep
    summary = pd.DataFrame([
        {"指标": "GEP 期初 (元)", "值": g.get("gep_a_const")}, {"指标": "GEP 期末 (元)", "值": g.get("gep_b_const")},
        {"指标": "GEP 变化 (元)", "值": g.get("gep_change_const")},
        {"指标": "GEP 增长率", "值": _pct_text(g.get("gep_growth_rate"))},
        {"指标": "不含争议项 GEP 增长率", "值": _pct_text(g.get("gep_excl_contested_growth_rate"))}])
    matrix = named_matrix(res.transitions) if not res.transitions.empty else pd.DataFrame()
    sections = [
        ("一、GEP 变化（不变价）", f"<p>{year} 年不变价，任期 {res.start_year}–{res.end_year}。</p>" + H.table(summary)),
        ("二、分产品 GEP 变化", H.figure(H.bar_chart(prod["name_zh"].tolist(), (prod["value_change_const"] / 1e4).tolist(),
                                              title="分产品价值量变化", ylabel="万元", signed=True), "万元，不变价")
         + H.table(prod, headers=PRODUCT_HEADERS, digits={"value_change_const_pct": 4})),
        ("三、土地覆被转移矩阵（公顷）", (H.figure(H.category_map(res.change_map[0], CHANGE_LEGEND,
                                                         title=f"土地覆被变化 {res.start_year}–{res.end_year}",
                                                         extent=res.change_map[1]), "按像元中心统计")
                                if res.change_map is not None and res.change_map[0].size else "")
         + (H.table(matrix, index=True, digits={}) if not matrix.empty else "<p>无数据</p>")),
        ("四、碳储量变化（存量，不计入 GEP）", H.table(res.carbon, headers={"item": "项目", "landcover": "土地覆被",
                                                                "value": "值", "unit": "单位"})),
        ("五、损失最大的地块", H.table(res.losses, headers={"zone_id": "地块编号", "zone_name": "名称",
                                                    "gep_a_const": "期初 GEP", "gep_b_const": "期末 GEP",
                                                    "gep_change_const": "变化 (元)", "gep_growth_rate": "变化率"},
                                    digits={"gep_growth_rate": 4}) if not res.losses.empty else "<p>无 GEP 下降的地块。</p>"),
        ("六、争议项与截断项", H.table(res.notes, headers={"kind": "类别", "run": "核算", "item": "项目", "note": "说明"})),
    ]
    meta = {"审计单元": f"{res.zone_name}（{res.unit}）", "任期": f"{res.start_year}–{res.end_year}", "分区": res.zone_set,
            "期初核算": res.meta["run_a"], "期末核算": res.meta["run_b"], "土地覆被": f"{res.meta['landcover_a']} → "
            f"{res.meta['landcover_b']}", "统计规则": res.meta["pixel_rule"]}
    files = {"html": out / f"{stem}.html", "xlsx": out / f"{stem}.xlsx"}
    files["html"].write_text(H.page(f"{res.zone_name} 自然资源资产离任审计：生态产品与资源资产变化", sections, meta=meta),
                             encoding="utf-8")
    about = about_sheet(res.meta)
    with pd.ExcelWriter(files["xlsx"], engine="openpyxl") as xl:
        summary.to_excel(xl, sheet_name="GEP变化", index=False)
        res.products.to_excel(xl, sheet_name="分产品", index=False)
        if not matrix.empty:
            matrix.to_excel(xl, sheet_name="土地覆被转移矩阵_公顷")
        res.carbon.to_excel(xl, sheet_name="碳储量", index=False)
        res.losses.to_excel(xl, sheet_name="损失地块", index=False)
        res.notes.to_excel(xl, sheet_name="争议与截断", index=False)
        about.to_excel(xl, sheet_name="说明", index=False)
    return files
