"""Stale money after a price edit (issue 12): every way of changing what a value depends on —
the price, the price year, the CPI, the code a service imports — recomputes what it must,
through ``eco run`` and through the flow path without Prefect (``eco flow annual --no-prefect``).

The fake service (tests/products/conftest.py) writes wc = 100 m3, carbon = 1 t C and
o2 = 2 t per pixel on a 6 × 6 grid with one nodata pixel (35 valid). Prices: water 10 CNY/m3
of 2011, carbon 100 CNY/t CO2 of 2013, oxygen 1000 CNY/t of 2013; CPI 2012 = 105, 2013 = 110.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import rasterio
from typer.testing import CliRunner

from ecoraster.cli import app
from ecoraster.pipeline import cache

from ..products.conftest import setup_run

pytestmark = pytest.mark.e2e

#: water value of the run at price year 2013: 35 px × 100 m3 × 10 CNY/m3 × 1.05 × 1.10
WC_2013 = 35 * 100 * 10 * 1.05 * 1.10

#: command, then options after the config and workspace
WAYS = {"eco run": (["run"], ["-q"]), "eco flow --no-prefect": (["flow", "annual"], ["--no-prefect"])}


def _run(how: str, cfg: Path, ws: Path) -> dict:
    command, options = WAYS[how]
    res = CliRunner().invoke(app, [*command, str(cfg), "-w", str(ws), "--json", *options])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _manifest(ws: Path) -> dict:
    return json.loads((ws / "run.json").read_text(encoding="utf-8"))


def _value_total(ws: Path, output: str = "wc_value") -> float:
    return _manifest(ws)["results"]["fake_gep"]["outputs"][output]["total"]


def _catalogue(ws: Path) -> pd.DataFrame:
    return pd.read_csv(ws / "products" / "catalogue.csv", encoding="utf-8-sig", dtype={"zone_id": str})


@pytest.mark.parametrize("how", list(WAYS))
def test_doubled_price_doubles_the_value(tmp_zh, raster_writer, fake_service, how):
    cfg = setup_run(tmp_zh, raster_writer)          # prices: prices.yaml, relative to the config
    ws = tmp_zh / "ws"
    _run(how, cfg, ws)
    assert _value_total(ws) == pytest.approx(WC_2013, rel=1e-6)
    prices = tmp_zh / "prices.yaml"
    prices.write_text(prices.read_text(encoding="utf-8").replace("value: 10,", "value: 20,"), encoding="utf-8")
    out = _run(how, cfg, ws)
    assert _value_total(ws) == pytest.approx(2 * WC_2013, rel=1e-6)
    assert "value.fake_gep" in out["computed"] and "service.fake_gep" not in out["computed"]
    cat = _catalogue(ws).set_index(["zone_set", "product"])
    assert cat.loc[("region", "water_conservation"), "value_cny"] == pytest.approx(2 * WC_2013, rel=1e-6)
    with rasterio.open(ws / _manifest(ws)["results"]["fake_gep"]["outputs"]["wc_value"]["path"]) as src:
        assert src.read(1)[0, 0] == pytest.approx(2 * 100 * 10 * 1.05 * 1.10, rel=1e-6)


def test_doubled_default_price_of_the_profile_doubles_the_value(tmp_zh, raster_writer, fake_service, monkeypatch):
    """No ``prices:`` in the config: the profile's table, found through $ECORASTER_CONFIG_DIR."""
    from ecoraster.resources import shipped_config_dir

    cfg = setup_run(tmp_zh, raster_writer)
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("prices: prices.yaml\n", ""), encoding="utf-8")
    own = tmp_zh / "org_configs" / "prices"
    own.mkdir(parents=True)
    table = own / "mee2020.yaml"
    shutil.copy(shipped_config_dir() / "prices" / "mee2020.yaml", table)
    monkeypatch.setenv("ECORASTER_CONFIG_DIR", str(tmp_zh / "org_configs"))
    ws = tmp_zh / "ws"
    _run("eco flow --no-prefect", cfg, ws)
    before = _value_total(ws)
    assert _manifest(ws)["valuation"]["price_table_path"] == str(table.resolve())
    text = table.read_text(encoding="utf-8")
    assert "value: 7.06\n" in text                  # the reservoir price of water conservation
    table.write_text(text.replace("value: 7.06\n", "value: 14.12\n"), encoding="utf-8")
    out = _run("eco flow --no-prefect", cfg, ws)
    assert _value_total(ws) == pytest.approx(2 * before, rel=1e-6)
    assert out["computed"] and "service.fake_gep" not in out["computed"]


