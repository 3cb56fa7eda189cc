"""Regional prices (issue 13): a price that `applies_to` the run's region replaces the product's default; fees,
taxes and tariffs are dated to the accounting year (no CPI factor when the run's price year is that year)."""

from __future__ import annotations

import pytest
import yaml

from ecoraster.resources import config_path
from ecoraster.errors import TableError
from ecoraster.prices import CPI, PriceTable, rebase


def test_regional_price_chosen_by_run_region():
    table = PriceTable.load(config_path("prices", "mee2020.yaml"))
    assert table.for_product("water_purification_cod").id == "cod_fee_2003"          # no region: the default
    assert table.for_product("water_purification_cod", region="wuhan").id == "cod_fee_hubei_2013"
    assert table.for_product("water_purification_tp", region="ninghe").id == "tp_tax_tianjin_2020"
    assert table.for_product("climate_regulation_evaporation", region="chongming").id == "electricity_shanghai_2020_evap"
    assert table.for_product("flood_regulation", region="wuhan").id == "reservoir_cost_2010_flood"  # no regional entry
    # the Hubei 2013 fee in a 2013 run: 0.7 元/当量 ÷ 1 kg = 700 CNY/t, CPI factor 1 (not 700 × CPI 2003→2013)
    cpi = CPI(table.cpi_path)
    price = rebase(table, table.for_product("water_purification_cod", region="wuhan"), cpi, 2013)
    assert price.value == 700 and price.cpi_factor == 1
    assert table.get("cod_fee_hubei_2013").kind == "fee_tax" and table.get("electricity_hubei_2013").region == "Hubei"


def test_two_regional_prices_for_one_region_rejected(tmp_path):
    raw = yaml.safe_load(config_path("prices", "mee2020.yaml").read_text(encoding="utf-8"))
    raw["prices"].append({"id": "cod_other", "product": "water_purification_cod", "value": 1, "unit": "CNY/t",
                          "price_year": 2013, "source": "test", "confidence": "✱", "applies_to": ["wuhan"]})
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    (tmp_path / "cpi_china.csv").write_text(config_path("prices", "cpi_china.csv").read_text(encoding="utf-8"))
    with pytest.raises(TableError,
                       match="region 'wuhan' already has price 'cod_fee_hubei_2013' for 'water_purification_cod'"):
        PriceTable.load(tmp_path / "p.yaml")
