"""`eco catalogue / gep-table / prices` and the committed demo zones (East Lake from real data)."""

from __future__ import annotations

import json

import geopandas as gpd
import pytest
from shapely.geometry import Point
from typer.testing import CliRunner

from ecoraster.cli import app
from ecoraster import pipeline
from ecoraster.pipeline import validate_run

from ..conftest import REPO
from .conftest import setup_run

runner = CliRunner()


def test_catalogue_and_gep_table_commands(tmp_zh, raster_writer, fake_service):
    pipeline.run(setup_run(tmp_zh, raster_writer), tmp_zh / "ws")
    res = runner.invoke(app, ["catalogue", "-w", str(tmp_zh / "ws"), "--zone-set", "region", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert {r["name_zh"] for r in rows} == {"水源涵养", "固碳", "释氧"}
    res = runner.invoke(app, ["catalogue", "-w", str(tmp_zh / "ws"), "--gep", "--zone-set", "parcels", "--json"])
    gep = {r["zone_id"]: r for r in json.loads(res.stdout)}
    assert gep["A"]["gep_cny"] == pytest.approx(63_390.0, rel=1e-6)      # see test_products
    res = runner.invoke(app, ["catalogue", "-w", str(tmp_zh / "ws"), "--level", "1"])
    assert res.exit_code == 0 and "调节服务" in res.stdout
    res = runner.invoke(app, ["gep-table", "-w", str(tmp_zh / "ws"), "--top", "2", "--json"])
    top = json.loads(res.stdout)
    assert [r["parcel_id"] for r in top] == ["A", "B"]
    assert runner.invoke(app, ["catalogue", "-w", str(tmp_zh / "nope")]).exit_code == 1


def test_prices_commands():
    res = runner.invoke(app, ["prices", "list", "--price-year", "2013", "--product", "water_conservation", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["id"]: r for r in json.loads(res.stdout)}
    # 7.06 CNY/m3 (2010) × CPI 2011..2013 (105.4, 102.6, 102.6)
    assert rows["reservoir_cost_2010"]["value_2013"] == pytest.approx(7.06 * 1.054 * 1.026 * 1.026)
    res = runner.invoke(app, ["prices", "show", "carbon_afforestation_2010", "--price-year", "2010"])
    assert res.exit_code == 0 and json.loads(res.stdout)["value"] == pytest.approx(380.0)
    assert runner.invoke(app, ["prices", "show", "nope"]).exit_code == 1


def test_demo_zones_are_committed_and_sound():
    parcels = gpd.read_file(REPO / "data/sample/wuhan/parcels_synthetic.gpkg")
    assert 2000 <= len(parcels) <= 5000 and parcels["parcel_id"].is_unique and (parcels["synthetic"] == 1).all()
    assert (parcels.area < 900).sum() > 0 and parcels.area.max() > 10_000     # smaller than a pixel … > 1 ha
    union_area = parcels.union_all().area
    assert parcels.area.sum() == pytest.approx(union_area, rel=1e-9)          # no overlaps
    lake = gpd.read_file(REPO / "data/sample/wuhan/wetland_units.gpkg")
    assert lake.loc[0, "name"] == "东湖"
    point = gpd.GeoSeries([Point(114.40, 30.56)], crs="EPSG:4326").to_crs(lake.crs).iloc[0]
    assert lake.geometry.iloc[0].contains(point)
    assert 25 < lake.geometry.iloc[0].area / 1e6 < 45                      # East Lake ≈ 33 km² of open water


def test_demo_config_validates():
    """The demo config uses bundled data only (data/sample/wuhan, configs/)."""
    assert validate_run(REPO / "configs" / "wuhan_2013_gep.yaml") == []
