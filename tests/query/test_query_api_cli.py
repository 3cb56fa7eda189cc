"""HTTP API (FastAPI TestClient) and CLI (typer CliRunner): same numbers as the library,
4xx answers with one clear message, paging links, OpenAPI; PostGIS SQL dump."""

import json

import pytest
from typer.testing import CliRunner

from ecoraster.cli import app as cli_app

from .conftest import PRICE_C, PX_C1, cell_box, feature

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx`")


@pytest.fixture(scope="module")
def client(query_ws):
    from fastapi.testclient import TestClient

    from ecoraster.api.app import create_app

    return TestClient(create_app(query_ws, max_area_ha=100.0))


def test_info_parcel_and_catalogue(client):
    info = client.get("/api/info").json()
    assert info["crs"] == "EPSG:4527" and info["parcels"] == 3 and info["price_year"] == 2020
    assert [p["product"] for p in info["products"]] == ["carbon_storage", "water_conservation"]
    f = client.get("/api/parcels/A").json()
    # A: 48 px × 7.74 Mg C = 371.52 Mg C → 37,152 CNY; water 48 × 60 = 2,880 CNY
    assert f["catalogue"]["products"][0]["qty"] == pytest.approx(48 * PX_C1, rel=1e-6)
    assert f["properties"]["gep"] == pytest.approx(37152 + 2880, rel=1e-6)
    assert f["crs"]["properties"]["name"] == "EPSG:4527"
    lonlat = client.get("/api/parcels/A", params={"crs": "EPSG:4326"}).json()
    lon, lat = lonlat["geometry"]["coordinates"][0][0]
    assert 110 < lon < 120 and 35 < lat < 45  # zone 39 of CGCS2000 3° GK: 117° E, Tianjin latitudes
    r = client.get("/api/parcels/Z")
    assert r.status_code == 404 and r.json() == {"error": "parcel_not_found", "message": "no parcel with parcel_id 'Z'"}


def test_bbox_paging_and_links(client):
    bbox = ",".join(str(v) for v in cell_box(0, 0, 16, 12).bounds)
    page = client.get("/api/parcels", params={"bbox": bbox, "limit": 2}).json()
    assert page["numberMatched"] == 3 and page["numberReturned"] == 2
    nxt = page["links"][0]["href"]
    assert "offset=2" in nxt
    rest = client.get(nxt).json()
    assert [f["id"] for f in rest["features"]] == ["C"] and "links" not in rest
    cols = client.get("/api/parcels", params={"bbox": bbox, "columns": "gep"}).json()["features"][0]["properties"]
    assert set(cols) == {"parcel_id", "gep"}
    assert client.get("/api/parcels", params={"bbox": "1,2,3"}).status_code == 400
    assert client.get("/api/parcels", params={"bbox": bbox, "limit": 0}).status_code == 422
    assert client.get("/api/parcels", params={"bbox": bbox, "columns": "nope"}).json()["error"] == "bad_query"


def test_parcel_at_point(client):
    x, y = cell_box(9, 1, 10, 2).centroid.coords[0]
    assert client.get("/api/parcel-at", params={"x": x, "y": y}).json()["id"] == "B"
    assert client.get("/api/parcel-at", params={"x": 0, "y": 0}).status_code == 404


def test_site_and_refusals(client):
    r = client.post("/api/site", json=feature(cell_box(0.5, 0, 2.5, 1)))
    assert r.status_code == 200
    # 2 px of class 1: 15.48 Mg C × 100 = 1,548 CNY + 20 m3 × 6 = 120 CNY
    assert r.json()["gep_lost"] == pytest.approx(1668, rel=1e-6)
    assert r.json()["products"][0]["value"] == pytest.approx(2 * PX_C1 * PRICE_C, rel=1e-6)
    cases = [
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}, {"crs": "EPSG:4527"},
         "invalid_geometry"),
        (feature(cell_box(0, 0, 1, 1)), {"crs": "EPSG:3857"}, "unknown_crs"),
        (feature(cell_box(100, 100, 101, 101)), {}, "outside_region"),
        (feature(cell_box(0, 0, 400, 400)), {}, "too_large"),
        ({"type": "Point", "coordinates": [0, 0]}, {}, "not_polygon"),
    ]
    for body, params, code in cases:
        r = client.post("/api/site", json=body, params=params)
        assert r.status_code == 422 and r.json()["error"] == code, r.json()
        assert r.json()["message"]
    assert client.post("/api/site", content=b"[1, 2", headers={"content-type": "application/json"}).status_code == 422


def test_compare_endpoint(client):
    fc = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:4527"}},
          "features": [feature(cell_box(0, 0, 2, 2), crs=None, name="west"),
                       feature(cell_box(12, 0, 14, 2), crs=None, name="east")]}
    r = client.post("/api/compare", json=fc).json()
    assert [row["site"] for row in r["ranking"]] == ["east", "west"]
    assert r["ranking"][0]["gep_lost"] == pytest.approx(4 * (252 + 60), rel=1e-6)  # 1,248 CNY
    fc["features"].append(feature(cell_box(100, 100, 101, 101), crs=None, name="far"))
    r = client.post("/api/compare", json=fc)
    assert r.status_code == 422 and r.json()["error"] == "outside_region" and "far" in r.json()["message"]


def test_openapi_and_page(client):
    spec = client.get("/openapi.json").json()
    assert {"/api/parcels/{parcel_id}", "/api/parcels", "/api/site", "/api/compare"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    for asset in ("/", "/static/app.js", "/static/app.css"):  # nothing fetched from the internet
        text = client.get(asset).text
        assert "http://" not in text and "https://" not in text
    assert client.get("/static/app.css").status_code == 200


def test_cli_parcel_parcels_site_compare(query_ws, tmp_zh, client):
    res = runner.invoke(cli_app, ["parcel", "C", "-w", str(query_ws), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["gep"] == pytest.approx(61002 + 5700, rel=1e-6) and out["name"] == "湿地三号"
    assert runner.invoke(cli_app, ["parcel", "C", "-w", str(query_ws)]).stdout.count("carbon_storage *") == 1
    bad = runner.invoke(cli_app, ["parcel", "Z", "-w", str(query_ws), "--json"])
    assert bad.exit_code == 1 and json.loads(bad.stdout)["error"] == "ParcelNotFoundError"

    bbox = ",".join(str(v) for v in cell_box(1, 1, 2, 2).bounds)
    res = runner.invoke(cli_app, ["parcels", "-w", str(query_ws), "--bbox", bbox, "--json"])
    assert [p["parcel_id"] for p in json.loads(res.stdout)["parcels"]] == ["A"]
    site = tmp_zh / "项目.geojson"
    site.write_text(json.dumps(feature(cell_box(10.25, 4.5, 13.75, 7.5), name="plant")), encoding="utf-8")
    res = runner.invoke(cli_app, ["parcels", "-w", str(query_ws), "--within", str(site), "--json"])
    assert {p["parcel_id"]: round(p["overlap_ha"], 6) for p in json.loads(res.stdout)["parcels"]} == {
        "B": 0.4725, "C": 0.4725}

    res = runner.invoke(cli_app, ["site", str(site), "-w", str(query_ws), "--json"])
    assert res.exit_code == 0, res.output
    cli = json.loads(res.stdout)
    api = client.post("/api/site", json=json.loads(site.read_text(encoding="utf-8"))).json()
    assert cli["name"] == "plant" and cli["gep_lost"] == api["gep_lost"]
    text = runner.invoke(cli_app, ["site", str(site), "-w", str(query_ws)]).stdout
    assert "GEP lost" in text and "parcels cut: 2" in text

    other = tmp_zh / "west.geojson"
    other.write_text(json.dumps(feature(cell_box(0, 0, 2, 2), name="west")), encoding="utf-8")
    res = runner.invoke(cli_app, ["compare", str(other), str(site), "-w", str(query_ws), "--json"])
    ranking = json.loads(res.stdout)["ranking"]
    # west: 4 px × (774 + 60) = 3,336 CNY; plant: 5.25 px × (774 + 60) + 5.25 px × (252 + 60) = 6,016.5 CNY
    assert [r["site"] for r in ranking] == ["west", "plant"]
    assert [r["gep_lost"] for r in ranking] == pytest.approx([3336, 6016.5], rel=1e-6)
    res = runner.invoke(cli_app, ["site", str(site), "-w", str(query_ws), "--crs", "EPSG:3857", "--json"])
    assert res.exit_code == 1 and "not accepted" in json.loads(res.stdout)["message"]


def test_postgis_sql_dump(query_ws, tmp_zh):
    out = tmp_zh / "parcels.sql"
    res = runner.invoke(cli_app, ["parcels-to-postgis", "-w", str(query_ws), "--sql-out", str(out), "--schema", "gep"])
    assert res.exit_code == 0, res.output
    sql = out.read_text(encoding="utf-8")
    assert 'CREATE SCHEMA IF NOT EXISTS "gep"' in sql
    assert "AddGeometryColumn('gep','parcels','geom',4527,'MULTIPOLYGON',2)" in sql
    assert sql.count("INSERT INTO") == 3 and "湿地三号" in sql
    assert 'CREATE UNIQUE INDEX "parcels_parcel_id_key" ON "gep"."parcels" (parcel_id)' in sql
    assert '"price_year": 2020' in sql
    res = runner.invoke(cli_app, ["parcels-to-postgis", "-w", str(query_ws), "--json"])
    assert res.exit_code == 1 and "--dsn" in json.loads(res.stdout)["message"]


def test_run_without_values_or_parcels_is_served_with_clear_answers(tmp_zh, raster_writer):
    # a plain carbon_storage run (no valuation, no parcel table yet): the app starts, says why not
    import numpy as np
    from fastapi.testclient import TestClient

    from ecoraster.api.app import create_app
    from ecoraster import pipeline

    from ..test_carbon_storage import _setup

    ws = tmp_zh / "ws"
    pipeline.run(_setup(tmp_zh, raster_writer, np.ones((4, 4), np.uint8)), ws)
    client = TestClient(create_app(ws))
    info = client.get("/api/info").json()
    assert info["parcels"] == 0 and info["can_value_sites"] is False and info["products"] == []
    r = client.post("/api/site", json=feature(cell_box(0, 0, 1, 1)))
    assert r.status_code == 400 and "no per-pixel value rasters" in r.json()["message"]
    r = client.get("/api/parcels/A")
    assert r.status_code == 400 and "no products/parcels.parquet" in r.json()["message"]
    assert client.get("/").status_code == 200
