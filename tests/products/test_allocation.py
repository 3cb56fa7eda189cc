"""Allocation of statistics tables: hand-worked weights, mass balance, residuals, numpy == dask."""

from __future__ import annotations

import textwrap

import dask.array as da
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from shapely.geometry import box

from ecoraster.allocation import allocate, read_statistics
from ecoraster.errors import TableError
from ecoraster.grid import Grid
from ecoraster import pipeline
from ecoraster.pipeline import validate_run

from ..conftest import TEST_CRS, TEST_ORIGIN

X0, Y0 = TEST_ORIGIN


def _grid(rows, cols):
    return Grid(CRS.from_user_input(TEST_CRS), Affine(30, 0, X0, 0, -30, Y0), (rows, cols))


def _units():
    # T1 = cols 0-1, T2 = cols 2-3 of a 2 × 4 grid (pixel centres decide)
    return gpd.GeoDataFrame({"code": ["T1", "T2"]},
                            geometry=[box(X0, Y0 - 60, X0 + 60, Y0), box(X0 + 60, Y0 - 60, X0 + 120, Y0)], crs=TEST_CRS)


def test_weights_by_hand_and_unallocated_unit():
    classes = np.array([[3, 3, 3, 6],
                        [3, 6, 6, 6]], dtype=np.int64)
    ndvi = np.array([[0.2, 0.6, 0.5, 0.9],
                     [0.2, 0.9, 0.9, 0.9]], dtype=np.float32)
    table = read_statistics(pd.DataFrame({
        "unit_id": ["T1", "T2", "T1", "T2"], "product": ["agricultural_products"] * 2 + ["fishery_products"] * 2,
        "quantity": [100.0, 50.0, 30.0, 0.0], "quantity_unit": ["t"] * 4, "value": [1000.0, 500.0, 300.0, 0.0]}), "t.csv")
    eligible = {"agricultural_products": [3], "fishery_products": [6]}
    grid = _grid(2, 4)
    qty, val, rep = allocate(table, _units(), "code", da.from_array(classes, chunks=(1, 2)), -1, eligible, grid,
                             weight=da.from_array(ndvi, chunks=(1, 2)), area_weighted=("fishery_products",),
                             chunk=64)
    q = qty["agricultural_products"].compute()
    # T1 cropland pixels: (0,0) 0.2, (0,1) 0.6, (1,0) 0.2 → weights sum 1.0 (× 900 m² each):
    # 100 t × 0.2 = 20, × 0.6 = 60, × 0.2 = 20; (1,1) is water → 0
    np.testing.assert_allclose(q[:, :2], [[20, 60], [20, 0]], rtol=1e-6)
    # T2 cropland: only (0,2) → all 50 t
    np.testing.assert_allclose(q[:, 2:], [[50, 0], [0, 0]], rtol=1e-6)
    np.testing.assert_allclose(val["agricultural_products"].compute()[0, :2], [200, 600], rtol=1e-6)
    f = qty["fishery_products"].compute()
    # fishery by area: T1 has one water pixel (1,1) → 30 t; T2 table total 0
    assert f[1, 1] == pytest.approx(30.0) and f[:, :1].sum() == 0
    rows = rep.rows.set_index(["unit_id", "product"])
    assert rows.loc[("T1", "agricultural_products"), "quantity_unallocated"] == 0
    assert rows.loc[("T1", "agricultural_products"), "eligible_weight"] == pytest.approx(1.0 * 900)


def test_unit_without_eligible_pixels_is_a_residual_or_an_error():
    classes = np.full((2, 4), 3, dtype=np.int64)            # no water anywhere
    table = read_statistics(pd.DataFrame({"unit_id": ["T1"], "product": ["fishery_products"], "quantity": [5.0],
                                          "quantity_unit": ["t"]}), "t.csv")
    qty, _val, rep = allocate(table, _units(), "code", da.from_array(classes), -1,
                              {"fishery_products": [6]}, _grid(2, 4))
    assert float(qty["fishery_products"].compute().sum()) == 0.0
    assert rep.unallocated["quantity_unallocated"].tolist() == [5.0]
    assert "T1 have no eligible pixel" in rep.notes[0]
    with pytest.raises(TableError, match="no eligible pixel"):
        allocate(table, _units(), "code", da.from_array(classes), -1, {"fishery_products": [6]}, _grid(2, 4),
                 strict=True)


