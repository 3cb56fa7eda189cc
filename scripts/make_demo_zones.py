"""Make the demo zones of central Wuhan (deterministic; run from the repo root):

1. ``data/sample/wuhan/parcels_synthetic.gpkg`` — SYNTHETIC Voronoi "parcels" (no real cadastre
   exists for the demo): a few thousand polygons of all sizes, clusters of them smaller than a
   30 m pixel, tiling a rectangle over Wuchang / East Lake, CGCS2000 / 3-degree GK zone 38
   (EPSG:4526). Fields ``parcel_id``, ``name``, ``synthetic`` (= 1).
2. ``data/sample/wuhan/wetland_units.gpkg`` — 东湖 (East Lake) as a named wetland unit: the
   connected open-water component (4-connectivity) of
   ``../shared/data/real/wuhan-lulc-30m-plus/WaterWuhan.tif`` (value 0 = open water) that holds
   114.40 E, 30.56 N, polygonised on its own 30 m grid (EPSG:32649). Source: HPSCIL/mcPLUS
   ``Data/WaterWuhan.tif`` @ 4d0aaf8e (PLUS model test data; cite Liu et al. 2019 and Liang et
   al. 2021). Skipped when ../shared is absent.

Usage: ``python scripts/make_demo_zones.py [--parcels N] [--seed S]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Transformer

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "data" / "sample" / "wuhan"
WATER = REPO.parent / "shared" / "data" / "real" / "wuhan-lulc-30m-plus" / "WaterWuhan.tif"
PARCEL_CRS = "EPSG:4526"
#: lon/lat rectangle of the synthetic parcels (Wuchang, East Lake, Hongshan)
BOX_LONLAT = (114.28, 30.50, 114.44, 30.61)
EAST_LAKE_POINT = (114.40, 30.56)


def synthetic_parcels(n: int, seed: int) -> gpd.GeoDataFrame:
    """Voronoi cells of ``n`` seeded points inside the rectangle: 70 % spread evenly, 25 % in
    dense town-like clusters (sizes of 0.1–1 ha), 5 % in very tight clusters (cells of a few
    hundred m², smaller than a 30 m pixel)."""
    rng = np.random.default_rng(seed)
    to_gk = Transformer.from_crs("EPSG:4490", PARCEL_CRS, always_xy=True)
    x0, y0 = to_gk.transform(BOX_LONLAT[0], BOX_LONLAT[1])
    x1, y1 = to_gk.transform(BOX_LONLAT[2], BOX_LONLAT[3])
    frame = shapely.box(x0, y0, x1, y1)
    n_even, n_town = int(n * 0.70), int(n * 0.25)
    n_tight = n - n_even - n_town
    pts = [np.column_stack([rng.uniform(x0, x1, n_even), rng.uniform(y0, y1, n_even)])]
    centres = np.column_stack([rng.uniform(x0 + 500, x1 - 500, 12), rng.uniform(y0 + 500, y1 - 500, 12)])
    pts.append(centres[rng.integers(0, 12, n_town)] + rng.normal(0, 250, (n_town, 2)))
    tight = np.column_stack([rng.uniform(x0 + 200, x1 - 200, 6), rng.uniform(y0 + 200, y1 - 200, 6)])
    pts.append(tight[rng.integers(0, 6, n_tight)] + rng.normal(0, 25, (n_tight, 2)))
    points = np.vstack(pts)
    inside = shapely.contains_xy(frame, points[:, 0], points[:, 1])
    points = np.round(points[inside], 2)
    points = np.unique(points, axis=0)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(points), extend_to=frame))
    cells = shapely.intersection(cells, frame)
    cells = cells[~shapely.is_empty(cells)]
    # order deterministically (north-west first) and name them
    c = shapely.centroid(cells)
    order = np.lexsort((shapely.get_x(c), -np.round(shapely.get_y(c), -1)))
    cells = shapely.set_precision(cells[order], 0.01)
    ids = [f"P{i:05d}" for i in range(1, len(cells) + 1)]
    return gpd.GeoDataFrame({"parcel_id": ids, "name": [f"合成地块{i}" for i in ids], "synthetic": 1},
                            geometry=cells, crs=PARCEL_CRS)


def east_lake() -> gpd.GeoDataFrame:
    """The connected open-water component of WaterWuhan.tif holding 114.40 E, 30.56 N."""
    import rasterio
    from rasterio import features
    from scipy import ndimage

    with rasterio.open(WATER) as src:
        mask = src.read(1) == 0
        to_utm = Transformer.from_crs("EPSG:4326", src.crs, always_xy=True)
        x, y = to_utm.transform(*EAST_LAKE_POINT)
        row, col = src.index(x, y)
        labels, _ = ndimage.label(mask)                   # 4-connectivity
        lake = labels == labels[row, col]
        if not lake[row, col]:
            raise SystemExit(f"{WATER}: {EAST_LAKE_POINT} is not open water")
        polys = [shapely.geometry.shape(g) for g, v in features.shapes(lake.astype(np.uint8), mask=lake,
                                                                       transform=src.transform) if v == 1]
        geom = shapely.union_all(polys)
        crs = src.crs
    area_km2 = geom.area / 1e6
    return gpd.GeoDataFrame({
        "unit_id": ["donghu"], "name": ["东湖"], "kind": ["lake wetland (湖泊湿地)"],
        "pixels": [int(lake.sum())], "area_km2": [round(area_km2, 3)],
        "source": ["connected open-water component of WaterWuhan.tif (HPSCIL/mcPLUS Data/WaterWuhan.tif "
                   "@ 4d0aaf8e) holding 114.40E 30.56N, 4-connectivity, 30 m"],
    }, geometry=[geom], crs=crs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parcels", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=20131)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    parcels = synthetic_parcels(args.parcels, args.seed)
    path = OUT / "parcels_synthetic.gpkg"
    path.unlink(missing_ok=True)
    parcels.to_file(path, driver="GPKG", layer="parcels_synthetic")
    areas = parcels.area
    print(f"{path}: {len(parcels)} synthetic parcels, area {areas.min():.1f} … {areas.max() / 1e4:.1f} ha, "
          f"{int((areas < 900).sum())} smaller than a 30 m pixel, {path.stat().st_size / 1e6:.2f} MB")
    if WATER.exists():
        lake = east_lake()
        path = OUT / "wetland_units.gpkg"
        path.unlink(missing_ok=True)
        lake.to_file(path, driver="GPKG", layer="wetland_units")
        print(f"{path}: 东湖 {lake.area_km2.iloc[0]} km² ({lake.pixels.iloc[0]} px), "
              f"{path.stat().st_size / 1e6:.2f} MB")
    else:
        print(f"{WATER} not found: wetland_units.gpkg not rebuilt")


if __name__ == "__main__":
    main()
