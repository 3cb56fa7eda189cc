"""Map layers (rio-tiler), zone sets, the site report, offline docs and the one error format
of the API, on the small workspace of ``conftest.py`` and on a hand-made raster."""

import io
import json
import shutil

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient

from ecoraster.api.app import create_app
from ecoraster.grid import Grid
from ecoraster.query.layers import MapLayers, class_breaks, dedupe_breaks
from ecoraster.query.workspace import RasterLayer, RunWorkspace

from ..conftest import TEST_CRS, write_raster
from .conftest import cell_box, feature


@pytest.fixture(scope="module")
def client(query_ws):
    return TestClient(create_app(query_ws))


def _png(content: bytes) -> np.ndarray:
    """RGBA array (4, rows, cols) of a PNG."""
    with rasterio.MemoryFile(content) as mem, mem.open() as src:
        return src.read()


def test_class_breaks_have_no_duplicate_classes():
    # 191 values: 48 × 252 then 143 × 774 (the fixture's carbon value per pixel); the 7-class
    # quantiles are 252, 252, 774, 774, 774, 774, 774, 774 → two distinct bounds, one class
    values = np.r_[np.full(48, 252.0), np.full(143, 774.0)]
    assert class_breaks(values, 7) == [252.0, 774.0]
    # zeros and negatives are not part of the quantile classes
    assert class_breaks(np.array([-3.0, 0, 0, 0, 1, 2, 3, 4]), 4) == [1.0, 1.75, 2.5, 3.25, 4.0]
    assert dedupe_breaks([0.1234, 0.12341, 5]) == [0.123, 5.0]
    assert class_breaks(np.array([0.0, -1.0])) == []


def test_layer_legend_and_image_with_negative_zero_and_nodata(tmp_path):
    # 1 row × 5 px: −2 (a loss), 0 (no service), 1, 3, nodata
    arr = np.array([[-2.0, 0.0, 1.0, 3.0, -9999.0]], np.float32)
    path = write_raster(tmp_path / "nep.tif", arr, nodata=-9999.0)
    grid = Grid.from_raster(path)
    ws = RunWorkspace(root=tmp_path, manifest={}, grid=grid,
                      layers=[RasterLayer("carbon_sequestration", "physical", "carbon_sequestration", "nep",
                                          path, "t CO2", -9999.0)])
    layers = MapLayers(ws)
    lg = layers.legend("carbon_sequestration.physical")
    assert lg["name_zh"] and lg["units"] == "t CO2 per pixel"
    kinds = [c["class"] for c in lg["classes"]]
    assert kinds[:2] == ["negative", "zero"]
    # positive values 1 and 3: 7 quantiles of [1, 3] are all distinct → 7 classes 1 … 3
    pos = [c for c in lg["classes"] if c["class"] == "positive"]
    assert pos[0]["from"] == 1.0 and pos[-1]["to"] == 3.0 and len({c["label"] for c in pos}) == len(pos)
    assert any("carbon source" in n for n in lg["notes"]) and any(n.startswith("0 =") for n in lg["notes"])
    rgba = _png(layers.render("carbon_sequestration.physical", list(grid.bounds), 5, 1))
    colours = [tuple(int(v) for v in rgba[:, 0, i]) for i in range(5)]
    assert colours[0] == (0xd7, 0x30, 0x1f, 255)  # negative class
    assert colours[1] == (0xe0, 0xe0, 0xe0, 255)  # zero class
    assert colours[2] == (0xf0, 0xf9, 0xe8, 255)  # lowest positive class, first colour of the ramp
    assert colours[3] == (0x08, 0x58, 0x9e, 255)  # highest class, last colour of the ramp
    assert colours[4][3] == 0  # nodata transparent


def test_layers_endpoints(client, query_ws):
    body = client.get("/api/layers").json()
    ids = [la["id"] for la in body["layers"]]
    # value layers first, in the parcel table's product order
    assert ids == ["carbon_storage.value", "water_conservation.value", "carbon_storage.physical",
                   "water_conservation.physical"]
    wc = body["layers"][1]
    assert wc["name_zh"] == "水源涵养" and wc["title"].startswith("水源涵养 价值量 · water conservation value")
    lg = client.get("/api/layers/carbon_storage.value/legend").json()
    # 48 px of 252 CNY, 143 px of 774 CNY: one class 252 – 774, not seven equal ones
    assert [(c["from"], c["to"]) for c in lg["classes"]] == [(252.0, 774.0)]
    assert lg["contested"] and any("有争议" in n for n in lg["notes"])
    x0, y0, x1, y1 = cell_box(0, 0, 16, 12).bounds
    res = client.get(f"/api/layers/water_conservation.value/image.png?bbox={x0},{y0},{x1},{y1}&width=16&height=12")
    assert res.status_code == 200 and res.headers["content-type"] == "image/png"
    rgba = _png(res.content)
    assert rgba.shape == (4, 12, 16)
    assert rgba[3, 11, 0] == 0 and rgba[3, 0, 0] == 255  # the nodata pixel (row 11, col 0) is transparent
    tile = client.get("/api/tiles/water_conservation.value/14/0/0.png")
    assert tile.status_code in (200, 400)  # far outside the region: the one error format
    if tile.status_code == 400:
        assert tile.json()["error"] == "bad_query"


