"""The 宁河区 / 崇明 configs run as soon as an analyst supplies their rasters and zone layers.

The repo's configs, catalogues and boundaries are copied to a temp tree; synthetic analyst files are dropped
at exactly the paths the region catalogue names (land cover in GEP classes at 100 m; 12-band monthly climate
and NDVI, annual P / AET, wind and concentrations at 1 km; townships splitting the district; one wetland
unit); then the unchanged config validates and runs every service, valuation, zones and products.
"""

import json
import shutil

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box

from ecoraster.datasets import Catalog
from ecoraster import pipeline
from ecoraster.pipeline import validate_run

from .conftest import REPO

#: bands and value range of each synthetic layer, by dataset id without region and year (plausible for
#: the north China plain: monthly NDVI, MJ/m², °C, mm; annual mm/yr; m/s; µg/m³)
LAYERS = {
    "ndvi_monthly": (12, 0.1, 0.8), "sol_monthly": (12, 200.0, 600.0), "t_monthly": (12, -4.0, 27.0),
    "p_monthly": (12, 5.0, 170.0), "pet_monthly": (12, 20.0, 160.0), "aet_monthly": (12, 10.0, 120.0),
    "p_annual": (1, 550.0, 650.0), "aet_annual": (1, 400.0, 520.0), "ndvi": (1, 0.2, 0.7),
    "wind": (1, 2.0, 3.5), "pm25": (1, 35.0, 55.0), "pm10": (1, 60.0, 90.0), "so2": (1, 8.0, 15.0),
    "no2": (1, 25.0, 40.0),
}


def _copy_repo_subset(dst, region):
    for rel in ["data_catalog.yaml", f"configs/{region}_2020.yaml", f"catalogs/{region}.yaml",
                f"data/boundaries/{region}_district.geojson", "configs/parameters/carbon_pools_gep_classes.csv"]:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, dst / rel)


def _write(path, bands, epsg, transform):
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=bands.shape[2], height=bands.shape[1], count=bands.shape[0],
                       dtype=bands.dtype, crs=f"EPSG:{epsg}", transform=transform,
                       nodata=0 if bands.dtype == np.uint8 else -9999.0) as dst:
        dst.write(bands)


def _supply_analyst_data(root, region, epsg):
    """Write a synthetic file at every raster / vector path of the region catalogue."""
    boundary = gpd.read_file(root / f"data/boundaries/{region}_district.geojson").to_crs(epsg)
    minx, miny, maxx, maxy = boundary.total_bounds
    rng = np.random.default_rng(1)
    catalog = Catalog.load(root / "catalogs" / f"{region}.yaml")
    for entry in catalog.datasets.values():
        if entry.kind != "raster":
            continue
        res = 100.0 if "lulc" in entry.id else 1000.0
        w, h = int((maxx - minx) // res) + 3, int((maxy - miny) // res) + 3
        transform = Affine(res, 0, minx - res, 0, -res, maxy + res)
        if "lulc" in entry.id:  # marsh, lake, paddy, dry cropland, built-up, urban green
            codes = np.array([41, 42, 51, 52, 62, 61], dtype=np.uint8)
            bands = codes[rng.integers(0, len(codes), size=(1, h, w))]
        else:
            n, lo, hi = LAYERS[entry.id.removeprefix(f"{region}_").removesuffix("_2020")]
            bands = rng.uniform(lo, hi, size=(n, h, w)).astype(np.float32)
        _write(entry.path, bands, epsg, transform)
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    quads = [box(minx, miny, cx, cy), box(cx, miny, maxx, cy), box(minx, cy, cx, maxy), box(cx, cy, maxx, maxy)]
    geom = boundary.geometry.iloc[0]
    towns = gpd.GeoDataFrame({"code": ["T1", "T2", "T3", "T4"], "name": ["甲镇", "乙镇", "丙镇", "丁镇"]},
                             geometry=[geom.intersection(q) for q in quads], crs=epsg)
    towns.to_file(root / f"data/{region}/townships.gpkg")
    _supply_tables(root, region)
    units = gpd.GeoDataFrame({"unit_id": ["W1"], "name": ["核心区"]},
                             geometry=[box(cx - 2000, cy - 2000, cx + 2000, cy + 2000)], crs=epsg)
    units.to_file(root / f"data/{region}/wetland_units.gpkg")
    if region == "chongming":  # coastal protection: a coastline and a 500 m marsh belt along part of it
        from shapely.geometry import LineString

        gpd.GeoDataFrame(geometry=[LineString([(minx, miny), (maxx, miny)])], crs=epsg).to_file(
            root / f"data/{region}/coastline.gpkg")
        gpd.GeoDataFrame(geometry=[box(cx - 3000, miny - 500, cx + 3000, miny)], crs=epsg).to_file(
            root / f"data/{region}/marsh_2020.gpkg")


def _supply_tables(root, region):
    """The wetland services' tables: named bodies (header only: keep the derived bodies), township loads, a 2020
    daily temperature series (hot in July and August)."""
    (root / f"data/{region}/water").mkdir(parents=True, exist_ok=True)
    (root / f"data/{region}/water/water_bodies_named_2020.csv").write_text(
        "name,type,x,y,crs,capacity_m3,area_km2\n", encoding="utf-8")
    pd.DataFrame({"unit_id": ["T1", "T2", "T3", "T4"] * 2, "pollutant": ["cod"] * 4 + ["tp"] * 4,
                  "load_t": [50.0, 5000.0, 50.0, 5000.0, 1.0, 100.0, 1.0, 100.0]}).to_csv(
        root / f"data/{region}/water/pollutant_loads_2020.csv", index=False)
    dates = pd.date_range("2020-01-01", "2020-12-31", freq="D")
    (root / f"data/{region}/climate").mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "tavg_degC": np.where(dates.month.isin([7, 8]), 27.5, 15.0)}).to_csv(
        root / f"data/{region}/climate/daily_temperature_2020.csv", index=False)


