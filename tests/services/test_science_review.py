"""Findings of the science review (shared/docs/science-review.md; issue 15) on the services: each test
states the arithmetic by hand and failed on the code before the fix.

Pixels are 30 m (900 m² = 0.09 ha); ``t_per_g`` = 900 × 10⁻⁶ converts g C m⁻² to t C per pixel.
"""

from __future__ import annotations

import math

import dask.array as da
import numpy as np
import pytest

from ecoraster.pipeline import run as execute_run
from ecoraster.services.carbon_sequestration import ndvi_bounds
from ecoraster.services.water_conservation import SPEC as WATER_SPEC

from ._helpers import read, write_bands, write_run
from .test_casa_sequestration import INPUTS, _datasets, _write_inputs

ND = -9999.0
T_PER_G = 900.0 * 1e-6
# Annual-surrogate pixel of test_casa_sequestration.test_annual_surrogate_by_hand (NDVI 0.5, SOL 5000,
# T 15 °C, P 600, PET 1000, AET 500): NPP = 1606.488 × 0.9875 × 0.993405 × 0.75 × εmax g C m⁻²
# Rh = 0.22 × (e^1.368 + ln(0.3145 × 50 + 1)) × 30 × 0.465 × 12 = 248.38 g C m⁻² a⁻¹
NPP_PER_EMAX = 1606.488 * 0.9875 * 0.993405 * 0.75
RH_G = 0.22 * (math.exp(0.0912 * 15) + math.log(0.3145 * 50 + 1)) * 30 * 0.465 * 12


def _sub(tmp, name):
    (tmp / name).mkdir()
    return tmp / name


def _casa_run(tmp, eco, ndvi, params=None):
    full = lambda v: np.full(eco.shape, v, dtype="float64")  # noqa: E731
    _write_inputs(tmp, eco, ndvi, full(5000.0), full(15.0), full(600.0), full(1000.0), full(500.0))
    cfg = write_run(tmp, "carbon_sequestration", _datasets(), INPUTS,
                    params={"ndvi_bounds": "table", **(params or {})})
    return execute_run(cfg, tmp / "ws").services["carbon_sequestration"]


# --- finding 1: negative NEP is not a negative product ------------------------------------------------
def test_negative_nep_is_clipped_and_reported_as_carbon_source(tmp_zh):
    # tussock grass (33, εmax 0.542): (0,0) NDVI 0.5 → NEP = 640.62 − 248.38 = 392.24 g C m⁻² (sink)
    # (0,1) NDVI −0.2 → NPP 0, NEP = −248.38 g C m⁻² (source): priced CO2 0, carbon source 248.38 × t_per_g
    eco = np.array([[33, 33]], np.uint8)
    res = _casa_run(tmp_zh, eco, np.array([[0.5, -0.2]]))
    nep, co2, o2 = (read(res.outputs[k].path) for k in ("nep", "co2", "o2"))
    sink = (NPP_PER_EMAX * 0.542 - RH_G) * T_PER_G
    assert nep[0, 1] == pytest.approx(-RH_G * T_PER_G, rel=1e-5)        # signed NEP kept as diagnostic
    assert co2[0, 0] == pytest.approx(sink * 44 / 12, rel=1e-5)
    assert co2[0, 1] == 0.0 and o2[0, 1] == 0.0                          # a source is not a negative product
    source = read(res.outputs["carbon_source"].path)
    assert source[0, 1] == pytest.approx(RH_G * T_PER_G, rel=1e-5) and source[0, 0] == 0.0
    assert res.totals["carbon_source_total"][1] == "t C"
    assert res.outputs["nep"].product is None and res.outputs["carbon_source"].product is None


def test_cropland_is_excluded_from_nep_sequestration_by_default(tmp_zh):
    # dry cropland 52 with a sink (NEP 392.24 g C m⁻²): its harvest is a material product → CO2 0, O2 0
    res = _casa_run(tmp_zh, np.array([[52, 33]], np.uint8), np.array([[0.5, 0.5]]))
    co2, nep = read(res.outputs["co2"].path), read(res.outputs["nep"].path)
    assert nep[0, 0] == pytest.approx((NPP_PER_EMAX * 0.542 - RH_G) * T_PER_G, rel=1e-5)
    assert co2[0, 0] == 0.0 and co2[0, 1] > 0


