"""The printable site report for project approval (项目立项): maps of the footprint(s) over
the per-pixel value layers, the value lost by product with and without the contested items,
and the comparison of candidate sites. One self-contained HTML file (images inlined as PNG
data URIs, no outside assets); print it to PDF from the browser.
"""

from __future__ import annotations

import base64
import datetime as _dt
from html import escape
from typing import Any

import shapely

from .layers import GENERIC_NOTES, MapLayers
from .site import SiteValuation
from .workspace import names_of

#: Colours of the footprint outlines (proposed site first, then the candidates).
OUTLINES = ["#2166ac", "#6a3d9a", "#e66101", "#1b7837", "#b2182b"]

CSS = """
body{font:13px/1.45 "Noto Sans CJK SC","Noto Sans SC","Microsoft YaHei","PingFang SC",sans-serif;margin:24px;color:#222}
h1{font-size:20px;margin:0 0 4px} h2{font-size:15px;margin:18px 0 6px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:4px 0} td,th{border:1px solid #bbb;padding:2px 6px;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums} tr.total td{font-weight:bold;background:#f3f3f3}
.maps{display:flex;flex-wrap:wrap;gap:10px} figure{margin:0;width:260px} figcaption{font-size:11px}
.map{position:relative;width:260px;height:260px;border:1px solid #999;background:#fafafa}
.map img,.map svg{position:absolute;left:0;top:0;width:260px;height:260px}
.legend span{display:inline-block;width:10px;height:10px;margin-right:2px;vertical-align:middle}
.note{color:#555;font-size:12px} .meta td{border:none;padding:0 12px 0 0}
@page{size:A4;margin:14mm} @media print{body{margin:0} .maps{page-break-inside:avoid}}
"""


def _fmt(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:,.{digits}f}"


def _view_bbox(geoms: list[shapely.Geometry], pixel: float) -> list[float]:
    """A square bbox around the footprints with a 30 % margin (at least 20 pixels)."""
    minx, miny, maxx, maxy = shapely.union_all(geoms).bounds
    side = max(maxx - minx, maxy - miny) * 1.3 + 20 * pixel
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    return [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]


def _svg_outlines(geoms: list[shapely.Geometry], bbox: list[float], size: int) -> str:
    minx, miny, maxx, maxy = bbox
    sx, sy = size / (maxx - minx), size / (maxy - miny)
    paths = []
    for k, geom in enumerate(geoms):
        d = []
        polys = getattr(geom, "geoms", [geom])
        for poly in polys:
            for ring in [poly.exterior, *poly.interiors]:
                pts = [f"{(x - minx) * sx:.1f},{(maxy - y) * sy:.1f}" for x, y in ring.coords]
                d.append("M" + " L".join(pts) + " Z")
        colour = OUTLINES[k % len(OUTLINES)]
        paths.append(f'<path d="{" ".join(d)}" fill="none" stroke="{colour}" stroke-width="2"/>')
    return (f'<svg viewBox="0 0 {size} {size}" xmlns="http://www.w3.org/2000/svg">{"".join(paths)}</svg>')


def _legend_html(legend: dict[str, Any]) -> str:
    items = [f'<span style="background:{c["color"]}"></span>{escape(c["label"])}' for c in legend["classes"]]
    return f'<div class="legend">{" ".join(items)} ({escape(legend["units"])})</div>'


def _product_table(r: SiteValuation) -> str:
    rows = []
    for p in r.products:
        n = names_of(p.product)
        mark = " ✱" if p.contested else ""
        rows.append(f"<tr><td>{escape(n['code'] or '')}</td><td>{escape(n['name_zh'] or p.product)}{mark}</td>"
                    f"<td>{escape(n['name_en'] or '')}</td><td class=num>{_fmt(p.qty, 3)}</td>"
                    f"<td>{escape(p.qty_units or '')}</td><td class=num>{_fmt(p.value)}</td></tr>")
    per_ha = r.gep_lost_per_ha
    return ("<table><thead><tr><th>编码 code</th><th>产品</th><th>product</th><th>实物量 quantity</th>"
            "<th>单位 unit</th><th>价值量 value (CNY)</th></tr></thead><tbody>" + "".join(rows) +
            f'<tr class="total"><td colspan=5>GEP 损失 GEP lost</td><td class=num id="gep-lost">{_fmt(r.gep_lost)}</td></tr>'
            f'<tr class="total"><td colspan=5>不含有争议项 excluding contested items (✱)</td>'
            f'<td class=num id="gep-lost-excl">{_fmt(r.gep_lost_excl_contested)}</td></tr>'
            f"<tr><td colspan=5>每公顷 per ha (of {_fmt(r.area_in_region_ha)} ha with values)</td>"
            f"<td class=num>{_fmt(per_ha)}</td></tr></tbody></table>")


