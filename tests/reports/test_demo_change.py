"""End to end on the bundled Wuhan data (a 9 km window of the demo, 2005 and 2013 land cover):
two runs, `eco change` with a counterfactual run, `eco audit`, `eco assess`, `eco publish`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from ecoraster.cli import app
from ecoraster.pipeline import run as execute_run

from .conftest import cpi_factor

REPO = Path(__file__).resolve().parents[2]
WINDOW = {"crs": "EPSG:32649", "resolution": 30, "bounds": [798570, 3361860, 807570, 3370860]}  # 300 × 300 px
runner = CliRunner()


def _window_config(name: str, folder: Path) -> Path:
    src = REPO / "configs" / name
    raw = yaml.safe_load(src.read_text(encoding="utf-8"))
    raw["catalog"] = str((src.parent / raw["catalog"]).resolve())
    raw["extra_catalogs"] = [str((src.parent / c).resolve()) for c in raw.get("extra_catalogs", [])]
    raw["grid"], raw["chunk"] = WINDOW, 128
    # the window holds districts only: parcels and the East Lake unit lie outside it (zones that miss the
    # grid are refused, issue 17)
    raw["zones"] = {k: v for k, v in raw.get("zones", {}).items() if k == "districts"}
    raw["dask"] = {"scheduler": "threads"}
    out = folder / name
    out.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return out


@pytest.mark.slow
def test_demo_window_2005_2013(tmp_path):
    a, b = tmp_path / "wuhan_2005", tmp_path / "wuhan_2013"
    execute_run(_window_config("wuhan_2005_gep.yaml", tmp_path), a)
    execute_run(_window_config("wuhan_2013_gep.yaml", tmp_path), b)
    out = tmp_path / "change"
    r = runner.invoke(app, ["change", str(a), str(b), "-o", str(out), "--run-counterfactual", "--quiet", "--json"])
    assert r.exit_code == 0, r.output
    products = pd.read_parquet(out / "change_products.parquet")
    region = products[products["zone_set"] == "region"].set_index("product")
    # A is valued in 2005 prices: constant (2013) value = nominal × Π CPI 2006..2013 / 100
    wc = region.loc["water_conservation"]
    assert wc["price_year_a"] == 2005 and wc["price_year_b"] == 2013
    assert wc["value_a_const"] == pytest.approx(wc["value_a_nominal"] * cpi_factor(2005, 2013), rel=1e-9)
    gep = pd.read_parquet(out / "change_gep.parquet").set_index("zone_set").loc["region"]
    counted = region[region["counted"]]
    assert gep["gep_change_const"] == pytest.approx((counted["value_b_const"].fillna(0)
                                                     - counted["value_a_const"].fillna(0)).sum(), rel=1e-9)
    # the split adds up
    assert gep["gep_change_landcover"] + gep["gep_change_other"] == pytest.approx(gep["gep_change_const"], rel=1e-9)
    # both runs compute the same services; every quantity is valued at the 2013 run's unit price (market and
    # fee prices not CPI-inflated), so only climate regulation — the one real yearly driver, the station's hot
    # days (94 in 2005, 91 in 2013) — keeps a change other than land cover beyond float32 rounding
    common = region.dropna(subset=["value_a_const", "value_b_const"])
    assert len(common) == len(region), "the 2005 and 2013 demo runs compute the same products"
    steady = common.drop(index=["climate_regulation_transpiration", "climate_regulation_evaporation"])
    assert abs(steady["change_other"].sum()) < 1e-5 * gep["gep_b_const"], \
        steady["change_other"].abs().nlargest(3).to_dict()
    assert region.loc["carbon_sequestration", "price_basis_a"].startswith("unit price of 2013")
    meta = json.loads((out / "change.json").read_text(encoding="utf-8"))
    # the difference raster covers the counted products of both runs (a product of one run has no pair)
    both = counted.dropna(subset=["value_a_const", "value_b_const"])
    assert meta["rasters"]["gep_value_change.tif"]["total"] == pytest.approx(
        (both["value_b_const"] - both["value_a_const"]).sum(), rel=1e-5, abs=1.0)
    r = runner.invoke(app, ["audit", str(a), str(b), "--unit", "156420106", "-o", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["assess", str(b), "--baseline", str(a), "-o", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["publish", str(b), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["version"] == 1, r.output