def test_table_errors_name_row_and_value():
    with pytest.raises(TableError, match=r"t.csv: column 'quantity' row 3 = -1.0 is negative"):
        read_statistics(pd.DataFrame({"unit_id": ["a", "b"], "product": ["x", "y"], "quantity": [1.0, -1.0],
                                      "quantity_unit": ["t", "t"]}), "t.csv")
    with pytest.raises(TableError, match="row 3: unit 'a' × product 'x' appears twice"):
        read_statistics(pd.DataFrame({"unit_id": ["a", "a"], "product": ["x", "x"], "quantity": [1.0, 2.0],
                                      "quantity_unit": ["t", "t"]}), "t.csv")


@pytest.mark.parametrize("chunk", [64, 100])
def test_service_mass_balance_numpy_equals_dask(tmp_zh, raster_writer, chunk):
    """150 × 130 px, 3 townships of unequal width; NDVI random; nodata classes sprinkled."""
    rng = np.random.default_rng(3)
    classes = rng.choice(np.array([3, 4, 6], dtype=np.uint8), size=(150, 130))
    classes[rng.random((150, 130)) < 0.02] = 255
    ndvi = rng.uniform(-0.1, 0.9, size=(150, 130)).astype(np.float32)
    raster_writer(tmp_zh / "lulc.tif", classes, nodata=255)
    raster_writer(tmp_zh / "ndvi.tif", ndvi, nodata=-2.0)
    edges = [0, 40, 95, 130]                                  # township column ranges
    gpd.GeoDataFrame({"code": ["A", "B", "C"], "name": ["甲镇", "乙镇", "丙街道"]},
                     geometry=[box(X0 + 30 * a, Y0 - 30 * 150, X0 + 30 * b, Y0) for a, b in zip(edges, edges[1:])],
                     crs=TEST_CRS).to_file(tmp_zh / "towns.gpkg")
    (tmp_zh / "stats.csv").write_text(textwrap.dedent("""\
        unit_id,product,quantity,quantity_unit,value,value_unit,price_year,source,confidence
        A,agricultural_products,1000,t,300,万元,2013,synthetic,✱
        B,agricultural_products,2000,t,500,万元,2013,synthetic,✱
        C,agricultural_products,500,t,100,万元,2013,synthetic,✱
        B,fishery_products,80,t,,,,synthetic,✱
    """), encoding="utf-8")
    (tmp_zh / "data_catalog.yaml").write_text(textwrap.dedent("""
        datasets:
          lulc: {kind: raster, uri: lulc.tif, categorical: true}
          ndvi: {kind: raster, uri: ndvi.tif}
          towns: {kind: vector, uri: towns.gpkg}
          stats: {kind: table, uri: stats.csv}
    """), encoding="utf-8")
    (tmp_zh / "run.yaml").write_text(textwrap.dedent(f"""
        region: t
        year: 2013
        grid: {{like: lulc}}
        chunk: {chunk}
        services:
          statistics_allocation:
            inputs: {{statistics: stats, units: towns, classes: lulc, weight: ndvi}}
            params: {{unit_id_field: code, eligible_classes: {{agricultural_products: [3], fishery_products: [6]}}}}
        zones:
          towns: {{dataset: towns, id_field: code, name_field: name, partition: true}}
    """), encoding="utf-8")
    assert validate_run(tmp_zh / "run.yaml") == []
    result = pipeline.run(tmp_zh / "run.yaml", tmp_zh / "ws")
    res = result.services["statistics_allocation"]
    assert res.totals["agricultural_products_total"][0] == pytest.approx(3500.0, rel=1e-6)
    assert res.totals["agricultural_products_value_total"][0] == pytest.approx(900 * 1e4, rel=1e-6)   # 万元 → CNY
    # fishery has no value in the table → priced by the valuation stage (no fishery price in mee2020)
    assert "fishery_products_value" not in res.outputs
    assert res.metadata["allocation"]["agricultural_products"]["residual"] == pytest.approx(0.0, abs=1e-3)
    # numpy reference of the whole array: town A, cropland pixels, weight = NDVI (> 0)
    with rasterio.open(res.outputs["agricultural_products"].path) as src:
        got = src.read(1)
    w = np.where((classes == 3) & (ndvi > 0), ndvi.astype(np.float64), 0.0)
    ref = np.zeros_like(w)
    for (a, b), total in zip(zip(edges, edges[1:]), (1000.0, 2000.0, 500.0)):
        ref[:, a:b] = w[:, a:b] / w[:, a:b].sum() * total
    np.testing.assert_allclose(got, ref.astype(np.float32), rtol=2e-6, atol=1e-9)
    zt = pd.read_csv(result.zonal_tables["towns"], encoding="utf-8-sig").set_index("code")
    assert zt.loc["B", "statistics_allocation.agricultural_products"] == pytest.approx(2000.0, rel=1e-6)
    assert zt.loc["B", "statistics_allocation.fishery_products"] == pytest.approx(80.0, rel=1e-6)
    gdf = gpd.read_parquet(tmp_zh / "ws" / "products" / "towns.parquet").set_index("zone_id")
    assert gdf.loc["C", "agricultural_products_value"] == pytest.approx(100 * 1e4, rel=1e-6)
    assert gdf.loc["C", "gep"] == pytest.approx(100 * 1e4, rel=1e-6)


