"""flood_regulation: the per-body formulas by hand (lake regression, reservoir share, marsh detention), water
bodies from the land cover with analyst points and polygons, storage spread over each body's pixels by area."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pytest
import shapely

from ecoraster.kernels.wetland import (
    lake_storage_m3,
    marsh_storage_m3,
    reservoir_storage_m3,
)
from ecoraster import pipeline
from ecoraster.pipeline import validate_run
from ecoraster.waterbodies import derive_bodies

from ..conftest import TEST_CRS, TEST_ORIGIN
from ._helpers import read, write_bands, write_run

ND = -9999.0
PX = 900.0  # m² of a 30 m pixel


def test_formulas_by_hand():
    # eastern plain lake of 10 km²: e^4.924 = 137.5455, 10^1.128 = 13.4276 → 1846.9 × 10⁴ m³ = 1.847e7 m³
    assert lake_storage_m3(10.0, 4.924, 1.128) == pytest.approx(1.847e7, rel=1e-3)
    assert lake_storage_m3(10.0, 4.924, 1.128) == pytest.approx(math.exp(4.924) * 10 ** 1.128 * 1e4, rel=1e-12)
    assert lake_storage_m3(10.0, 4.924, 1.128, turnovers=2.0) == pytest.approx(2 * 1.8469e7, rel=1e-3)
    assert lake_storage_m3(0.0, 4.924, 1.128) == 0.0
    # marsh of 2 km² × 0.3 m = 6e5 m³; with 0.5 m of soil and θs − θ = 0.45 − 0.30: + 2e6 × 0.075 = 1.5e5
    assert marsh_storage_m3(2e6) == pytest.approx(6e5)
    assert marsh_storage_m3(2e6, 0.3, 0.5, 0.45, 0.30) == pytest.approx(7.5e5)
    # reservoir of 1e8 m³ total capacity: 0.35 × 1e8
    assert reservoir_storage_m3(1e8) == pytest.approx(3.5e7)


def test_derive_bodies_patches_min_area_and_polygons():
    cls = np.full((6, 8), 52, np.int16)
    cls[0:3, 0:3] = 42          # lake patch, 9 px
    cls[4, 7] = 42              # lone lake pixel: below the minimum area → no body
    cls[0:2, 5:8] = 41          # marsh patch, 6 px
    cls[2, 4] = 41              # touches the marsh patch diagonally → same body (8-neighbour)
    cls[5, 0] = -1              # nodata
    areas = np.full(6, PX)
    b = derive_bodies(cls, -1, {41: "marsh", 42: "lake"}, areas, min_area_km2=5 * PX / 1e6)
    t = b.table
    assert list(t["type"]) == ["lake", "marsh"]          # in raster order of first appearance
    assert list(t["n_pixels"]) == [9, 7] and list(t["area_m2"]) == [9 * PX, 7 * PX]
    assert b.index[4, 7] == -1 and b.index[0, 0] == 0 and b.index[2, 4] == 1
    assert "1 derived patch" in b.notes[0]
    # an analyst polygon over the left half merges the lake and nothing else
    poly_idx = np.full(cls.shape, -1, np.int32)
    poly_idx[:, :4] = 0
    import pandas as pd
    b2 = derive_bodies(cls, -1, {41: "marsh", 42: "lake"}, areas, min_area_km2=5 * PX / 1e6,
                       analyst_index=poly_idx,
                       analyst=pd.DataFrame({"name": ["东湖"], "type": ["reservoir"], "capacity_m3": [1e5],
                                             "area_km2": [np.nan]}))
    assert list(b2.table["name"]) == ["东湖", "marsh_2"]   # analyst polygons first
    assert b2.table["n_pixels"].tolist() == [9, 7] and b2.table["origin"][0] == "analyst polygon"


def _qilihai_like(tmp):
    """A 20 × 20 grid of 30 m: reed marsh (41) 10 × 10 = 0.09 km², open water (42) 6 × 6 = 0.0324 km²,
    a reservoir (43) 4 × 5 = 0.018 km² named by a point with its capacity, a small pond patch (43, 2 px,
    below 0.01 km²), paddy around; two townships (left / right half)."""
    eco = np.full((20, 20), 51, np.uint8)
    eco[0:10, 0:10] = 41
    eco[12:18, 2:8] = 42
    eco[2:6, 13:18] = 43
    eco[15, 15:17] = 43
    eco[19, 19] = 255
    write_bands(tmp / "eco.tif", eco, nodata=255, dtype="uint8")
    x0, y0 = TEST_ORIGIN
    (tmp / "named.csv").write_text("name,type,x,y,capacity_m3\n"
                                   f"北三河水库,reservoir,{x0 + 15 * 30 + 5},{y0 - 3 * 30 - 5},100000\n",
                                   encoding="utf-8")
    towns = gpd.GeoDataFrame({"code": ["T1", "T2"], "name": ["潘庄镇", "七里海镇"]},
                             geometry=[shapely.box(x0, y0 - 600, x0 + 300, y0), shapely.box(x0 + 300, y0 - 600, x0 + 600, y0)],
                             crs=TEST_CRS)
    towns.to_file(tmp / "towns.gpkg", layer="towns")
    datasets = {"eco": {"kind": "raster", "uri": "eco.tif", "categorical": True},
                "named": {"kind": "table", "uri": "named.csv"},
                "towns": {"kind": "vector", "uri": "towns.gpkg"}}
    return eco, datasets


def test_service_qilihai_like_by_hand(tmp_zh):
    _eco, datasets = _qilihai_like(tmp_zh)
    cfg = write_run(tmp_zh, "flood_regulation", datasets,
                    {"ecosystem": "eco", "named_bodies": "named", "zones": "towns"}, year=2020)
    assert validate_run(cfg) == []
    res = pipeline.run(cfg, tmp_zh / "ws").services["flood_regulation"]
    out = read(res.outputs["flood_storage"].path)
    # marsh: 100 px × 900 m² = 90,000 m² × 0.3 m = 27,000 m³ → 270 m³ per pixel
    assert out[0, 0] == pytest.approx(270.0, rel=1e-6)
    assert out[0:10, 0:10].sum(dtype=np.float64) == pytest.approx(27000.0, rel=1e-6)
    # lake: A = 36 × 900 = 32,400 m² = 0.0324 km²; e^4.924 × 0.0324^1.128 × 10⁴ = 137.5455 × 0.02094 × 10⁴
    lake = math.exp(4.924) * 0.0324 ** 1.128 * 1e4
    assert lake == pytest.approx(28800, rel=0.01)
    assert out[12:18, 2:8].sum(dtype=np.float64) == pytest.approx(lake, rel=1e-6)
    # reservoir named by a point: 0.35 × 100,000 = 35,000 m³ over 20 px = 1,750 m³ per pixel
    assert out[3, 14] == pytest.approx(1750.0, rel=1e-6)
    # the 2-px pond (1,800 m² < 0.01 km²) is no body: 0; paddy 0; nodata stays nodata
    assert out[15, 15] == 0 and out[19, 0] == 0 and out[19, 19] == ND
    total = 27000.0 + lake + 35000.0
    assert res.totals["flood_storage_total"][0] == pytest.approx(total, rel=1e-6)
    bodies = gpd.read_file(tmp_zh / "ws" / "flood_regulation" / "water_bodies.gpkg")
    assert sorted(bodies["name"]) == ["lake_3", "marsh_1", "北三河水库"]
    row = bodies.set_index("name").loc["北三河水库"]
    assert row["type"] == "reservoir" and row["zones"] == "七里海镇" and "0.35" in row["method"]
    assert bodies.set_index("name").loc["marsh_1", "zones"] == "; ".join(sorted(["潘庄镇", "七里海镇"]))
    assert bodies.set_index("name").loc["marsh_1", "area_km2"] == pytest.approx(0.09)
    assert bodies.geometry.area.sum() == pytest.approx((100 + 36 + 20) * PX)
    ids = read(res.outputs["body_id"].path)
    assert set(np.unique(ids)) == {-1, 1, 2, 3}


def test_open_water_as_reservoir_and_bad_named_body(tmp_zh):
    _eco, datasets = _qilihai_like(tmp_zh)
    cfg = write_run(tmp_zh, "flood_regulation", datasets, {"ecosystem": "eco"},
                    params={"body_class_types": {41: "marsh", 42: "reservoir", 43: "pond"}, "min_area_km2": 0.001})
    res = pipeline.run(cfg, tmp_zh / "ws").services["flood_regulation"]
    out = read(res.outputs["flood_storage"].path)
    # 42 as a reservoir without a capacity → lake formula, said in the notes; pond 2 px: 1,800 m² × 0.3 = 540 m³
    assert out[12:18, 2:8].sum(dtype=np.float64) == pytest.approx(math.exp(4.924) * 0.0324 ** 1.128 * 1e4, rel=1e-6)
    assert any("without a total capacity" in n for n in res.notes)
    assert out[15, 15:17].sum(dtype=np.float64) == pytest.approx(540.0, rel=1e-6)
    (tmp_zh / "named.csv").write_text("name,type,x,y\n七里海,sea,0,0\n", encoding="utf-8")
    cfg = write_run(tmp_zh, "flood_regulation", datasets, {"ecosystem": "eco", "named_bodies": "named"})
    issues = validate_run(cfg)
    assert len(issues) == 1 and "type = 'sea'" in str(issues[0]) and "named.csv" in str(issues[0])


def test_analyst_polygon_merges_and_overrides(tmp_zh):
    _eco, datasets = _qilihai_like(tmp_zh)
    x0, y0 = TEST_ORIGIN
    # a polygon over the open water (rows 12-17, cols 2-7) and the 2-px pond (row 15, cols 15-16): one named
    # reservoir of 36 + 2 = 38 px with a given capacity; the marsh and the point-less reservoir stay derived
    poly = shapely.box(x0, y0 - 18 * 30, x0 + 18 * 30, y0 - 12 * 30)
    gpd.GeoDataFrame({"name": ["七里海水面"], "type": ["reservoir"], "capacity_m3": [2e6]}, geometry=[poly],
                     crs=TEST_CRS).to_file(tmp_zh / "bodies.gpkg", layer="bodies")
    datasets["bodies"] = {"kind": "vector", "uri": "bodies.gpkg"}
    cfg = write_run(tmp_zh, "flood_regulation", datasets, {"ecosystem": "eco", "bodies": "bodies"})
    assert validate_run(cfg) == []
    res = pipeline.run(cfg, tmp_zh / "ws").services["flood_regulation"]
    out = read(res.outputs["flood_storage"].path)
    # 0.35 × 2e6 = 700,000 m³ over 38 px of 900 m² → 18,421.05 m³ per pixel, pond pixels included
    assert out[12, 2] == pytest.approx(7e5 / 38, rel=1e-6) and out[15, 15] == pytest.approx(7e5 / 38, rel=1e-6)
    bodies = gpd.read_file(tmp_zh / "ws" / "flood_regulation" / "water_bodies.gpkg").set_index("name")
    assert bodies.loc["七里海水面", "origin"] == "analyst polygon" and bodies.loc["七里海水面", "n_pixels"] == 38
    # the unnamed reservoir patch (20 px) has no capacity: lake formula, and a note says so
    assert "reservoir without a capacity" in bodies.loc["reservoir_3", "method"]


def test_u_shaped_patch_is_one_body():
    # the two arms of a U meet only in the bottom row: the union-find must merge their provisional labels;
    # a diagonal touch joins (8-neighbour); another class next to it stays a body of its own
    cls = np.array([[42, 0, 42, 0, 41],
                    [42, 0, 42, 0, 41],
                    [42, 42, 42, 0, 0],
                    [0, 0, 0, 42, 0]], np.int16)
    b = derive_bodies(cls, -1, {41: "marsh", 42: "lake"}, np.full(4, 1.0), min_area_km2=0.0)
    assert b.table["n_pixels"].tolist() == [8, 2] and b.table["type"].tolist() == ["lake", "marsh"]
    assert set(b.index[cls == 42].tolist()) == {0} and set(b.index[cls == 41].tolist()) == {1}
