"""Change over time, audit, assessment and publication on the tiny runs of conftest.py (hand-worked)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import rasterio
from typer.testing import CliRunner

from ecoraster.cli import app
from ecoraster.errors import QueryError
from ecoraster.reporting.assessment import assess, write_assessment
from ecoraster.reporting.audit import audit, write_audit
from ecoraster.reporting.change import compare_runs, counterfactual_config, landcover_transitions
from ecoraster.reporting.publish import publish, verify

from .conftest import LC_A, LC_B, cpi_factor, make_run, write_catalog

runner = CliRunner()
F = cpi_factor(2005, 2013)  # 2005 prices → 2013 prices


def _row(df, zone_set, zone_id, product=None):
    m = (df["zone_set"] == zone_set) & (df["zone_id"] == zone_id)
    if product:
        m &= df["product"] == product
    assert m.sum() == 1
    return df[m].iloc[0]


def test_change_region_and_split(runs, tmp_path):
    a, b, c = runs
    res = compare_runs(a, b, counterfactual=c, out_dir=tmp_path / "change")
    wc = _row(res.products, "region", "test", "water_conservation")
    # quantity: A 12 px × 100 = 1200 m³; B 10 × 100 + 2 × 40 = 1080 m³
    assert wc["quantity_change"] == pytest.approx(-120.0)
    # values: A 1200 × 5 = 6000 (2005 prices) → 6000 × F; B 1080 × 7 = 7560 (2013)
    assert wc["value_change_nominal"] == pytest.approx(1560.0)
    assert wc["value_change_const"] == pytest.approx(7560.0 - 6000.0 * F)
    # C = 2013 prices on the 2005 land cover: 1200 × 7 = 8400 → land cover −840, other 8400 − 6000 F
    assert wc["change_landcover"] == pytest.approx(-840.0)
    assert wc["change_other"] == pytest.approx(8400.0 - 6000.0 * F)
    g = _row(res.gep, "region", "test")
    # GEP = water + oxygen (16 t × 1000): A (6000 + 16000) F, B 7560 + 16000
    assert g["gep_a_const"] == pytest.approx(22000.0 * F)
    assert g["gep_b_const"] == pytest.approx(23560.0)
    assert g["gep_growth_rate"] == pytest.approx(23560.0 / (22000.0 * F) - 1.0)
    assert g["gep_excl_contested_growth_rate"] == pytest.approx(7560.0 / (6000.0 * F) - 1.0)
    assert g["gep_change_landcover"] + g["gep_change_other"] == pytest.approx(g["gep_change_const"])
    p1 = _row(res.gep, "parcels", "P1")
    # P1: water A 400 × 5, B (2 × 40 + 2 × 100) × 7 = 1960; oxygen 4 × 1000 both
    assert p1["gep_change_const"] == pytest.approx(1960.0 + 4000.0 - (2000.0 + 4000.0) * F)
    # transitions (ha): 2 px of forest (11) became dry cropland (52)
    t = res.transitions
    assert t.loc[11, 52] == 2.0 and t.loc[11, 11] == 2.0 and t.loc[62, 62] == 4.0 and t.to_numpy().sum() == 16.0
    # difference rasters
    with rasterio.open(tmp_path / "change" / "rasters" / "water_conservation_value_change.tif") as src:
        d = src.read(1)
        assert src.tags(1).get("units") == "CNY" or src.tags().get("units") == "CNY"
    assert d[0, 0] == pytest.approx(40 * 7 - 100 * 5 * F, rel=1e-6)
    assert d[3, 3] == 0.0
    with rasterio.open(tmp_path / "change" / "rasters" / "gep_value_change.tif") as src:
        assert src.read(1)[0, 0] == pytest.approx(40 * 7 - 100 * 5 * F + 1000 - 1000 * F, rel=1e-6)
    csv = tmp_path / "change" / "change_gep.csv"
    assert csv.read_bytes().startswith(b"\xef\xbb\xbf")
    assert (tmp_path / "change" / "change_products.parquet").is_file()
    assert "GEP变化" in pd.ExcelFile(tmp_path / "change" / "change.xlsx").sheet_names
    page = (tmp_path / "change" / "change.html").read_text(encoding="utf-8")
    assert "GEP 变化空间分布" in page and page.count("<svg") >= 2


def test_change_revalues_market_prices_at_the_later_runs_price(tmp_path):
    # each quantity at B's (2013) unit price: oxygen, a market price (1000 CNY/t in 2005, 1200 in 2013) that the
    # CPI does not move: A's 16 t at 1200 = 19,200 CNY (not 16,000 × F); water conservation, a cost price (5 CNY/m³
    # in A, 7 in B): A's 1200 m³ at 7 = 8,400 CNY
    catalog = write_catalog(tmp_path)
    kinds = {"water_conservation": "cost", "oxygen_release": "market"}
    a = make_run(tmp_path / "a", catalog, year=2005, lc_id="lc_2005", lc=LC_A, wc_price=5.0, kinds=kinds)
    b = make_run(tmp_path / "b", catalog, year=2013, lc_id="lc_2013", lc=LC_B, wc_price=7.0, o2_price=1200.0,
                 kinds=kinds)
    res = compare_runs(a, b, out_dir=tmp_path / "change", transitions=False)
    o2 = _row(res.products, "region", "test", "oxygen_release")
    assert o2["value_a_const"] == pytest.approx(16 * 1200.0) and o2["value_b_const"] == pytest.approx(16 * 1200.0)
    assert o2["value_change_const"] == pytest.approx(0.0)
    assert o2["price_basis_a"] == "unit price of 2013 (oxygen_release_2013)"
    wc = _row(res.products, "region", "test", "water_conservation")
    assert wc["value_a_const"] == pytest.approx(8400.0) and wc["price_basis_b"] == "unit price of 2013 " \
        "(water_conservation_2013)"
    g = _row(res.gep, "region", "test")
    assert g["gep_a_const"] == pytest.approx(8400.0 + 19200.0)
    # the difference raster of oxygen: 1 t per pixel in both runs at 1200 CNY/t → 0 everywhere
    with rasterio.open(tmp_path / "change" / "rasters" / "oxygen_release_value_change.tif") as src:
        assert np.allclose(src.read(1), 0.0, atol=1e-3)
    # priced in a year no run has: cost prices by the CPI, market prices also, flagged
    other = compare_runs(a, b, price_year=2010, transitions=False, rasters=False)
    o2 = _row(other.products, "region", "test", "oxygen_release")
    assert o2["price_basis_a"].startswith("cpi (market price: no run priced in 2010")
    assert o2["value_a_const"] == pytest.approx(16000.0 * cpi_factor(2005, 2010))
    wc = _row(other.products, "region", "test", "water_conservation")
    assert wc["price_basis_a"] == "cpi" and wc["value_a_const"] == pytest.approx(6000.0 * cpi_factor(2005, 2010))


def test_change_cli_and_price_year(runs, tmp_path):
    a, b, _ = runs
    r = runner.invoke(app, ["change", str(a), str(b), "-o", str(tmp_path / "o"), "--no-rasters", "--price-year",
                            "2005", "--json"])
    assert r.exit_code == 0, r.output
    region = json.loads(r.stdout)["region"][0]
    # in 2005 prices: A 22000, B 23560 / F
    assert region["gep_a_const"] == pytest.approx(22000.0)
    assert region["gep_b_const"] == pytest.approx(23560.0 / F)


def test_counterfactual_config_swaps_landcover(runs):
    from ecoraster.reporting import workspace_io as wio

    _, b, _ = runs
    cfg = counterfactual_config(wio.run_config(wio.open_run(b)), "lc_2005")
    assert cfg.services["svc"].inputs["ecosystem"] == "lc_2005"
    assert "carbon_storage" not in cfg.services
    assert cfg.year == 2013 and cfg.grid.like == "lc_2013"
    assert cfg.allow_outside_years == ["lc_2005"]  # the 2005 land cover is read in 2013 on purpose (warned)


def test_landcover_transitions_mask():
    a = np.array([[1, 1], [2, 0]])
    b = np.array([[1, 2], [2, 2]])
    m = landcover_transitions(a, b, pixel_area_m2=2500.0, mask=np.array([[True, True], [False, True]]))
    # inside: (1→1), (1→2); (0 → 2) is nodata in A → left out; 0.25 ha per pixel
    assert m.loc[1, 1] == 0.25 and m.loc[1, 2] == 0.25 and m.to_numpy().sum() == 0.5


def test_audit_unit(runs, tmp_path):
    a, b, _ = runs
    res = audit(a, b, "W", start_year=2005, end_year=2013)
    assert res.transitions.loc[11, 52] == 2.0 and res.transitions.loc[51, 51] == 4.0
    assert res.transitions.to_numpy().sum() == 8.0  # the 8 ha of W
    carbon = res.carbon.set_index("item")
    assert carbon.loc["c_change", "value"] == pytest.approx(-20.0)  # 2 px × −10 Mg C
    # W: water A 800 m³ × 5, B (680) × 7 = 4760; oxygen 8 t × 1000
    assert res.gep["gep_change_const"] == pytest.approx(4760.0 + 8000.0 - (4000.0 + 8000.0) * F)
    # parcels in W: P1 (−) and P3; P1 lost most: 5960 − 6000 F
    assert res.losses["zone_id"].iloc[0] == "P1"
    assert res.losses["gep_change_const"].iloc[0] == pytest.approx(5960.0 - 6000.0 * F)
    assert set(res.losses["zone_id"]) <= {"P1", "P3"}
    kinds = set(res.notes["kind"])
    assert any("contested" in k for k in kinds) and any("clipped" in k for k in kinds)
    # change map of W: row 0 forest → dry cropland (ecological → not: 2), the rest unchanged (1)
    cats = res.change_map[0]
    assert (cats == 2).sum() == 2 and (cats == 1).sum() == 6 and (cats == 3).sum() == 0
    files = write_audit(res, tmp_path / "audit")
    text = files["html"].read_text(encoding="utf-8")
    assert "离任审计" in text and text.count("<svg") >= 2 and "@media print" in text
    with pytest.raises(QueryError, match="--start-year 2006"):
        audit(a, b, "W", start_year=2006)
    with pytest.raises(QueryError, match="no zone_id 'X'"):
        audit(a, b, "X")


def test_assessment_ranking(runs, tmp_path):
    a, b, _ = runs
    gdp = tmp_path / "gdp.csv"
    gdp.write_text("zone_id,gdp_wan_yuan\nW,100\nE,10\n", encoding="utf-8")  # 1e6 and 1e5 CNY
    res = assess(a, b, gdp=gdp)
    t = res.table.set_index("zone_id")
    # ecological land: W 4 ha forest → 2 ha; E 4 ha lake both years
    assert t.loc["W", "eco_land_change_ha"] == -2.0 and t.loc["E", "eco_land_change_ha"] == 0.0
    # GEP per km²: W 12,760 CNY / 0.08 km²
    assert t.loc["W", "gep_per_km2"] == pytest.approx(12760.0 / 0.08)
    assert t.loc["E", "gep_to_gdp"] == pytest.approx(10800.0 / 1e5)
    # two zones → each indicator scores 0 or 100: W wins gep, regulating, per km² (0.15 × 3 = 0.45);
    # E wins growth (0.30), ecological land (0.15) and GEP/GDP (0.10) = 0.55
    assert t.loc["W", "score"] == pytest.approx(45.0) and t.loc["E", "score"] == pytest.approx(55.0)
    assert t.loc["E", "rank"] == 1
    # without GDP the weights are renormalised over 0.9: 0.45 / 0.9 = 50 each → a tie
    t2 = assess(a, b).table.set_index("zone_id")
    assert t2["score"].tolist() == pytest.approx([50.0, 50.0]) and set(t2["rank"]) == {1}
    files = write_assessment(res, tmp_path / "assess")
    html = files["html"].read_text(encoding="utf-8")
    assert "综合得分" in html and html.count("<svg") >= 4 and "http" not in html.split("</style>")[0]


def test_publish_idempotent_and_versioned(runs, tmp_path):
    _, b, _ = runs
    rel = tmp_path / "releases"
    r1 = publish(b, rel)
    assert r1.created and r1.version == 1 and r1.path.name.startswith("v001_")
    for f in ("gep_report.html", "run.json", "products/catalogue.xlsx", "products/districts.parquet",
              "stac/catalog.json", "SHA256SUMS", "release.json"):
        assert (r1.path / f).is_file(), f
    assert verify(r1.path) == []
    r2 = publish(b, rel)
    assert not r2.created and r2.path == r1.path and r2.version == 1
    assert len(list((rel / "test_2013").iterdir())) == 1
    m = json.loads((b / "run.json").read_text(encoding="utf-8"))
    m["created"] = "2026-12-01T00:00:00+00:00"  # a new run of the same region and year
    (b / "run.json").write_text(json.dumps(m), encoding="utf-8")
    r = runner.invoke(app, ["publish", str(b), "--releases", str(rel), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["version"] == 2 and out["created"]
    (r1.path / "gep_report.html").write_text("tampered", encoding="utf-8")
    assert verify(r1.path) == ["gep_report.html"]


def test_transfer_from_change_folder(runs, tmp_path):
    a, b, _ = runs
    compare_runs(a, b, out_dir=tmp_path / "ch", rasters=False, transitions=False)
    pop = tmp_path / "pop.csv"
    pop.write_text("unit,population\nW,100\nE,200\n", encoding="utf-8")
    r = runner.invoke(app, ["transfer", str(tmp_path / "ch"), "--fund", "1000", "--method",
                            "regulating_per_capita", "--population", str(pop), "--json"])
    assert r.exit_code == 0, r.output
    t = {row["unit"]: row for row in json.loads(r.stdout)}
    # regulating GEP of B (water + oxygen): W 4760 + 8000 = 12760, E 2800 + 8000 = 10800
    # per capita 127.6 and 54 → shares 127.6 / 181.6 and 54 / 181.6 of 1000
    assert t["W"]["transfer_cny"] == pytest.approx(1000 * 127.6 / 181.6)
    assert t["E"]["transfer_cny"] == pytest.approx(1000 * 54.0 / 181.6)
