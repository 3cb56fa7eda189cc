"""End to end: fake service → value rasters → parcels / wetland tables, catalogue, STAC, manifest.

Grid 6 × 6 px of 30 m (0.09 ha), pixel (5, 5) nodata. Per valid pixel: 100 m3, 1 t C, 2 t O2.
Prices (conftest): water 11.55 CNY/m3 (10 × 1.155 CPI), carbon 100 CNY/t CO2 = 366.67 CNY/t C,
oxygen 1000 CNY/t (contested under mee2020).
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyarrow.parquet as pq
import pytest

import ecoraster
from ecoraster import pipeline

from .conftest import setup_run

WC, C, O2 = 11.55, 100 * 44 / 12, 1000.0

# parcel → covered valid pixels: A 18 (cols 0-2), B 9, C 9 − 1 nodata − ¼ (E) = 7.75, E ¼
PIXELS = {"A": 18.0, "B": 9.0, "C": 7.75, "E": 0.25}
AREA_HA = {"A": 18 * 0.09, "B": 9 * 0.09, "C": 9 * 0.09 - 0.0225, "E": 0.0225}   # E: 15 m × 15 m


@pytest.fixture
def run(tmp_zh, raster_writer, fake_service):
    cfg = setup_run(tmp_zh, raster_writer)
    return pipeline.run(cfg, tmp_zh / "ws"), tmp_zh / "ws"


def test_parcel_table_by_hand(run):
    _result, ws = run
    gdf = gpd.read_parquet(ws / "products" / "parcels.parquet").set_index("parcel_id")
    for pid, n in PIXELS.items():
        row = gdf.loc[pid]
        assert row["water_conservation_qty"] == pytest.approx(100 * n, rel=1e-9)
        assert row["water_conservation_value"] == pytest.approx(100 * n * WC, rel=1e-6)
        assert row["carbon_sequestration_value"] == pytest.approx(n * C, rel=1e-6)
        gep = n * (100 * WC + C + 2 * O2)                        # A: 18 × (1155 + 366.67 + 2000) = 63,390
        assert row["gep"] == pytest.approx(gep, rel=1e-6)
        assert row["gep_excl_contested"] == pytest.approx(n * (100 * WC + C), rel=1e-6)
        assert row["area_ha"] == pytest.approx(AREA_HA[pid], rel=1e-9)
        assert row["gep_per_ha"] == pytest.approx(gep / AREA_HA[pid], rel=1e-6)
    assert gdf.loc["A", "gep"] == pytest.approx(63_390.0, rel=1e-6)
    assert gdf.loc["A", "name"] == "甲"
    assert gdf.crs.to_epsg() == 4527
    assert all(gdf[c].dtype == "float64" for c in gdf.columns if c.endswith(("_qty", "_value")) or c.startswith("gep"))
    # GeoParquet: bbox covering column and our metadata
    schema = pq.read_schema(ws / "products" / "parcels.parquet")
    assert "bbox" in schema.names
    geo = json.loads(schema.metadata[b"geo"])
    assert "covering" in geo["columns"]["geometry"]
    meta = json.loads(schema.metadata[b"ecoraster"])
    assert meta["price_year"] == 2013 and meta["region"] == "testregion" and meta["year"] == 2013
    assert meta["profile"] == "mee2020"
    assert meta["units"]["water_conservation_qty"] == "m3" and meta["units"]["gep"] == "CNY"
    assert meta["units"]["carbon_sequestration_qty"] == "t C"


def test_geopackage_chinese_field_names(run):
    _result, ws = run
    gpkg = gpd.read_file(ws / "products" / "parcels.gpkg", layer="parcels")
    for name in ("地块编号", "名称", "面积_公顷", "水源涵养_实物量", "水源涵养_价值量", "释氧_价值量", "GEP_元"):
        assert name in gpkg.columns
    assert set(gpkg["地块编号"]) == set(PIXELS)
    # one field-name choice for the run: the wetland units follow the parcels' zh option
    wet = gpd.read_file(ws / "products" / "wetland_units.gpkg", layer="wetland_units")
    assert "单元编号" in wet.columns and "GEP_元" in wet.columns
    # wetland unit W1: cols 2-3, rows 0-1 = 4 valid px
    assert wet.set_index("单元编号").loc["W1", "水源涵养_实物量"] == pytest.approx(400.0)


def test_catalogue_rows_gep_and_files(run):
    _result, ws = run
    raw = (ws / "products" / "catalogue.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")                            # UTF-8 BOM for Excel
    cat = pd.read_csv(ws / "products" / "catalogue.csv", encoding="utf-8-sig", dtype={"zone_id": str})
    # 3 products × (1 region + 4 parcels + 1 wetland unit)
    assert len(cat) == 18
    region = cat[cat["zone_set"] == "region"].set_index("product")
    assert region.loc["water_conservation", "quantity"] == pytest.approx(3500.0)      # 35 px × 100 m3
    assert region.loc["water_conservation", "value_cny"] == pytest.approx(3500 * WC, rel=1e-6)
    assert region.loc["water_conservation", "level1"] == "调节服务"
    assert region.loc["water_conservation", "price_year"] == 2013
    assert region.loc["water_conservation", "price"] == pytest.approx(WC)
    assert region.loc["carbon_sequestration", "price_unit"] == "CNY/t CO2"
    assert bool(region.loc["oxygen_release", "contested"]) and region.loc["oxygen_release", "name_zh"] == "释氧"
    assert region.loc["oxygen_release", "zone_name"] == "测试区"
    assert pd.read_parquet(ws / "products" / "catalogue.parquet").shape == cat.shape
    sheets = pd.read_excel(ws / "products" / "catalogue.xlsx", sheet_name=None)
    assert {"目录清单", "一级分类", "二级分类", "GEP", "说明"} <= set(sheets)
    gep = sheets["GEP"].set_index(["核算单元类型", "单元编号"])
    assert gep.loc[("region", "testregion"), "GEP（元）"] == pytest.approx(35 * (100 * WC + C + 2 * O2), rel=1e-6)
    assert gep.loc[("region", "testregion"), "GEP不含争议项（元）"] == pytest.approx(35 * (100 * WC + C), rel=1e-6)


def test_catalogue_workbook_is_readable(run):
    from openpyxl import load_workbook

    _result, ws = run
    book = load_workbook(ws / "products" / "catalogue.xlsx")
    sheet = book["目录清单"]
    headers = [c.value for c in sheet[1]]
    for h in ("编码", "一级分类", "生态产品", "实物量", "实物量单位", "价值量（元）", "价格", "价格单位", "价格年份",
              "来源", "可信度", "有争议项"):
        assert h in headers
    assert sheet.freeze_panes == "A2" and sheet["A1"].font.bold
    value = sheet.cell(row=2, column=headers.index("价值量（元）") + 1)
    assert value.number_format == "#,##0" and isinstance(value.value, (int, float))   # a number, shown 1,234,567
    assert sheet.cell(row=2, column=headers.index("价格年份") + 1).number_format == "0"
    assert {c.value for c in book["GEP"][1]} >= {"GEP（元）", "GEP不含争议项（元）"}


def test_zone_workbook_and_qgis_styles(run, tmp_path):
    import sqlite3
    import xml.etree.ElementTree as ET

    from openpyxl import load_workbook

    from ecoraster.accounting.xlsx import write_zone_workbook

    _result, ws = run
    gpkg = ws / "products" / "parcels.gpkg"
    with sqlite3.connect(gpkg) as con:
        rows = con.execute("SELECT styleName, styleQML, useAsDefault FROM layer_styles "
                           "WHERE f_table_name = 'parcels' ORDER BY id").fetchall()
        kind = con.execute("SELECT data_type FROM gpkg_contents WHERE table_name = 'layer_styles'").fetchone()
    assert kind == ("attributes",)
    # GEP per ha (default), GEP, and one per product value: water conservation, carbon, oxygen
    assert [r[2] for r in rows] == [1, 0, 0, 0, 0]
    root = ET.fromstring(rows[0][1].split("'SYSTEM'>", 1)[1])
    renderer = root.find("renderer-v2")
    fields = gpd.read_file(gpkg, layer="parcels").columns
    assert renderer.get("attr") == "GEP_元每公顷" and renderer.get("attr") in fields
    bounds = [(float(r.get("lower")), float(r.get("upper"))) for r in renderer.find("ranges")]
    assert all(lo < hi for lo, hi in bounds) and len(set(bounds)) == len(bounds)  # no duplicate classes
    assert any(r[0].startswith("水源涵养") for r in rows)
    # a zone set too large for catalogue.xlsx gets its own workbook: Chinese headers with units
    frame = pd.DataFrame({"parcel_id": ["A", "B"], "area_ha": [1.5, 2.0], "water_conservation_qty": [10.0, 20.0],
                          "gep": [1.49e10, 2.0]})
    path = write_zone_workbook(frame, tmp_path / "parcels.xlsx", {"area_ha": "ha", "water_conservation_qty": "m3",
                                                                  "gep": "CNY"},
                               {"parcel_id": "地块编号", "area_ha": "面积_公顷",
                                "water_conservation_qty": "水源涵养_实物量", "gep": "GEP_元"}, sheet="parcels")
    sheet = load_workbook(path)["parcels"]
    assert [c.value for c in sheet[1]] == ["地块编号", "面积（公顷）", "水源涵养_实物量（m3）", "GEP（元）"]
    assert sheet["D2"].value == 1.49e10 and sheet["D2"].number_format == "#,##0" and sheet.freeze_panes == "A2"


def test_manifest_mass_balance_and_partition(run):
    result, ws = run
    manifest = json.loads(result.manifest_path.read_text(encoding="utf-8"))
    parcels = manifest["products_report"]["zone_sets"]["parcels"]
    assert parcels["partition_check"]["ok"]
    mb = parcels["mass_balance"]
    assert mb["fake_gep.wc"]["zones_sum"] == pytest.approx(3500.0)
    assert all(v["ok"] for v in mb.values())
    assert "mass_balance" not in manifest["products_report"]["zone_sets"]["wetland_units"]   # not a partition
    assert manifest["products_report"]["gep_region"]["gep"] == pytest.approx(35 * (100 * WC + C + 2 * O2), rel=1e-6)
    assert manifest["valuation"]["price_year"] == 2013
    # paths inside the workspace are relative to it; the software is named by version and commit
    assert (ws / "products" / "parcels.gpkg").is_file() and manifest["products"]["parcels_gpkg"] == "products/parcels.gpkg"
    assert manifest["paths_relative_to"] == "workspace"
    out = manifest["results"]["fake_gep"]["outputs"]["wc"]["path"]
    assert not Path(out).is_absolute() and (ws / out).is_file()
    prov = manifest["software_provenance"]
    assert prov["version"] == ecoraster.__version__ and prov["package"] == "ecoraster"
    assert prov["git_commit"] is None or len(prov["git_commit"]) == 40


def test_stac_catalogue_valid_and_complete(run):
    import pystac
    from pystac.validation import JsonSchemaSTACValidator, set_validator

    class CoreOnly(JsonSchemaSTACValidator):
        """Core STAC schemas ship with pystac; extension schemas would need the network."""

        def validate_extension(self, *args, **kwargs):
            return None

    _result, ws = run
    set_validator(CoreOnly())
    try:
        catalog = pystac.Catalog.from_file(str(ws / "stac" / "catalog.json"))
        assert catalog.validate_all() == 2                          # 2 items: fake_gep + gep-products
    finally:
        set_validator(JsonSchemaSTACValidator())
    item = catalog.get_child("fake_gep").get_item("fake_gep-testregion-2013")
    assert item.properties["proj:code"] == "EPSG:4527" and item.properties["proj:shape"] == [6, 6]
    asset = item.assets["wc_value"]
    band = asset.extra_fields["raster:bands"][0]
    assert band["nodata"] == -9999.0 and band["unit"] == "CNY" and band["data_type"] == "float32"
    assert asset.extra_fields["file:checksum"].startswith("1220") and asset.extra_fields["ecoraster:price_year"] == 2013
    assert not asset.href.startswith("/")                                      # relative
    cog = (ws / "stac" / "fake_gep" / item.id / asset.href).resolve()
    assert cog.is_file()
    import hashlib

    # the checksums are read side by side in threads: each must still be its own file's
    assert asset.extra_fields["file:checksum"] == "1220" + hashlib.sha256(cog.read_bytes()).hexdigest()
    products = catalog.get_child("gep-products").get_item("gep-testregion-2013")
    assert {"parcels_parquet", "parcels_gpkg", "catalogue_csv"} <= set(products.assets)
    assert products.assets["parcels_parquet"].media_type == "application/vnd.apache.parquet"
    gpkg = (ws / "stac" / "gep-products" / products.id / products.assets["parcels_gpkg"].href).resolve()
    assert products.assets["parcels_gpkg"].extra_fields["file:checksum"] == (
        "1220" + hashlib.sha256(gpkg.read_bytes()).hexdigest())
