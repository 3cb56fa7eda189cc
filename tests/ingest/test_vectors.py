"""Boundaries: GCJ-02 ↔ WGS 84, CGCS2000 GK zones, make_valid, id checks."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from pyproj import CRS
from shapely.geometry import Polygon

from ecoraster.errors import ConfigError, MissingCRSError, TableError
from ecoraster.ingest import vectors as vec


def test_gcj02_forward_known_point_and_round_trip():
    # Tiananmen: WGS 84 (116.3975, 39.9087) is shown ~+0.0062 deg lon, +0.0014 deg lat off on AMap
    glon, glat = vec.wgs84_to_gcj02(116.3975, 39.9087)
    assert glon - 116.3975 == pytest.approx(0.00624, abs=1e-4)
    assert glat - 39.9087 == pytest.approx(0.00140, abs=1e-4)
    rng = np.random.default_rng(0)
    lon = rng.uniform(75, 134, 2000)
    lat = rng.uniform(18, 53, 2000)
    g = vec.wgs84_to_gcj02(lon, lat)
    back = vec.gcj02_to_wgs84(*g)
    assert np.abs(back[0] - lon).max() < 1e-9 and np.abs(back[1] - lat).max() < 1e-9  # brief asks < 1e-6
    # the shift is a few hundred metres (not 0, not km): |dlon| < 0.01 deg, |dlat| < 0.01 deg
    assert 0 < np.abs(g[0] - lon).max() < 0.01 and np.abs(g[1] - lat).max() < 0.01


def test_no_shift_outside_china():
    lon, lat = np.array([-0.1276, 151.2, 14.55]), np.array([51.5072, -33.87, 45.87])
    g = vec.wgs84_to_gcj02(lon, lat)
    np.testing.assert_array_equal(g[0], lon)
    np.testing.assert_array_equal(vec.gcj02_to_wgs84(lon, lat)[1], lat)


def test_cgcs2000_zones_match_pyproj():
    assert vec.cgcs2000_gk_zone(117.6) == "EPSG:4527"  # Tianjin, zone 39, CM 117
    assert vec.cgcs2000_gk_zone(114.3) == "EPSG:4526"  # Wuhan, zone 38, CM 114
    assert vec.cgcs2000_gk_zone(121.6) == "EPSG:4529"  # 崇明: 121.6 > 121.5 -> zone 41, CM 123
    assert vec.cgcs2000_gk_zone(117.6, zone_prefix=False) == "EPSG:4548"  # CM 117E: 4534 + (39 - 25)
    for lon in (75.0, 100.2, 117.6, 135.0):
        crs = CRS.from_user_input(vec.cgcs2000_gk_zone(lon))
        zone = int(np.floor((lon + 1.5) / 3))
        assert crs.name.endswith(f"zone {zone}")
        params = {p.name: p.value for p in crs.coordinate_operation.params}
        assert params["Longitude of natural origin"] == 3 * zone
        assert params["False easting"] == zone * 1e6 + 500000
        cm_only = CRS.from_user_input(vec.cgcs2000_gk_zone(lon, zone_prefix=False))
        assert cm_only.name.endswith(f"CM {3 * zone}E")
    with pytest.raises(ConfigError, match="outside"):
        vec.cgcs2000_gk_zone(10.0)


def test_read_zones_repairs_and_checks_ids(tmp_cn):
    bowtie = Polygon([(0, 0), (2, 2), (2, 0), (0, 2)])  # self-intersecting: two triangles of area 1
    square = Polygon([(10, 10), (12, 10), (12, 12), (10, 12)])
    path = tmp_cn / "地块.gpkg"
    gpd.GeoDataFrame({"dkbm": ["A1", "A2"]}, geometry=[bowtie, square], crs="EPSG:4527").to_file(path)
    z = vec.read_zones(path, id_field="dkbm")
    assert z.is_valid.all() and z.geometry.iloc[0].area == pytest.approx(2.0)
    assert z.attrs["ingest_report"]["repaired"] == 1
    dup = tmp_cn / "重复.gpkg"
    gpd.GeoDataFrame({"dkbm": ["A1", "A1"]}, geometry=[square, square], crs="EPSG:4527").to_file(dup)
    with pytest.raises(TableError, match=r"重复.gpkg: field 'dkbm' value 'A1' repeats"):
        vec.read_zones(dup, id_field="dkbm")
    with pytest.raises(TableError, match="not found"):
        vec.read_zones(path, id_field="bsm")
    shp = tmp_cn / "无坐标.shp"
    gpd.GeoDataFrame({"a": [1]}, geometry=[square]).to_file(shp)
    with pytest.raises(MissingCRSError):
        vec.read_zones(shp)
    assert vec.read_zones(shp, crs="EPSG:4527").crs.to_epsg() == 4527


def _iou(a, b):
    return a.intersection(b).area / a.union(b).area


def test_gcj02_districts_land_on_cgcs2000_districts(real):
    """The AMap (GCJ-02) districts, converted, overlay the CGCS2000 districts much better.

    The two sets come from different sources and generalisations (宁河 1165 vs 1303 km²), so
    a metre-level Hausdorff match is impossible; the centroid offset and overlap are robust.
    """
    rows = []
    for city, ref_file, epsg in (("tianjin", "tianjin_districts", 4527), ("wuhan", "wuhan_districts", 4526)):
        shp = real / "china-admin-districts-gcj02" / f"{city}_districts.shp"
        fixed = vec.read_zones(shp, datum="gcj02", id_field="adcode", to_crs="gk")
        assert fixed.crs.to_epsg() == epsg  # auto zone from the centre longitude
        raw = gpd.read_file(shp).to_crs(epsg)
        ref = vec.read_zones(real / "china-districts-cgcs2000" / f"{ref_file}.geojson", datum="cgcs2000", to_crs=epsg)
        for name in ref["name"]:
            c = ref.loc[ref.name == name].geometry.iloc[0]
            a = raw.loc[raw.name == name].geometry.iloc[0]
            b = fixed.loc[fixed.name == name].geometry.iloc[0]
            rows.append((name, a.centroid.distance(c.centroid), b.centroid.distance(c.centroid), _iou(a, c), _iou(b, c)))
    assert len(rows) == 29
    raw_shift = np.median([r[1] for r in rows])
    fixed_shift = np.median([r[2] for r in rows])
    assert 400 < raw_shift < 700  # the GCJ-02 offset: a few hundred metres
    assert fixed_shift < 120
    better = sum(r[4] > r[3] for r in rows)
    assert better >= 28  # overlap improves for (almost) every district
    ninghe = next(r for r in rows if r[0] == "宁河区")
    assert ninghe[1] > 400 and ninghe[2] < 150  # measured 448 m -> 116 m
    heping = next(r for r in rows if r[0] == "和平区")  # 10 km², same area in both sets
    assert heping[3] < 0.7 and heping[4] > 0.93  # IoU 0.64 -> 0.94
