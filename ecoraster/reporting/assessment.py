"""Assessment report (考核) per zone set (districts or any other): GEP, GEP change at constant
prices, regulating-service supply by product, ecological land area and its change, GEP per
km², GEP / GDP where a GDP table is given; a weighted score and a ranking; HTML (maps and
charts with Chinese labels) and XLSX.

Indicators, weights and the plans' wording: ``configs/reporting/assessment.yaml``.

score_i(zone) = 100 × (x − min) / (max − min) over the zones (reversed for direction −1; 100 for
every zone when all are equal; 0 for a zone without a value);
score(zone) = Σ wᵢ scoreᵢ / Σ wᵢ over the indicators the inputs allow; rank 1 = highest score.
GDP table: columns ``zone_id`` (or ``name``) and ``gdp_cny`` or ``gdp_wan_yuan`` (万元),
nominal of run B's year; GEP / GDP = GEP of B (nominal) / GDP.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import yamlio
from ..resources import config_path
from ..errors import TableError
from ..query.workspace import RunWorkspace
from . import html as H
from . import workspace_io as wio
from .xlsx import about_sheet
from .change import compare_runs, landcover_array
from .zones import class_area_by_zone, label_raster, pixel_area_m2

def indicators_path() -> Path:
    """The shipped indicator table (or ``$ECORASTER_CONFIG_DIR``'s copy)."""
    return config_path("reporting", "assessment.yaml")


@dataclass
class AssessmentResult:
    zone_set: str
    table: pd.DataFrame          # one row per zone, ranked
    indicators: pd.DataFrame     # the indicator table with the weights used
    regulating: pd.DataFrame     # regulating-service supply by product (quantities of B)
    geometry: Any                # GeoDataFrame of the zones (for maps)
    meta: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)


def load_indicators(path: str | os.PathLike | None = None) -> tuple[pd.DataFrame, list[int], dict[str, Any]]:
    """The indicator table, the ecological-land classes and the table's header."""
    p = Path(path) if path else indicators_path()
    raw = yamlio.read_mapping(p, field="indicators")
    ind = pd.DataFrame(raw.get("indicators") or [])
    need = ["id", "column", "name_zh", "unit", "scale", "direction", "weight", "wording", "source", "confidence"]
    missing = [c for c in need if c not in ind.columns]
    if missing:
        raise TableError(f"{p}: indicators: missing field(s) {', '.join(missing)}")
    for i, w in enumerate(ind["weight"]):
        if not isinstance(w, (int, float)) or w < 0:
            raise TableError(f"{p}: indicators[{i}].weight = {w!r}: must be a number ≥ 0")
    for i, d in enumerate(ind["direction"]):
        if d not in (1, -1):
            raise TableError(f"{p}: indicators[{i}].direction = {d!r}: use 1 or -1")
    classes = [int(c) for c in (raw.get("ecological_land") or {}).get("classes") or []]
    return ind, classes, {k: raw.get(k) for k in ("id", "version")}


def read_gdp(path: str | os.PathLike, zones: pd.DataFrame) -> pd.Series:
    """GDP per zone (CNY) from a table keyed by ``zone_id`` or ``name``."""
    from ..tables import numeric_column, read_table

    df = read_table(path, field="gdp")
    key = "zone_id" if "zone_id" in df.columns else "name" if "name" in df.columns else None
    if key is None:
        raise TableError(f"{path}: needs a column zone_id or name (has {', '.join(df.columns)})")
    if "gdp_cny" in df.columns:
        gdp = numeric_column(df, "gdp_cny", str(path))
    elif "gdp_wan_yuan" in df.columns:
        gdp = numeric_column(df, "gdp_wan_yuan", str(path)) * 1e4
    else:
        raise TableError(f"{path}: needs a column gdp_cny or gdp_wan_yuan (万元)")
    if (gdp <= 0).any():
        row = int(np.flatnonzero(gdp <= 0)[0])
        raise TableError(f"{path}: row {row + 2}: GDP = {gdp[row]!r} must be > 0")
    s = pd.Series(gdp, index=df[key].astype(str).to_numpy())
    lookup = zones["zone_id"].astype(str) if key == "zone_id" else zones["name"].astype(str)
    unknown = sorted(set(s.index) - set(lookup))
    if unknown:
        raise TableError(f"{path}: {key} {', '.join(unknown[:5])} not in the zone set")
    return pd.Series(lookup.map(s).to_numpy(dtype="float64"), index=zones["zone_id"].astype(str).to_numpy())


