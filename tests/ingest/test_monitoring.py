"""Stations → QC → daily/period means → IDW / kriging grids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS

from ecoraster.errors import ConfigError, TableError
from ecoraster.grid import Grid
from ecoraster.ingest import monitoring as mo
from ecoraster.kernels import ingest_interp as kern

UTM = "EPSG:32650"


def _stations(xy_values, crs=UTM):
    """Stations given in UTM metres, returned as lon/lat rows (the public API takes lon/lat)."""
    tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    rows = []
    for i, (x, y, v) in enumerate(xy_values):
        lon, lat = tr.transform(x, y)
        rows.append({"station_id": f"S{i}", "lon": lon, "lat": lat, "PM2_5": v})
    df = pd.DataFrame(rows)
    df.attrs["units"] = {"PM2_5": "µg/m3"}
    return df


def _line_grid():
    # one row, three 1000 m pixels; centres at x = 500500, 501500, 502500; y = 4399500
    return Grid(CRS.from_user_input(UTM), Affine(1000, 0, 500000, 0, -1000, 4400000), (1, 3))


def test_idw_by_hand():
    st = _stations([(500500, 4399500, 10.0), (502500, 4399500, 30.0), (501500, 4499500, 100.0)])
    conc, rep = mo.interpolate_stations(st, "PM2_5", _line_grid(), method="idw", power=2, neighbours=3)
    v = conc.values[0]
    # pixels on stations take their values; the middle: d = 1000, 1000, 100000 m
    # w = 1e-6, 1e-6, 1e-10 -> (10e-6 + 30e-6 + 100e-10) / (2e-6 + 1e-10) = 20.0045
    assert v[0] == pytest.approx(10.0, abs=1e-4) and v[2] == pytest.approx(30.0, abs=1e-4)
    assert v[1] == pytest.approx(40.01 / 2.0001, rel=1e-5)
    assert conc.dtype == np.float32 and conc.attrs["units"] == "µg/m3"
    # leave-one-out: S0 from S1, S2: d = 2000, sqrt(2000²+1e10)=100020 -> w = 2.5e-7, 9.996e-11
    w1, w2 = 1 / 2000**2, 1 / (2000**2 + 1e10)
    e0 = 10 - (30 * w1 + 100 * w2) / (w1 + w2)
    assert rep["n_stations"] == 3 and np.isfinite(rep["loocv_rmse"])
    assert abs(e0) <= np.sqrt(3) * rep["loocv_rmse"]


def test_kriging_is_exact_at_stations_and_symmetric():
    st = _stations([(500500, 4399500, 10.0), (502500, 4399500, 30.0),
                    (501500, 4429500, 20.0), (501500, 4369500, 20.0)])
    conc, rep = mo.interpolate_stations(st, "PM2_5", _line_grid(), method="kriging", variogram="exponential")
    v = conc.values[0]
    assert v[0] == pytest.approx(10.0, abs=1e-3) and v[2] == pytest.approx(30.0, abs=1e-3)
    assert v[1] == pytest.approx(20.0, abs=1e-3)  # by symmetry: mean of the mirror pairs
    assert rep["variogram"]["model"] == "exponential" and "loocv_rmse" in rep


def test_kriging_loocv_shortcut_equals_brute_force():
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 1e5, (25, 2))
    z = 50 + 20 * np.sin(xy[:, 0] / 2e4) + rng.normal(0, 3, 25)
    model, params = kern.spherical_variogram, (4.0, 200.0, 5e4)
    a = kern.kriging_matrix(xy, model, params)
    fast = kern.kriging_loocv_errors(a, kern.kriging_dual_weights(a, z))
    slow = []
    for i in range(25):
        keep = np.arange(25) != i
        ai = kern.kriging_matrix(xy[keep], model, params)
        est = kern.kriging_predict(xy[keep], kern.kriging_dual_weights(ai, z[keep]), xy[i:i + 1], model, params)
        slow.append(z[i] - est[0])
    np.testing.assert_allclose(fast, slow, atol=1e-9)


def test_variogram_models_by_hand():
    # spherical, c0=1, c=4, a=100: h=50 -> 1 + 4(0.75 - 0.0625) = 3.75; h>=a -> 5; h=0 -> 0
    np.testing.assert_allclose(kern.spherical_variogram(np.array([0, 50, 100, 300.0]), 1, 4, 100), [0, 3.75, 5, 5])
    # exponential practical range: h=a -> 1 + 4(1 - e^-3) = 4.8009
    assert kern.exponential_variogram(np.array([100.0]), 1, 4, 100)[0] == pytest.approx(1 + 4 * (1 - np.exp(-3)))


def test_qc_and_daily_rules(tmp_cn):
    times = pd.date_range("2020-01-01", periods=24, freq="h")
    rows = [("A", t, 117.2, 39.1, 50.0) for t in times]                         # 24 valid hours, mean 50
    rows += [("B", t, 117.3, 39.2, 40.0 if i < 17 else -9999) for i, t in enumerate(times)]  # 17 valid
    rows += [("C", times[0], 117.4, 39.0, -5.0), ("C", times[1], 117.4, 39.0, 9000.0)]    # impossible
    rows += [("A", times[0], 117.2, 39.1, 50.0), ("A", times[1], 117.2, 39.1, 51.0)]      # duplicates
    rows += [("FAR", times[0], 100.0, 30.0, 30.0)]                                        # far away
    path = tmp_cn / "微站.csv"
    pd.DataFrame(rows, columns=["id", "time", "x", "y", "pm25"]).to_csv(path, index=False)
    obs = mo.read_station_csv(path, ["pm25"], id_col="id", lon_col="x", lat_col="y")
    from shapely.geometry import box
    clean, rep = mo.qc_observations(obs, ["pm25"], ceilings={"pm25": 1000}, region=box(117, 38.5, 118, 40),
                                    region_buffer_m=10_000)
    assert rep["missing_codes"]["pm25"] == 7
    assert rep["impossible"]["pm25"]["count"] == 2 and sorted(rep["impossible"]["pm25"]["examples"]) == [-5.0, 9000.0]
    assert rep["duplicates"] == {"identical": 1, "conflicting": 1}
    assert rep["outside_region"] == ["FAR"]
    assert set(clean["station_id"]) == {"A", "B"}  # C has no value left
    daily = mo.daily_means(clean, "pm25", min_hours=18)
    a = daily.set_index("station_id")
    assert a.loc["A", "pm25"] == 50.0 and a.loc["A", "n_hours"] == 24
    assert np.isnan(a.loc["B", "pm25"]) and a.loc["B", "n_hours"] == 17  # 17 < 18 (75 % of 24)
    assert mo.daily_means(clean, "pm25", min_hours=17).set_index("station_id").loc["B", "pm25"] == 40.0
    per = mo.period_means(daily, "pm25", start="2020-01-01", end="2020-01-04", min_fraction=0.25)
    # 4 days * 0.25 -> need 1 day: A passes with 50, B has 0 valid days
    assert per["station_id"].tolist() == ["A"] and per["pm25"].iloc[0] == 50.0
    with pytest.raises(TableError, match="missing column"):
        mo.read_station_csv(path, ["pm10"], id_col="id", lon_col="x", lat_col="y")


def test_cnemc_hourly_sample(real):
    obs = mo.read_cnemc(real / "china-aq-stations-cnemc-2017" / "20170411_O3_hourly_city_obs.txt")
    assert len(obs) == 34776 and obs.attrs["units"] == {"O3": "µg/m3"}
    clean, rep = mo.qc_observations(obs, ["O3"])
    assert rep["duplicates"]["identical"] == 24 and rep["missing_codes"]["O3"] == 0
    daily = mo.daily_means(clean, "O3", min_hours=18)
    # the file covers 04-10 13:00 .. 04-11 12:00: 11 and 13 hours per calendar day -> no valid day
    assert daily["n_hours"].max() == 13 and daily["O3"].notna().sum() == 0
    assert daily.loc[daily["n_hours"] == 11, "O3"].isna().all()


def test_cnemc_daily_tianjin_kriging_and_idw(real):
    from ecoraster.ingest.vectors import read_zones
    obs = mo.read_cnemc(real / "china-aq-stations-cnemc-2017" / "20170411_daily_city_obs.txt")
    tj = read_zones(real / "china-admin-districts-gcj02" / "tianjin_districts.shp", datum="gcj02")
    inside, rep = mo.qc_observations(obs, ["O3", "CO"], region=tj)
    assert rep["stations_out"] == 10  # README: 10 stations in Tianjin districts
    assert rep["duplicates"]["identical"] == 1  # station 70901 listed twice
    near, _ = mo.qc_observations(obs, ["O3", "CO"], region=tj, region_buffer_m=150_000)
    grid = Grid.from_bounds("EPSG:4527", tuple(tj.to_crs(4527).total_bounds), 2000)
    std = near["O3"].std()
    for method in ("idw", "kriging"):
        conc, r = mo.interpolate_stations(near, "O3", grid, method=method, chunk=32)
        v = conc.values
        assert conc.attrs["units"] == "µg/m3" and v.dtype == np.float32
        # estimates stay within the station range (both are weighted means / near-convex here)
        assert near["O3"].min() - 5 <= np.nanmin(v) and np.nanmax(v) <= near["O3"].max() + 5
        assert 0 < r["loocv_rmse"] < std  # better than predicting the mean
    one, _ = mo.interpolate_stations(near, "O3", grid, method="kriging", chunk=4096)
    np.testing.assert_allclose(one.values, conc.values, rtol=1e-6)  # chunking does not change values
    co, _ = mo.interpolate_stations(near, "CO", grid, method="idw")
    # CO mg/m3 -> µg/m3 x 1000
    assert 1000 * near["CO"].min() - 1 <= float(co.min()) and float(co.max()) <= 1000 * near["CO"].max() + 1
    with pytest.raises(ConfigError):
        mo.interpolate_stations(near, "O3", grid, method="spline")
