"""The map page end to end in headless Chromium (Debian ``chromium``) driven by Playwright:
the page loads with nothing from outside hosts, Chinese text renders (needs a CJK font: Debian
``fonts-noto-cjk``, installed by ``.ci/run``), a service layer draws with its legend, a click
shows a parcel's values, a drawn footprint returns the same number as ``eco site``, an
uploaded footprint is valued, sites are compared, a bad outline is refused, /docs loads
offline. Skips when playwright or chromium is missing."""

import json
import os
import shutil
import socket
import threading
import time

import pytest
from typer.testing import CliRunner

from ecoraster.cli import app as cli_app

from .conftest import cell_box, feature

CHROMIUM = os.environ.get("ECO_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(query_ws):
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)")
    import uvicorn

    from ecoraster.api.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(query_ws), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            pytest.fail("uvicorn did not start within 20 s")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def page(served):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1200, "height": 760})
        errors, outside = [], []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        # a request to another host counts unless the page's Content-Security-Policy refused it
        # before it left the browser (Redoc's bundle asks a CDN for its logo; the CSP blocks that)
        pg.on("requestfinished", lambda req: None if req.url.startswith((served, "data:", "blob:"))
              else outside.append(req.url))
        pg.on("requestfailed", lambda req: None if req.url.startswith((served, "data:", "blob:"))
              or (req.failure or "").lower() in ("csp", "net::err_blocked_by_csp") else outside.append(f"{req.url} ({req.failure})"))
        pg.goto(served + "/")
        pg.wait_for_selector("body[data-state=ready]", timeout=20_000)
        pg.errors, pg.outside = errors, outside
        yield pg
        browser.close()


def _click_world(page, x, y):
    box = page.locator("#map").bounding_box()
    px, py = page.evaluate(f"() => window.ecoMap.worldToScreen({x}, {y})")
    page.mouse.click(box["x"] + px, box["y"] + py)


def _draw(page, corners):
    page.click("#draw")
    for x, y in corners:
        _click_world(page, x, y)
    page.evaluate("() => { document.body.dataset.site = 'waiting'; }")
    page.click("#finish")
    page.wait_for_selector("body[data-site=done]")


def test_page_loads_and_click_shows_parcel(page, served):
    assert "3 parcels in view" in page.inner_text("#status")
    assert "gep_per_ha" in page.inner_text("#legend")
    x, y = cell_box(9, 1, 10, 2).centroid.coords[0]  # inside parcel B
    _click_world(page, x, y)
    page.wait_for_selector("#card-id")
    assert page.inner_text("#card-id") == "B"
    import httpx

    expected = httpx.get(f"{served}/api/parcels/B").json()["properties"]
    assert float(page.get_attribute("#card-gep", "data-value")) == pytest.approx(expected["gep"], rel=1e-12)
    assert "carbon_storage" in page.inner_text("#card") and "七里海二号" in page.inner_text("#card")
    assert page.errors == []


def _canvas_rgba(page, x, y):
    """RGBA of the map canvas at world point (x, y)."""
    return page.evaluate(f"""() => {{
        const [px, py] = window.ecoMap.worldToScreen({x}, {y});
        const c = document.getElementById("map"), d = window.devicePixelRatio || 1;
        return Array.from(c.getContext("2d").getImageData(Math.round(px * d), Math.round(py * d), 1, 1).data);
    }}""")


def test_chinese_text_renders(page):
    # without a CJK font every Han character is the same "tofu" box: draw two different ones and
    # compare their pixels (they differ only when a font has the glyphs)
    differ = page.evaluate("""() => {
        const glyph = (ch) => { const c = document.createElement("canvas"); c.width = c.height = 40;
            const g = c.getContext("2d"); g.font = "32px sans-serif"; g.fillText(ch, 2, 34);
            return Array.from(g.getImageData(0, 0, 40, 40).data).join(","); };
        return glyph("生") !== glyph("态") && glyph("水") !== glyph("源");
    }""")
    assert differ, "Chinese glyphs render as identical boxes: install a CJK font (apt-get install fonts-noto-cjk)"
    assert "生态产品总值" in page.inner_text("#title")
    assert page.outside == [], f"requests to outside hosts: {page.outside}"


def test_service_layer_draws_with_legend(page):
    page.select_option("#layer", "water_conservation.value")
    page.wait_for_selector("body[data-raster=drawn]", timeout=20_000)
    legend = page.inner_text("#raster-legend")
    # every valid pixel holds 10 m3 × 6 CNY/m3 = 60 CNY: one class "60", first colour of the ramp
    assert "水源涵养" in legend and "water conservation" in legend and "CNY per pixel" in legend and "60" in legend
    x, y = cell_box(4, 3, 5, 4).centroid.coords[0]
    assert _canvas_rgba(page, x, y) == [0xff, 0xff, 0xcc, 255]
    x, y = cell_box(0, 11, 1, 12).centroid.coords[0]  # the nodata pixel: transparent
    assert _canvas_rgba(page, x, y)[3] == 0
    page.select_option("#layer", "")  # back to parcels coloured by value for the next tests
    page.wait_for_selector("body[data-raster=none]")
    assert page.errors == [] and page.outside == []


def test_drawn_footprint_equals_cli(page, query_ws, tmp_zh):
    corners = [cell_box(3, 2, 13, 9).exterior.coords[i] for i in range(4)]
    _draw(page, corners)
    gep_page = float(page.get_attribute("#site-gep", "data-value"))
    request = page.evaluate("() => window.ecoMap.state.lastSite.request")
    path = tmp_zh / "drawn.geojson"
    path.write_text(json.dumps(request), encoding="utf-8")
    res = CliRunner().invoke(cli_app, ["site", str(path), "-w", str(query_ws), "--json"])
    assert res.exit_code == 0, res.output
    assert gep_page == pytest.approx(json.loads(res.stdout)["gep_lost"], rel=1e-12)
    assert gep_page > 0
    page.click("#add-site")


def test_upload_compare_and_refusal(page, tmp_zh):
    upload = tmp_zh / "候选.geojson"
    upload.write_text(json.dumps(feature(cell_box(12, 0, 14, 2), name="east")), encoding="utf-8")
    page.evaluate("() => { document.body.dataset.site = 'waiting'; }")
    page.set_input_files("#upload", str(upload))
    page.wait_for_selector("body[data-site=done]")
    # 4 class-2 pixels: 4 × (252 + 60) = 1,248 CNY
    assert float(page.get_attribute("#site-gep", "data-value")) == pytest.approx(1248, rel=1e-6)
    page.click("#add-site")
    page.click("#compare")
    page.wait_for_selector("#ranking-table")
    rows = page.locator("#ranking-table tbody tr")
    assert rows.count() == 2 and rows.nth(0).inner_text().startswith("1. site 2")
    bowtie = [cell_box(1, 1, 2, 2).bounds[i] for i in (0, 1)], [cell_box(4, 4, 5, 5).bounds[i] for i in (2, 3)]
    (x0, y0), (x1, y1) = bowtie
    _draw(page, [(x0, y0), (x1, y1), (x1, y0), (x0, y1)])
    assert "Self-intersection" in page.inner_text("#site-error")
    assert page.errors == []


def test_docs_load_offline(page, served):
    for path, ready in (("/docs", ".swagger-ui .info"), ("/redoc", "redoc-wrap, .redoc-wrap, [role=navigation]")):
        page.goto(served + path)
        page.wait_for_selector(ready, timeout=20_000)
    assert page.outside == [], f"requests to outside hosts: {page.outside}"
