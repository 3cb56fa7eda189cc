"""Library side of planners' queries: offline DuckDB, parcel lookups, bbox paging, site
valuation worked out by hand, the two engines agreeing, CRS handling and refusals."""

import json

import numpy as np
import pytest
import shapely
import shapely.affinity
from pyproj import Transformer

from ecoraster.errors import FootprintError, ParcelNotFoundError, QueryError
from ecoraster.query import (
    ParcelStore, RunWorkspace, SiteValuer, compare_sites, connect_offline, ranking_table,
    spatial_extension_path, value_site,
)

from .conftest import PRICE_C, PX_C1, PX_C2, WATER_PRICE, WATER_PX, cell_box, feature


@pytest.fixture(scope="module")
def ws(query_ws):
    return RunWorkspace.open(query_ws)


@pytest.fixture(scope="module")
def store(ws):
    s = ParcelStore(ws.parcels_path)
    yield s
    s.close()


def test_duckdb_spatial_loads_offline():
    assert spatial_extension_path().name == "spatial.duckdb_extension"
    con = connect_offline()
    settings = dict(con.execute("SELECT name, value FROM duckdb_settings() WHERE name IN "
                                "('autoinstall_known_extensions', 'autoload_known_extensions')").fetchall())
    assert settings == {"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}
    assert con.execute("SELECT ST_Area(ST_MakeEnvelope(0, 0, 2, 3))").fetchone()[0] == 6.0


def test_workspace_reads_contract(ws):
    assert ws.region == "test" and ws.year == 2020 and ws.price_year == 2020
    assert ws.products == ["carbon_storage", "water_conservation"]
    assert ws.contested == {"carbon_storage"}
    assert {(lay.product, lay.kind) for lay in ws.layers} == {
        ("carbon_storage", "physical"), ("carbon_storage", "value"),
        ("water_conservation", "physical"), ("water_conservation", "value")}


def test_parcel_lookup_by_hand(ws, store):
    props = store.get("C")["properties"]
    # C: 71 px class 1 + 24 px class 2 (one nodata pixel skipped)
    carbon = 71 * PX_C1 + 24 * PX_C2  # 549.54 + 60.48 = 610.02 Mg C
    assert props["carbon_storage_qty"] == pytest.approx(carbon, rel=1e-6)
    assert props["carbon_storage_value"] == pytest.approx(carbon * PRICE_C, rel=1e-6)
    assert props["water_conservation_value"] == pytest.approx(95 * WATER_PX * WATER_PRICE, rel=1e-6)  # 5,700
    assert props["gep"] == pytest.approx(61002 + 5700, rel=1e-6)
    assert props["gep_excl_contested"] == pytest.approx(5700, rel=1e-6)
    assert props["name"] == "湿地三号" and props["area_ha"] == pytest.approx(96 * 0.09)
    card = ws.parcel_catalogue(props)
    assert [(r["product"], r["qty_units"], r["contested"]) for r in card["products"]] == [
        ("carbon_storage", "Mg C", True), ("water_conservation", "m3", False)]
    with pytest.raises(ParcelNotFoundError, match="no parcel with parcel_id 'Z'"):
        store.get("Z")


def test_point_and_bbox_paging(store):
    assert store.at(*cell_box(2, 2, 3, 3).centroid.coords[0])["id"] == "A"
    assert store.at(0.0, 0.0) is None
    whole = cell_box(0, 0, 16, 12).bounds
    first = store.in_bbox(whole, limit=2, offset=0)
    second = store.in_bbox(whole, limit=2, offset=first.next_offset)
    assert first.number_matched == 3 and [f["id"] for f in first.features] == ["A", "B"]
    assert [f["id"] for f in second.features] == ["C"] and second.next_offset is None
    # a bbox inside A only (bbox pushdown + exact intersects): A
    assert [f["id"] for f in store.in_bbox(cell_box(1, 1, 2, 2).bounds).features] == ["A"]
    with pytest.raises(QueryError, match="min ≤ max"):
        store.in_bbox((1, 1, 0, 0))


def test_file_scan_equals_in_memory(ws, store):
    scan = ParcelStore(ws.parcels_path, in_memory=False)
    assert scan.get("B")["properties"] == store.get("B")["properties"]
    assert [f["id"] for f in scan.in_bbox(cell_box(7, 5, 9, 7).bounds).features] == ["A", "B", "C"]


def test_site_by_hand_half_pixels_and_nodata(ws, store):
    valuer = SiteValuer(ws, store)
    # cols 0.5–2.5 of row 0: 2 pixels' worth of class 1 → 15.48 Mg C, 1,548 CNY; water 20 m3, 120 CNY
    r = valuer.value(valuer.footprint(feature(cell_box(0.5, 0, 2.5, 1))))
    assert r.product("carbon_storage").qty == pytest.approx(2 * PX_C1, rel=1e-6)
    assert r.product("carbon_storage").value == pytest.approx(2 * PX_C1 * PRICE_C, rel=1e-6)
    assert r.product("water_conservation").qty == pytest.approx(20.0, rel=1e-9)
    assert r.gep_lost == pytest.approx(1548 + 120, rel=1e-6)
    assert r.gep_lost_excl_contested == pytest.approx(120, rel=1e-9)
    assert r.area_ha == pytest.approx(0.18) and r.area_in_region_ha == pytest.approx(0.18)
    assert [p["parcel_id"] for p in r.parcels] == ["A"]
    # rows 10–11 × cols 0–1: 4 pixels, (11, 0) nodata → 3 × 7.74 = 23.22 Mg C; 0.27 ha with values
    r = valuer.value(valuer.footprint(feature(cell_box(0, 10, 2, 12))))
    assert r.product("carbon_storage").qty == pytest.approx(3 * PX_C1, rel=1e-6)
    assert r.area_ha == pytest.approx(0.36) and r.area_in_region_ha == pytest.approx(0.27)


def test_footprint_across_parcels_equals_parcel_sums(ws, store):
    valuer = SiteValuer(ws, store)
    # the whole of A and B = the sum of their table rows; the cut through C is partial
    r = valuer.value(valuer.footprint(feature(cell_box(0, 0, 16, 6))))
    a, b = store.get("A")["properties"], store.get("B")["properties"]
    assert r.gep_lost == pytest.approx(a["gep"] + b["gep"], rel=1e-9)
    cut = valuer.value(valuer.footprint(feature(cell_box(10.25, 4.5, 13.75, 7.5))))
    shares = {p["parcel_id"]: p["overlap_ha"] for p in cut.parcels}
    # A (cols 0–8) is not touched; B and C each get 3.5 × 1.5 px = 5.25 px × 0.09 ha = 0.4725 ha
    assert shares == pytest.approx({"B": 0.4725, "C": 0.4725})
    # cols 10.25–12 class 1 (1.75 px wide), 12–13.75 class 2 (1.75 px), 3 rows each
    carbon = 3 * 1.75 * PX_C1 + 3 * 1.75 * PX_C2
    assert cut.product("carbon_storage").qty == pytest.approx(carbon, rel=1e-6)


@pytest.mark.parametrize("geom", [
    cell_box(0.5, 0, 2.5, 1),
    cell_box(3.3, 2.7, 14.9, 11.6),
    # a triangle given in pixel units (col, row), mapped to the grid CRS
    shapely.affinity.affine_transform(shapely.Polygon([(0.2, 0.3), (9.7, 1.1), (5.5, 11.4)]),
                                      [30, 0, 0, -30, 39_499_980.0, 4_350_000.0]),
    cell_box(-3, -2, 4, 3),  # partly outside the grid: clipped
])
def test_window_engine_equals_zonal_engine(ws, geom):
    win = SiteValuer(ws, engine="window")
    zon = SiteValuer(ws, engine="zonal")
    a, b = win.value(win.footprint(feature(geom))), zon.value(zon.footprint(feature(geom)))
    for pa, pb in zip(a.products, b.products):
        assert pa.value == pytest.approx(pb.value, rel=1e-9, abs=1e-9)
        assert pa.qty == pytest.approx(pb.qty, rel=1e-9, abs=1e-9)
    assert a.area_in_region_ha == pytest.approx(b.area_in_region_ha, rel=1e-9)


def test_lonlat_footprints_in_4326_and_4490(ws):
    grid_geom = cell_box(3.3, 2.7, 14.9, 11.6)
    expected = value_site(ws, feature(grid_geom), with_parcels=False).gep_lost
    for epsg in (4490, 4326):
        tr = Transformer.from_crs("EPSG:4527", f"EPSG:{epsg}", always_xy=True)
        ll = shapely.transform(shapely.segmentize(grid_geom, 1.0),
                               lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
        got = value_site(ws, feature(ll, crs=f"urn:ogc:def:crs:EPSG::{epsg}" if epsg == 4490 else None),
                         with_parcels=False)
        assert got.input_crs == f"EPSG:{epsg}"
        assert got.gep_lost == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("obj, crs, reason, text", [
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}, "EPSG:4527",
     "invalid_geometry", "Self-intersection[0.5 0.5]"),
    ({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, None, "not_polygon", "is a LineString"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 0]]]}, "EPSG:4527", "invalid_geometry", "feature 0"),
    (feature(cell_box(0, 0, 1, 1)), "EPSG:3857", "unknown_crs", "not accepted"),
    (feature(cell_box(0, 0, 1, 1)), "EPSG:99999", "unknown_crs", "not a CRS we know"),
    (feature(cell_box(0, 0, 1, 1), crs=None), None, "unknown_crs", "pass crs="),
    (feature(cell_box(100, 100, 101, 101)), None, "outside_region", "outside the region test"),
    (feature(cell_box(0, 0, 400, 400)), None, "too_large", "above the maximum of 100.0 ha"),
    ({"type": "Foo"}, None, "bad_geojson", "'Foo'"),
])
def test_refusals_name_the_problem(ws, obj, crs, reason, text):
    valuer = SiteValuer(ws, max_area_ha=100.0)
    with pytest.raises(FootprintError) as info:
        valuer.footprint(obj, crs=crs)
    assert info.value.reason == reason
    assert text in str(info.value) and "\n" not in str(info.value)


