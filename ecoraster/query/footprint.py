"""Footprints of planned projects: GeoJSON polygons read, checked and brought onto the run grid.

A footprint is given in EPSG:4326 (WGS 84 lon/lat, the GeoJSON default), EPSG:4490
(CGCS2000 lon/lat) or the run grid's CRS, named by the GeoJSON ``crs`` member or by a
``crs`` argument; any other CRS is refused. Invalid geometry (a self-intersection, a ring
that does not close …) is reported with where it is, never silently repaired. Checks run
before any raster is read: not a polygon, invalid, larger than the maximum area, outside
the region.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import shapely
from pyproj import CRS, Transformer
from shapely.geometry import shape

from ..errors import FootprintError

#: Geographic CRSs accepted besides the grid CRS (GeoJSON lon/lat axis order always).
GEOGRAPHIC_CRS = {"EPSG:4326": 4326, "OGC:CRS84": 4326, "EPSG:4490": 4490}

#: Default largest footprint accepted, ha (100 km²); ``max_area_ha`` overrides it.
DEFAULT_MAX_AREA_HA = 10_000.0

#: Longest edge (degrees) of a lon/lat footprint before projection; edges are split so
#: the projected outline follows the true curve (≈11 m on the ground).
DENSIFY_DEG = 1e-4

#: Most vertices accepted in one footprint (a request-size guard).
MAX_VERTICES = 100_000

M2_PER_HA = 10_000.0


@dataclass
class Footprint:
    """A checked footprint on the run grid.

    ``geometry`` is in the grid CRS; ``area_ha`` is its area before clipping to the region.
    """

    name: str
    geometry: shapely.Geometry
    input_crs: str
    area_ha: float
    properties: dict[str, Any]


@lru_cache(maxsize=64)
def _crs_from_text(text: str) -> CRS:
    return CRS.from_user_input(text)


def as_pyproj_crs(crs: Any) -> CRS:
    """A pyproj CRS for ``crs`` (pyproj / rasterio CRS, WKT, ``EPSG:…``), parsed once per
    distinct text and shared: building one from WKT costs ~10 ms of the GIL, and pyproj ≥ 3.1
    CRS and Transformer objects may be used by several threads."""
    if isinstance(crs, CRS):
        return crs
    if isinstance(crs, int):
        return _crs_from_text(f"EPSG:{crs}")
    return _crs_from_text(crs.to_wkt() if hasattr(crs, "to_wkt") else str(crs))


@lru_cache(maxsize=64)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(_crs_from_text(src), _crs_from_text(dst), always_xy=True)


def transformer(src: Any, dst: Any) -> Transformer:
    """A cached lon/lat-order (``always_xy``) Transformer from ``src`` to ``dst`` (keyed by
    the text each CRS was made from)."""
    return _transformer(as_pyproj_crs(src).srs, as_pyproj_crs(dst).srs)


@lru_cache(maxsize=64)
def _facts(srs: str) -> tuple[int | None, bool, float]:
    crs = _crs_from_text(srs)
    factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return crs.to_epsg(), bool(crs.is_geographic), float(factor)


def crs_facts(crs: CRS) -> tuple[int | None, bool, float]:
    """(EPSG code or None, geographic?, metres (or radians) per axis unit) of a pyproj CRS,
    worked out once per CRS text (pyproj parses a CRS again in every new thread)."""
    return _facts(crs.srs)


def _crs_name(obj: Any) -> str | None:
    """The CRS named by a GeoJSON ``crs`` member (2008 spec) or a plain string."""
    if obj is None:
        return None
    if isinstance(obj, str):
        return obj
    if isinstance(obj, dict):
        props = obj.get("properties") or {}
        return props.get("name") or props.get("href")
    return str(obj)


def normalise_crs(name: str, grid_crs: Any, source: str = "footprint") -> tuple[str, CRS]:
    """``(label, CRS)`` for an accepted CRS name; :class:`FootprintError` for any other."""
    grid_crs = as_pyproj_crs(grid_crs)
    text = str(name).strip()
    upper = text.upper()
    if upper in ("CRS84", "OGC:CRS84", "URN:OGC:DEF:CRS:OGC:1.3:CRS84", "URN:OGC:DEF:CRS:OGC::CRS84"):
        return "EPSG:4326", as_pyproj_crs(4326)
    for prefix in ("URN:OGC:DEF:CRS:EPSG::", "URN:OGC:DEF:CRS:EPSG:6.6:", "HTTP://WWW.OPENGIS.NET/DEF/CRS/EPSG/0/"):
        if upper.startswith(prefix):
            text = "EPSG:" + text[len(prefix):]
            upper = text.upper()
    if upper.isdigit():
        text, upper = f"EPSG:{upper}", f"EPSG:{upper}"
    grid_epsg = crs_facts(grid_crs)[0]
    grid_label = f"EPSG:{grid_epsg}" if grid_epsg else "grid"
    allowed = ", ".join(["EPSG:4326", "EPSG:4490", grid_label])
    if upper in GEOGRAPHIC_CRS:
        return upper, as_pyproj_crs(GEOGRAPHIC_CRS[upper])
    try:
        crs = _crs_from_text(text)
    except Exception:
        raise FootprintError("unknown_crs", f"crs {name!r} is not a CRS we know (use one of {allowed})",
                             source) from None
    if crs is grid_crs or (grid_epsg and crs_facts(crs)[0] == grid_epsg) or crs == grid_crs:
        return grid_label, grid_crs
    raise FootprintError("unknown_crs", f"crs {name!r} is not accepted (use one of {allowed})", source)


def _geometries(obj: dict[str, Any], source: str) -> tuple[list[dict], dict[str, Any]]:
    """Geometry dicts and the first feature's properties of a GeoJSON object."""
    kind = obj.get("type")
    if kind == "FeatureCollection":
        feats = obj.get("features") or []
        if not feats:
            raise FootprintError("bad_geojson", "FeatureCollection has no features", source)
        return [f.get("geometry") for f in feats], dict(feats[0].get("properties") or {})
    if kind == "Feature":
        return [obj.get("geometry")], dict(obj.get("properties") or {})
    if kind in ("Polygon", "MultiPolygon", "Point", "LineString", "MultiPoint", "MultiLineString",
                "GeometryCollection"):
        return [obj], {}
    raise FootprintError("bad_geojson", f"GeoJSON 'type' {kind!r} is not a Feature, FeatureCollection or "
                         "Polygon", source)


