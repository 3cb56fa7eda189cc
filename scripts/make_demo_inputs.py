"""Make the bundled demo's 1 km stand-in inputs for central Wuhan (data/sample/wuhan/climate/).

The project's reachable data has real 30 m land cover, a DEM and CNEMC stations over Wuhan, but no
gridded climate, radiation or NDVI there. This script writes small 1 km rasters on a grid over the
demo extent (EPSG:32649), each tagged with its units and source:

- monthly precipitation, temperature, solar radiation and ET0 (12 bands) and annual sums: Wuhan's
  monthly climate normals, uniform in space (configs/parameters/demo_wuhan_climate_normals.csv, ✱);
- monthly NDVI (12 bands) and annual mean NDVI, and annual actual ET: class-typical values of the
  GEP classes averaged over the real 30 m land cover of 2013 inside each 1 km cell
  (configs/parameters/demo_class_ndvi_aet.csv, ✱) — a stand-in for a MOD13A3-like product;
- PM2.5, PM10, SO2 and NO2 concentrations (µg/m³): the spatial pattern and the pollutant ratios of the
  real CNEMC daily means of 2017-04-11 at the stations inside Wuhan, interpolated by IDW
  (ecoraster.ingest.monitoring), scaled so that the PM2.5 grid's mean equals Wuhan's real CNEMC annual
  mean PM2.5 of 2014 (the observed year nearest to 2013; shared/data/real/cnemc_pm25_city_daily_2014_2016).
  The level of PM2.5 is observed; the pattern, and PM10 / SO2 / NO2 scaled by the same factor, are
  stand-ins. This part needs ../shared; the written files are committed so the demo does not.

Run from the repository root: ``.venv/bin/python scripts/make_demo_inputs.py`` (``--air`` remakes only
the concentration grids).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.enums import Resampling

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ecoraster.grid import Grid  # noqa: E402
from ecoraster.ingest.landcover import reclassify_array  # noqa: E402
from ecoraster.tables import read_table  # noqa: E402

OUT = REPO / "data" / "sample" / "wuhan" / "climate"
SHARED = Path(os.environ.get("ECORASTER_SHARED", REPO.parent / "shared"))  # ../shared beside the clone
LULC = REPO / "data" / "sample" / "wuhan" / "wh2013_refy.tif"
NORMALS = REPO / "configs" / "parameters" / "demo_wuhan_climate_normals.csv"
CLASS_TABLE = REPO / "configs" / "parameters" / "demo_class_ndvi_aet.csv"
CNEMC = SHARED / "data" / "real" / "china-aq-stations-cnemc-2017" / "20170411_daily_city_obs.txt"
CITY_PM25 = (SHARED / "data" / "real" / "cnemc_pm25_city_daily_2014_2016"
             / "pm25_daily_wuhan_tianjin_shanghai_2014_2016.csv")
PM25_YEAR = 2014  # the observed year nearest to the demo's 2013
DISTRICTS = REPO / "data" / "sample" / "wuhan" / "wuhan_districts.geojson"
NODATA = -9999.0
RES = 1000.0


def demo_grid() -> Grid:
    with rasterio.open(LULC) as src:
        return Grid.from_bounds(src.crs, tuple(src.bounds), RES)


def write(path: Path, bands: np.ndarray, grid: Grid, units: str, description: str, source: str) -> None:
    bands = np.atleast_3d(bands.T).T if bands.ndim == 2 else bands
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=grid.width, height=grid.height, count=bands.shape[0],
                       dtype="float32", crs=grid.crs, transform=grid.transform, nodata=NODATA,
                       compress="deflate", predictor=3, tiled=False) as dst:
        dst.write(bands.astype(np.float32))
        for b in range(bands.shape[0]):
            dst.set_band_unit(b + 1, units)
            dst.set_band_description(b + 1, description if bands.shape[0] == 1 else f"{description}, month {b + 1}")
        dst.update_tags(units=units, source=source, made_by="scripts/make_demo_inputs.py")
    print(f"-> {path.relative_to(REPO)} {bands.shape}")


def class_fractions(grid: Grid, codes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Share of each GEP class in every 1 km cell (and the valid share), from the 30 m land cover."""
    with rasterio.open(LULC) as src:
        lulc = src.read(1)
        nodata = src.nodata
        src_transform = src.transform
    gep = reclassify_array(lulc, "wuhan_plus", src_nodata=nodata)
    shares = []
    from rasterio.warp import reproject

    for code in [*codes, None]:
        mask = (gep != 0) if code is None else (gep == code)
        dst = np.zeros(grid.shape, dtype=np.float64)
        reproject(mask.astype(np.float64), dst, src_transform=src_transform, src_crs=grid.crs,
                  dst_transform=grid.transform, dst_crs=grid.crs, resampling=Resampling.average)
        shares.append(dst)
    return np.array(shares[:-1]), shares[-1]


def city_annual_pm25(path: Path, city: str, year: int) -> tuple[float, int]:
    """Annual mean PM2.5 (µg/m³) of ``city`` in ``year`` from the CNEMC city-daily table, and the day count."""
    table = pd.read_csv(path)
    rows = table[(table["City"] == city) & (table["Year"] == year)]["PM2.5"].dropna()
    if len(rows) < 300:
        raise SystemExit(f"{path}: {city} {year} has {len(rows)} daily PM2.5 values (< 300): no annual mean")
    return float(rows.mean()), int(len(rows))