def test_invalid_json_and_missing_file(ws, tmp_zh):
    bad = tmp_zh / "坏.geojson"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(FootprintError, match="not valid JSON"):
        value_site(ws, bad)
    with pytest.raises(FootprintError, match="file not found"):
        value_site(ws, tmp_zh / "missing.geojson")


def test_compare_ranks_least_loss_first(ws, tmp_zh):
    files = []
    # class-2 pixels (2.52 Mg C) lose less than class-1 ones (7.74 Mg C)
    for name, geom in (("east", cell_box(12, 0, 14, 2)), ("west", cell_box(0, 0, 2, 2)), ("mid", cell_box(11, 0, 13, 2))):
        path = tmp_zh / f"{name}.geojson"
        path.write_text(json.dumps(feature(geom, name=name)), encoding="utf-8")
        files.append(path)
    ranked = compare_sites(ws, files)
    assert [r.name for r in ranked] == ["east", "mid", "west"]
    table = ranking_table(ranked)
    # east: 4 px × (252 + 60) = 1,248 CNY; west: 4 × (774 + 60) = 3,336 CNY
    assert table[0]["gep_lost"] == pytest.approx(1248, rel=1e-6) and table[2]["gep_lost"] == pytest.approx(3336, rel=1e-6)
    assert table[0]["rank"] == 1 and "carbon_storage_value" in table[0]


def test_workspace_by_year(query_ws):
    assert RunWorkspace.open(query_ws.parent, year=2020).root == query_ws.resolve()
    with pytest.raises(QueryError, match="no run for year 1999 .runs found for: 2020"):
        RunWorkspace.open(query_ws, year=1999)
