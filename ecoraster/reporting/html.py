"""HTML reports that open offline: charts and maps rendered with matplotlib to inline SVG
(no CDN, no external files), tables from pandas, Chinese labels with a CJK font when one is
installed (Debian ``fonts-noto-cjk``; otherwise labels fall back to the default font and the
report says so), and a print style sheet (A4, no page break inside a table row).
"""

from __future__ import annotations

import html
import io
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

#: CJK font families tried in this order.
CJK_FONTS = ("Noto Sans CJK SC", "Noto Serif CJK SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "SimHei",
             "Microsoft YaHei", "PingFang SC", "Noto Sans SC")

CSS = """
body{font-family:"Noto Sans CJK SC","Source Han Sans SC","PingFang SC","Microsoft YaHei",sans-serif;
margin:2em auto;max-width:1100px;color:#222;line-height:1.5}
h1{font-size:1.6em;border-bottom:2px solid #2a6;padding-bottom:.2em}h2{font-size:1.25em;margin-top:1.6em;color:#175}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}th,td{border:1px solid #bbb;padding:3px 7px}
th{background:#eef6f0}td.num{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#555;font-size:.88em}.warn{color:#a40}figure{margin:1em 0}figcaption{font-size:.85em;color:#555}
.meta td{border:none;padding:1px 8px}
@media print{body{margin:0;max-width:none;font-size:10pt}h2{page-break-after:avoid}tr{page-break-inside:avoid}
figure{page-break-inside:avoid}@page{size:A4;margin:15mm}}
"""


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The first installed CJK font family (``None`` if there is none)."""
    from matplotlib import font_manager

    def pick() -> str | None:
        installed = {f.name for f in font_manager.fontManager.ttflist}
        return next((name for name in CJK_FONTS if name in installed), None)

    found = pick()
    if found is None:
        # matplotlib's font cache may predate the font package: add CJK files found on the system
        for path in font_manager.findSystemFonts():
            if any(k in Path(path).name.lower() for k in ("cjk", "wqy", "sourcehan", "simhei", "msyh")):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue
        found = pick()
    return found


def _matplotlib():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    font = cjk_font()
    if font:
        plt.rcParams["font.family"] = [font, "DejaVu Sans"]
    plt.rcParams["axes.unicode_minus"] = False
    plt.rcParams["svg.fonttype"] = "path"  # glyphs as paths: the SVG shows Chinese without the font
    return plt


def font_note() -> str:
    """A sentence for the report when no CJK font was found for the charts."""
    if cjk_font():
        return ""
    return ("图表未找到中文字体（建议安装 fonts-noto-cjk），图中中文可能显示为方框。"
            "No CJK font was found for the charts: Chinese labels in the figures may show as boxes.")


def _svg(fig) -> str:
    plt = _matplotlib()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def bar_chart(labels: list[str], values: list[float], *, title: str, ylabel: str, signed: bool = False) -> str:
    """A bar chart as inline SVG (values in the units of ``ylabel``)."""
    plt = _matplotlib()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    vals = np.asarray(values, dtype=float)
    colors = ["#2a8a4a" if (v >= 0 or not signed) else "#c0392b" for v in vals]
    ax.bar(range(len(vals)), vals, color=colors)
    ax.set_xticks(range(len(vals)))
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if signed:
        ax.axhline(0, color="#444", lw=0.8)
    ax.grid(axis="y", alpha=0.3)
    return _svg(fig)


def choropleth(gdf, column: str, *, title: str, legend: str, cmap: str = "YlGn", diverging: bool = False,
               labels: str | None = None) -> str:
    """A map of ``gdf[column]`` as inline SVG (zones with no value drawn grey)."""
    plt = _matplotlib()
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    vals = gdf[column].astype(float)
    kw: dict[str, Any] = {"cmap": "RdYlGn" if diverging else cmap, "legend": True, "edgecolor": "#555",
                          "linewidth": 0.4, "missing_kwds": {"color": "#ddd"},
                          "legend_kwds": {"label": legend, "shrink": 0.7}}
    if diverging and vals.notna().any():
        lim = float(np.nanmax(np.abs(vals))) or 1.0
        kw.update(vmin=-lim, vmax=lim)
    gdf.plot(column=column, ax=ax, **kw)
    if labels and labels in gdf.columns and len(gdf) <= 30:
        for _, row in gdf.iterrows():
            pt = row.geometry.representative_point()
            ax.annotate(str(row[labels]), (pt.x, pt.y), fontsize=7, ha="center", color="#222")
    ax.set_title(title)
    ax.set_axis_off()
    return _svg(fig)


def raster_map(path, *, title: str, legend: str, max_px: int = 600, diverging: bool = True) -> str:
    """A raster (e.g. a difference COG) as inline SVG, read from an overview of at most
    ``max_px`` pixels a side."""
    import rasterio

    plt = _matplotlib()
    with rasterio.open(path) as src:
        scale = max(1, int(np.ceil(max(src.width, src.height) / max_px)))
        data = src.read(1, out_shape=(max(1, src.height // scale), max(1, src.width // scale)), masked=True)
        b = src.bounds
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    arr = data.astype(float).filled(np.nan)
    kw: dict[str, Any] = {"cmap": "RdYlGn" if diverging else "YlGn"}
    if diverging and np.isfinite(arr).any():
        lim = float(np.nanpercentile(np.abs(arr), 99)) or 1.0
        kw.update(vmin=-lim, vmax=lim)
    im = ax.imshow(arr, extent=(b.left, b.right, b.bottom, b.top), interpolation="nearest", **kw)
    fig.colorbar(im, ax=ax, shrink=0.7, label=legend)
    ax.set_title(title)
    ax.set_axis_off()
    return _svg(fig)


def category_map(codes: np.ndarray, legend: dict[int, tuple[str, str]], *, title: str,
                 extent: tuple[float, float, float, float] | None = None) -> str:
    """A map of small integer categories as inline SVG; ``legend``: code → (colour, label).
    Codes not in ``legend`` are drawn white."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    plt = _matplotlib()
    keys = sorted(legend)
    index = np.full(codes.shape, len(keys), dtype=np.int16)
    for i, k in enumerate(keys):
        index[codes == k] = i
    cmap = ListedColormap([legend[k][0] for k in keys] + ["#ffffff"])
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.imshow(index, cmap=cmap, vmin=0, vmax=len(keys), interpolation="nearest", extent=extent)
    ax.legend(handles=[Patch(color=legend[k][0], label=legend[k][1]) for k in keys], loc="lower left", fontsize=8,
              framealpha=0.9)
    ax.set_title(title)
    ax.set_axis_off()
    return _svg(fig)


def fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "是" if value else "否"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):,.{digits}f}"
    return html.escape(str(value))


def table(df: pd.DataFrame, *, headers: dict[str, str] | None = None, digits: dict[str, int] | None = None,
          index: bool = False) -> str:
    """An HTML table; numbers right-aligned with thousands separators."""
    d = df.reset_index() if index else df
    headers = headers or {}
    digits = digits or {}
    head = "".join(f"<th>{html.escape(str(headers.get(c, c)))}</th>" for c in d.columns)
    rows = []
    for rec in d.itertuples(index=False):
        cells = []
        for c, v in zip(d.columns, rec):
            num = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
            if num and "year" in str(c) and isinstance(v, (int, float, np.integer, np.floating)) and np.isfinite(v):
                cells.append(f"<td>{int(v)}</td>")  # a year: no thousands separator
                continue
            cells.append(f"<td class=\"num\">{fmt(v, digits.get(c, 2))}</td>" if num else f"<td>{fmt(v)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{html.escape(caption)}</figcaption></figure>"


def page(title: str, sections: list[tuple[str, str]], *, meta: dict[str, Any] | None = None,
         notes: list[str] | None = None) -> str:
    """A whole HTML page: title, a small meta table, sections (heading, HTML body), notes."""
    parts = [f"<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    if meta:
        parts.append("<table class=\"meta\">" + "".join(
            f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in meta.items())
                     + "</table>")
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{body}")
    all_notes = [n for n in (notes or []) if n] + ([font_note()] if font_note() else [])
    if all_notes:
        parts.append("<h2>说明 Notes</h2><ul class=\"note\">" +
                     "".join(f"<li>{html.escape(n)}</li>" for n in all_notes) + "</ul>")
    parts.append("<p class=\"note\">ecoraster — generated offline; numbers in CNY unless stated.</p></body></html>")
    return "".join(parts)