def test_each_product_names_its_own_table(tmp_zh, raster_writer):
    """Districts table (agriculture) + scenic-spot table (tourism): each catalogue row names the table and the
    source note its product came from (not the last table read)."""
    classes = np.full((20, 20), 3, dtype=np.uint8)
    classes[:, 10:] = 6
    raster_writer(tmp_zh / "lulc.tif", classes, nodata=255)
    gpd.GeoDataFrame({"code": ["A"]}, geometry=[box(X0, Y0 - 600, X0 + 600, Y0)], crs=TEST_CRS).to_file(
        tmp_zh / "towns.gpkg")
    gpd.GeoDataFrame({"spot": ["S"]}, geometry=[box(X0 + 300, Y0 - 600, X0 + 600, Y0)], crs=TEST_CRS).to_file(
        tmp_zh / "spots.gpkg")
    (tmp_zh / "stats.csv").write_text(textwrap.dedent("""\
        unit_id,product,quantity,quantity_unit,value,value_unit,price_year,source,confidence
        A,agricultural_products,1000,t,300,万元,2013,farm census,✔
    """), encoding="utf-8")
    (tmp_zh / "spot_stats.csv").write_text(textwrap.dedent("""\
        unit_id,product,quantity,quantity_unit,value,value_unit,price_year,source,confidence
        S,tourism,5000,visit,200,万元,2013,tourism bureau,◐
    """), encoding="utf-8")
    (tmp_zh / "data_catalog.yaml").write_text(textwrap.dedent("""
        datasets:
          lulc: {kind: raster, uri: lulc.tif, categorical: true}
          towns: {kind: vector, uri: towns.gpkg}
          spots: {kind: vector, uri: spots.gpkg}
          stats: {kind: table, uri: stats.csv}
          spot_stats: {kind: table, uri: spot_stats.csv}
    """), encoding="utf-8")
    (tmp_zh / "run.yaml").write_text(textwrap.dedent("""
        region: t
        year: 2013
        grid: {like: lulc}
        chunk: 64
        services:
          statistics_allocation:
            inputs: {statistics: stats, units: towns, classes: lulc, spot_statistics: spot_stats, spots: spots}
            params: {unit_id_field: code, spot_id_field: spot,
                     eligible_classes: {agricultural_products: [3], tourism: [3, 6]}}
    """), encoding="utf-8")
    pipeline.run(tmp_zh / "run.yaml", tmp_zh / "ws")
    cat = pd.read_csv(tmp_zh / "ws" / "products" / "catalogue.csv", encoding="utf-8-sig")
    region = cat[cat["zone_set"] == "region"].set_index("product")
    assert region.loc["agricultural_products", "price_source"] == "stats.csv (farm census)"
    assert region.loc["agricultural_products", "confidence"] == "✔"
    assert region.loc["tourism", "price_source"] == "spot_stats.csv (tourism bureau)"
    assert region.loc["tourism", "confidence"] == "◐"
    assert region.loc["agricultural_products", "value_cny"] == pytest.approx(300 * 1e4, rel=1e-6)
    assert region.loc["tourism", "value_cny"] == pytest.approx(200 * 1e4, rel=1e-6)