def _polygon(geom: dict | None, index: int, source: str) -> shapely.Geometry:
    if not geom:
        raise FootprintError("bad_geojson", f"feature {index} has no geometry", source)
    gtype = geom.get("type")
    if gtype not in ("Polygon", "MultiPolygon"):
        raise FootprintError("not_polygon", f"feature {index} is a {gtype}; a footprint must be a Polygon or "
                             "MultiPolygon", source)
    try:
        g = shape(geom)
    except Exception as exc:  # shapely raises on unclosed / too-short rings
        raise FootprintError("invalid_geometry", f"feature {index}: {exc}", source) from None
    if g.is_empty:
        raise FootprintError("invalid_geometry", f"feature {index} is empty", source)
    if not g.is_valid:
        reason = shapely.is_valid_reason(g)
        raise FootprintError("invalid_geometry", f"feature {index} is not a valid polygon: {reason} "
                             "(fix the outline; it is not repaired automatically)", source)
    return g


def read_footprint(obj: dict[str, Any] | str | os.PathLike, grid_crs: Any, *, crs: str | None = None,
                   name: str | None = None, max_area_ha: float | None = DEFAULT_MAX_AREA_HA) -> Footprint:
    """Read a footprint from a GeoJSON dict, text or file and project it to ``grid_crs``.

    Parameters
    ----------
    obj : dict, str or path
        GeoJSON Feature, FeatureCollection (all its polygons form one site) or Polygon.
    grid_crs : CRS-like
        CRS of the run grid (a projected CRS such as EPSG:4527).
    crs : str, optional
        CRS of the coordinates; overrides the GeoJSON ``crs`` member. Without either,
        GeoJSON's default (EPSG:4326 lon/lat) applies.
    max_area_ha : float or None
        Refuse footprints larger than this (ha); None: no limit.

    Raises
    ------
    FootprintError
        with ``reason`` ``bad_geojson``, ``not_polygon``, ``invalid_geometry``,
        ``unknown_crs`` or ``too_large``.
    """
    source = name or "footprint"
    fallback_name = "site"
    if isinstance(obj, (str, os.PathLike)) and not str(obj).lstrip().startswith("{"):
        path = Path(obj)
        source = str(path)
        if not path.is_file():
            raise FootprintError("bad_geojson", "file not found", source)
        fallback_name = path.stem
        obj = path.read_text(encoding="utf-8-sig")
    if isinstance(obj, str):
        try:
            obj = json.loads(obj)
        except json.JSONDecodeError as exc:
            raise FootprintError("bad_geojson", f"not valid JSON ({exc})", source) from None
    if not isinstance(obj, dict):
        raise FootprintError("bad_geojson", "expected a GeoJSON object", source)
    grid_crs = as_pyproj_crs(grid_crs)
    geoms, props = _geometries(obj, source)
    polygons = [_polygon(g, i, source) for i, g in enumerate(geoms)]
    n_vertices = int(sum(shapely.get_num_coordinates(p) for p in polygons))
    if n_vertices > MAX_VERTICES:
        raise FootprintError("too_large", f"{n_vertices:,} vertices; at most {MAX_VERTICES:,} are accepted", source)
    geom = polygons[0] if len(polygons) == 1 else shapely.union_all(polygons)

    given = crs or _crs_name(obj.get("crs"))
    label, src_crs = normalise_crs(given, grid_crs, source) if given else ("EPSG:4326", as_pyproj_crs(4326))
    minx, miny, maxx, maxy = geom.bounds
    if crs_facts(src_crs)[1]:
        if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
            hint = "" if given else "; no crs was given, so GeoJSON's lon/lat applies — pass crs=… for projected coordinates"
            raise FootprintError("unknown_crs", f"coordinates ({minx:.6g}, {miny:.6g}, {maxx:.6g}, {maxy:.6g}) are "
                                 f"not lon/lat in {label}{hint}", source)
        geom = shapely.segmentize(geom, DENSIFY_DEG)
    if src_crs is not grid_crs and src_crs != grid_crs:
        tr = transformer(src_crs, grid_crs)
        geom = shapely.transform(geom, lambda xy: _stack(tr.transform(xy[:, 0], xy[:, 1])))
        if not geom.is_valid:  # projection of a valid polygon can only break at the 1e-9 level
            geom = shapely.make_valid(geom)
    area_ha = _area_ha(geom, grid_crs)
    if max_area_ha is not None and area_ha > max_area_ha:
        raise FootprintError("too_large", f"area {area_ha:,.1f} ha is above the maximum of {max_area_ha:,.1f} ha",
                             source)
    site_name = name or str(props.get("name") or props.get("id") or obj.get("id") or fallback_name)
    return Footprint(name=site_name, geometry=geom, input_crs=label, area_ha=area_ha, properties=props)


