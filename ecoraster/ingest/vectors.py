"""Boundaries and parcels: read, repair, undo GCJ-02, project to CGCS2000 Gauss-Krüger.

Chinese web-map boundaries (AMap/高德, Tencent, and most Chinese online APIs) are in
**GCJ-02**, an obfuscated lon/lat that differs from WGS 84 by a few hundred metres, even
when the file's ``.prj`` says WGS 84. :func:`gcj02_to_wgs84` inverts the published
GCJ-02 forward transform iteratively (accuracy well below 1 mm in coordinates after
convergence, i.e. limited only by the forward model).

CGCS2000 3-degree Gauss-Krüger zones: zone ``n`` has central meridian ``3n`` °E and covers
``3n − 1.5 .. 3n + 1.5`` °E. EPSG:4513–4533 are zones 25–45 *with* the zone number as an
easting prefix (false easting ``n·10⁶ + 500 000`` m); EPSG:4534–4554 are the same zones
with false easting 500 000 m ("CM-only" names).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Literal

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS

from ..errors import ConfigError, MissingCRSError, MissingFileError, TableError

log = logging.getLogger(__name__)

# Krasovsky 1940 ellipsoid, as used by the GCJ-02 forward model.
_GCJ_A = 6378245.0  # semi-major axis, m
_GCJ_EE = 0.00669342162296594323  # first eccentricity squared

#: Rough lon/lat box of mainland China outside which GCJ-02 applies no shift (°).
CHINA_BOX = (72.004, 0.8293, 137.8347, 55.8271)

Datum = Literal["wgs84", "gcj02", "cgcs2000"]


def _inside_china(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    w, s, e, n = CHINA_BOX
    return (lon >= w) & (lon <= e) & (lat >= s) & (lat <= n)


def _offset_lat_term(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Latitude polynomial/sine term of the GCJ-02 model (x, y: lon−105°, lat−35°)."""
    pi = math.pi
    t = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    t += (20.0 * np.sin(6.0 * x * pi) + 20.0 * np.sin(2.0 * x * pi)) * 2.0 / 3.0
    t += (20.0 * np.sin(y * pi) + 40.0 * np.sin(y / 3.0 * pi)) * 2.0 / 3.0
    t += (160.0 * np.sin(y / 12.0 * pi) + 320.0 * np.sin(y * pi / 30.0)) * 2.0 / 3.0
    return t


