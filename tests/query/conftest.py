"""A small run workspace that follows the run contract, built from the foundation's
carbon_storage service (the parcel table is not produced by real runs yet).

Grid: 12 rows × 16 cols of 30 m pixels (0.09 ha) at TEST_ORIGIN in EPSG:4527.
Land cover: class 1 (86 Mg C/ha → 7.74 Mg C per pixel) in cols 0–11, class 2
(28 Mg C/ha → 2.52 Mg C per pixel) in cols 12–15, nodata at (row 11, col 0).

Products (fake values written here, only their arithmetic matters):
- ``carbon_storage``: physical = c_storage_bas (Mg C per pixel); value = 100 CNY per Mg C
  → 774 / 252 CNY per pixel; marked *contested*.
- ``water_conservation``: 10 m3 per valid pixel, value 6 CNY/m3 → 60 CNY per pixel.

Parcels: A = cols 0–7 × rows 0–5 (48 px class 1); B = cols 8–15 × rows 0–5 (24 px class 1 +
24 px class 2); C = cols 0–15 × rows 6–11 (71 px class 1 + 1 nodata + 24 px class 2).
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from shapely.geometry import box

from ecoraster.query.synthetic import write_parcel_table
from ecoraster import pipeline

from ..conftest import TEST_CRS, TEST_ORIGIN, write_raster
from ..test_carbon_storage import _setup

RES = 30.0
X0, Y0 = TEST_ORIGIN
PX_C1, PX_C2 = 7.74, 2.52  # Mg C per pixel: 86 × 0.09, 28 × 0.09
PRICE_C = 100.0  # CNY per Mg C (fake)
WATER_PX, WATER_PRICE = 10.0, 6.0  # m3 per pixel, CNY per m3 (fake)


def cell_box(c0: float, r0: float, c1: float, r1: float):
    """A box from pixel column/row edges (c0, r0) to (c1, r1) in the grid CRS."""
    return box(X0 + c0 * RES, Y0 - r1 * RES, X0 + c1 * RES, Y0 - r0 * RES)


def feature(geom, crs: str | None = TEST_CRS, name: str | None = None) -> dict:
    from shapely.geometry import mapping

    out = {"type": "Feature", "properties": {"name": name} if name else {}, "geometry": mapping(geom)}
    if crs:
        out["crs"] = {"type": "name", "properties": {"name": crs}}
    return out


def _build(root: Path) -> Path:
    lulc = np.ones((12, 16), np.uint8)
    lulc[:, 12:] = 2
    lulc[11, 0] = 255
    cfg = _setup(root, write_raster, lulc)
    ws = root / "ws"
    pipeline.run(cfg, ws)
    manifest = json.loads((ws / "run.json").read_text(encoding="utf-8"))
    out = manifest["results"]["carbon_storage"]["outputs"]["c_storage_bas"]
    out["product"] = "carbon_storage"
    carbon_path = ws / out["path"]  # run.json paths are relative to the workspace
    with rasterio.open(carbon_path) as src:
        carbon = src.read(1).astype(np.float64)
        nodata = src.nodata
    valid = carbon != nodata
    value = np.where(valid, carbon * PRICE_C, -9999.0).astype(np.float32)
    water = np.where(valid, WATER_PX, -9999.0).astype(np.float32)
    water_value = np.where(valid, WATER_PX * WATER_PRICE, -9999.0).astype(np.float32)
    paths = {}
    for name, arr in (("carbon_storage_value", value), ("wc_qty", water), ("wc_value", water_value)):
        (ws / "valuation").mkdir(exist_ok=True)
        paths[name] = write_raster(ws / "valuation" / f"{name}.tif", arr, nodata=-9999.0, res=RES)

    def rec(name, units, kind, product):
        return {"id": name, "path": str(paths[name]), "units": units, "kind": kind, "per": "pixel",
                "nodata": -9999.0, "total": 0.0, "valid_pixels": 0, "product": product}

    manifest["results"]["valuation"] = {"service": "valuation", "outputs": {
        "carbon_storage_value": rec("carbon_storage_value", "CNY", "value", "carbon_storage")}}
    manifest["results"]["water_conservation"] = {"service": "water_conservation", "outputs": {
        "wc_qty": rec("wc_qty", "m3", "physical", "water_conservation"),
        "wc_value": rec("wc_value", "CNY", "value", "water_conservation")}}
    manifest["config"]["price_year"] = 2020
    (ws / "run.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    parcels = gpd.GeoDataFrame({"parcel_id": ["A", "B", "C"], "name": ["七里海一号", "七里海二号", "湿地三号"]},
                               geometry=[cell_box(0, 0, 8, 6), cell_box(8, 0, 16, 6), cell_box(0, 6, 16, 12)],
                               crs=TEST_CRS)
    layers = [{"product": "carbon_storage", "kind": "physical", "path": carbon_path, "units": "Mg C"},
              {"product": "carbon_storage", "kind": "value", "path": paths["carbon_storage_value"], "units": "CNY"},
              {"product": "water_conservation", "kind": "physical", "path": paths["wc_qty"], "units": "m3"},
              {"product": "water_conservation", "kind": "value", "path": paths["wc_value"], "units": "CNY"}]
    write_parcel_table(ws, parcels, layers, region="test", year=2020, price_year=2020, profile="test",
                       contested=["carbon_storage"])
    return ws


@pytest.fixture(scope="session")
def query_ws(tmp_path_factory) -> Path:
    """The run workspace described in this module's docstring (built once per session)."""
    return _build(tmp_path_factory.mktemp("查询_工作区"))
