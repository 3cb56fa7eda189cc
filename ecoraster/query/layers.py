"""Map layers of a finished run: the per-pixel rasters of every product (quantity and value)
drawn through rio-tiler with class breaks, colour ramps and legends with units, and the zone
sets of the run (districts, townships, wetland units) as GeoJSON.

A layer id is ``<product>.<kind>`` (``water_conservation.value``, ``co2_sequestration.physical``).
Class breaks come from the raster's overview (rio-tiler ``preview``, at most 1024 px a side):
quantiles of the *positive* values, deduplicated, so a raster with many equal values never
gets two classes with the same bounds; zero and negative values get their own classes, with a
note saying what they mean (no service / a loss / a clipped balance).

Product names come from ``configs/products.yaml`` (Chinese first, English second).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import QueryError
from .workspace import RunWorkspace, product_names

#: Sequential ramps (light → dark), one per kind of layer; 7 classes at most.
RAMPS = {
    "value": ["#ffffcc", "#d9f0a3", "#addd8e", "#78c679", "#41ab5d", "#238443", "#005a32"],
    "physical": ["#f0f9e8", "#ccebc5", "#a8ddb5", "#7bccc4", "#4eb3d3", "#2b8cbe", "#08589e"],
}
ZERO_COLOUR = "#e0e0e0"
_TINY = float(np.finfo(np.float32).tiny)  # zero class [0, _TINY): exactly 0 in float32 and float64 rasters
NEGATIVE_COLOUR = "#d7301f"

#: What zero and negative pixels mean, per service (shown under the legend).
NOTES = {
    "water_conservation": {
        "zero": "0 = no water retained: evapotranspiration and runoff take all the rain; where the "
                "balance P − R − ET is negative (open water, 七里海) it is clipped at 0 per pixel and the "
                "clipped volume is written as its own map (water_balance_clipped_m3.tif) and in run.json. "
                "水量平衡为负的像元按 0 计，截去的水量另行报告。",
    },
    "carbon_sequestration": {
        "negative": "negative = a carbon source: the soil respires more than the vegetation fixes "
                    "(NEP = NPP − Rh < 0) unless the profile clips NEP at 0. 负值为碳源。",
        "zero": "0 = no net uptake (no vegetation, or NEP clipped at 0 by the profile).",
    },
    "air_purification": {
        "zero": "0 = no deposition: water or built-up classes without a deposition velocity.",
    },
    "statistics_allocation": {
        "zero": "0 = not eligible land for this product (the statistics table is allocated only to the "
                "classes the profile names). 非分配地类为 0。",
    },
}
GENERIC_NOTES = {
    "zero": "0 = the model gives no service on this pixel (not nodata: nodata is transparent).",
    "negative": "negative values are losses of the service, kept as computed; the GEP sums include them.",
    "contested": "contested item (有争议项): counted in GEP but listed separately; GEP is shown with and "
                 "without it (gep_excl_contested). 有争议的核算项目，单列显示。",
}


def display_name(product: str) -> str:
    """``水源涵养 water conservation`` — Chinese first, English second (the id if unknown)."""
    n = product_names().get(product)
    return f"{n['name_zh']} {n['name_en']}" if n else product


class LayerNotFoundError(QueryError, LookupError):
    """No map layer has the requested id."""

    def __init__(self, layer_id: str, known: list[str]):
        self.layer_id = layer_id
        super().__init__(f"no map layer {layer_id!r} (layers: {', '.join(known) or 'none'})")


@dataclass(frozen=True)
class MapLayer:
    """One per-pixel raster of a product as a map layer."""

    id: str
    product: str
    kind: str  # "value" | "physical" (of a product) | "output" (per-pixel, not a product)
    service: str
    output_id: str
    path: Path
    units: str
    nodata: float | None
    contested: bool

    def describe(self) -> dict[str, Any]:
        if self.kind == "output":  # a per-pixel output that is no product (a stock, NPP, NEP …)
            zh, en = _service_names(self.service)
            return {"id": self.id, "product": None, "kind": self.kind, "service": self.service,
                    "output_id": self.output_id, "units": f"{self.units} per pixel", "contested": False,
                    "code": None, "name_zh": f"{zh} {self.output_id}", "name_en": f"{en} {self.output_id}",
                    "title": f"{zh} · {en}: {self.output_id} ({self.units} per pixel, not in GEP)"}
        names = product_names().get(self.product, {})
        kind_zh = "价值量" if self.kind == "value" else "实物量"
        return {
            "id": self.id, "product": self.product, "kind": self.kind, "service": self.service,
            "output_id": self.output_id, "units": f"{self.units} per pixel", "contested": self.contested,
            "code": names.get("code"), "name_zh": names.get("name_zh"), "name_en": names.get("name_en"),
            "title": f"{names.get('name_zh', self.product)} {kind_zh} · {names.get('name_en', self.product)} "
                     f"{'value' if self.kind == 'value' else 'quantity'} ({self.units} per pixel)",
        }


@lru_cache(maxsize=None)
def _service_names(service: str) -> tuple[str, str]:
    from ..registry import get_spec

    try:
        spec = get_spec(service)
    except Exception:  # a service of another installation: show its id
        return service, service
    return spec.name_zh, spec.name


def _hex_rgba(colour: str, alpha: int = 255) -> tuple[int, int, int, int]:
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16), alpha


def _nice(v: float) -> float:
    """``v`` rounded to 3 significant digits (legend labels; equal labels → one class)."""
    if v == 0 or not math.isfinite(v):
        return float(v)
    return float(f"{v:.3g}")


def class_breaks(values: np.ndarray, classes: int = 7) -> list[float]:
    """Quantile breaks of the positive ``values``: at most ``classes`` classes, no two with the
    same bounds after rounding to 3 significant digits (many equal values → fewer classes).

    >>> class_breaks(np.array([1.0, 1, 1, 1, 2, 3]), 4)
    [1.0, 1.75, 3.0]
    """
    pos = np.asarray(values, dtype=np.float64)
    pos = pos[np.isfinite(pos) & (pos > 0)]
    if pos.size == 0:
        return []
    return dedupe_breaks(np.quantile(pos, np.linspace(0.0, 1.0, classes + 1)))


def dedupe_breaks(quantiles: Any) -> list[float]:
    """Increasing class bounds from ``quantiles``, each kept once after rounding to 3
    significant digits (equal quantiles would make classes with the same bounds).

    >>> dedupe_breaks([0, 0, 0, 1.2345, 1.2349, 7])
    [0.0, 1.23, 7.0]
    """
    breaks: list[float] = []
    for q in quantiles:
        b = _nice(float(q))
        if not breaks or b > breaks[-1]:
            breaks.append(b)
    if len(breaks) == 1:  # one value only: one class
        breaks = [breaks[0], breaks[0]]
    return breaks


class MapLayers:
    """The map layers of a run: per-pixel rasters (legend + rendering) and zone sets."""

    def __init__(self, ws: RunWorkspace):
        self.ws = ws
        self.layers: dict[str, MapLayer] = {}
        for layer in ws.layers:
            lid = f"{layer.product}.{layer.kind}"
            if lid not in self.layers:
                self.layers[lid] = MapLayer(lid, layer.product, layer.kind, layer.service, layer.output_id,
                                            layer.path, layer.units, layer.nodata, layer.product in ws.contested)
        # per-pixel outputs that are no product (carbon stocks, NPP, NEP, the clipped water balance)
        for service, res in (ws.manifest.get("results") or {}).items():
            for output_id, out in (res.get("outputs") or {}).items():
                if out.get("product") or out.get("kind") not in ("physical", "intermediate") \
                        or out.get("per", "pixel") != "pixel" or "path" not in out:
                    continue
                path = ws._resolve(out["path"], service)
                if path.exists():
                    lid = f"{service}.{output_id}"
                    self.layers[lid] = MapLayer(lid, "", "output", service, output_id, path,
                                                out.get("units", ""), out.get("nodata"), False)
        self._legends: dict[tuple[str, int], dict[str, Any]] = {}

    def get(self, layer_id: str) -> MapLayer:
        try:
            return self.layers[layer_id]
        except KeyError:
            raise LayerNotFoundError(layer_id, list(self.layers)) from None

    def describe(self) -> list[dict[str, Any]]:
        """Every layer, values first, in the run's product order."""
        order = {p: i for i, p in enumerate(self.ws.products)}
        rank = {"value": 0, "physical": 1, "output": 2}
        ranked = sorted(self.layers.values(), key=lambda la: (rank[la.kind], order.get(la.product, 1e9)))
        return [la.describe() for la in ranked]

    # -- legend ---------------------------------------------------------------------------
    def _sample(self, layer: MapLayer) -> np.ndarray:
        from rio_tiler.io import Reader

        with Reader(str(layer.path)) as src:
            img = src.preview(max_size=1024)
        data = img.array[0]
        return np.ma.compressed(data).astype(np.float64)

    def legend(self, layer_id: str, classes: int = 7) -> dict[str, Any]:
        """Classes of a layer: ``[{"from", "to", "color", "label"}]`` (bounds in the layer's
        units per pixel), the notes that explain its zero / negative values, and its range."""
        key = (layer_id, classes)
        if key in self._legends:
            return self._legends[key]
        layer = self.get(layer_id)
        values = self._sample(layer)
        ramp = RAMPS["value" if layer.kind == "value" else "physical"]
        breaks = class_breaks(values, min(classes, len(ramp)))
        n = max(len(breaks) - 1, 0)
        colours = [ramp[round(i * (len(ramp) - 1) / max(n - 1, 1))] for i in range(n)]
        entries: list[dict[str, Any]] = []
        notes = {**GENERIC_NOTES, **NOTES.get(layer.service, {})}
        shown_notes: list[str] = []
        has_neg, has_zero = bool((values < 0).any()), bool((values == 0).any())
        if has_neg:
            entries.append({"from": _nice(float(values.min())), "to": 0.0, "color": NEGATIVE_COLOUR,
                            "label": f"< 0 ({_nice(float(values.min())):,g} … 0)", "class": "negative"})
            shown_notes.append(notes["negative"])
        if has_zero:
            entries.append({"from": 0.0, "to": 0.0, "color": ZERO_COLOUR, "label": "0", "class": "zero"})
            shown_notes.append(notes["zero"])
        for i in range(n):
            lo, hi = breaks[i], breaks[i + 1]
            label = f"{lo:,g}" if lo == hi else f"{lo:,g} – {hi:,g}"
            entries.append({"from": lo, "to": hi, "color": colours[i], "label": label,
                            "class": "positive"})
        if layer.contested:
            shown_notes.append(notes["contested"])
        d = layer.describe()
        out = {**d, "classes": entries, "notes": shown_notes,
               "min": float(values.min()) if values.size else None,
               "max": float(values.max()) if values.size else None,
               "valid_pixels_sampled": int(values.size)}
        self._legends[key] = out
        return out

    def classify(self, layer_id: str, data: np.ndarray) -> np.ma.MaskedArray:
        """Legend class index (0 … n−1, in the order of ``legend()["classes"]``) of every value
        of ``data`` (a masked array of the layer, e.g. a decimated read); nodata stays masked.
        For plotting with the legend's colours (``matplotlib.colors.ListedColormap``)."""
        classes = self.legend(layer_id)["classes"]
        values = np.ma.asarray(data, dtype=np.float64)
        raw = values.filled(np.nan)
        idx = np.full(raw.shape, -1, dtype=np.int16)
        pos = [i for i, c in enumerate(classes) if c["class"] == "positive"]
        if pos:
            cuts = [classes[i]["to"] for i in pos[:-1]]
            idx = np.where(raw > 0, pos[0] + np.digitize(raw, cuts, right=False), idx)
        for i, c in enumerate(classes):
            if c["class"] == "zero":
                idx[raw == 0] = i
            elif c["class"] == "negative":
                idx[raw < 0] = i
        return np.ma.masked_array(idx, mask=np.ma.getmaskarray(values) | (idx < 0) | np.isnan(raw))

    def colormap(self, layer_id: str) -> list[tuple[tuple[float, float], tuple[int, int, int, int]]]:
        """rio-tiler interval colormap of the legend (open ends at ±inf; zero as its own class)."""
        entries = self.legend(layer_id)["classes"]
        cmap: list[tuple[tuple[float, float], tuple[int, int, int, int]]] = []
        pos = [e for e in entries if e["class"] == "positive"]
        for e in entries:
            if e["class"] == "negative":
                cmap.append(((-math.inf, 0.0), _hex_rgba(e["color"])))
            elif e["class"] == "zero":
                cmap.append(((0.0, _TINY), _hex_rgba(e["color"])))
        for i, e in enumerate(pos):
            lo = _TINY if i == 0 else e["from"]
            hi = math.inf if i == len(pos) - 1 else e["to"]
            cmap.append(((lo, hi), _hex_rgba(e["color"])))
        return cmap

    # -- rendering ------------------------------------------------------------------------
    def render(self, layer_id: str, bbox: list[float], width: int, height: int) -> bytes:
        """PNG of ``layer_id`` over ``bbox`` (grid CRS) at ``width`` × ``height`` px; nodata
        and pixels outside the raster are transparent."""
        from rio_tiler.io import Reader

        layer = self.get(layer_id)
        if not (0 < width <= 4096 and 0 < height <= 4096):
            raise QueryError(f"width × height = {width} × {height}: each must be 1 … 4096 px")
        minx, miny, maxx, maxy = bbox
        if not (maxx > minx and maxy > miny):
            raise QueryError(f"bbox {bbox}: expected minx < maxx and miny < maxy")
        with Reader(str(layer.path)) as src:
            img = src.part(bbox, dst_crs=self.ws.grid.crs, bounds_crs=self.ws.grid.crs,
                           width=width, height=height)
        return img.render(img_format="PNG", colormap=self.colormap(layer_id))

    def tile(self, layer_id: str, z: int, x: int, y: int) -> bytes:
        """A 256 px Web Mercator XYZ tile of ``layer_id`` (for QGIS, Leaflet …)."""
        from rio_tiler.errors import TileOutsideBounds
        from rio_tiler.io import Reader

        layer = self.get(layer_id)
        with Reader(str(layer.path)) as src:
            try:
                img = src.tile(x, y, z, tilesize=256)
            except TileOutsideBounds:
                raise QueryError(f"tile {z}/{x}/{y} is outside the run's extent") from None
        return img.render(img_format="PNG", colormap=self.colormap(layer_id))


