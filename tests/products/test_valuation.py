"""Prices, CPI rebasing, pint units and the value rasters of the valuation hook."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from ecoraster.errors import TableError, UnitError, ValidationFailed
from ecoraster import pipeline
from ecoraster.pipeline import load_plan, validate_run
from ecoraster.units import value_factor
from ecoraster.prices import CPI, PriceTable, load_setup, rebase

from ..conftest import REPO
from .conftest import CPI_CSV, PRICES, setup_run

# CPI of conftest: 2012 = 105.0, 2013 = 110.0 (previous year = 100) → 2011 → 2013 × 1.155
WC_PRICE_2013 = 10 * 1.05 * 1.10               # 11.55 CNY/m3
C_PRICE_PER_TC = 100 * 44 / 12                 # 100 CNY/t CO2 on t C: 366.666… CNY/t C


def test_value_factor_units():
    assert value_factor("m3", "CNY/m3") == (1.0, "")
    f, note = value_factor("t C", "CNY/t CO2")
    assert f == pytest.approx(44 / 12) and "44/12" in note
    assert value_factor("Mg C", "CNY/t C")[0] == 1.0              # Mg C = t C
    assert value_factor("t CO2", "CNY/t C")[0] == pytest.approx(12 / 44)
    assert value_factor("kg", "CNY/t")[0] == pytest.approx(1e-3)  # 1 kg × 1 CNY/t = 0.001 CNY
    assert value_factor("kg SO2", "元/kg")[0] == 1.0
    assert value_factor("t", "万元/t")[0] == 1e4
    with pytest.raises(UnitError, match="'m3' × price unit 'CNY/t' does not give CNY"):
        value_factor("m3", "CNY/t", where="svc.out")
    with pytest.raises(UnitError, match="not a currency"):
        value_factor("m3", "m3/t")
    with pytest.raises(UnitError, match="not understood"):
        value_factor("furlongs of joy", "CNY/m3")


def test_cpi_rebase_both_ways_and_missing_year(tmp_zh):
    (tmp_zh / "cpi.csv").write_text(CPI_CSV, encoding="utf-8")
    cpi = CPI(tmp_zh / "cpi.csv")
    assert cpi.factor(2011, 2013) == pytest.approx(1.155)          # 1.05 × 1.10
    assert cpi.factor(2013, 2011) == pytest.approx(1 / 1.155)
    assert cpi.factor(2012, 2012) == 1.0
    with pytest.raises(TableError, match=r"cpi.csv has no CPI for year\(s\) 2014, 2015 \(needed to rebase 2013 → 2015\)"):
        cpi.factor(2013, 2015, where="prices.x")


def test_shipped_tables_load_and_rebase():
    table = PriceTable.load(REPO / "configs/prices/mee2020.yaml")
    cpi = CPI(table.cpi_path)
    wc = rebase(table, table.for_product("water_conservation"), cpi, 2013)
    # 7.06 CNY/m3 (2010) × 1.054 × 1.026 × 1.026 (CPI 2011..2013 of cpi_china.csv)
    assert wc.value == pytest.approx(7.06 * 1.054 * 1.026 * 1.026)
    soil = rebase(table, table.for_product("soil_retention"), cpi, 2010)
    # 0.21333333 m3/t × 15.58 (a cost, 2010) + 0.0037 × 875 + 0.00108 × 2800 (2003 fees in force in 2010:
    # fee_tax prices are not CPI-inflated, issue 15) = 3.32373 + 3.2375 + 3.024 = 9.58523 CNY/t
    assert soil.value == pytest.approx(0.21333333 * 15.58 + 0.0037 * 875 + 0.00108 * 2800)
    assert table.for_product("carbon_sequestration").unit == "CNY/t CO2"


@pytest.mark.parametrize("body, message", [
    ("  - {id: a, product: nope, value: 1, unit: CNY/m3, price_year: 2011, source: s, confidence: ✱}",
     "prices.a.product = 'nope': not a product code"),
    ("  - {id: a, product: water_conservation, value: x, unit: CNY/m3, price_year: 2011, source: s, confidence: ✱}",
     "prices.a.value = 'x'"),
    ("  - {id: a, product: water_conservation, value: 1, unit: CNY/m3, price_year: 2011, source: s, confidence: ✱, default: true}\n"
     "  - {id: b, product: water_conservation, value: 2, unit: CNY/m3, price_year: 2011, source: s, confidence: ✱, default: true}",
     "prices.b.default: product 'water_conservation' already has default 'a'"),
])
def test_price_table_errors_name_file_field_value(tmp_zh, body, message):
    path = tmp_zh / "bad.yaml"
    path.write_text(f"id: bad\nversion: '1'\nprices:\n{body}\n", encoding="utf-8")
    with pytest.raises(TableError, match="bad.yaml") as err:
        PriceTable.load(path)
    assert message in str(err.value)


def _read(path):
    with rasterio.open(path) as src:
        return src.read(1), src.nodata, dict(src.tags(1)), src.units[0]


@pytest.mark.parametrize("chunk", [64, 128])
def test_value_rasters_equal_numpy_reference(tmp_zh, raster_writer, fake_service, chunk):
    """150 × 130 px: chunk 64 gives 3 × 3 blocks, 128 gives 2 × 2; both equal numpy."""
    cfg = setup_run(tmp_zh, raster_writer, chunk=chunk, shape=(150, 130))
    rng = np.random.default_rng(1)
    wc = rng.uniform(0, 500, size=(150, 130)).astype(np.float32)
    wc[rng.random((150, 130)) < 0.05] = -1.0                      # 5 % nodata anywhere
    wc[0, 0] = 0.0                                               # zero stays a valid zero
    raster_writer(tmp_zh / "wc.tif", wc, nodata=-1.0)
    text = cfg.read_text().replace("  parcels:", "  parcels_off:").replace("  wetland_units:", "  wetland_off:")
    cfg.write_text(text.split("zones:")[0])
    result = pipeline.run(cfg, tmp_zh / "ws")
    res = result.services["fake_gep"]
    value, nodata, tags, unit = _read(res.outputs["wc_value"].path)
    valid = wc != -1.0
    factor = res.metadata["valuation"]["wc"]["factor_cny_per_unit"]
    assert factor == pytest.approx(WC_PRICE_2013, rel=1e-12)
    expected = (wc.astype(np.float64) * factor).astype(np.float32)      # numpy, whole array at once
    np.testing.assert_array_equal(value == nodata, ~valid)
    np.testing.assert_array_equal(value[valid], expected[valid])      # bit-identical to the chunked run
    assert value[0, 0] == 0.0
    assert tags["price_year"] == "2013" and tags["price_id"] == "wc_2011" and unit == "CNY"
    assert res.outputs["wc_value"].total == pytest.approx(float(np.sum(wc[valid], dtype=np.float64)) * WC_PRICE_2013,
                                                         rel=1e-6)
    # carbon: 1 t C per pixel × 100 CNY/t CO2 × 44/12
    carbon, _, ctags, _ = _read(res.outputs["carbon_value"].path)
    assert carbon[1, 1] == pytest.approx(C_PRICE_PER_TC, rel=1e-6)
    manifest = json.loads(result.manifest_path.read_text(encoding="utf-8"))
    v = manifest["valuation"]
    assert v["price_table"] == "testprices" and v["price_table_version"] == "t1" and v["price_year"] == 2013
    assert v["valued"]["fake_gep.carbon"]["factor_cny_per_unit"] == pytest.approx(C_PRICE_PER_TC)
    assert len(v["price_table_sha256"]) == 64
    assert manifest["parameter_tables"]["products"]["version"]


def test_unit_mismatch_is_found_before_computing(tmp_zh, raster_writer, fake_service):
    cfg = setup_run(tmp_zh, raster_writer)
    (tmp_zh / "prices.yaml").write_text(PRICES.replace("value: 1000, unit: CNY/t,", "value: 1000, unit: CNY/m3,"),
                                        encoding="utf-8")
    issues = validate_run(cfg)
    assert len(issues) == 1
    assert "fake_gep.o2 (o2_2013)" in str(issues[0]) and "'t' × price unit 'CNY/m3'" in str(issues[0])
    with pytest.raises(ValidationFailed):
        pipeline.run(cfg, tmp_zh / "ws")
    assert not (tmp_zh / "ws" / "fake_gep").exists()


def test_missing_cpi_year_is_found_before_computing(tmp_zh, raster_writer, fake_service):
    cfg = setup_run(tmp_zh, raster_writer)
    cfg.write_text(cfg.read_text().replace("price_year: 2013", "price_year: 2016"))
    messages = " | ".join(str(i) for i in validate_run(cfg))
    assert "cpi.csv has no CPI for year(s) 2014, 2015, 2016" in messages


def test_profile_not_counting_a_product_skips_its_value(tmp_zh, raster_writer, fake_service):
    cfg = setup_run(tmp_zh, raster_writer)
    cfg.write_text(cfg.read_text().replace("profile: mee2020", "profile: ndrc2022"))   # no oxygen_release
    plan = load_plan(cfg)
    assert not load_setup(plan).profile.counts("oxygen_release")
    res = pipeline.run(cfg, tmp_zh / "ws").services["fake_gep"]
    assert "o2_value" not in res.outputs and "wc_value" in res.outputs
    assert any("not counted by profile ndrc2022" in n for n in res.notes)


def test_valuing_services_one_at_a_time_keeps_every_entry(tmp_zh, raster_writer, fake_service):
    """Flows value one service per task: each returns its own records, the service result is left
    as it was, and the run's report holds every entry."""
    from ecoraster.accounting.valuation import valuation_report, value_service
    from ecoraster.spec import ServiceResult

    cfg = setup_run(tmp_zh, raster_writer, chunk=64, shape=(20, 20))
    cfg.write_text(cfg.read_text().split("zones:")[0])
    result = pipeline.run(cfg, tmp_zh / "ws")
    physical = {k: v for k, v in result.services["fake_gep"].outputs.items() if v.kind == "physical"}
    out = tmp_zh / "staging"
    plan = load_plan(cfg)
    parts = []
    for oid in ("wc", "carbon"):
        part = ServiceResult(service="fake_gep", outputs={oid: physical[oid]})
        parts.append(value_service(plan, part, out))
        assert list(part.outputs) == [oid]                      # the service's result is not changed
        assert list(parts[-1].records) == [f"{oid}_value"]
    report = valuation_report(plan.valuation, parts)
    assert {"fake_gep.wc", "fake_gep.carbon"} <= set(report["valued"])


def test_annual_flows_are_valued_over_one_accounting_year():
    # services report flows per year (t CO2/yr, kg/yr); GEP values one year's flow
    assert value_factor("t CO2/yr", "CNY/t CO2") == (1.0, "annual flow × 1-year accounting period")
    factor, note = value_factor("t C/yr", "CNY/t CO2")
    assert factor == pytest.approx(44 / 12) and "44/12" in note
    with pytest.raises(UnitError, match="m3/yr"):
        value_factor("m3/yr", "CNY/t")