def main() -> None:
    grid = demo_grid()
    if "--air" in sys.argv[1:]:
        write_concentrations(grid)
        return
    normals = read_table(NORMALS)
    src_normals = "configs/parameters/demo_wuhan_climate_normals.csv (Wuhan monthly normals, uniform; ✱)"
    ones = np.ones(grid.shape)
    for column, name, units, desc in [
        ("precipitation_mm", "precipitation", "mm", "precipitation"),
        ("temperature_degc", "temperature", "degC", "mean air temperature"),
        ("solar_radiation_mj_m2", "solar_radiation", "MJ/m2", "global solar radiation"),
        ("et0_mm", "et0", "mm", "reference evapotranspiration ET0"),
    ]:
        monthly = np.stack([v * ones for v in normals[column].to_numpy(float)])
        write(OUT / f"{name}_monthly.tif", monthly, grid, units, f"{desc} (monthly normal)", src_normals)
        if units != "degC":
            write(OUT / f"{name}_annual.tif", monthly.sum(axis=0), grid, f"{units}/yr", f"annual {desc}", src_normals)

    table = read_table(CLASS_TABLE)
    codes = table["gep_code"].astype(int).tolist()
    shares, valid = class_fractions(grid, codes)
    with np.errstate(invalid="ignore", divide="ignore"):
        weights = np.where(valid > 0, shares / valid, np.nan)
    src_class = "class-typical values (configs/parameters/demo_class_ndvi_aet.csv, ✱) averaged over 2013 land cover"
    ndvi = np.stack([np.nansum(weights * table[f"ndvi_{m:02d}"].to_numpy(float)[:, None, None], axis=0)
                     for m in range(1, 13)])
    ndvi[:, ~(valid > 0)] = NODATA
    write(OUT / "ndvi_monthly.tif", ndvi, grid, "1", "NDVI (monthly, stand-in)", src_class)
    mean = np.where(valid > 0, ndvi.mean(axis=0), NODATA)
    write(OUT / "ndvi_annual_mean.tif", mean, grid, "1", "mean NDVI (stand-in)", src_class)
    aet = np.where(valid > 0, np.nansum(weights * table["aet_mm"].to_numpy(float)[:, None, None], axis=0), NODATA)
    write(OUT / "aet_annual.tif", aet, grid, "mm/yr", "actual evapotranspiration (stand-in)", src_class)

    write_concentrations(grid)


def write_concentrations(grid: Grid) -> None:
    if not CNEMC.exists() or not CITY_PM25.exists():
        print(f"{CNEMC} or {CITY_PM25} not found: concentration grids not remade (the committed ones stay)")
        return
    import geopandas as gpd

    from ecoraster.ingest import monitoring as mon

    region = gpd.read_file(DISTRICTS).to_crs(4326)
    raw = mon.read_cnemc(CNEMC)
    grids: dict[str, tuple[np.ndarray, int, dict]] = {}
    for column, name in [("PM2_5", "pm25"), ("PM10", "pm10"), ("SO2", "so2"), ("NO2", "no2")]:
        clean, qc = mon.qc_observations(raw, [column], region=region, region_buffer_m=5000)
        stations = clean.groupby("station_id").agg(lon=("lon", "first"), lat=("lat", "first"),
                                                   value=(column, "mean")).reset_index()
        stations = stations.rename(columns={"value": column}).dropna()
        stations.attrs = dict(raw.attrs)
        conc, report = mon.interpolate_stations(stations, column, grid, method="idw")
        grids[name] = (np.asarray(conc.values, dtype=np.float64), len(stations), report)
    annual, days = city_annual_pm25(CITY_PM25, "Wuhan", PM25_YEAR)
    pm25 = grids["pm25"][0]
    day_mean = float(np.nanmean(np.where(pm25 == NODATA, np.nan, pm25)))
    factor = annual / day_mean  # µg/m³ annual ÷ µg/m³ on 2017-04-11
    for name, (values, n, report) in grids.items():
        scaled = np.where(np.isfinite(values) & (values != NODATA), values * factor, NODATA)
        what = "OBSERVED level" if name == "pm25" else "STAND-IN level (PM2.5 factor applied)"
        write(OUT / f"{name}_ugm3.tif", scaled, grid, "µg/m3",
              f"{name.upper()} concentration: 2017-04-11 CNEMC pattern of {n} stations (IDW) × {factor:.4f} "
              f"= Wuhan {PM25_YEAR} annual mean PM2.5 {annual:.1f} / 2017-04-11 grid mean {day_mean:.1f}; {what}",
              "CNEMC national real-time release via Qinxiaoying/ShanTou (no licence stated); CNEMC city daily "
              f"PM2.5 2014-2016 via CRAN SpTe2M (GPL>=3), Wuhan {PM25_YEAR}: {days} days; "
              f"IDW LOOCV RMSE {report.get('loocv_rmse'):.2f} µg/m3 (unscaled)")


if __name__ == "__main__":
    main()
