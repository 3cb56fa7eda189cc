"""QGIS styles stored inside a GeoPackage (the ``layer_styles`` table QGIS reads and writes),
so a zone layer opens already styled: graduated colours on GEP per ha (the default style) and
one style per product's value. Class breaks are quantiles of the column, each bound kept once
(3 significant digits), as on the map page.

The table layout is QGIS's own (``QgsProviderMetadata::saveStyle`` for OGR/GPKG): ``id``,
``f_table_catalog``, ``f_table_schema``, ``f_table_name``, ``f_geometry_column``,
``styleName``, ``styleQML``, ``styleSLD``, ``useAsDefault``, ``description``, ``owner``,
``ui``, ``update_time``; it is registered in ``gpkg_contents`` as an ``attributes`` table.
"""

from __future__ import annotations

import sqlite3
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

#: Light → dark greens (the map page's value ramp).
RAMP = ["#ffffcc", "#d9f0a3", "#addd8e", "#78c679", "#41ab5d", "#238443", "#005a32"]


def _rgb(colour: str) -> str:
    c = colour.lstrip("#")
    return f"{int(c[0:2], 16)},{int(c[2:4], 16)},{int(c[4:6], 16)},255"


def quantile_breaks(values: pd.Series, classes: int = 7) -> list[float]:
    """Class bounds: quantiles of the finite values, each kept once at 3 significant digits.

    >>> quantile_breaks(pd.Series([0, 0, 0, 0, 1, 2, 3, 4.0]), 4)
    [0.0, 0.5, 2.25, 4.0]
    """
    v = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
    v = v[np.isfinite(v)]
    if v.size == 0:
        return []
    out: list[float] = []
    for q in np.quantile(v, np.linspace(0, 1, classes + 1)):
        b = float(f"{q:.3g}") if q else 0.0
        if not out or b > out[-1]:
            out.append(b)
    if len(out) == 1:
        out.append(out[0])
    out[0] = min(out[0], float(v.min()))
    out[-1] = max(out[-1], float(v.max()))
    return out


def graduated_qml(field: str, breaks: list[float], title: str) -> str:
    """QML of a graduated fill renderer on ``field`` with ``breaks``."""
    n = max(len(breaks) - 1, 0)
    colours = [RAMP[round(i * (len(RAMP) - 1) / max(n - 1, 1))] for i in range(n)]
    ranges, symbols = [], []
    for i in range(n):
        lo, hi = breaks[i], breaks[i + 1]
        ranges.append(f'<range lower="{lo!r}" upper="{hi!r}" symbol="{i}" label="{lo:,.6g} – {hi:,.6g}" '
                      f'render="true"/>')
        symbols.append(
            f'<symbol type="fill" name="{i}" alpha="1" clip_to_extent="1" force_rhr="0">'
            '<layer class="SimpleFill" enabled="1" pass="0" locked="0"><Option type="Map">'
            f'<Option name="color" type="QString" value="{_rgb(colours[i])}"/>'
            '<Option name="outline_color" type="QString" value="60,60,60,255"/>'
            '<Option name="outline_style" type="QString" value="solid"/>'
            '<Option name="outline_width" type="QString" value="0.1"/>'
            '<Option name="outline_width_unit" type="QString" value="MM"/>'
            '<Option name="style" type="QString" value="solid"/>'
            '</Option></layer></symbol>')
    return ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>"
            f'<qgis version="3.34.0" styleCategories="Symbology|Labeling">'
            f'<renderer-v2 type="graduatedSymbol" attr="{escape(field)}" graduatedMethod="GraduatedColor" '
            'symbollevels="0" enableorderby="0" forceraster="0">'
            f'<ranges>{"".join(ranges)}</ranges><symbols>{"".join(symbols)}</symbols>'
            '<mode name="quantile"/><classificationMethod id="Quantile"/></renderer-v2>'
            f'<layerGeometryType>2</layerGeometryType><mapTip>{escape(title)}</mapTip></qgis>')


def write_layer_styles(gpkg: Path, layer: str, frame: pd.DataFrame, styles: list[tuple[str, str, str]],
                       geometry_column: str = "geom") -> int:
    """Store one style per ``(field, style name, description)`` in ``gpkg``'s ``layer_styles``
    table; the first is the layer's default. ``frame`` holds the fields' values (for the
    breaks). Returns the number of styles written."""
    con = sqlite3.connect(gpkg)
    try:
        con.execute(
            "CREATE TABLE IF NOT EXISTS layer_styles (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "f_table_catalog TEXT(256), f_table_schema TEXT(256), f_table_name TEXT(256), "
            "f_geometry_column TEXT(256), styleName TEXT(30), styleQML TEXT, styleSLD TEXT, "
            "useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30), update_time DATETIME "
            "DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))")
        con.execute("INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, description) "
                    "VALUES ('layer_styles', 'attributes', 'layer_styles', 'QGIS layer styles')")
        con.execute("DELETE FROM layer_styles WHERE f_table_name = ?", (layer,))
        n = 0
        for k, (field, name, description) in enumerate(styles):
            if field not in frame.columns:
                continue
            breaks = quantile_breaks(frame[field])
            if not breaks:
                continue
            con.execute("INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, "
                        "f_geometry_column, styleName, styleQML, styleSLD, useAsDefault, description, owner) "
                        "VALUES ('', '', ?, ?, ?, ?, '', ?, ?, 'ecoraster')",
                        (layer, geometry_column, name, graduated_qml(field, breaks, description), k == 0,
                         description))
            n += 1
        con.commit()
    finally:
        con.close()
    return n