def _offset_lon_term(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Longitude polynomial/sine term of the GCJ-02 model (x, y: lon−105°, lat−35°)."""
    pi = math.pi
    t = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    t += (20.0 * np.sin(6.0 * x * pi) + 20.0 * np.sin(2.0 * x * pi)) * 2.0 / 3.0
    t += (20.0 * np.sin(x * pi) + 40.0 * np.sin(x / 3.0 * pi)) * 2.0 / 3.0
    t += (150.0 * np.sin(x / 12.0 * pi) + 300.0 * np.sin(x / 30.0 * pi)) * 2.0 / 3.0
    return t


def wgs84_to_gcj02(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 coordinates of WGS 84 lon/lat (degrees); unchanged outside China.

    The published GCJ-02 forward model (GB/T "国测局" 2002 obfuscation as reimplemented
    publicly, e.g. in ``eviltransform`` / ``coordtransform``): a polynomial-plus-sines
    offset in metres on the Krasovsky ellipsoid, converted to degrees at the point's
    latitude.

    Parameters
    ----------
    lon, lat : array-like, degrees
        WGS 84 longitude and latitude.

    Returns
    -------
    (lon, lat) : arrays of float64, degrees (GCJ-02)
    """
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    x, y = lon - 105.0, lat - 35.0
    dlat = _offset_lat_term(x, y)
    dlon = _offset_lon_term(x, y)
    rad = np.radians(lat)
    w = 1.0 - _GCJ_EE * np.sin(rad) ** 2
    sw = np.sqrt(w)
    dlat = dlat * 180.0 / ((_GCJ_A * (1.0 - _GCJ_EE)) / (w * sw) * math.pi)
    dlon = dlon * 180.0 / (_GCJ_A / sw * np.cos(rad) * math.pi)
    inside = _inside_china(lon, lat)
    return np.where(inside, lon + dlon, lon), np.where(inside, lat + dlat, lat)


def gcj02_to_wgs84(lon, lat, *, tol_deg: float = 1e-10, max_iter: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """WGS 84 lon/lat of GCJ-02 coordinates (degrees), by fixed-point iteration.

    Starting from ``w = g``, repeat ``w ← w − (forward(w) − g)`` until the largest
    correction is below ``tol_deg`` (1e-10° ≈ 0.01 mm). The offset field is smooth (its
    gradient is ~1e-5 per degree), so each step shrinks the error by ~10⁵ and 2–4 steps
    suffice.

    Parameters
    ----------
    lon, lat : array-like, degrees (GCJ-02)
    tol_deg : float, degrees
        Convergence threshold on the coordinate update.
    """
    g_lon = np.asarray(lon, dtype=np.float64)
    g_lat = np.asarray(lat, dtype=np.float64)
    w_lon, w_lat = g_lon.copy(), g_lat.copy()
    for _ in range(max_iter):
        f_lon, f_lat = wgs84_to_gcj02(w_lon, w_lat)
        d_lon, d_lat = f_lon - g_lon, f_lat - g_lat
        w_lon -= d_lon
        w_lat -= d_lat
        if w_lon.size == 0 or max(np.abs(d_lon).max(), np.abs(d_lat).max()) < tol_deg:
            break
    return w_lon, w_lat


def _transform_geometries(geoms: np.ndarray, func) -> np.ndarray:
    def xy_func(coords: np.ndarray) -> np.ndarray:
        lon, lat = func(coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])

    return shapely.transform(geoms, xy_func)


def geometries_gcj02_to_wgs84(geoms) -> np.ndarray:
    """Apply :func:`gcj02_to_wgs84` to every vertex of shapely geometries (lon/lat)."""
    return _transform_geometries(np.asarray(geoms, dtype=object), gcj02_to_wgs84)


def cgcs2000_gk_zone(lon: float, *, zone_prefix: bool = True) -> str:
    """EPSG code of the CGCS2000 3-degree Gauss-Krüger zone containing longitude ``lon``.

    Zone ``n = floor((lon + 1.5) / 3)``, central meridian ``3n`` °E (GB/T 17798 /
    CH/T 2014 3° zoning). Tianjin 117.6 °E → 39 (EPSG:4527), Wuhan 114.3 °E → 38
    (EPSG:4526), 崇明 121.6 °E → 41 (EPSG:4529; zone 40's edge is 121.5 °E).

    Parameters
    ----------
    lon : float, degrees east
    zone_prefix : bool
        True: EPSG:4513–4533 (easting carries the zone number, as in Chinese survey
        data); False: EPSG:4534–4554 (false easting 500 km).
    """
    zone = math.floor((float(lon) + 1.5) / 3.0)
    if not 25 <= zone <= 45:
        raise ConfigError(f"longitude {lon} is outside the CGCS2000 3-degree GK zones 25..45 (73.5-136.5 E)")
    return f"EPSG:{(4513 if zone_prefix else 4534) + zone - 25}"


def make_valid_polygons(geoms) -> np.ndarray:
    """``shapely.make_valid`` keeping only the polygonal parts (collections → MultiPolygon)."""
    fixed = shapely.make_valid(np.asarray(geoms, dtype=object))
    out = np.empty(len(fixed), dtype=object)
    for i, g in enumerate(fixed):
        if g is None or g.is_empty:
            out[i] = None
        elif g.geom_type in ("Polygon", "MultiPolygon"):
            out[i] = g
        else:
            parts = [p for p in shapely.get_parts(g) if p.geom_type in ("Polygon", "MultiPolygon")]
            out[i] = shapely.union_all(parts) if parts else None
    return out


def read_zones(
    path: str | Path,
    *,
    layer: str | int | None = None,
    datum: Datum = "wgs84",
    id_field: str | None = None,
    to_crs=None,
    crs=None,
) -> gpd.GeoDataFrame:
    """Read boundary or parcel polygons, repaired and in the CRS asked for.

    Parameters
    ----------
    path : path
        Any OGR vector (read with pyogrio): Shapefile, GeoPackage, GeoJSON, GeoParquet.
    layer : str or int, optional
        Layer of a multi-layer source.
    datum : {"wgs84", "gcj02", "cgcs2000"}
        What the coordinates really are. ``"gcj02"``: lon/lat in GCJ-02 whatever the
        ``.prj`` says; converted to WGS 84 (EPSG:4326). ``"cgcs2000"``: lon/lat data is
        labelled EPSG:4490.
    id_field : str, optional
        A field that must exist, be non-null and unique (checked, error names the value).
    to_crs : CRS-like or ``"gk"``, optional
        Project the result; ``"gk"`` picks the CGCS2000 3-degree GK zone of the layer's
        centre longitude (:func:`cgcs2000_gk_zone`).
    crs : CRS-like, optional
        CRS to assume when the file has none.

    Returns
    -------
    GeoDataFrame
        Valid polygonal geometries; ``attrs["ingest_report"]`` counts repaired and dropped
        features.
    """
    path_s = str(path)
    if "://" not in path_s and not Path(path_s).exists():
        raise MissingFileError(path_s, field="zones")
    if datum not in ("wgs84", "gcj02", "cgcs2000"):
        raise ConfigError(f"{path_s}: datum {datum!r}; use 'wgs84', 'gcj02' or 'cgcs2000'")
    gdf = gpd.read_file(path_s, layer=layer, engine="pyogrio")
    if gdf.crs is None:
        if crs is None:
            raise MissingCRSError(path_s, field="zones")
        gdf = gdf.set_crs(crs)
    if datum in ("gcj02", "cgcs2000") and not gdf.crs.is_geographic:
        raise ConfigError(f"{path_s}: datum {datum!r} needs lon/lat coordinates, but the file is in {gdf.crs.name}")
    if datum == "gcj02":
        gdf = gdf.set_geometry(geometries_gcj02_to_wgs84(gdf.geometry.values), crs="EPSG:4326")
    elif datum == "cgcs2000":
        gdf = gdf.set_crs("EPSG:4490", allow_override=True)

    invalid = int((~gdf.geometry.is_valid).sum())
    geoms = make_valid_polygons(gdf.geometry.values)
    keep = np.array([g is not None for g in geoms])
    if not keep.all():
        log.warning("%s: dropped %d feature(s) with no polygonal geometry", path_s, int((~keep).sum()))
    gdf = gdf.set_geometry(gpd.GeoSeries(geoms, index=gdf.index, crs=gdf.crs))[keep].copy()

    if id_field is not None:
        _check_id_field(gdf, id_field, path_s)
    if to_crs is not None:
        if isinstance(to_crs, str) and to_crs.lower() == "gk":
            lonlat = gdf.to_crs("EPSG:4326").total_bounds
            to_crs = cgcs2000_gk_zone((lonlat[0] + lonlat[2]) / 2.0)
        gdf = gdf.to_crs(CRS.from_user_input(to_crs))
    gdf.attrs["ingest_report"] = {"path": path_s, "datum": datum, "features": int(len(gdf)),
                                  "repaired": invalid, "dropped": int((~keep).sum()),
                                  "crs": gdf.crs.to_string()}
    return gdf


def _check_id_field(gdf: gpd.GeoDataFrame, id_field: str, path: str) -> None:
    if id_field not in gdf.columns:
        raise TableError(f"{path}: id field {id_field!r} not found (fields: {', '.join(map(str, gdf.columns[:20]))})")
    ids = gdf[id_field]
    if ids.isna().any():
        row = int(np.flatnonzero(ids.isna().to_numpy())[0])
        raise TableError(f"{path}: field {id_field!r} is empty in feature {row}")
    dup = ids[ids.duplicated()]
    if len(dup):
        raise TableError(f"{path}: field {id_field!r} value {dup.iloc[0]!r} repeats ({len(dup)} duplicate(s))")
