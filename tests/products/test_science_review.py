"""Findings of the science review (shared/docs/science-review.md; issue 15) on valuation, products,
profiles and the demo's configuration. Each failed on the code before the fix.

The run is the real pipeline (execute_run → value rasters → zonal → products) on the fixture of
conftest.py: 6 × 6 px of 30 m (0.09 ha), pixel (5, 5) nodata; per valid pixel 100 m3, 1 t C, 2 t O2;
prices water 11.55 CNY/m3, carbon 100 CNY/t CO2, oxygen 1000 CNY/t (contested under mee2020).
"""

from __future__ import annotations

import json

import geopandas as gpd
import pyarrow.parquet as pq
import pytest
from shapely.geometry import box

from ecoraster.standards import load_products, load_profile
from ecoraster.pipeline import run as execute_run
from ecoraster.prices import CPI, PriceTable, rebase

from ..conftest import REPO, TEST_CRS, TEST_ORIGIN
from .conftest import setup_run

PX_GEP = 100 * 11.55 + 100 * 44 / 12 + 2 * 1000.0   # CNY per valid pixel = 3,521.67


@pytest.fixture
def run(tmp_zh, raster_writer, fake_service):
    cfg = setup_run(tmp_zh, raster_writer)
    # a wetland unit 4 px wide and 2 px tall whose right half lies outside the 6 × 6 grid:
    # cols 4–7 × rows 0–1 → inside: cols 4–5 = 4 px = 0.36 ha of 0.72 ha
    x0, y0 = TEST_ORIGIN
    gpd.GeoDataFrame({"uid": ["W1"], "uname": ["半幅湿地"]}, geometry=[box(x0 + 120, y0 - 60, x0 + 240, y0)],
                     crs=TEST_CRS).to_file(tmp_zh / "wetland.gpkg")
    return execute_run(cfg, tmp_zh / "ws"), tmp_zh / "ws"


# --- finding 7: the contested flag reaches parcels.parquet and the query outputs -----------------------
def test_contested_flag_in_parcel_table_and_query(run):
    _res, ws = run
    meta = json.loads(pq.read_schema(ws / "products" / "parcels.parquet").metadata[b"ecoraster"])
    assert meta["contested"] == ["oxygen_release"]
    from ecoraster.query.workspace import RunWorkspace

    w = RunWorkspace.open(ws)
    assert w.contested == {"oxygen_release"}
    gdf = gpd.read_parquet(ws / "products" / "parcels.parquet").set_index("parcel_id")
    card = w.parcel_catalogue(gdf.loc["A"].drop("geometry").to_dict() | {"parcel_id": "A"})
    flags = {row["product"]: row["contested"] for row in card["products"]}
    assert flags == {"water_conservation": False, "carbon_sequestration": False, "oxygen_release": True}


# --- finding 8: zones the grid only partly covers --------------------------------------------------------
def test_covered_area_and_per_hectare_on_it(run):
    _res, ws = run
    gdf = gpd.read_parquet(ws / "products" / "wetland_units.parquet").set_index("zone_id")
    row = gdf.loc["W1"]
    assert row["area_ha"] == pytest.approx(0.72)
    assert row["covered_area_ha"] == pytest.approx(0.36)
    assert row["gep"] == pytest.approx(4 * PX_GEP, rel=1e-6)
    assert row["gep_per_ha"] == pytest.approx(4 * PX_GEP / 0.36, rel=1e-6)   # 39,129.6 CNY/ha, not half


# --- finding 9: profiles --------------------------------------------------------------------------------
def test_gbt46869_profile_runs_and_states_missing_products(tmp_zh, raster_writer, fake_service):
    cfg = setup_run(tmp_zh, raster_writer)
    cfg.write_text(cfg.read_text().replace("profile: mee2020", "profile: gbt46869_2025"), encoding="utf-8")
    execute_run(cfg, tmp_zh / "ws")
    report = json.loads((tmp_zh / "ws" / "products" / "products.json").read_text(encoding="utf-8"))
    missing = " ".join(report["missing_products"])
    assert "flood_regulation (not in this run, Annex A.6" in missing             # implemented, not run here
    assert "soil_retention (not in this run" in missing                 # implemented, not run here
    assert "water_supply (not implemented in ecoraster" in missing
    assert "oxygen_release" not in missing                          # not counted by GB/T 46869 ✱
    catalogue = json.loads(json.dumps(report["gep_region"]))
    assert catalogue["gep"] == pytest.approx(35 * (100 * 11.55 + 100 * 44 / 12), rel=1e-6)  # no O2


def test_products_yaml_units_match_what_is_computed():
    products = load_products()
    assert products["carbon_sequestration"].physical_unit == "t CO2"
    assert products["oxygen_release"].physical_unit == "t O2"
    assert "NEP" in products["oxygen_release"].physical_method
    assert "water_yield" in products
    for name in ("mee2020", "ndrc2022", "gbt46869_2025", "invest"):
        assert not load_profile(name).counts("water_yield")


# --- finding 2: prices by kind ----------------------------------------------------------------------------
def _table():
    return PriceTable.load(REPO / "configs" / "prices" / "mee2020.yaml")


def test_every_price_declares_its_kind():
    table = _table()
    kinds = {p.id: p.kind for p in table.prices}
    assert set(kinds.values()) <= {"cost", "fee_tax", "market", "shadow"}
    assert kinds["nox_fee_2003"] == "fee_tax" and kinds["reservoir_cost_2010"] == "cost"