def _stack(xy):
    import numpy as np

    return np.column_stack(xy)


def _area_ha(geom: shapely.Geometry, crs: CRS) -> float:
    """Area in ha: planar in a projected CRS (metres), geodesic in a geographic one."""
    _epsg, geographic, factor = crs_facts(crs)
    if geographic:
        from pyproj import Geod

        return abs(Geod(ellps="GRS80").geometry_area_perimeter(geom)[0]) / M2_PER_HA
    return float(geom.area) * factor * factor / M2_PER_HA


def footprints_from_collection(obj: dict[str, Any], grid_crs: Any, *, crs: str | None = None,
                               max_area_ha: float | None = DEFAULT_MAX_AREA_HA) -> list[Footprint]:
    """Each feature of a FeatureCollection as its own candidate site (name from
    ``properties.name``, else ``id``, else ``site <n>``)."""
    if obj.get("type") != "FeatureCollection":
        raise FootprintError("bad_geojson", "expected a FeatureCollection of candidate sites")
    given = crs or _crs_name(obj.get("crs"))
    sites = []
    for i, feat in enumerate(obj.get("features") or []):
        props = feat.get("properties") or {}
        name = str(props.get("name") or feat.get("id") or f"site {i + 1}")
        sites.append(read_footprint({"type": "Feature", "geometry": feat.get("geometry"), "properties": props},
                                    grid_crs, crs=given, name=name, max_area_ha=max_area_ha))
    if not sites:
        raise FootprintError("bad_geojson", "FeatureCollection has no features")
    return sites


def bbox_to_grid(bbox: tuple[float, float, float, float] | list[float], grid_crs: Any,
                 crs: str | None = None) -> tuple[float, float, float, float]:
    """A bbox (minx, miny, maxx, maxy) given in ``crs`` (default: the grid CRS; accepted as
    for footprints) as the enclosing bbox in the grid CRS (edges densified)."""
    from ..errors import QueryError

    if len(bbox) != 4:
        raise QueryError(f"bbox {list(bbox)}: expected 4 numbers minx,miny,maxx,maxy")
    minx, miny, maxx, maxy = map(float, bbox)
    if not (minx <= maxx and miny <= maxy):
        raise QueryError(f"bbox {list(bbox)}: expected minx,miny,maxx,maxy with min ≤ max")
    grid_crs = as_pyproj_crs(grid_crs)
    if crs is None:
        return minx, miny, maxx, maxy
    _label, src = normalise_crs(crs, grid_crs, "bbox")
    if src is grid_crs or src == grid_crs:
        return minx, miny, maxx, maxy
    tr = transformer(src, grid_crs)
    return tuple(float(v) for v in tr.transform_bounds(minx, miny, maxx, maxy, densify_pts=21))