# ---------------------------------------------------------------------------------------
# zone sets (districts, townships, wetland units)
# ---------------------------------------------------------------------------------------

#: Zone-set names and their Chinese labels (others show their file name).
ZONE_LABELS = {"districts": "区县 districts", "townships": "乡镇街道 townships",
               "wetland_units": "湿地单元 wetland units", "parcels": "地块 parcels"}


def zone_sets(ws: RunWorkspace) -> list[str]:
    """Zone sets of the run with a GEP table (``products/<name>.parquet``), parcels excluded."""
    folder = ws.root / "products"
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.parquet") if p.stem not in ("parcels", "catalogue"))


@lru_cache(maxsize=16)
def _zones_geojson_cached(path: str, mtime: float, simplify: float) -> dict[str, Any]:
    import geopandas as gpd
    import shapely

    gdf = gpd.read_parquet(path)
    keep = [c for c in gdf.columns if c in ("zone_id", "name", "area_ha", "gep", "gep_excl_contested",
                                            "gep_per_ha") or c.endswith("_id") or c.endswith("_name")]
    geoms = gdf.geometry.values
    if simplify > 0:
        geoms = shapely.simplify(np.asarray(geoms), simplify, preserve_topology=True)
    features = []
    for i, geom in enumerate(geoms):
        props = {c: (None if (isinstance(v := gdf[c].iloc[i], float) and math.isnan(v)) else
                     (v.item() if hasattr(v, "item") else v)) for c in keep}
        features.append({"type": "Feature", "properties": props,
                         "geometry": shapely.geometry.mapping(geom) if geom is not None else None})
    return {"type": "FeatureCollection", "features": features}


def zones_geojson(ws: RunWorkspace, name: str, simplify: float = 0.0) -> dict[str, Any]:
    """The outlines and GEP of one zone set (grid CRS) as a GeoJSON FeatureCollection."""
    known = zone_sets(ws)
    if name not in known:
        raise LayerNotFoundError(name, known)
    path = ws.root / "products" / f"{name}.parquet"
    out = _zones_geojson_cached(str(path), path.stat().st_mtime, round(float(simplify), 3))
    return {**out, "name": name, "title": ZONE_LABELS.get(name, name)}