def test_fees_are_not_cpi_inflated_and_markets_not_used_outside_their_years():
    table = _table()
    cpi = CPI(table.cpi_path)
    # the 2003 NOx fee, 0.6 元/当量 ÷ 0.95 kg = 0.63 CNY/kg, was still the rate in force in 2013
    assert rebase(table, table.get("nox_fee_2003"), cpi, 2013).value == pytest.approx(0.63)
    # the reservoir construction cost is a cost: rebased (7.06 × CPI 2010→2013 = 7.83)
    assert rebase(table, table.get("reservoir_cost_2010"), cpi, 2013).value == pytest.approx(7.83, abs=0.01)
    # the national carbon market did not exist in 2013: no price
    from ecoraster.errors import EcorasterError

    with pytest.raises(EcorasterError, match="carbon_ets_2023.*2013"):
        rebase(table, table.get("carbon_ets_2023"), cpi, 2013)


def test_carbon_market_and_shadow_are_two_named_options():
    table = _table()
    carbon = [p for p in table.prices if p.product == "carbon_sequestration"]
    assert {p.kind for p in carbon} >= {"market", "shadow"}
    default = [p for p in carbon if p.default]
    assert len(default) == 1 and default[0].source


# --- finding 10: real inputs, stand-ins stated -------------------------------------------------------------
def test_demo_pm25_level_is_the_observed_annual_mean():
    import numpy as np
    import rasterio

    with rasterio.open(REPO / "data" / "sample" / "wuhan" / "climate" / "pm25_ugm3.tif") as src:
        a = src.read(1, masked=True)
    # Wuhan's CNEMC city-daily PM2.5, 2014: mean of 365 days = 80.79 µg/m³ (cnemc_pm25_city_daily_2014_2016)
    assert float(np.ma.mean(a)) == pytest.approx(80.79, abs=0.05)


def test_run_json_lists_the_stand_in_inputs(run):
    _res, ws = run
    from ecoraster.config import RunConfig

    manifest = json.loads((ws / "run.json").read_text(encoding="utf-8"))
    assert "stand_in_inputs" in manifest
    demo = RunConfig.load(REPO / "configs" / "wuhan_2013_gep.yaml")
    catalog = demo.load_catalog()
    assert "normal" in catalog.get("wuhan_precip_annual").options["stand_in"]
    assert "OBSERVED" in catalog.get("wuhan_pm25").options["stand_in"]


# --- finding 11: sensitivity --------------------------------------------------------------------------------
def test_sensitivity_low_central_high_per_product_and_zone(run):
    _res, ws = run
    from ecoraster.accounting.sensitivity import run_sensitivity

    table = run_sensitivity(ws)
    row = table.query("zone_set == 'region' and product == 'oxygen_release'").iloc[0]
    assert row["low"] <= row["central"] <= row["high"]
    assert row["central"] == pytest.approx(35 * 2 * 1000.0, rel=1e-6)
    assert (ws / "products" / "sensitivity.csv").is_file()
    report = json.loads((ws / "products" / "products.json").read_text(encoding="utf-8"))
    assert {"gep", "gep_excl_contested", "gep_low", "gep_high"} <= set(report["gep_region"])


def test_run_sensitivity_flag_and_catalogue_range(tmp_zh, raster_writer, fake_service):
    from typer.testing import CliRunner

    from ecoraster.cli import app

    runner = CliRunner()
    cfg = setup_run(tmp_zh, raster_writer)
    res = runner.invoke(app, ["run", str(cfg), "-w", str(tmp_zh / "ws"), "--quiet", "--sensitivity"])
    assert res.exit_code == 0, res.output
    assert (tmp_zh / "ws" / "products" / "sensitivity.csv").is_file()
    res = runner.invoke(app, ["catalogue", "-w", str(tmp_zh / "ws"), "--gep", "--zone-set", "region", "--json"])
    row = json.loads(res.stdout)[0]
    # O2 (contested) 35 px × 2 t × 1000 CNY/t × 0.5 … 1.5 (sensitivity_ranges.yaml); water and carbon have no
    # range in the test price table (no options) beyond their quantity factors (water 0.73 … 1.02, carbon 0.5 … 1.5)
    water, carbon, o2 = 35 * 100 * 11.55, 35 * 100 * 44 / 12, 35 * 2 * 1000.0
    assert row["gep_low_cny"] == pytest.approx(0.73 * water + 0.5 * carbon + 0.5 * o2, rel=1e-6)
    assert row["gep_excl_contested_high_cny"] == pytest.approx(1.02 * water + 1.5 * carbon, rel=1e-6)


@pytest.mark.slow
def test_demo_catalogue_has_no_negative_value_and_flags_contested(tmp_path):
    """The central-Wuhan demo (≈ 6–10 min): no negative catalogue row (issue 15), contested items in the
    parcel table's metadata, per-hectare GEP on the covered area (新洲区 ≈ 14 % inside the grid)."""
    from ecoraster.accounting.product_catalogue import read_catalogue
    from ecoraster.accounting.sensitivity import run_sensitivity

    ws = tmp_path / "demo"
    execute_run(REPO / "configs" / "wuhan_2013_gep.yaml", ws)
    cat = read_catalogue(ws / "products" / "catalogue.parquet")
    assert (cat["value_cny"].dropna() >= 0).all() and (cat["quantity"].dropna() >= 0).all()
    meta = json.loads(pq.read_schema(ws / "products" / "parcels.parquet").metadata[b"ecoraster"])
    assert "oxygen_release" in meta["contested"]
    d = gpd.read_parquet(ws / "products" / "districts.parquet").set_index("name")
    assert d.loc["新洲区", "covered_area_ha"] < 0.2 * d.loc["新洲区", "area_ha"]
    assert d.loc["新洲区", "gep_per_ha"] == pytest.approx(d.loc["新洲区", "gep"] / d.loc["新洲区", "covered_area_ha"])
    table = run_sensitivity(ws)
    region = table[table["zone_set"] == "region"]
    assert (region["low"].fillna(0) <= region["central"].fillna(0)).all()