@pytest.mark.parametrize("how", list(WAYS))
def test_price_year_changes_every_value_output_and_table_together(tmp_zh, raster_writer, fake_service, how):
    cfg = setup_run(tmp_zh, raster_writer)
    ws = tmp_zh / "ws"
    _run(how, cfg, ws)
    old_cat, old_zones = _catalogue(ws), pd.read_csv(ws / "zonal" / "parcels.csv", encoding="utf-8-sig")
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("price_year: 2013", "price_year: 2012"), encoding="utf-8")
    _run(how, cfg, ws)
    # every price here reaches 2012 by ÷ 1.10 (CPI 2013 = 110): water 2011 × 1.05 (not × 1.155), carbon
    # and oxygen 2013 ÷ 1.10; so every value is the 2013 one ÷ 1.10
    manifest = _manifest(ws)
    assert manifest["valuation"]["price_year"] == 2012
    for oid in ("wc_value", "carbon_value", "o2_value"):
        rec = manifest["results"]["fake_gep"]["outputs"][oid]
        with rasterio.open(ws / rec["path"]) as src:
            assert src.tags()["price_year"] == "2012", oid
    cat = _catalogue(ws)
    assert set(cat["price_year"].dropna()) == {2012}
    pd.testing.assert_series_equal(cat["value_cny"], old_cat["value_cny"] / 1.10, rtol=1e-6)
    zones = pd.read_csv(ws / "zonal" / "parcels.csv", encoding="utf-8-sig")
    for col in [c for c in zones.columns if c.endswith("_value")]:
        pd.testing.assert_series_equal(zones[col], old_zones[col] / 1.10, rtol=1e-6)
    gep = pd.read_parquet(ws / "products" / "parcels.parquet")
    assert gep["gep"].sum() == pytest.approx(cat.query("zone_set == 'parcels' and counted")["value_cny"].sum(),
                                             rel=1e-9)


@pytest.mark.parametrize("how", list(WAYS))
def test_edited_cpi_revalues(tmp_zh, raster_writer, fake_service, how):
    cfg = setup_run(tmp_zh, raster_writer)
    ws = tmp_zh / "ws"
    _run(how, cfg, ws)
    carbon = _value_total(ws, "carbon_value")
    cpi = tmp_zh / "cpi.csv"
    cpi.write_text(cpi.read_text(encoding="utf-8").replace("2013,110.0", "2013,120.0"), encoding="utf-8")
    out = _run(how, cfg, ws)
    # water, a 2011 price: × 1.05 × 1.20 now; carbon, a 2013 price: unchanged
    assert _value_total(ws) == pytest.approx(35 * 100 * 10 * 1.05 * 1.20, rel=1e-6)
    assert _value_total(ws, "carbon_value") == pytest.approx(carbon, rel=1e-12)
    assert "value.fake_gep" in out["computed"] and "service.fake_gep" not in out["computed"]


def _package_copy(tmp: Path) -> Path:
    src = Path(cache.__file__).resolve().parents[1]
    dst = tmp / "pkgcopy" / src.name
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "_configs", "static"))
    return dst


def test_edited_helper_module_recomputes_the_service_that_imports_it(tmp_zh, raster_writer, fake_service,
                                                                       monkeypatch):
    """The key's code part is the import closure read from the source: the fake service imports
    ecoraster.spec (and, through it, nothing of ecoraster.query)."""
    copy = _package_copy(tmp_zh)
    monkeypatch.setattr(cache, "PACKAGE_DIR", copy)
    cfg = setup_run(tmp_zh, raster_writer)
    ws = tmp_zh / "ws"
    _run("eco run", cfg, ws)
    (copy / "query" / "site.py").write_text((copy / "query" / "site.py").read_text() + "\n# edited\n")
    assert "service.fake_gep" not in _run("eco run", cfg, ws)["computed"]      # not imported: reused
    (copy / "spec.py").write_text((copy / "spec.py").read_text() + "\n# edited\n")
    assert "service.fake_gep" in _run("eco flow --no-prefect", cfg, ws)["computed"]


def test_import_closure_follows_helpers_and_lazy_imports(tmp_zh):
    """air purification imports the shared vegetation kernel (NDVI → LAI); the valuation stage imports
    the block engine inside a function; statistics allocation reads prices (CPI) and standards."""
    names = lambda mod: {p.relative_to(cache.PACKAGE_DIR).as_posix() for p in cache.import_closure(mod)}  # noqa: E731
    assert {"kernels/vegetation.py", "kernels/air.py"} <= names("ecoraster.services.air_purification")
    assert "engine.py" in names("ecoraster.accounting.valuation")
    assert {"allocation.py", "prices.py", "standards.py", "units.py"} <= names(
        "ecoraster.services.statistics_allocation")
    assert "services/air_purification.py" not in names("ecoraster.services.carbon_storage")
    copy = _package_copy(tmp_zh)
    before = {m: cache.code_hash(m, package_dir=copy) for m in ("ecoraster.services.air_purification",
                                                                "ecoraster.services.carbon_storage")}
    helper = copy / "kernels" / "vegetation.py"
    helper.write_text(helper.read_text() + "\n# edited\n")
    assert cache.code_hash("ecoraster.services.air_purification", package_dir=copy) != before[
        "ecoraster.services.air_purification"]
    assert cache.code_hash("ecoraster.services.carbon_storage", package_dir=copy) == before[
        "ecoraster.services.carbon_storage"]
