"""The 宁河区 / 崇明 configs run as soon as an analyst supplies their rasters and zone layers.

The repo's configs, catalogues and boundaries are copied to a temp tree; synthetic analyst files
(land cover in GEP classes at 100 m, townships splitting the district, one wetland unit) are dropped
at the paths the region catalogue names; then the unchanged config validates and runs.
"""

import shutil

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box

from ecoraster.run import execute_run, validate_run

from .conftest import REPO


def _copy_repo_subset(dst, region):
    for rel in ["data_catalog.yaml", f"configs/{region}_2020.yaml", f"catalogs/{region}.yaml",
                f"data/boundaries/{region}_district.geojson", "configs/parameters/carbon_pools_gep_classes.csv"]:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, dst / rel)


@pytest.mark.parametrize("region,epsg,unit_layer", [("ninghe", 4527, "wetland_units"),
                                                    ("chongming", 4529, "wetland_units")])
def test_region_config_runs_once_data_is_supplied(tmp_zh, region, epsg, unit_layer):
    _copy_repo_subset(tmp_zh, region)
    cfg = tmp_zh / "configs" / f"{region}_2020.yaml"
    missing = validate_run(cfg)
    assert len(missing) == 4 and all("file not found" in str(i) for i in missing)

    (tmp_zh / "data" / region).mkdir()
    boundary = gpd.read_file(tmp_zh / f"data/boundaries/{region}_district.geojson").to_crs(epsg)
    minx, miny, maxx, maxy = boundary.total_bounds
    rng = np.random.default_rng(1)
    codes = np.array([41, 42, 51, 52, 62, 61])
    w, h = int((maxx - minx) // 100) + 2, int((maxy - miny) // 100) + 2
    transform = Affine(100, 0, minx - 100, 0, -100, maxy + 100)
    for year in (2015, 2020):
        lulc = codes[rng.integers(0, len(codes), size=(h, w))].astype(np.uint8)
        with rasterio.open(tmp_zh / f"data/{region}/lulc_{year}.tif", "w", driver="GTiff", width=w, height=h,
                           count=1, dtype="uint8", crs=f"EPSG:{epsg}", transform=transform, nodata=0) as dst:
            dst.write(lulc, 1)
    # townships: the district cut into 4 quadrants (a partition); one wetland unit in the middle
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    quads = [box(minx, miny, cx, cy), box(cx, miny, maxx, cy), box(minx, cy, cx, maxy), box(cx, cy, maxx, maxy)]
    geom = boundary.geometry.iloc[0]
    towns = gpd.GeoDataFrame({"code": ["T1", "T2", "T3", "T4"], "name": ["甲镇", "乙镇", "丙镇", "丁镇"]},
                             geometry=[geom.intersection(q) for q in quads], crs=epsg)
    towns.to_file(tmp_zh / f"data/{region}/townships.gpkg")
    units = gpd.GeoDataFrame({"unit_id": ["W1"], "name": ["核心区"]},
                             geometry=[box(cx - 2000, cy - 2000, cx + 2000, cy + 2000)], crs=epsg)
    units.to_file(tmp_zh / f"data/{region}/{unit_layer}.gpkg")

    assert validate_run(cfg) == []
    result = execute_run(cfg, tmp_zh / "ws")
    assert result.services["carbon_storage"].outputs["c_storage_bas"].total > 0
    with rasterio.open(result.services["carbon_storage"].outputs["c_storage_bas"].path) as src:
        assert src.crs.to_epsg() == epsg and src.res == (30.0, 30.0)
    district = pd.read_csv(result.zonal_tables["district"], encoding="utf-8-sig")
    towns_t = pd.read_csv(result.zonal_tables["townships"], encoding="utf-8-sig")
    col = "carbon_storage.c_storage_bas"
    # the townships partition the district: their sums add up to the district's (float64)
    assert towns_t[col].sum() == pytest.approx(district[col].sum(), rel=1e-9)
    assert set(towns_t["name"]) == {"甲镇", "乙镇", "丙镇", "丁镇"}
    import json

    balance = json.loads(result.manifest_path.read_text(encoding="utf-8"))["mass_balance"]["townships"]
    assert abs(balance["carbon_storage.c_storage_bas"]["rel_diff"]) < 1e-9  # checked and reported every run