def _ranking_table(results: list[SiteValuation]) -> str:
    rows = [f"<tr><td>{k}</td><td>{escape(r.name)}</td><td class=num>{_fmt(r.area_ha)}</td>"
            f"<td class=num>{_fmt(r.gep_lost)}</td><td class=num>{_fmt(r.gep_lost_excl_contested)}</td>"
            f"<td class=num>{_fmt(r.gep_lost_per_ha)}</td></tr>"
            for k, r in enumerate(sorted(results, key=lambda r: (r.gep_lost, r.name)), start=1)]
    return ("<table id=ranking><thead><tr><th>排序 rank</th><th>方案 site</th><th>面积 ha</th>"
            "<th>GEP 损失 CNY</th><th>不含有争议项 CNY</th><th>每公顷 CNY/ha</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def site_report_html(layers: MapLayers, results: list[SiteValuation], *, title: str | None = None,
                     map_size: int = 260, max_maps: int = 12) -> str:
    """The report for ``results`` (the first is the proposed site, the others candidates)."""
    if not results:
        from ..errors import QueryError

        raise QueryError("site report: no site given")
    ws = layers.ws
    geoms = [r.geometry for r in results if r.geometry is not None]
    figures = []
    if geoms:
        bbox = _view_bbox(geoms, abs(ws.grid.res[0]))
        svg = _svg_outlines(geoms, bbox, map_size)
        value_layers = [d for d in layers.describe() if d["kind"] == "value"][:max_maps]
        for d in value_layers:
            png = layers.render(d["id"], bbox, map_size, map_size)
            uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
            figures.append(f'<figure><div class="map"><img alt="{escape(d["title"])}" src="{uri}">{svg}</div>'
                           f'<figcaption><b>{escape(d["name_zh"] or d["product"])}</b> {escape(d["name_en"] or "")}'
                           f'{_legend_html(layers.legend(d["id"]))}</figcaption></figure>')
    main = results[0]
    region = escape(f"{ws.region_name or ''} {ws.region}".strip())
    heading = escape(title or f"项目立项 生态产品价值影响 · Site report: {main.name}")
    sites = "".join(f'<li><span style="color:{OUTLINES[k % len(OUTLINES)]}">■</span> {escape(r.name)}: '
                    f"{_fmt(r.area_ha)} ha</li>" for k, r in enumerate(results))
    partial = [r for r in results if r.area_ha - r.area_in_region_ha > 0.01 * max(r.area_ha, 1e-9)]
    notes = [GENERIC_NOTES["contested"],
             f"价格年份 price year {ws.price_year}: values are in CNY at constant prices of {ws.price_year} "
             "(rebased with the CPI table of the run)."]
    if partial:
        notes.append("部分覆盖 partial coverage: " + "; ".join(
            f"{escape(r.name)} has values on {_fmt(r.area_in_region_ha)} of {_fmt(r.area_ha)} ha "
            "(the rest lies outside the region or on nodata)" for r in partial))
    body = [
        f"<h1>{heading}</h1>",
        f'<table class="meta"><tr><td>区域 region: {region}</td><td>核算年份 year: {ws.year}</td>'
        f"<td>价格年份 price year: {ws.price_year}</td><td>标准 profile: {escape(str(ws.profile))}</td>"
        f"<td>日期 date: {_dt.date.today().isoformat()}</td></tr></table>",
        f"<h2>选址 Sites</h2><ul>{sites}</ul>",
        "<h2>价值图层与项目用地 Value layers and the footprint (CNY per pixel)</h2>"
        f'<div class="maps">{"".join(figures)}</div>' if figures else "",
        f"<h2>生态产品价值损失 Value lost by product: {escape(main.name)}</h2>", _product_table(main),
    ]
    if len(results) > 1:
        body.append("<h2>方案比选 Comparison of candidate sites (least GEP lost first)</h2>")
        body.append(_ranking_table(results))
        for r in results[1:]:
            body.append(f"<h2>{escape(r.name)}</h2>{_product_table(r)}")
    body.append("<h2>说明 Notes</h2><ul class=note>" + "".join(f"<li>{n}</li>" for n in notes) + "</ul>")
    return ("<!doctype html><html lang=zh-CN><head><meta charset=utf-8>"
            f"<title>{heading}</title><style>{CSS}</style></head><body>{''.join(body)}</body></html>")
