"""air_purification: deposition (PM2.5 by wind class, PM10, gases, LAI from NDVI) and capacity with the
regional emission cap allocated back to pixels; edge cases, numpy == dask, validation; CNEMC sanity run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio

from ecoraster import pipeline
from ecoraster.pipeline import validate_run

from ..conftest import REPO
from ._helpers import read, write_bands, write_run

ND = -9999.0
PX_M2 = 900.0
SECONDS_2021 = 8760 * 3600  # 31,536,000 s (2021 is not a leap year)


def _dep_setup(tmp, eco, lai, conc: dict, wind=None, ndvi=None):
    write_bands(tmp / "eco.tif", eco, nodata=255, dtype="uint8")
    datasets = {"eco": {"kind": "raster", "uri": "eco.tif", "categorical": True}}
    inputs = {"ecosystem": "eco"}
    if lai is not None:
        write_bands(tmp / "lai.tif", lai)
        datasets["lai"], inputs["lai"] = {"kind": "raster", "uri": "lai.tif"}, "lai"
    if ndvi is not None:
        write_bands(tmp / "ndvi.tif", ndvi)
        datasets["ndvi"], inputs["ndvi"] = {"kind": "raster", "uri": "ndvi.tif"}, "ndvi"
    for pol, arr in conc.items():
        write_bands(tmp / f"{pol}.tif", arr)
        datasets[pol], inputs[f"conc_{pol}"] = {"kind": "raster", "uri": f"{pol}.tif"}, pol
    if isinstance(wind, (int, float)):
        inputs["wind_speed_scalar"] = wind
    elif wind is not None:
        write_bands(tmp / "wind.tif", wind)
        datasets["wind"], inputs["wind_speed"] = {"kind": "raster", "uri": "wind.tif"}, "wind"
    return datasets, inputs


def test_deposition_by_hand(tmp_zh):
    eco = np.array([[12, 12, 31, 42], [12, 255, 12, 12]], np.uint8)
    lai = np.array([[4.0, 4.0, 4.0, 0.0], [ND, 4.0, -1.0, 4.0]])
    pm25 = np.full((2, 4), 50.0)
    pm25[1, 3] = ND
    wind = np.array([[2.4, 20.0, 2.4, 2.4], [2.4, 2.4, 2.4, 2.4]])
    datasets, inputs = _dep_setup(tmp_zh, eco, lai, {
        "pm25": pm25, "pm10": np.full((2, 4), 100.0), "no2": np.full((2, 4), 40.0),
        "co": np.full((2, 4), 1.0)}, wind=wind)
    # PM10 on total mass and gases on every hour × leaf_on_fraction (deciduous 12: 0.6): the coarse-fraction
    # and daytime defaults of issue 15 are tested in test_science_review.py
    cfg = write_run(tmp_zh, "air_purification", datasets, inputs, method="deposition",
                    params={"pm10_coarse_only": False, "gas_daytime_fraction": 1.0})
    res = pipeline.run(cfg, tmp_zh / "ws").services["air_purification"]
    pm25_out, pm10_out = read(res.outputs["pm25"].path), read(res.outputs["pm10"].path)
    no2_out, co_out = read(res.outputs["no2"].path), read(res.outputs["co"].path)
    # PM2.5, forest (12), LAI 4, 50 µg/m3, wind 2.4 → class 2: Vd 0.09 cm/s = 0.0009 m/s, resuspension 3 %
    #   0.0009 × 50e-9 kg/m3 × 4 × 31,536,000 s × 0.97 = 5.5062e-3 kg/m2 × 900 m2 = 4.95557 kg/pixel (55.1 kg/ha)
    pm25_px = 0.0009 * 50e-9 * 4 * SECONDS_2021 * 0.97 * PX_M2
    assert pm25_px == pytest.approx(4.95557, rel=1e-5)
    assert pm25_out[0, 0] == pytest.approx(pm25_px, rel=1e-6)
    # wind 20 m/s → capped at class 13: Vd 2.11 cm/s, resuspension 23 %
    assert pm25_out[0, 1] == pytest.approx(0.0211 * 50e-9 * 4 * SECONDS_2021 * 0.77 * PX_M2, rel=1e-6)
    # meadow (31): pm_factor 0.5 → half the forest value
    assert pm25_out[0, 2] == pytest.approx(pm25_px / 2, rel=1e-6)
    # lake (42): LAI 0, factor 0 → 0 (valid, not nodata)
    assert pm25_out[0, 3] == 0
    # nodata: LAI (1,0), class (1,1), PM2.5 concentration only (1,3)
    assert pm25_out[1, 0] == ND and pm25_out[1, 1] == ND and pm25_out[1, 3] == ND
    assert pm10_out[1, 3] != ND                         # PM10 has its own valid concentration there
    # negative LAI counts as 0 → nothing removed
    assert pm25_out[1, 2] == 0
    # PM10: 0.0064 m/s × 100e-9 × 4 × 31,536,000 × 0.5 = 0.0403661 kg/m2 × 900 = 36.3295 kg/pixel (404 kg/ha)
    assert pm10_out[0, 0] == pytest.approx(0.0064 * 100e-9 * 4 * SECONDS_2021 * 0.5 * PX_M2, rel=1e-6)
    assert pm10_out[0, 0] == pytest.approx(36.3295, rel=1e-5)
    # NO2 (gas, forest canopy Vd 0.3 cm/s): cover = 1 − e^(−0.5 × 4) = 0.864665
    #   0.003 × 40e-9 × 0.864665 × 31,536,000 × 900 = 2.9449 kg/pixel (32.7 kg/ha) × leaf-on 0.6 = 1.7669
    no2_px = 0.003 * 40e-9 * (1 - math.exp(-2)) * SECONDS_2021 * PX_M2 * 0.6
    assert no2_out[0, 0] == pytest.approx(no2_px, rel=1e-6) and no2_px == pytest.approx(2.9449 * 0.6, rel=1e-4)
    # CO in mg/m3 (× 1e-6): 0.00004 m/s × 1e-6 kg/m3 × 0.864665 × 31,536,000 × 900
    assert co_out[0, 0] == pytest.approx(0.00004 * 1e-6 * (1 - math.exp(-2)) * SECONDS_2021 * PX_M2 * 0.6, rel=1e-6)
    assert res.outputs["no2"].product == "air_purification_no2" and res.outputs["pm25"].units == "kg"  # per year
    assert res.metadata["constant_gas_vd"] is True and "capacity_so2" not in res.outputs
    total = float(np.sum(pm25_out[pm25_out != ND], dtype=np.float64))
    assert res.totals["pm25_total"] == (pytest.approx(total, rel=1e-9), "kg")


def test_deposition_lai_from_ndvi_scalar_wind_leap_year_and_hours(tmp_zh):
    eco = np.full((1, 3), 12, np.uint8)
    ndvi = np.array([[0.5, 0.02, 0.99]])
    datasets, inputs = _dep_setup(tmp_zh, eco, None, {"pm25": np.full((1, 3), 50.0)}, wind=3.0, ndvi=ndvi)
    cfg = write_run(tmp_zh, "air_purification", datasets, inputs, year=2020)
    out = read(pipeline.run(cfg, tmp_zh / "ws").services["air_purification"].outputs["pm25"].path)
    # NDVI 0.5: FVC = (0.5 − 0.05)/(0.86 − 0.05) = 0.555556; LAI = −ln(0.444444)/0.5 = 1.621860
    # wind 3 → Vd 0.15 cm/s, 4.5 %; 2020 is a leap year: 8784 h
    lai = -math.log(1 - 0.45 / 0.81) / 0.5
    assert lai == pytest.approx(1.621860, abs=1e-6)
    assert out[0, 0] == pytest.approx(0.0015 * 50e-9 * lai * 8784 * 3600 * 0.955 * PX_M2, rel=1e-6)
    assert out[0, 1] == 0                                          # NDVI below bare soil: LAI 0
    # NDVI 0.99: FVC capped at 0.95 → LAI = −ln(0.05)/0.5 = 5.991465
    assert out[0, 2] == pytest.approx(0.0015 * 50e-9 * 5.991465 * 8784 * 3600 * 0.955 * PX_M2, rel=1e-6)
    cfg = write_run(tmp_zh, "air_purification", datasets, inputs, year=2020, params={"removal_hours": 4392})
    half = read(pipeline.run(cfg, tmp_zh / "ws2").services["air_purification"].outputs["pm25"].path)
    np.testing.assert_allclose(half, out / 2, rtol=1e-6)           # in-leaf hours: half the year


def _capacity_setup(tmp, eco, inputs_extra, params=None, chunk=64, emissions_csv=None):
    write_bands(tmp / "eco.tif", eco, nodata=255, dtype="uint8")
    datasets = {"eco": {"kind": "raster", "uri": "eco.tif", "categorical": True}}
    inputs = {"ecosystem": "eco", **inputs_extra}
    if emissions_csv:
        (tmp / "emissions.csv").write_text(emissions_csv, encoding="utf-8")
        datasets["em"], inputs["emissions"] = {"kind": "table", "uri": "emissions.csv"}, "em"
    return write_run(tmp, "air_purification", datasets, inputs, method="capacity", params=params, chunk=chunk)


def test_capacity_cap_binding_and_allocation(tmp_zh):
    eco = np.full((10, 10), 13, np.uint8)        # evergreen needleleaf: SO2 215.60, NOx 6, dust 33200 kg/ha/a
    eco[:5] = 12                                   # deciduous broadleaf: SO2 88.65, NOx 6, dust 10110
    eco[9] = 42                                    # lake: 0
    eco[0, 0] = 255
    # capacity SO2: (49 × 88.65 + 40 × 215.60) kg/ha × 0.09 ha = (4343.85 + 8624.0) × 0.09 = 1167.1065 kg/yr
    # NOx: 89 × 6 × 0.09 = 48.06 kg/yr ; dust: (49 × 10110 + 40 × 33200) × 0.09 = 164,105.1 kg/yr
    so2_cap, nox_cap, dust_cap = 1167.1065, 48.06, 164_105.1
    cfg = _capacity_setup(tmp_zh, eco, {"emission_so2": 0.5},                # 500 kg < capacity: binding
                          emissions_csv="pollutant,emission_t\nso2,99\nnox,1.0\ndust,20\n")
    res = pipeline.run(cfg, tmp_zh / "ws").services["air_purification"]
    cap = res.metadata["cap"]
    assert cap["so2"]["capacity_kg"] == pytest.approx(so2_cap, rel=1e-12)
    assert cap["so2"]["emission_kg"] == 500.0 and cap["so2"]["cap_binding"] is True    # scalar beats table
    assert cap["nox"]["cap_binding"] is False and cap["dust"]["cap_binding"] is True
    # purified totals: min(capacity, emission); the written pixels sum to it (float32 pixels, float64 sum)
    assert res.totals["so2_total"][0] == pytest.approx(500.0, rel=1e-6)
    assert res.totals["nox_total"][0] == pytest.approx(nox_cap, rel=1e-6)
    assert res.totals["dust_total"][0] == pytest.approx(20_000.0, rel=1e-6)
    assert res.totals["capacity_so2_total"][0] == pytest.approx(so2_cap, rel=1e-6)
    assert res.totals["capacity_dust_total"][0] == pytest.approx(dust_cap, rel=1e-6)
    so2 = read(res.outputs["so2"].path)
    # allocation by capacity: each pixel = its capacity × 500 / 1167.1065
    assert so2[5, 5] == pytest.approx(215.60 * 0.09 * 500 / so2_cap, rel=1e-6)
    assert so2[1, 1] == pytest.approx(88.65 * 0.09 * 500 / so2_cap, rel=1e-6)
    assert so2[9, 3] == 0 and so2[0, 0] == ND
    # a "parcel" = any set of pixels: parts add up to the whole
    assert float(so2[:5][so2[:5] != ND].sum(dtype=np.float64) + so2[5:].sum(dtype=np.float64)) == pytest.approx(500, rel=1e-6)
    assert any("binding" in n for n in res.notes) and res.outputs["so2"].product == "air_purification_so2"
    assert res.outputs["capacity_so2"].kind == "intermediate" and res.outputs["capacity_so2"].product is None


def test_capacity_uncapped_and_chunks(tmp_zh):
    rng = np.random.default_rng(5)
    eco = rng.choice([12, 13, 15, 52, 42, 255], size=(150, 130)).astype(np.uint8)
    results = []
    for chunk, ws in ((64, "a"), (4096, "b")):
        cfg = _capacity_setup(tmp_zh, eco, {"emission_so2": 50.0, "emission_nox": 1.0, "emission_dust": 900.0},
                              chunk=chunk)
        res = pipeline.run(cfg, tmp_zh / ws).services["air_purification"]
        results.append((res, {k: read(r.path) for k, r in res.outputs.items()}))
    (ra, a), (rb, b) = results
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert ra.metadata["cap"]["so2"]["capacity_kg"] == pytest.approx(rb.metadata["cap"]["so2"]["capacity_kg"], rel=1e-12)
    # numpy reference of the regional capacity: Σ q(class) × 0.09 ha
    q = {12: 88.65, 13: 215.60, 15: 152.13, 52: 0.0, 42: 0.0, 255: 0.0}
    expected = sum(q[int(c)] * n for c, n in zip(*np.unique(eco, return_counts=True))) * 0.09
    assert ra.metadata["cap"]["so2"]["capacity_kg"] == pytest.approx(expected, rel=1e-12)
    cfg = _capacity_setup(tmp_zh, eco, {}, params={"emission_cap": False})
    res = pipeline.run(cfg, tmp_zh / "c").services["air_purification"]
    assert res.metadata["cap"]["so2"]["cap_binding"] is None
    assert res.totals["so2_total"][0] == pytest.approx(expected, rel=1e-6)


def test_validation_lists_every_problem(tmp_zh):
    eco = np.full((3, 3), 12, np.uint8)
    eco[1, 1] = 77
    cfg = _capacity_setup(tmp_zh, eco, {"emission_so2": 1.0})
    issues = [str(i) for i in validate_run(cfg)]
    assert any("emission_nox" in i for i in issues) and any("emission_dust" in i for i in issues)
    datasets, inputs = _dep_setup(tmp_zh, eco, None, {"pm25": np.full((3, 3), 30.0)})
    cfg = write_run(tmp_zh, "air_purification", datasets, inputs)
    issues = [str(i) for i in validate_run(cfg)]
    assert any("lai or ndvi" in i for i in issues) and any("wind_speed" in i for i in issues)
    datasets, inputs = _dep_setup(tmp_zh, eco, np.ones((3, 3)), {"pm10": np.full((3, 3), 30.0)})
    cfg = write_run(tmp_zh, "air_purification", datasets, inputs)
    issues = [str(i) for i in validate_run(cfg)]
    assert len(issues) == 1 and "77 (1 px)" in issues[0] and "air_deposition_classes.csv" in issues[0]
    cfg = write_run(tmp_zh, "air_purification", datasets, inputs, params={"removal_hour": 10})
    assert "removal_hour: unknown parameter" in str(validate_run(cfg)[0])
    cfg = write_run(tmp_zh, "air_purification", datasets, inputs, method="box_model")
    assert "box_model" in str(validate_run(cfg)[0])


# --- real data: CNEMC stations over central Wuhan ----------------------------------------------------------
#: LAI per class for the Wuhan test (✱ typical annual-mean values: forests 3.5-4.5, grass 1.5, crops 2).
WUHAN_PLUS_TO_GEP = {1: (31, 1.5), 2: (12, 3.5), 3: (52, 2.0), 4: (62, 0.0), 5: (71, 0.0), 6: (42, 0.0), 7: (11, 4.5)}


@pytest.mark.shared
def test_cnemc_stations_wuhan_plausible_removal(shared_data, tmp_zh):
    """The 10 CNEMC stations in Wuhan (daily means of 2017-04-11, used as an annual-mean surrogate), IDW
    (power 2) onto central Wuhan's real land cover at 300 m; mean wind 2 m/s. Removal per hectare of
    forest must be "a few to tens of kg/ha/yr, not tonnes" (gep-methods §4): PM2.5 1-100, gases 1-150,
    PM10 below 1000 kg/ha/yr (50 % resuspension at Chinese PM10 levels)."""
    import pandas as pd
    from pyproj import Transformer

    lulc_path = shared_data / "real" / "wuhan-lulc-30m-plus" / "wh2013_refy.tif"
    with rasterio.open(lulc_path) as src:
        profile = src.profile
        factor = 10                                               # 30 m → 300 m, nearest (test speed)
        lulc = src.read(1)[::factor, ::factor]
        transform = src.transform @ src.transform.scale(factor, factor)
        nodata = src.nodata
    eco = np.full(lulc.shape, 255, np.uint8)
    lai = np.full(lulc.shape, -9999.0, np.float32)
    for code, (gep, lai_value) in WUHAN_PLUS_TO_GEP.items():
        eco[lulc == code], lai[lulc == code] = gep, lai_value
    st = pd.read_csv(shared_data / "real" / "china-aq-stations-cnemc-2017" / "cnemc_daily_station_obs_20170411.csv")
    st = st[(st.lon.between(113.7, 115.1)) & (st.lat.between(29.9, 31.4))]
    assert len(st) >= 10
    x, y = Transformer.from_crs("EPSG:4326", profile["crs"], always_xy=True).transform(st.lon.values, st.lat.values)
    rows, cols = np.indices(lulc.shape)
    px = transform.c + (cols + 0.5) * transform.a   # pixel centres (north-up grid)
    py = transform.f + (rows + 0.5) * transform.e
    d2 = (px[..., None] - x) ** 2 + (py[..., None] - y) ** 2
    w = 1.0 / np.maximum(d2, 1.0)
    base = dict(profile, width=lulc.shape[1], height=lulc.shape[0], transform=transform, count=1)
    with rasterio.open(tmp_zh / "eco.tif", "w", **dict(base, dtype="uint8", nodata=255)) as dst:
        dst.write(eco, 1)
    with rasterio.open(tmp_zh / "lai.tif", "w", **dict(base, dtype="float32", nodata=-9999.0)) as dst:
        dst.write(lai, 1)
    datasets = {"eco": {"kind": "raster", "uri": "eco.tif", "categorical": True},
                "lai": {"kind": "raster", "uri": "lai.tif"}}
    inputs = {"ecosystem": "eco", "lai": "lai", "wind_speed_scalar": 2.0}
    for col, pol in (("PM2_5", "pm25"), ("PM10", "pm10"), ("SO2", "so2"), ("NO2", "no2"), ("O3", "o3"), ("CO", "co")):
        v = st[col].to_numpy(float)
        ok = v > -9999
        grid = (w[..., ok] * v[ok]).sum(-1) / w[..., ok].sum(-1)
        with rasterio.open(tmp_zh / f"{pol}.tif", "w", **dict(base, dtype="float32", nodata=-9999.0)) as dst:
            dst.write(grid.astype("float32"), 1)
        datasets[pol], inputs[f"conc_{pol}"] = {"kind": "raster", "uri": f"{pol}.tif"}, pol
    cfg = write_run(tmp_zh, "air_purification", datasets, inputs, year=2017, chunk=128)
    res = pipeline.run(cfg, tmp_zh / "ws").services["air_purification"]
    ha = 9.0                                                      # 300 m pixel = 9 ha
    forest = (eco == 11) | (eco == 12)
    assert forest.sum() > 50 and nodata is not None
    per_ha = {k: read(r.path)[forest].astype(float) / ha for k, r in res.outputs.items()}
    print({k: round(v.mean(), 2) for k, v in per_ha.items()})   # measured: see bench/README.md
    assert 1 < per_ha["pm25"].mean() < 100
    assert 10 < per_ha["pm10"].mean() < 1000
    for gas in ("so2", "no2", "o3"):
        assert 1 < per_ha[gas].mean() < 150, gas
    assert 0 < per_ha["co"].mean() < 50
    region_t = sum(res.totals[f"{p}_total"][0] for p in ("pm25", "so2", "no2", "o3", "co")) / 1000
    assert region_t < 0.2 * (eco != 255).sum() * ha               # under 200 kg/ha on average: not tonnes


def test_example_configs_validate_without_data():
    """The shipped example configs parse (their data may be absent on this machine)."""
    from ecoraster.config import RunConfig

    for name in ("wuhan_2013_gep.yaml", "ninghe_2020.yaml", "chongming_2020.yaml"):
        path = REPO / "configs" / name
        if path.exists():
            cfg = RunConfig.load(path)
            assert "carbon_sequestration" in cfg.services and "air_purification" in cfg.services