def score(table: pd.DataFrame, indicators: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add ``score_<id>``, ``score`` and ``rank`` (see the module doc); return the table and the
    indicators with ``used`` and ``weight_used``."""
    ind = indicators.copy()
    ind["used"] = [bool(w > 0 and c in table.columns and table[c].notna().any())
                   for w, c in zip(ind["weight"], ind["column"])]
    total_w = float(ind.loc[ind["used"], "weight"].sum())
    ind["weight_used"] = np.where(ind["used"], ind["weight"] / total_w if total_w > 0 else 0.0, 0.0)
    out = table.copy()
    composite = np.zeros(len(out))
    for _, r in ind[ind["used"]].iterrows():
        x = out[r["column"]].astype("float64")
        lo, hi = x.min(), x.max()
        s = pd.Series(100.0, index=x.index) if hi == lo else 100.0 * (x - lo) / (hi - lo)
        if r["direction"] == -1:
            s = 100.0 - s
        s = s.where(x.notna(), 0.0)
        out[f"score_{r['id']}"] = s
        composite += r["weight_used"] * s.to_numpy()
    out["score"] = composite
    out["rank"] = out["score"].rank(ascending=False, method="min").astype(int)
    return out.sort_values(["rank", "zone_id"]).reset_index(drop=True), ind


def assess(run_a: str | os.PathLike | RunWorkspace, run_b: str | os.PathLike | RunWorkspace, *,
           zone_set: str = "districts", gdp: str | os.PathLike | None = None,
           indicators: str | os.PathLike | None = None, price_year: int | None = None) -> AssessmentResult:
    """Assessment of every zone of ``zone_set`` between run A (baseline) and run B."""
    a = run_a if isinstance(run_a, RunWorkspace) else wio.open_run(run_a)
    b = run_b if isinstance(run_b, RunWorkspace) else wio.open_run(run_b)
    ind, eco_classes, header = load_indicators(indicators)
    zones = wio.read_zone_table(b, zone_set).reset_index(drop=True)
    idc = wio.zone_id_column(zone_set)
    zones = zones.rename(columns={idc: "zone_id"})
    zones["zone_id"] = zones["zone_id"].astype(str)
    ch = compare_runs(a, b, price_year=price_year, rasters=False, transitions=False)
    g = ch.gep[ch.gep["zone_set"] == zone_set].copy()
    g["zone_id"] = g["zone_id"].astype(str)
    t = zones[["zone_id", *(["name"] if "name" in zones.columns else []), "area_ha"]].merge(
        g.drop(columns=["zone_set", "zone_name"]), on="zone_id", how="left")
    # regulating services: value (constant prices) and quantities by product
    p = ch.products[(ch.products["zone_set"] == zone_set) & (ch.products["level1"] == "调节服务")
                    & ch.products["counted"]].copy()
    p["zone_id"] = p["zone_id"].astype(str)
    t["regulating_gep_b_const"] = t["zone_id"].map(p.groupby("zone_id")["value_b_const"].sum())
    t["regulating_gep_a_const"] = t["zone_id"].map(p.groupby("zone_id")["value_a_const"].sum())
    p["label"] = p["name_zh"] + " (" + p["quantity_unit"].fillna("") + ")"
    regulating = p.pivot_table(index="zone_id", columns="label", values="quantity_b", aggfunc="sum").reset_index()
    # ecological land (pixel-centre rule)
    labels = label_raster(zones.geometry, b.grid)
    px = pixel_area_m2(b.grid)
    for tag, ws in (("a", a), ("b", b)):
        lc = np.asarray(landcover_array(ws).data.compute())
        areas = class_area_by_zone(labels, lc, len(zones), eco_classes, px)
        t[f"eco_land_ha_{tag}"] = areas["class_area_ha"].to_numpy()
        if tag == "b":
            t["area_ha_accounted"] = areas["area_ha_landcover"].to_numpy()
    t["eco_land_change_ha"] = t["eco_land_ha_b"] - t["eco_land_ha_a"]
    # per km² of the area the run accounted (land cover inside the run grid): a zone that the grid
    # only partly covers is not diluted by its area outside the grid
    t["gep_per_km2"] = t["gep_b_const"] / (t["area_ha_accounted"] / 100.0).where(t["area_ha_accounted"] > 0)
    if gdp is not None:
        gdp_s = read_gdp(gdp, zones)
        t["gdp_cny"] = t["zone_id"].map(gdp_s)
        t["gep_to_gdp"] = t["gep_b_nominal"] / t["gdp_cny"]
    ranked, ind_used = score(t, ind)
    meta = {"zone_set": zone_set, "run_a": str(a.root), "run_b": str(b.root), "year_a": a.year, "year_b": b.year,
            "constant_price_year": ch.meta["constant_price_year"], "indicators": str(indicators or indicators_path()),
            "indicators_id": header.get("id"), "indicators_version": header.get("version"),
            "ecological_land_classes": eco_classes, "gdp": str(gdp) if gdp else None}
    return AssessmentResult(zone_set, ranked, ind_used, regulating, zones, meta)


def write_assessment(res: AssessmentResult, out_dir: str | os.PathLike) -> dict[str, Path]:
    """``assessment_<zone set>.{html,xlsx,csv}``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"assessment_{res.zone_set}"
    files = {"html": out / f"{stem}.html", "xlsx": out / f"{stem}.xlsx", "csv": out / f"{stem}.csv"}
    t = res.table
    res.table.to_csv(files["csv"], index=False, encoding="utf-8-sig")
    used = res.indicators[res.indicators["used"]]
    show = t[["rank", "zone_id", *(["name"] if "name" in t.columns else []), "score"]].copy()
    headers = {"rank": "排名", "zone_id": "编号", "name": "名称", "score": "综合得分"}
    for _, r in used.iterrows():
        col = f"{r['name_zh']} ({r['unit']})"
        show[col] = t[r["column"]] * float(r["scale"])
    gdf = res.geometry.merge(t[["zone_id", "score", "gep_growth_rate", "eco_land_change_ha"]], on="zone_id")
    label = "name" if "name" in gdf.columns else "zone_id"
    names = t[label].astype(str).tolist()
    maps = (H.figure(H.choropleth(gdf, "score", title="综合得分", legend="分", labels=label), "综合得分（0–100）")
            + H.figure(H.choropleth(gdf.assign(g=gdf["gep_growth_rate"] * 100), "g", title="GEP 增长率（不变价）",
                                    legend="%", diverging=True, labels=label), "GEP 增长率，%"))
    charts = (H.figure(H.bar_chart(names, (t["gep_b_const"] / 1e8).tolist(), title="GEP（期末，不变价）", ylabel="亿元"),
                       "GEP，亿元")
              + H.figure(H.bar_chart(names, t["eco_land_change_ha"].tolist(), title="生态用地面积变化", ylabel="公顷",
                                     signed=True), "生态用地面积变化，公顷"))
    ind_show = res.indicators[["name_zh", "unit", "direction", "weight", "weight_used", "used", "wording", "source",
                               "confidence"]]
    sections = [("排名", H.table(show, headers=headers, digits={"rank": 0})), ("地图", maps), ("图表", charts),
                ("调节服务供给（期末实物量）", H.table(res.regulating)),
                ("指标与权重", H.table(ind_show, headers={"name_zh": "指标", "unit": "单位", "direction": "方向",
                                                     "weight": "权重", "weight_used": "实际权重", "used": "使用",
                                                     "wording": "规划表述", "source": "来源", "confidence": "可信度"},
                                   digits={"weight": 3, "weight_used": 3}))]
    notes = [f"不变价：{res.meta['constant_price_year']} 年价格（CPI 折算）。",
             "生态用地：按像元中心统计的生态类型面积（类别见指标表配置）。",
             "单位面积 GEP：按核算范围内（栅格覆盖、有土地覆被）的面积计算（area_ha_accounted）。",
             "未提供 GDP 表时不计算 GEP/GDP，其权重按比例分配给其余指标。" if not res.meta.get("gdp") else ""]
    meta = {"分区": res.zone_set, "基期": res.meta["year_a"], "评估期": res.meta["year_b"], "指标表": res.meta["indicators"]}
    files["html"].write_text(H.page(f"生态产品总值（GEP）考核评估：{res.zone_set}", sections, meta=meta, notes=notes),
                             encoding="utf-8")
    about = about_sheet(res.meta)
    with pd.ExcelWriter(files["xlsx"], engine="openpyxl") as xl:
        t.drop(columns=["geometry"], errors="ignore").to_excel(xl, sheet_name="排名", index=False)
        res.indicators.to_excel(xl, sheet_name="指标与权重", index=False)
        res.regulating.to_excel(xl, sheet_name="调节服务供给", index=False)
        about.to_excel(xl, sheet_name="说明", index=False)
    return files