def test_alpha_npp_and_rate_methods(tmp_zh):
    # α·NPP: grass 33 α = nep_npp_ratio of casa_emax.csv; CO2 = α × NPP × 44/12
    res = _casa_run(tmp_zh, np.array([[33]], np.uint8), np.array([[0.5]]), {"nep_method": "alpha_npp"})
    from ecoraster.tables import read_table
    from ecoraster.services.carbon_sequestration import EMAX_TABLE

    row = read_table(EMAX_TABLE).set_index("code").loc[33]
    npp_t = NPP_PER_EMAX * 0.542 * T_PER_G
    assert read(res.outputs["co2"].path)[0, 0] == pytest.approx(row["nep_npp_ratio"] * npp_t * 44 / 12, rel=1e-5)
    # 固碳速率: CO2 = rate (t C/ha/yr) × 0.09 ha × 44/12, whatever the NDVI
    res = _casa_run(_sub(tmp_zh, "rate"), np.array([[33]], np.uint8), np.array([[-0.2]]), {"nep_method": "rate"})
    assert read(res.outputs["co2"].path)[0, 0] == pytest.approx(row["rate_t_c_ha"] * 0.09 * 44 / 12, rel=1e-5)


# --- finding 5: CASA NDVI_min is the bare-soil value; εmax per region; Rh stated -----------------------
def test_ndvi_min_is_bare_soil_not_the_class_minimum():
    # a homogeneous evergreen class, NDVI 0.68–0.72: per-class 5 % bound would be ≈ 0.68 and put most
    # pixel-months at FPAR ≈ FPARmin; the lower bound must stay the bare-soil NDVI of the table (0.023)
    rng = np.random.default_rng(1)
    ndvi = [da.from_array(rng.uniform(0.68, 0.72, (40, 40)).astype(np.float32), chunks=20) for _ in range(12)]
    classes = da.from_array(np.full((40, 40), 11, np.int64), chunks=20)
    lo, hi, report = ndvi_bounds(classes, 255, ndvi, np.array([11]), np.array([0.023]), np.array([0.676]), 10)
    assert lo[0] == pytest.approx(0.023)
    assert hi[0] == pytest.approx(0.718, abs=0.003)          # 95 % of U(0.68, 0.72) = 0.718


def test_emax_override_per_region(tmp_zh):
    # evergreen 11 with εmax 0.475 (declared for Wuhan's pine/fir-dominated 常绿林) instead of 0.985
    # NPP = 5000 × FPAR(0.5; 0.023, 0.676) × 0.5 × 0.9875 × 0.993405 × 0.75 × 0.475 g C m⁻²
    from ecoraster.kernels.casa import fpar

    res = _casa_run(tmp_zh, np.array([[11]], np.uint8), np.array([[0.5]]), {"emax_override": {11: 0.475}})
    npp_g = 5000 * fpar(0.5, 0.023, 0.676, 0.001, 0.95, 0.5) * 0.5 * 0.9875 * 0.993405 * 0.75 * 0.475
    assert read(res.outputs["npp"].path)[0, 0] == pytest.approx(npp_g * T_PER_G, rel=1e-5)
    assert any("Rh" in n and "climate" in n for n in res.notes)      # the Rh choice is stated


# --- finding 3: InVEST water yield is not 水源涵养 -----------------------------------------------------
def test_awy_water_yield_has_its_own_product():
    out = {o.id: o for o in WATER_SPEC.outputs}
    assert out["water_yield_m3"].product == "water_yield"


# --- finding 4: PM10 coarse fraction; gases on daytime in-leaf hours -----------------------------------
def _air_run(tmp, eco, pm25, pm10, so2, ndvi=0.6):
    write_bands(tmp / "eco.tif", eco, nodata=255, dtype="uint8")
    for name, v in (("ndvi", ndvi), ("pm25", pm25), ("pm10", pm10), ("so2", so2)):
        write_bands(tmp / f"{name}.tif", np.full(eco.shape, v))
    ds = {i: {"kind": "raster", "uri": f"{i}.tif"} for i in ("ndvi", "pm25", "pm10", "so2")}
    ds["eco"] = {"kind": "raster", "uri": "eco.tif", "categorical": True}
    cfg = write_run(tmp, "air_purification", ds,
                    {"ecosystem": "eco", "ndvi": "ndvi", "wind_speed_scalar": 2.0, "conc_pm25": "pm25",
                     "conc_pm10": "pm10", "conc_so2": "so2"}, method="deposition", year=2013)
    return execute_run(cfg, tmp / "ws").services["air_purification"]


