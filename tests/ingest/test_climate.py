"""Climate grids: units from metadata, pint conversion, time aggregation, warping to a Grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
from affine import Affine

from ecoraster.errors import InputDataError, UnitError
from ecoraster.grid import Grid
from ecoraster.ingest import climate as cl
from ecoraster.ingest.units import linear_conversion

from .conftest import write_tif


@pytest.mark.parametrize("src,dst,expected", [
    ("K", "degC", (1.0, -273.15)),
    ("[C]", "degC", (1.0, 0.0)),
    ("m", "mm", (1000.0, 0.0)),
    ("J m**-2", "MJ/m**2", (1e-6, 0.0)),
    ("J/(m^2)", "MJ m-2", (1e-6, 0.0)),
    ("mg/m3", "µg/m3", (1000.0, 0.0)),
    ("W m-2", "MJ m-2 day-1", (0.0864, 0.0)),  # 86400 s/day * 1e-6
])
def test_unit_conversions(src, dst, expected):
    assert linear_conversion(src, dst) == pytest.approx(expected)


def test_unit_errors():
    with pytest.raises(UnitError, match="different dimensions"):
        linear_conversion("K", "mm")
    with pytest.raises(UnitError, match="not understood"):
        linear_conversion("furlongs per blorp", "m")


def test_era5_grib_and_netcdf_agree_and_aggregate(real):
    folder = real / "era5-t2m-uk-2019-03"
    grib = cl.open_climate(folder / "era5-2mt-2019-03-uk.grib")
    nc = cl.open_climate(folder / "era5-2mt-2019-03-uk.nc")
    assert grib.attrs["units"] == "[K]" and nc.attrs["units"] == "K"  # read from metadata
    assert grib.shape == nc.shape == (744, 33, 49) and grib.chunks[0][0] == 24
    assert grib.rio.transform() == Affine(0.25, 0, -10.125, 0, -0.25, 58.125)
    g_c, n_c = cl.convert_units(grib, "degC"), cl.convert_units(nc, "degC")
    np.testing.assert_allclose(g_c.values, n_c.values, atol=1e-3)
    raw = xr.open_dataset(folder / "era5-2mt-2019-03-uk.nc")["t2m"]
    # first hour, NW corner: K - 273.15
    assert float(n_c[0, 0, 0]) == pytest.approx(float(raw[0, 0, 0]) - 273.15, abs=1e-4)
    daily = cl.aggregate_time(n_c, "D", "mean")
    assert daily.shape == (31, 33, 49) and daily.attrs["units"] == "degC"
    by_hand = float(raw.isel(time=slice(24, 48), latitude=10, longitude=20).mean()) - 273.15
    assert float(daily[1, 10, 20]) == pytest.approx(by_hand, abs=1e-4)
    monthly = cl.aggregate_time(n_c, "MS", "mean")
    assert monthly.shape[0] == 1 and 4 < float(monthly.mean()) < 11  # March in the UK


def test_mislabelled_temperature_is_refused(real):
    with pytest.raises(InputDataError, match="unit label is wrong"):
        cl.open_climate(real / "era5-t2m-uk-2019-03" / "era5-2mt-2019-03-uk.nc", units="degC")


def test_gridmet_netcdf_scale_factor_and_warp(real):
    path = real / "gridmet-tmmx-conus-20190121" / "tmmx_20190121.nc"
    t = cl.convert_units(cl.open_climate(path), "degC")
    assert t.dims == ("y", "x") and t.shape == (585, 1386)
    import netCDF4
    with netCDF4.Dataset(path) as ds:
        var = ds["air_temperature"]
        var.set_auto_maskandscale(False)
        raw = int(var[300, 700]) if var.dimensions[0] == "lat" else int(var[700, 300])
        scale, offset = float(var.scale_factor), float(getattr(var, "add_offset", 0.0))
    assert float(t[300, 700]) == pytest.approx(raw * scale + offset - 273.15, abs=1e-3)
    # identity warp onto the source's own grid returns the same values (nearest)
    tr = t.rio.transform(recalc=True)
    own = Grid(t.rio.crs, tr, t.shape)
    back = cl.to_grid(t, own, "nearest", chunk=256)
    np.testing.assert_allclose(back.values, t.values, atol=1e-5, equal_nan=True)
    # a 0.5-degree average grid: each cell is the mean of 12 x 12 source cells
    coarse = Grid.from_bounds("EPSG:4326", (-100.0, 35.0, -95.0, 40.0), 0.5)
    avg = cl.to_grid(t, coarse, "average").values
    assert avg.shape == (10, 10) and np.isfinite(avg).all()
    assert float(avg.mean()) == pytest.approx(float(t.sel(x=slice(-100, -95), y=slice(40, 35)).mean()), abs=0.3)


def test_gura_monthly_precip_to_annual(real):
    folder = real / "invest-gura-climate" / "precip_monthly"
    paths = sorted(folder.glob("precip_gura_*.tif"))
    with pytest.raises(UnitError, match="no units"):
        cl.open_monthly_series(paths, year=2019)  # the GeoTIFFs carry no unit: must be declared
    series = cl.open_monthly_series(paths, year=2019, units="mm")
    assert list(series.time.dt.month.values) == list(range(1, 13))  # 1,10,11,12,2 sorted by month
    annual = cl.aggregate_time(series, "YS", "sum").isel(time=0)
    # independent: sum the 12 files with rasterio, nodata -32767 excluded
    total = np.zeros((12, 32))
    valid = np.zeros((12, 32), bool)
    for p in paths:
        with rasterio.open(p) as src:
            a = src.read(1).astype(float)
            ok = a != src.nodata
        total += np.where(ok, a, 0)
        valid |= ok
    np.testing.assert_allclose(annual.values[valid], total[valid], rtol=1e-6)
    assert annual.attrs["units"] == "mm" and "sum" in annual.attrs["cell_methods"]
    grid = Grid.from_bounds("EPSG:32737", (247704.8, 9931764.6, 279704.8, 9943764.6), 500)
    on_grid = cl.to_grid(annual, grid, "bilinear", chunk=16)
    assert on_grid.shape == (25, 65) and on_grid.attrs["units"] == "mm"
    assert float(np.nanmean(on_grid.values)) == pytest.approx(float(annual.mean()), rel=0.01)


def test_hourly_sum_and_coverage_rule(tmp_cn):
    # 48 hourly steps of 0.5 mm precipitation in metres, one value missing on day 2
    times = pd.date_range("2020-07-01", periods=48, freq="h")
    data = np.full((48, 2, 2), 0.0005, np.float32)
    data[30, 0, 0] = np.nan
    arr = xr.DataArray(data, dims=("time", "y", "x"), coords={"time": times, "y": [1.5, 0.5], "x": [0.5, 1.5]},
                       attrs={"units": "m"}).rio.write_crs("EPSG:4326")
    mm = cl.convert_units(arr, "mm")
    daily = cl.aggregate_time(mm, "D", "sum")
    # day 1: 24 x 0.5 mm = 12 mm; day 2 at (0,0): 23 x 0.5 = 11.5 mm
    assert float(daily[0, 1, 1]) == pytest.approx(12.0) and float(daily[1, 0, 0]) == pytest.approx(11.5)
    strict = cl.aggregate_time(mm, "D", "sum", min_fraction=1.0)
    assert np.isnan(float(strict[1, 0, 0])) and float(strict[1, 1, 1]) == pytest.approx(12.0)
    p = write_tif(tmp_cn / "气温.tif", np.full((4, 4), 15.0, np.float32), crs="EPSG:4326",
                  transform=Affine(0.1, 0, 117, 0, -0.1, 39.5), nodata=-9999, tags={"units": "degC"})
    t = cl.open_climate(p)
    assert t.attrs["units"] == "degC" and float(cl.convert_units(t, "K")[0, 0]) == pytest.approx(288.15)
