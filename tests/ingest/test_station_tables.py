"""Station tables as they arrive (CNEMC text / CSV, city series, micro-stations) → period means →
concentration grids of derived datasets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS

from ecoraster.datasets import StationDerive
from ecoraster.errors import InputDataError, TableError
from ecoraster.grid import Grid
from ecoraster.ingest import derived as dv
from ecoraster.ingest import monitoring as mon

#: the 300 × 300 px window of configs/examples/wuhan_small.yaml, at 300 m (30 × 30 px)
WUHAN = Grid(CRS.from_epsg(32649), Affine(300, 0, 798570, 0, -300, 3370860), (30, 30))


def test_cnemc_text_and_csv_read_alike(real):
    folder = real / "china-aq-stations-cnemc-2017"
    txt = mon.read_station_table(folder / "20170411_daily_city_obs.txt")
    csv = mon.read_station_table(folder / "cnemc_daily_station_obs_20170411.csv")
    assert list(txt.columns) == list(csv.columns) == ["station_id", "time", "lon", "lat", *mon.POLLUTANTS]
    pd.testing.assert_frame_equal(txt.reset_index(drop=True), csv.reset_index(drop=True), check_dtype=False)
    assert csv.attrs["time_step"] == "daily" and csv.attrs["units"]["CO"] == "mg/m3"
    hourly = mon.read_station_table(folder / "20170411_O3_hourly_city_obs.txt")
    assert hourly.attrs["time_step"] == "hourly"
    # 2017-04-10 has hours 13..23 (11 h), 04-11 hours 0..12 (13 h): no day reaches 18 valid hours
    with pytest.raises(InputDataError, match="0 station"):
        mon.period_station_means(hourly, "O3", "2017-04-01", "2017-04-30", min_fraction=0)


def test_unknown_columns_refused_or_mapped(tmp_cn):
    path = tmp_cn / "微站.csv"
    pd.DataFrame({"device_id": ["a", "b", "c"], "经度": [114.1, 114.2, 114.3], "纬度": [30.5, 30.6, 30.7],
                  "时间": ["2020-07-01 10:00"] * 3, "pm25": [30, 40, 50], "备注": ["", "", ""]}).to_csv(path, index=False)
    with pytest.raises(TableError, match=r"unknown column\(s\) \['备注'\]"):
        mon.read_station_table(path)
    table = mon.read_station_table(path, columns={"备注": "ignore"})
    assert list(table.columns) == ["station_id", "time", "lon", "lat", "PM2_5"] and table.attrs["time_step"] == "hourly"
    assert table["PM2_5"].tolist() == [30, 40, 50]


def test_city_series_with_day_of_year(real):
    path = real / "cnemc_pm25_city_daily_2014_2016" / "pm25_dat_183cities_2014_2016.csv.gz"
    table = mon.read_station_table(path)
    assert table["station_id"].nunique() == 183 and table.attrs["time_step"] == "daily"
    means, qc = mon.period_station_means(table, "PM2_5", "2015-01-01", "2015-12-31")
    raw = pd.read_csv(path)
    expected = raw[(raw["Year"] == 2015) & (raw["City"] == "Wuhan")]["PM2.5"].mean()  # all 365 days of 2015
    assert float(means.loc[means["station_id"] == "Wuhan", "PM2_5"].iloc[0]) == pytest.approx(expected)
    with pytest.raises(InputDataError, match=r"the table covers 2014-01-01\.\.2016-12-30"):
        mon.period_station_means(table, "PM2_5", "2013-01-01", "2013-12-31")


def test_station_grids_idw_by_hand(real, tmp_cn):
    table = mon.read_station_table(real / "cnemc_pm25_city_daily_2014_2016" / "pm25_dat_183cities_2014_2016.csv.gz")
    targets = {"pm25": StationDerive(stations="PM2_5", method="idw")}
    [out] = dv.station_grids(table, targets, WUHAN, 2015, tmp_cn)
    prov = out.provenance
    assert prov["n_stations"] == 183 and prov["period"] == "2015" and prov["loocv_rmse"] > 0
    means, _ = mon.period_station_means(table, "PM2_5", "2015-01-01", "2015-12-31")
    # IDW at the centre of pixel (0, 0), by hand: 12 nearest stations in EPSG:32649, weights 1/d²
    x, y = Transformer.from_crs(4326, 32649, always_xy=True).transform(means["lon"].to_numpy(), means["lat"].to_numpy())
    d = np.hypot(x - (798570 + 150), y - (3370860 - 150))
    near = np.argsort(d)[:12]
    w = 1 / d[near] ** 2
    by_hand = float((w * means["PM2_5"].to_numpy()[near]).sum() / w.sum())
    with rasterio.open(out.uri) as src:
        assert src.read(1)[0, 0] == pytest.approx(by_hand, rel=1e-5)
        assert src.tags()["period"] == "2015"
    again = dv.station_grids(table, targets, WUHAN, 2015, tmp_cn)[0]
    assert again.uri == out.uri and again.checksum == out.checksum  # same table, same file
    with pytest.raises(Exception, match="outside the run's year 2015"):
        dv.station_grids(table, targets, WUHAN, 2015, tmp_cn, period="2016-01")
    with pytest.raises(InputDataError, match=r"no column for \['NO2'\]"):
        dv.station_grids(table, {"no2": StationDerive(stations="NO2")}, WUHAN, 2015, tmp_cn)