def test_pm10_deposition_uses_the_coarse_fraction(tmp_zh):
    # PM10 40, PM2.5 30 µg/m³ → the PM10 Vd (0.64 cm/s, 50 % resuspension) acts on 10 µg/m³ only; doubling
    # PM2.5 to 40 (coarse fraction 0) removes no PM10
    a = _air_run(_sub(tmp_zh, "a"), np.array([[12]], np.uint8), 30, 40, 20)
    b = _air_run(_sub(tmp_zh, "b"), np.array([[12]], np.uint8), 40, 40, 20)
    pm10_a, pm10_b = read(a.outputs["pm10"].path)[0, 0], read(b.outputs["pm10"].path)[0, 0]
    # LAI of NDVI 0.6: FVC = (0.6 − 0.05)/0.81 = 0.679012; LAI = −ln(0.320988)/0.5 = 2.272679
    # removal = 0.0064 m/s × 10e-9 kg/m³ × 2.272679 × 8760 × 3600 s × 0.5 × 900 m² = 2.0628 kg
    assert pm10_a == pytest.approx(0.0064 * 10e-9 * 2.272679 * 8760 * 3600 * 0.5 * 900, rel=1e-4)
    assert pm10_b == 0.0


def test_gas_deposition_on_daytime_in_leaf_hours(tmp_zh):
    # SO2 20 µg/m³ on deciduous forest 12, Vd 0.65 cm/s, cover = 1 − e^(−0.5 × 2.272679) = 0.679012:
    # 8,760 h would give 0.0065 × 20e-9 × 0.679012 × 31,536,000 × 900 = 2.5051 kg; daytime (0.5) × in-leaf
    # season of deciduous trees (leaf_on_fraction of air_deposition_classes.csv) must scale it down
    from ecoraster.services.air_purification import DEPOSITION_TABLE
    from ecoraster.tables import read_table

    leaf_on = read_table(DEPOSITION_TABLE).set_index("code").loc[12, "leaf_on_fraction"]
    res = _air_run(tmp_zh, np.array([[12]], np.uint8), 30, 40, 20)
    full_year = 0.0065 * 20e-9 * 0.679012 * 8760 * 3600 * 900
    assert read(res.outputs["so2"].path)[0, 0] == pytest.approx(full_year * 0.5 * leaf_on, rel=1e-4)
    assert leaf_on < 1.0


# --- finding 6: carbon storage: water pools and a minimum mapping unit ---------------------------------
def test_minimum_mapping_unit_drops_single_pixel_class_noise(tmp_zh):
    # 5 × 5 paddy (51) in both years except one pixel flipping to evergreen 11 in the later year and a 2 × 3
    # block turning into a pond (43). With min_mapping_unit_px 4 the single pixel is not a change; the
    # 6-pixel pond is: change = 6 × 0.09 ha × (C_pond − C_paddy)
    from ecoraster.resources import config_path
    from ecoraster.tables import read_table

    bas = np.full((5, 5), 51, np.uint8)
    alt = bas.copy()
    alt[0, 0] = 11
    alt[2:4, 1:4] = 43
    write_bands(tmp_zh / "bas.tif", bas, nodata=255, dtype="uint8")
    write_bands(tmp_zh / "alt.tif", alt, nodata=255, dtype="uint8")

    ds = {"bas": {"kind": "raster", "uri": "bas.tif", "categorical": True},
          "alt": {"kind": "raster", "uri": "alt.tif", "categorical": True},
          "pools": {"kind": "table", "uri": str(config_path("parameters", "carbon_pools_gep_classes.csv"))}}
    cfg = write_run(tmp_zh, "carbon_storage", ds, {"lulc_bas": "bas", "lulc_alt": "alt", "carbon_pools": "pools"},
                    params={"min_mapping_unit_px": 4}, grid_like="bas")
    res = execute_run(cfg, tmp_zh / "ws").services["carbon_storage"]
    table = read_table(config_path("parameters", "carbon_pools_gep_classes.csv")).set_index("lucode")
    dens = table[["C_above", "C_below", "C_soil", "C_dead"]].sum(axis=1)
    change = read(res.outputs["c_change"].path)
    assert change[0, 0] == 0.0
    assert float(change.sum()) == pytest.approx(6 * 0.09 * (dens[43] - dens[51]), rel=1e-5)
