"""Coastal protection end to end: protected coast length on the grid, valued at the sea-wall replacement
cost of configs/prices/mee2020.yaml (worked out by hand below)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from affine import Affine
from shapely.geometry import LineString, box

from ecoraster import pipeline
from ecoraster.prices import CPI, PriceTable, rebase
from ecoraster.resources import config_path

CRS = "EPSG:4529"


def test_seawall_price_is_the_median_of_its_sourced_projects():
    # the construction cost is the median investment / length of the four projects of the source table
    projects = pd.read_csv(config_path("prices", "sources", "seawall_projects_zhejiang.csv"))
    unit = projects["investment_cny"] / projects["length_km"]
    assert np.allclose(unit, projects["unit_cost_cny_per_km"], atol=0.5)
    table = PriceTable.load(config_path("prices", "mee2020.yaml"))
    assert table.get("seawall_construction_zj_2023").value == pytest.approx(unit.median(), abs=1.0)
    # per km and year: 91,702,746 × (1/50 + 0.01) = 2,751,082.4 CNY (2023); to 2020 ÷ (1.009 · 1.020 · 1.002)
    cpi = CPI(table.cpi_path)
    price = table.for_product("coastal_protection")
    assert rebase(table, price, cpi, 2023).value == pytest.approx(91_702_746 * 0.03, rel=1e-9)
    assert rebase(table, price, cpi, 2020).value == pytest.approx(91_702_746 * 0.03 / (1.009 * 1.020 * 1.002),
                                                                  rel=1e-9)


def test_coastal_protection_run_is_valued(tmp_zh):
    # 100 m grid, 100 × 20 px over x 0..10 km, y −1000..1000; coast along y = 0.5 m (inside pixel row 9, not
    # on a pixel edge); marsh 3 km × 600 m against it (x 2000..5000), plus an 80 m belt (narrower than the
    # 100 m belt width → not counted). snap 1 m: protected x 1999..5001 → 3.002 km
    tmp = tmp_zh
    with rasterio.open(tmp / "grid.tif", "w", driver="GTiff", width=100, height=20, count=1, dtype="uint8",
                       crs=CRS, transform=Affine(100, 0, 0, 0, -100, 1000), nodata=0) as dst:
        dst.write(np.ones((1, 20, 100), dtype="uint8"))
    gpd.GeoDataFrame({"id": [1]}, geometry=[LineString([(0, 0.5), (10_000, 0.5)])], crs=CRS).to_file(
        tmp / "coast.gpkg")
    gpd.GeoDataFrame({"id": [1, 2]}, geometry=[box(2000, -600, 5000, 0.5), box(6000, -80, 7000, 0.5)],
                     crs=CRS).to_file(tmp / "marsh.gpkg")
    datasets = {"grid": {"kind": "raster", "uri": "grid.tif", "categorical": True},
                "coast": {"kind": "vector", "uri": "coast.gpkg"}, "marsh": {"kind": "vector", "uri": "marsh.gpkg"}}
    (tmp / "data_catalog.yaml").write_text(yaml.safe_dump({"datasets": datasets}), encoding="utf-8")
    run = {"region": "chongming", "year": 2020, "price_year": 2020, "profile": "mee2020", "grid": {"like": "grid"},
           "chunk": 64, "services": {"coastal_protection": {"inputs": {"coastline": "coast", "marsh": "marsh"},
                                                            "params": {"belt_width_m": 100.0, "snap_m": 1.0}}}}
    (tmp / "run.yaml").write_text(yaml.safe_dump(run), encoding="utf-8")
    pipeline.run(tmp / "run.yaml", tmp / "ws")
    cat = pd.read_csv(tmp / "ws" / "products" / "catalogue.csv", encoding="utf-8-sig")
    row = cat[cat["zone_set"] == "region"].set_index("product").loc["coastal_protection"]
    assert row["quantity"] == pytest.approx(3.002, rel=1e-7)  # km per pixel stored as float32
    assert row["price_id"] == "seawall_replacement_2023"
    per_km_year = 91_702_746 * 0.03 / (1.009 * 1.020 * 1.002)  # 2,667,746.4 CNY (2020)
    assert row["value_cny"] == pytest.approx(3.002 * per_km_year, rel=1e-6)
