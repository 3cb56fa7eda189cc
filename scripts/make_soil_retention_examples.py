"""Make the two small input sets of the InVEST SDR comparison (soil_retention / invest_sdr).

Both sets have the five file names InVEST SDR and ``configs/examples/soil_retention_invest.yaml``
read (dem.tif, erosivity.tif, erodibility.tif, lulc.tif, biophysical_table.csv) plus a
watersheds.gpkg covering the DEM:

- ``data/examples/soil_retention/`` — Wuhan: 360 × 360 px at 30 m (EPSG:32649), a crop of the
  real SRTM DEM and the real 2013 PLUS land cover (codes 1..7) of the hills west of 汉阳
  (../shared/data/real/wuhan-dem-soil-pop-30m-plus, wuhan-lulc-30m-plus); erosivity and
  erodibility SYNTHETIC (smooth fields of plausible magnitude, see the README written here).
- ``data/examples/soil_retention_texas/`` — Texas: the pysheds sample DEM
  (../shared/data/real/pysheds-dem-texas) reprojected to UTM 14N at 60 m; land cover, erosivity
  and erodibility SYNTHETIC, land-cover codes 10..50 (not the Wuhan legend).

Usage: python scripts/make_soil_retention_examples.py [--shared ../shared]
Then scripts/run_invest_sdr_oracle.py (in the InVEST venv) writes InVEST's expected outputs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.warp import Resampling, calculate_default_transform, reproject
from rasterio.windows import Window
from shapely.geometry import box

REPO = Path(__file__).resolve().parents[1]
NODATA_F = -1.0


def _write(path: Path, arr: np.ndarray, transform, crs, nodata, dtype) -> None:
    with rasterio.open(path, "w", driver="GTiff", width=arr.shape[1], height=arr.shape[0], count=1,
                       dtype=dtype, crs=crs, transform=transform, nodata=nodata, tiled=True,
                       blockxsize=256, blockysize=256, compress="deflate",
                       predictor=3 if dtype == "float32" else 2) as dst:
        dst.write(arr.astype(dtype), 1)


def _smooth_field(shape, lo, hi, seed, waves=3):
    """A smooth synthetic field between lo and hi: a gradient plus a few sine waves."""
    rng = np.random.default_rng(seed)
    r, c = np.mgrid[0:shape[0], 0:shape[1]] / max(shape)
    f = 0.5 * r + 0.3 * c
    for _ in range(waves):
        kx, ky, ph = rng.uniform(1, 4), rng.uniform(1, 4), rng.uniform(0, 6.28)
        f = f + 0.15 * np.sin(6.28 * (kx * c + ky * r) + ph)
    f = (f - f.min()) / (f.max() - f.min())
    return lo + (hi - lo) * f


def _common(folder: Path, dem, lulc, transform, crs, codes_table: str, seed: int,
            r_range, k_range) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / "dem.tif", dem, transform, crs, -9999, "int16")
    _write(folder / "lulc.tif", lulc, transform, crs, 255, "uint8")
    _write(folder / "erosivity.tif", np.round(_smooth_field(dem.shape, *r_range, seed)), transform, crs, NODATA_F, "float32")
    _write(folder / "erodibility.tif", np.round(_smooth_field(dem.shape, *k_range, seed + 1), 4), transform, crs, NODATA_F,
           "float32")
    (folder / "biophysical_table.csv").write_text(codes_table, encoding="utf-8")
    bounds = rasterio.transform.array_bounds(dem.shape[0], dem.shape[1], transform)
    gpd.GeoDataFrame({"ws_id": [1]}, geometry=[box(*bounds)],
                     crs=crs).to_file(folder / "watersheds.gpkg", driver="GPKG")


WUHAN_TABLE = """lucode,description,usle_c,usle_p
1,grassland,0.04,1
2,deciduous forest,0.006,1
3,cropland (mostly paddy),0.23,0.15
4,urban,0.01,1
5,bare land,0.7,1
6,water,0,1
7,evergreen forest,0.004,1
"""

TEXAS_TABLE = """lucode,description,usle_c,usle_p
10,rangeland,0.08,1
20,woodland,0.01,1
30,cropland,0.3,0.5
40,built-up,0.01,1
50,water,0,1
"""


def wuhan(shared: Path) -> None:
    win = Window(510, 900, 360, 360)  # col_off, row_off, width, height: hills south-west of 汉阳 (97 % valid)
    with rasterio.open(shared / "data/real/wuhan-dem-soil-pop-30m-plus/wh_df_dem.tif") as src:
        dem = src.read(1, window=win)
        transform = src.window_transform(win)
        crs = src.crs
    with rasterio.open(shared / "data/real/wuhan-lulc-30m-plus/wh2013_refy.tif") as src:
        lulc = src.read(1, window=win)
        lulc = np.where((lulc >= 1) & (lulc <= 7), lulc, 255)
    _common(REPO / "data/examples/soil_retention", dem, lulc, transform, crs, WUHAN_TABLE, 14,
            (4200.0, 5600.0), (0.025, 0.045))


def texas(shared: Path) -> None:
    with rasterio.open(shared / "data/real/pysheds-dem-texas/dem.tif") as src:
        dst_crs = "EPSG:32614"
        transform, width, height = calculate_default_transform(src.crs, dst_crs, src.width, src.height,
                                                               *src.bounds, resolution=60.0)
        dem = np.full((height, width), -9999, dtype=np.float32)
        reproject(rasterio.band(src, 1), dem, dst_transform=transform, dst_crs=dst_crs,
                  resampling=Resampling.bilinear, src_nodata=src.nodata, dst_nodata=-9999)
    # the largest centred window free of the reprojection's nodata margins
    valid = dem != -9999
    h, w = dem.shape
    for k in range(1, min(h, w) // 2):
        r0, r1, c0, c1 = k, h - k, k, w - k
        if valid[r0:r1, c0:c1].all():
            break
    dem = np.round(dem[r0:r1, c0:c1])
    transform = transform * rasterio.Affine.translation(c0, r0)
    z = (dem - dem.min()) / (dem.max() - dem.min())
    lulc = np.select([z < 0.08, z < 0.3, z < 0.55, z < 0.7], [50, 30, 10, 40], 20).astype(np.uint8)
    _common(REPO / "data/examples/soil_retention_texas", dem, lulc, transform, dst_crs, TEXAS_TABLE, 7,
            (2500.0, 3800.0), (0.02, 0.05))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    args = ap.parse_args()
    shared = Path(args.shared)
    wuhan(shared)
    texas(shared)


if __name__ == "__main__":
    main()