def test_zone_sets_as_geojson(query_ws, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(query_ws, ws)
    zones = gpd.GeoDataFrame({"zone_id": ["N", "S"], "name": ["北区", "南区"], "gep": [1.0, 2.0]},
                             geometry=[cell_box(0, 0, 16, 6), cell_box(0, 6, 16, 12)], crs=TEST_CRS)
    zones.to_parquet(ws / "products" / "districts.parquet")
    c = TestClient(create_app(ws))
    assert c.get("/api/layers").json()["zone_sets"] == [{"id": "districts", "title": "区县 districts"}]
    fc = c.get("/api/zones/districts").json()
    assert [f["properties"]["name"] for f in fc["features"]] == ["北区", "南区"]
    assert fc["features"][1]["properties"]["gep"] == 2.0
    assert c.get("/api/zones/nope").json()["error"] == "layer_not_found"


def test_site_report_html(client):
    fc = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": TEST_CRS}},
          "features": [feature(cell_box(12, 0, 14, 2), None, name="东区"),
                       feature(cell_box(0, 0, 2, 2), None, name="西区")]}
    res = client.post("/api/report", json=fc)
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/html"), res.text
    html = res.text
    # 东区: 4 class-2 px × (252 + 60) = 1,248 CNY; without the contested carbon 4 × 60 = 240
    assert 'id="gep-lost">1,248.00<' in html and 'id="gep-lost-excl">240.00<' in html
    assert "项目立项" in html and "方案比选" in html and html.count("data:image/png;base64,") == 2
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html


def test_docs_are_served_offline(client):
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert "cdn" not in html.lower() and "https://" not in html
    html = client.get("/docs").text
    assert "/static-offline-docs/swagger-ui-bundle.js" in html
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
    assert client.get("/static-offline-docs/redoc.standalone.js").status_code == 200


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("get", "/api/no-such-thing", 404, "not_found"),
    ("get", "/api/parcels", 422, "invalid_request"),  # bbox missing
    ("get", "/api/parcels/ZZZ", 404, "parcel_not_found"),
    ("get", "/api/layers/nope.value/legend", 404, "layer_not_found"),
    ("get", "/api/parcels?bbox=1,2,3", 400, "bad_query"),
    ("delete", "/api/info", 405, "method_not_allowed"),
    ("get", "/api/legend?classes=99", 422, "invalid_request"),
])
def test_every_4xx_has_one_format(client, method, path, status, code):
    res = getattr(client, method)(path)
    assert res.status_code == status, res.text
    body = res.json()
    assert body["error"] == code and isinstance(body["message"], str) and body["message"]
    assert set(body) <= {"error", "message", "details"}


def test_info_and_card_name_products_in_chinese(client):
    info = client.get("/api/info").json()
    wc = next(p for p in info["products"] if p["product"] == "water_conservation")
    assert (wc["name_zh"], wc["name_en"], wc["code"]) == ("水源涵养", "water conservation", "2.1.1")
    card = client.get("/api/parcels/A").json()["catalogue"]
    assert next(p for p in card["products"] if p["product"] == "water_conservation")["name_zh"] == "水源涵养"
    site = client.post("/api/site", json=feature(cell_box(12, 0, 14, 2))).json()
    assert next(p for p in site["products"] if p["product"] == "water_conservation")["name_zh"] == "水源涵养"
    _ = io, json


def test_cli_site_report(query_ws, tmp_path):
    from typer.testing import CliRunner

    from ecoraster.cli import app as cli_app

    site = tmp_path / "东区.geojson"
    site.write_text(json.dumps(feature(cell_box(12, 0, 14, 2), name="东区")), encoding="utf-8")
    out = tmp_path / "report.html"
    res = CliRunner().invoke(cli_app, ["site", str(site), "-w", str(query_ws), "--report", str(out), "--json"])
    assert res.exit_code == 0, res.output
    # same arithmetic as the API report: 4 px × (252 + 60) CNY
    assert 'id="gep-lost">1,248.00<' in out.read_text(encoding="utf-8")
