"""climate_regulation: hot days from a daily station table, ET on hot days (monthly ET, annual ET with a scalar
hot-day count), the EPP-table route, all worked by hand; bad temperature rows named; the real Wuhan 2013 series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ecoraster.kernels.wetland import hot_day_fractions
from ecoraster import pipeline
from ecoraster.pipeline import validate_run

from ._helpers import read, write_bands, write_run

ND = -9999.0
VEG_KWH_M3 = 1000 * 2450 / 3600 / 3        # 226.852 kWh per m³ transpired (ρ q / 3600 / EER)
WATER_KWH_M3 = 1000 * 2450 / 3600 + 120    # 800.556 kWh per m³ evaporated (ρ q / 3600 + humidifier)


def _daily_2021(tmp):
    # 2021: July 28 °C every day, 1-10 August 27 °C, every other day 20 °C → Jul 31/31 hot, Aug 10/31 hot
    dates = pd.date_range("2021-01-01", "2021-12-31", freq="D")
    t = np.full(len(dates), 20.0)
    t[(dates.month == 7)] = 28.0
    t[(dates.month == 8) & (dates.day <= 10)] = 27.0
    pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "tavg_degC": t}).to_csv(tmp / "daily.csv", index=False)


def _setup(tmp, et_bands, evap_bands=None):
    eco = np.array([[11, 42, 62], [41, 255, 42]], np.uint8)
    write_bands(tmp / "eco.tif", eco, nodata=255, dtype="uint8")
    write_bands(tmp / "et.tif", et_bands)
    datasets = {"eco": {"kind": "raster", "uri": "eco.tif", "categorical": True},
                "et": {"kind": "raster", "uri": "et.tif"}, "daily": {"kind": "table", "uri": "daily.csv"}}
    if evap_bands is not None:
        write_bands(tmp / "evap.tif", evap_bands)
        datasets["evap"] = {"kind": "raster", "uri": "evap.tif"}
    _daily_2021(tmp)
    return datasets


def test_hot_day_count():
    dates = np.arange("2021-01-01", "2022-01-01", dtype="datetime64[D]")
    t = np.where((dates >= np.datetime64("2021-07-01")) & (dates < np.datetime64("2021-08-11")), 27.0, 20.0)
    t[5] = np.nan
    hot, have, missing = hot_day_fractions(dates, t, 2021)
    assert hot.tolist() == [0] * 6 + [31, 10] + [0] * 4 and have[0] == 30 and missing == 1
    # 26.0 exactly is not hot (strictly greater)
    assert hot_day_fractions(dates, np.full(365, 26.0), 2021)[0].sum() == 0


def test_monthly_et_by_hand(tmp_zh):
    datasets = _setup(tmp_zh, np.full((12, 2, 3), 100.0), np.full((12, 2, 3), 200.0))
    cfg = write_run(tmp_zh, "climate_regulation", datasets,
                    {"ecosystem": "eco", "et": "et", "evaporation": "evap", "daily_temperature": "daily"})
    assert validate_run(cfg) == []
    res = pipeline.run(cfg, tmp_zh / "ws").services["climate_regulation"]
    veg, wat = read(res.outputs["transpiration"].path), read(res.outputs["evaporation"].path)
    # ET on hot days = 100 mm × 31/31 + 100 mm × 10/31 = 132.258 mm; × 900 m² = 119.032 m³
    v = (100 + 100 * 10 / 31) / 1000 * 900
    assert veg[0, 0] == pytest.approx(v * VEG_KWH_M3, rel=1e-6)         # forest: 27,002.6 kWh
    assert veg[0, 0] == pytest.approx(27002.6, rel=1e-5)
    assert veg[1, 0] == pytest.approx(v * VEG_KWH_M3, rel=1e-6)         # reed marsh is vegetation
    # water reads the evaporation raster: 200 mm × (1 + 10/31) = 264.516 mm × 900 m² = 238.065 m³ × 800.556
    assert wat[0, 1] == pytest.approx(2 * v * WATER_KWH_M3, rel=1e-6)
    assert wat[0, 1] == pytest.approx(190583.0, rel=1e-5)
    assert veg[0, 1] == 0 and wat[0, 0] == 0 and veg[0, 2] == 0 and wat[0, 2] == 0   # urban: neither
    assert veg[1, 1] == ND and wat[1, 1] == ND
    assert "41 hot days" in res.notes[0]


def test_annual_et_scalar_days_and_epp(tmp_zh):
    datasets = _setup(tmp_zh, np.full((2, 3), 730.0))
    cfg = write_run(tmp_zh, "climate_regulation", datasets, {"ecosystem": "eco", "et": "et", "hot_days_scalar": 73})
    res = pipeline.run(cfg, tmp_zh / "ws").services["climate_regulation"]
    # 730 mm × 73 / 365 = 146 mm × 900 m² = 131.4 m³ × 226.852 = 29,808.3 kWh
    assert read(res.outputs["transpiration"].path)[0, 0] == pytest.approx(131.4 * VEG_KWH_M3, rel=1e-6)
    cfg = write_run(tmp_zh, "climate_regulation", datasets, {"ecosystem": "eco", "hot_days_scalar": 73},
                    method="epp")
    res = pipeline.run(cfg, tmp_zh / "ws2").services["climate_regulation"]
    veg, wat = read(res.outputs["transpiration"].path), read(res.outputs["evaporation"].path)
    # forest EPP 9,800 kJ/m²/d × 900 m² × 73 d / 3600 / 3 = 59,616.7 kWh
    assert veg[0, 0] == pytest.approx(9800 * 900 * 73 / 3600 / 3, rel=1e-6)
    # lake 12,250 × 900 × 73 / 3600 = 223,562.5 kWh + (12,250 × 900 × 73 kJ / 2450 kJ/kg / 1000 = 328.5 m³) × 120
    assert wat[0, 1] == pytest.approx(223562.5 + 328.5 * 120, rel=1e-6)
    assert veg[0, 2] == 0   # urban built-up has no EPP row


def test_bad_daily_table_named(tmp_zh):
    datasets = _setup(tmp_zh, np.full((12, 2, 3), 100.0))
    df = pd.read_csv(tmp_zh / "daily.csv")
    df.loc[200, "tavg_degC"] = -9999
    df.to_csv(tmp_zh / "daily.csv", index=False)
    cfg = write_run(tmp_zh, "climate_regulation", datasets, {"ecosystem": "eco", "et": "et", "daily_temperature": "daily"})
    issues = validate_run(cfg)
    assert len(issues) == 1 and "daily.csv" in str(issues[0]) and "row 202" in str(issues[0]) and "-9999" in str(issues[0])
    df.loc[200, "tavg_degC"] = 20.0
    df.drop(index=range(100, 130)).to_csv(tmp_zh / "daily.csv", index=False)   # 30 missing days > 10
    assert "30 days of 2021" in str(validate_run(cfg)[0])


@pytest.mark.usefixtures("shared_data")
def test_wuhan_2013_hot_days_from_ghcnd(shared_data):
    df = pd.read_csv(shared_data / "real" / "wuhan_ghcnd_57494" / "wuhan_57494_daily_2010_2020.csv")
    hot, _have, missing = hot_day_fractions(pd.to_datetime(df["date"]).to_numpy().astype("datetime64[D]"),
                                           df["tavg_degC"].to_numpy(), 2013)
    # TAVG is complete in 2013 (README); 91 days above 26 °C: May 6, Jun 17, Jul 30, Aug 30, Sep 8
    assert missing == 0 and hot.sum() == 91 and hot[6] == 30 and hot[7] == 30
