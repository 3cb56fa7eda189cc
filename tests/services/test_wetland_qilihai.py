"""End to end on a grid shaped like 七里海 (reed marsh, open water, a reservoir with its capacity, two townships in one
district), region `ninghe` so the Tianjin prices of 2020 apply: the three wetland services, valuation, zones and the
catalogue, with hand-worked totals; the townships sum to the district."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import yaml

from ecoraster.resources import config_path
from ecoraster import pipeline
from ecoraster.pipeline import validate_run
from ecoraster.prices import CPI, PriceTable, rebase

from ..conftest import TEST_CRS, TEST_ORIGIN
from ._helpers import write_bands
from .test_flood_regulation import _qilihai_like

VEG_KWH_M3 = 1000 * 2450 / 3600 / 3
WATER_KWH_M3 = 1000 * 2450 / 3600 + 120


def _run(tmp):
    _eco, datasets = _qilihai_like(tmp)
    x0, y0 = TEST_ORIGIN
    gpd.GeoDataFrame({"gb": ["120117"], "name": ["宁河区"]}, geometry=[shapely.box(x0, y0 - 600, x0 + 600, y0)],
                     crs=TEST_CRS).to_file(tmp / "district.gpkg", layer="district")
    write_bands(tmp / "aet.tif", np.full((12, 20, 20), 100.0))
    dates = pd.date_range("2020-01-01", "2020-12-31", freq="D")
    pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "tavg_degC": np.where(dates.month == 7, 28.0, 18.0)}).to_csv(
        tmp / "daily.csv", index=False)
    (tmp / "loads.csv").write_text("unit_id,pollutant,load_t\nT1,cod,2.124\nT2,cod,10\n", encoding="utf-8")
    datasets.update({"district": {"kind": "vector", "uri": "district.gpkg"}, "aet": {"kind": "raster", "uri": "aet.tif"},
                     "daily": {"kind": "table", "uri": "daily.csv"}, "loads": {"kind": "table", "uri": "loads.csv"}})
    (tmp / "data_catalog.yaml").write_text(yaml.safe_dump({"datasets": datasets}, allow_unicode=True), encoding="utf-8")
    run = {"region": "ninghe", "year": 2020, "price_year": 2020, "profile": "mee2020", "grid": {"like": "eco"},
           "chunk": 64,
           "services": {
               "flood_regulation": {"inputs": {"ecosystem": "eco", "named_bodies": "named", "zones": "towns"}},
               "water_purification": {"inputs": {"ecosystem": "eco", "loads": "loads", "units": "towns"},
                                      "params": {"unit_id_field": "code", "pollutants": ["cod"]}},
               "climate_regulation": {"inputs": {"ecosystem": "eco", "et": "aet", "daily_temperature": "daily"}}},
           "zones": {"district": {"dataset": "district", "id_field": "gb", "name_field": "name"},
                     "townships": {"dataset": "towns", "id_field": "code", "name_field": "name", "partition": True}}}
    (tmp / "run.yaml").write_text(yaml.safe_dump(run, allow_unicode=True), encoding="utf-8")
    assert validate_run(tmp / "run.yaml") == []
    return pipeline.run(tmp / "run.yaml", tmp / "ws")


def test_qilihai_end_to_end(tmp_zh):
    result = _run(tmp_zh)
    cat = pd.read_csv(tmp_zh / "ws" / "products" / "catalogue.csv", encoding="utf-8-sig")
    region = cat[cat["zone_set"] == "region"].set_index("product")
    table = PriceTable.load(config_path("prices", "mee2020.yaml"))
    cpi = CPI(table.cpi_path)
    # 洪水调蓄: marsh 0.09 km² × 0.3 m = 27,000; lake e^4.924 × 0.0324^1.128 × 10⁴; reservoir 0.35 × 100,000 = 35,000
    flood = 27000 + math.exp(4.924) * 0.0324 ** 1.128 * 1e4 + 35000
    reservoir = rebase(table, table.for_product("flood_regulation", region="ninghe"), cpi, 2020).value  # 7.06 (2010) → 2020
    assert region.loc["flood_regulation", "quantity"] == pytest.approx(flood, rel=1e-6)
    assert region.loc["flood_regulation", "value_cny"] == pytest.approx(flood * reservoir, rel=1e-6)
    # 水质净化 COD: T1 capped at its load 2.124 t, T2 its capacity 0.396 t; Tianjin tax 2020 7.5 元/当量 = 7,500 CNY/t
    assert region.loc["water_purification_cod", "quantity"] == pytest.approx(2.52, rel=1e-6)
    assert region.loc["water_purification_cod", "price_id"] == "cod_tax_tianjin_2020"
    assert region.loc["water_purification_cod", "value_cny"] == pytest.approx(2.52 * 7500, rel=1e-6)
    # 气候调节: July all hot (31/31), 100 mm ET in July → 100 mm on hot days = 90 m³ per 900 m² pixel
    #   vegetation: marsh 100 + paddy 241 px = 341 × 90 = 30,690 m³ × 226.852 = 6,962,083 kWh
    #   water: lake 36 + reservoir / pond 22 = 58 × 90 = 5,220 m³ × 800.556 = 4,178,900 kWh; Tianjin tariff 0.49
    veg, wat = 341 * 90 * VEG_KWH_M3, 58 * 90 * WATER_KWH_M3
    assert region.loc["climate_regulation_transpiration", "quantity"] == pytest.approx(veg, rel=1e-6)
    assert region.loc["climate_regulation_evaporation", "quantity"] == pytest.approx(wat, rel=1e-6)
    assert region.loc["climate_regulation_evaporation", "value_cny"] == pytest.approx(wat * 0.49, rel=1e-6)
    assert bool(region.loc["climate_regulation_evaporation", "contested"])
    for product in ("flood_regulation", "water_purification_cod", "climate_regulation_transpiration"):
        assert region.loc[product, "quantity"] > 0 and region.loc[product, "value_cny"] > 0
    # the townships sum to the district for every column of the three services
    district = pd.read_csv(result.zonal_tables["district"], encoding="utf-8-sig")
    towns = pd.read_csv(result.zonal_tables["townships"], encoding="utf-8-sig")
    cols = [c for c in district.columns if c.split(".")[0] in ("flood_regulation", "water_purification",
                                                               "climate_regulation")]
    assert len(cols) >= 8
    for col in cols:
        assert towns[col].sum() == pytest.approx(district[col].sum(), rel=1e-9), col
    t = towns.set_index("code")
    assert t.loc["T1", "water_purification.cod"] == pytest.approx(2.124, rel=1e-6)
    bodies = gpd.read_file(tmp_zh / "ws" / "flood_regulation" / "water_bodies.gpkg")
    assert set(bodies["type"]) == {"marsh", "lake", "reservoir"}