@pytest.mark.parametrize("region,epsg", [("ninghe", 4527), ("chongming", 4529)])
def test_region_config_validates_once_data_is_supplied(tmp_zh, region, epsg):
    _copy_repo_subset(tmp_zh, region)
    cfg = tmp_zh / "configs" / f"{region}_2020.yaml"
    missing = validate_run(cfg)
    assert missing and all("file not found" in str(i) for i in missing)
    _supply_analyst_data(tmp_zh, region, epsg)
    assert validate_run(cfg) == []


@pytest.mark.slow
def test_ninghe_full_run_with_supplied_data(tmp_zh):
    _copy_repo_subset(tmp_zh, "ninghe")
    _supply_analyst_data(tmp_zh, "ninghe", 4527)
    cfg = tmp_zh / "configs" / "ninghe_2020.yaml"
    result = pipeline.run(cfg, tmp_zh / "ws")
    assert set(result.services) == {"water_conservation", "carbon_sequestration", "air_purification",
                                    "carbon_storage", "flood_regulation", "water_purification", "climate_regulation"}
    wc = result.services["water_conservation"].outputs["water_conservation_m3"]
    with rasterio.open(wc.path) as src:
        assert src.crs.to_epsg() == 4527 and src.res == (30.0, 30.0)
    assert wc.total > 0
    assert result.services["water_conservation"].outputs["water_conservation_m3_value"].total > 0
    district = pd.read_csv(result.zonal_tables["district"], encoding="utf-8-sig")
    towns = pd.read_csv(result.zonal_tables["townships"], encoding="utf-8-sig")
    col = "carbon_storage.c_storage_bas"
    # the townships partition the district: their sums add up to the district's (float64)
    assert towns[col].sum() == pytest.approx(district[col].sum(), rel=1e-9)
    assert set(towns["name"]) == {"甲镇", "乙镇", "丙镇", "丁镇"}
    manifest = json.loads(result.manifest_path.read_text(encoding="utf-8"))
    assert abs(manifest["mass_balance"]["townships"][col]["rel_diff"]) < 1e-9  # checked and reported every run
    assert (tmp_zh / "ws" / "products" / "catalogue.csv").exists()
    assert (tmp_zh / "ws" / "products" / "wetland_units.gpkg").exists()
