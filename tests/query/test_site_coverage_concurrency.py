"""Footprints partly outside the data (covered share, min_coverage refusal) in the library,
the API and the CLI; the shared raster reader and the API under concurrent requests.

Workspace: tests/query/conftest.py — 12 × 16 px of 30 m (900 m² = 0.09 ha per pixel);
class 1 pixels are worth 7.74 Mg C × 100 CNY = 774 CNY + 60 CNY of water = 834 CNY; pixel
(row 11, col 0) is nodata in every raster.
"""

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window
from typer.testing import CliRunner

from ecoraster.cli import app as cli_app
from ecoraster.errors import FootprintError
from ecoraster.query import RunWorkspace, SiteValuer
from ecoraster.query.rasters import DatasetPool, WindowReader

from .conftest import PRICE_C, PX_C1, WATER_PRICE, WATER_PX, cell_box, feature

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx`")
runner = CliRunner()

PX_VALUE_C1 = PX_C1 * PRICE_C + WATER_PX * WATER_PRICE  # 774 + 60 = 834 CNY per class-1 pixel
HALF_OUT = cell_box(-2, 0, 2, 2)  # cols −2…2 × rows 0…2: 8 px, of which cols 0–1 × rows 0–1 (4 px) on the grid
OVER_NODATA = cell_box(0, 10, 2, 12)  # rows 10–11 × cols 0–1: 4 px, (11, 0) nodata


@pytest.fixture(scope="module")
def ws(query_ws):
    return RunWorkspace.open(query_ws)


@pytest.fixture(scope="module")
def client(query_ws):
    from fastapi.testclient import TestClient

    from ecoraster.api.app import create_app

    with TestClient(create_app(query_ws, max_area_ha=100.0)) as c:
        yield c


@pytest.mark.parametrize("engine", ["window", "zonal"])
def test_half_outside_the_grid_by_hand(ws, engine):
    valuer = SiteValuer(ws, engine=engine)
    r = valuer.value(valuer.footprint(feature(HALF_OUT)))
    # 4 of 8 whole pixels on the grid: share 4 / 8 = 0.5 exactly; 4 × 900 m² = 3,600 m²
    assert r.covered_share == 0.5
    assert r.area_in_region_ha * 10_000 == pytest.approx(3600.0, rel=1e-12)
    assert r.area_ha == pytest.approx(0.72)  # 8 px × 0.09 ha, the whole footprint
    # the loss is that of the 4 pixels inside, each × coverage 1: 4 × 834 = 3,336 CNY
    assert r.gep_lost == pytest.approx(4 * PX_VALUE_C1, rel=1e-6)
    d = r.to_dict()
    assert d["covered_share"] == 0.5 and d["covered_area_m2"] == pytest.approx(3600.0)
    assert "50.0%" in d["warning"] and "0.36 ha outside the grid" in d["warning"]
    valuer.close()


def test_partial_pixels_and_nodata_give_the_share_by_coverage(ws):
    valuer = SiteValuer(ws)
    # rows 10–11 × cols 0–1: 4 px, (11, 0) nodata → 3 px with data: share 3 / 4 = 0.75, 2,700 m²
    r = valuer.value(valuer.footprint(feature(OVER_NODATA)))
    assert r.covered_share == 0.75 and r.to_dict()["covered_area_m2"] == pytest.approx(2700.0)
    assert "0.09 ha over nodata pixels" in r.warning
    # cols −0.5…1.5 of row 0: half a pixel off the grid, 1.5 px on it (coverage 1 + 0.5):
    # share 1.5 / 2 = 0.75; loss 1.5 × 834 = 1,251 CNY
    r = valuer.value(valuer.footprint(feature(cell_box(-0.5, 0, 1.5, 1))))
    assert r.covered_share == pytest.approx(0.75, abs=1e-12)
    assert r.gep_lost == pytest.approx(1.5 * PX_VALUE_C1, rel=1e-6)
    # wholly on data: share exactly 1, no warning (rotated, so its edge pixels are partial)
    import shapely.affinity

    tilted = shapely.affinity.rotate(cell_box(3, 2, 9, 8), 17)
    r = valuer.value(valuer.footprint(feature(tilted)))
    assert r.covered_share == 1.0 and r.warning is None


def test_min_coverage_refuses_with_the_share(ws):
    valuer = SiteValuer(ws, min_coverage=0.6)
    fp = valuer.footprint(feature(HALF_OUT, name="half"))
    with pytest.raises(FootprintError) as err:
        valuer.value(fp)
    assert err.value.reason == "partly_outside"
    assert "only 50.0% of the footprint" in str(err.value) and "min_coverage=0.6" in str(err.value)
    assert err.value.details["covered_share"] == 0.5
    assert valuer.value(fp, min_coverage=0.5).covered_share == 0.5  # the share asked is reached
    with pytest.raises(Exception, match="between 0 and 1"):
        SiteValuer(ws, min_coverage=1.5)


def test_api_reports_and_refuses(client):
    r = client.post("/api/site", json=feature(HALF_OUT))
    assert r.status_code == 200
    body = r.json()
    assert body["covered_share"] == 0.5 and body["covered_area_m2"] == pytest.approx(3600.0)
    assert body["gep_lost"] == pytest.approx(4 * PX_VALUE_C1, rel=1e-6) and "outside the grid" in body["warning"]
    full = client.post("/api/site", json=feature(cell_box(0.5, 0, 2.5, 1))).json()
    assert full["covered_share"] == 1.0 and full["warning"] is None

    r = client.post("/api/site", json=feature(HALF_OUT), params={"min_coverage": 1})
    assert r.status_code == 422
    body = r.json()
    assert set(body) == {"error", "message", "details"} and body["error"] == "partly_outside"
    assert "50.0%" in body["message"] and body["details"]["covered_share"] == 0.5
    r = client.post("/api/site", json=feature(HALF_OUT), params={"min_coverage": 1.5})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"

    fc = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:4527"}},
          "features": [feature(HALF_OUT, crs=None, name="edge"), feature(cell_box(2, 2, 4, 4), crs=None, name="in")]}
    ranked = client.post("/api/compare", json=fc).json()["ranking"]
    assert {row["site"]: row["covered_share"] for row in ranked} == {"edge": 0.5, "in": 1.0}
    r = client.post("/api/compare", json=fc, params={"min_coverage": 0.9})
    assert r.status_code == 422 and r.json()["error"] == "partly_outside" and "edge" in r.json()["message"]


def test_cli_site_reports_and_refuses(query_ws, tmp_zh):
    path = tmp_zh / "半出界.geojson"
    path.write_text(json.dumps(feature(HALF_OUT, name="edge")), encoding="utf-8")
    res = runner.invoke(cli_app, ["site", str(path), "-w", str(query_ws), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["covered_share"] == 0.5 and out["covered_area_m2"] == pytest.approx(3600.0) and out["warning"]
    text = runner.invoke(cli_app, ["site", str(path), "-w", str(query_ws)]).stdout
    assert "covered share 50.0%" in text and "warning: partial coverage" in text
    res = runner.invoke(cli_app, ["site", str(path), "-w", str(query_ws), "--min-coverage", "0.9", "--json"])
    assert res.exit_code == 1 and "only 50.0% of the footprint" in json.loads(res.stdout)["message"]


def test_window_reader_equals_rasterio_from_many_threads(ws):
    paths = [layer.path for layer in ws.layers]
    # blocks of these 12 × 16 test rasters: a cache of 2 KiB holds a few, so blocks are
    # dropped and read again while 8 threads read random windows
    reader = WindowReader(paths, cache_bytes=2048, max_sets=2)
    full = {}
    for p in paths:
        with rasterio.open(p) as src:
            full[p] = src.read(1)
    h, w = full[paths[0]].shape
    rng = np.random.default_rng(0)
    windows = []
    for _ in range(200):
        r0, c0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        windows.append(Window(c0, r0, int(rng.integers(1, w - c0 + 1)), int(rng.integers(1, h - r0 + 1))))

    def check(win):
        got = reader.read(win)
        r0, c0 = int(win.row_off), int(win.col_off)
        return all(np.array_equal(got[p], full[p][r0:r0 + int(win.height), c0:c0 + int(win.width)]) for p in paths)

    with ThreadPoolExecutor(8) as ex:
        assert all(ex.map(check, windows))
    assert reader.pool.size <= 2 and reader.cache.nbytes <= 2048
    reader.close()


def test_dataset_pool_lends_a_set_to_one_thread_at_a_time(ws):
    pool = DatasetPool([ws.layers[0].path], max_sets=3)
    in_use: set[int] = set()
    lock = threading.Lock()
    clashes = []

    def use(_):
        with pool.borrow() as datasets:
            key = id(datasets)
            with lock:
                if key in in_use:
                    clashes.append(key)
                in_use.add(key)
            time.sleep(0.002)
            with lock:
                in_use.discard(key)

    with ThreadPoolExecutor(8) as ex:
        list(ex.map(use, range(60)))
    assert not clashes and 1 <= pool.size <= 3
    pool.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_live_server_50_mixed_requests_at_concurrency_8(query_ws):
    """uvicorn on loopback: no 5xx, every 4xx in the one error format, every answer to the
    same request the same (and the hand-worked values)."""
    import httpx
    import uvicorn

    from ecoraster.api.app import create_app

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(query_ws, max_area_ha=100.0), host="127.0.0.1", port=port,
                                           log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started
    kinds = [
        ("POST", "/api/site", {"json": feature(cell_box(0.5, 0, 2.5, 1))}, 200),  # 2 px: 1,668 CNY
        ("POST", "/api/site", {"json": feature(HALF_OUT)}, 200),  # 4 px: 3,336 CNY, share 0.5
        ("GET", "/api/parcels/B", {}, 200),
        ("GET", "/api/parcels", {"params": {"bbox": ",".join(map(str, cell_box(0, 0, 16, 12).bounds))}}, 200),
        ("GET", "/api/parcels/nope", {}, 404),
        ("POST", "/api/site", {"content": b"[1, 2", "headers": {"content-type": "application/json"}}, 422),
        ("POST", "/api/site", {"json": feature(HALF_OUT), "params": {"min_coverage": 0.9}}, 422),
        ("POST", "/api/site", {"json": feature(cell_box(100, 100, 101, 101))}, 422),
    ]
    plan = [kinds[i % len(kinds)] for i in range(50)]
    local = threading.local()

    def send(item):
        method, url, kw, _ = item
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        r = local.client.request(method, url, **kw)
        return r.status_code, r.json()

    try:
        with ThreadPoolExecutor(8) as ex:
            answers = list(ex.map(send, plan))
    finally:
        server.should_exit = True
        th.join(timeout=10)
    assert [status for status, _ in answers] == [want for *_, want in plan]
    for status, body in answers:
        if status >= 400:
            assert set(body) <= {"error", "message", "details"} and body["error"] and body["message"]
    by_request: dict[int, list] = {}
    for i, (_, body) in enumerate(answers):
        body.pop("elapsed_ms", None)
        by_request.setdefault(i % len(kinds), []).append(body)
    for bodies in by_request.values():
        assert all(b == bodies[0] for b in bodies)  # the same answer from every thread
    assert by_request[0][0]["gep_lost"] == pytest.approx(1548 + 120, rel=1e-6)
    assert by_request[1][0]["gep_lost"] == pytest.approx(4 * PX_VALUE_C1, rel=1e-6)
    assert by_request[1][0]["covered_share"] == 0.5


def test_app_from_env_is_the_same_app(query_ws, monkeypatch):
    """What each `eco serve --workers N` process builds: the run named by ECORASTER_SERVE."""
    from fastapi.testclient import TestClient

    from ecoraster.api.app import SERVE_ENV, app_from_env
    from ecoraster.errors import QueryError

    monkeypatch.delenv(SERVE_ENV, raising=False)
    with pytest.raises(QueryError, match=SERVE_ENV):
        app_from_env()
    monkeypatch.setenv(SERVE_ENV, json.dumps({"workspace": str(query_ws), "max_area_ha": 0.1}))
    with TestClient(app_from_env()) as c:
        assert c.get("/api/info").json()["max_area_ha"] == 0.1
        r = c.post("/api/site", json=feature(cell_box(0, 0, 4, 4)))  # 16 px × 0.09 ha = 1.44 ha > 0.1 ha
        assert r.status_code == 422 and r.json()["error"] == "too_large"


def test_eco_serve_stops_quietly_on_sigterm(query_ws):
    """`eco serve` as systemd / docker stop it: one SIGTERM → graceful stop, exit 0, no "partial results" line."""
    import signal
    import subprocess
    import sys

    import httpx

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", "from ecoraster.cli import main; main()", "serve", "-w",
                             str(query_ws), "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/parcels/B", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail("eco serve did not answer")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "terminated" not in err and "partial results" not in err
