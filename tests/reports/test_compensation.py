"""Eco-compensation (生态保护补偿): section schemes and GEP-based transfers, hand-worked numbers."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from ecoraster.cli import app
from ecoraster.compensation import (compute, factor_code, read_sections, transfer_by_gep_change,
                                    transfer_by_gep_share, transfer_by_regulating_per_capita, transfer_table)
from ecoraster.errors import ConfigError, TableError

runner = CliRunner()

HEADER = "section,period,factor,measured_mg_l,target_mg_l,flow_m3,upstream,downstream\n"
# The example: one section, two months.
JIANGSU = HEADER + (
    "S1,2024-01,codmn,7.2,6.0,2600000,上游区,下游区\n"
    "S1,2024-01,NH3-N,1.3,1.0,2600000,上游区,下游区\n"
    "S1,2024-01,总磷,0.25,0.2,2600000,上游区,下游区\n"
    "S1,2024-02,高锰酸盐指数,5.0,6.0,3000000,上游区,下游区\n"
    "S1,2024-02,nh3_n,1.5,1.0,3000000,上游区,下游区\n"
    "S1,2024-02,tp,0.1,0.2,3000000,上游区,下游区\n")


def _csv(tmp_path, text, name="sections.csv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_factor_names_chinese_and_codes():
    assert factor_code("高锰酸盐指数") == "codmn"
    assert factor_code("CODMn") == "codmn"
    assert factor_code("NH₃-N") == "nh3_n"
    assert factor_code("氨氮") == "nh3_n"
    assert factor_code("总氮") == "tn"
    assert factor_code("COD") == "cod"
    assert factor_code("BOD5") is None


def test_jiangsu_hand_worked(tmp_path):
    res = compute(_csv(tmp_path, JIANGSU), "jiangsu")
    by_period = res.sections.set_index("period")["compensation_cny"]
    # month 1: CODMn (7.2 − 6.0) mg/L × 2.6e6 m³ = 3.12 t × 15,000 = 46,800
    #          NH3-N (1.3 − 1.0) × 2.6e6 = 0.78 t × 100,000 = 78,000
    #          TP (0.25 − 0.2) × 2.6e6 = 0.13 t × 100,000 = 13,000     → 137,800
    assert by_period["2024-01"] == pytest.approx(137_800.0, rel=1e-12)
    # month 2: CODMn and TP below target → 0; NH3-N 0.5 × 3.0e6 = 1.5 t × 100,000 = 150,000
    assert by_period["2024-02"] == pytest.approx(150_000.0, rel=1e-12)
    f = res.factors.set_index(["period", "factor"])["compensation_cny"]
    assert f[("2024-01", "codmn")] == pytest.approx(46_800.0)
    assert f[("2024-01", "nh3_n")] == pytest.approx(78_000.0)
    assert f[("2024-01", "tp")] == pytest.approx(13_000.0)
    assert f[("2024-02", "codmn")] == 0.0 and f[("2024-02", "tp")] == 0.0  # never negative
    d = res.districts.set_index("unit")
    assert d.loc["上游区", "payable_cny"] == pytest.approx(287_800.0)
    assert d.loc["下游区", "receivable_cny"] == pytest.approx(287_800.0)
    assert d.loc["下游区", "net_cny"] == pytest.approx(287_800.0)


def test_jiangsu_cli_total(tmp_path):
    out = tmp_path / "补偿" / "out.csv"
    r = runner.invoke(app, ["compensation", str(_csv(tmp_path, JIANGSU)), "--scheme", "jiangsu", "--out", str(out)])
    assert r.exit_code == 0, r.output
    table = pd.read_csv(out, encoding="utf-8-sig")
    col = [c for c in table.columns if "compensation" in c]
    assert len(col) == 1
    assert table[col[0]].sum() == pytest.approx(287_800.0)
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM
    districts = pd.read_csv(out.with_name("out_districts.csv"), encoding="utf-8-sig").set_index("unit")
    assert districts.loc["上游区", "payable_cny"] == pytest.approx(287_800.0)
    r = runner.invoke(app, ["compensation", str(_csv(tmp_path, JIANGSU)), "--scheme", "jiangsu",
                            "--out", str(out), "--json"])
    assert json.loads(r.stdout)["total_cny"] == pytest.approx(287_800.0)


@pytest.mark.parametrize("bad_row, message", [
    ("S1,2024-03,BOD5,3,4,1000,a,b", "row 8: field 'factor' = 'BOD5'"),
    ("S1,2024-03,tp,0.3,0.2,-5,a,b", "row 8: field 'flow_m3' = -5 is negative"),
    ("S1,2024-03,tp,0.3,,100,a,b", "row 8 (section 'S1', period '2024-03', factor tp): field 'target_mg_l' is empty"),
    ("S1,2024-01,tp,0.3,0.2,100,a,b", "rows 4, 8: section 'S1', period '2024-01', factor tp given twice"),
])
def test_bad_input_names_the_row(tmp_path, bad_row, message):
    p = _csv(tmp_path, JIANGSU + bad_row + "\n")
    with pytest.raises(TableError) as err:
        compute(p, "jiangsu")
    assert message in str(err.value) and str(p) in str(err.value)
    r = runner.invoke(app, ["compensation", str(p), "--scheme", "jiangsu", "--out", str(tmp_path / "o.csv")])
    assert r.exit_code == 1 and message in r.output


def test_missing_flow_column_and_unknown_scheme(tmp_path):
    p = _csv(tmp_path, "section,period,factor,measured_mg_l,target_mg_l\nS,1,tp,1,0.5\n")
    with pytest.raises(TableError, match="missing column.*flow_m3"):
        compute(p, "jiangsu")
    with pytest.raises(ConfigError, match="--scheme = 'shandong'"):
        compute(p, "shandong")


def test_henan_tiers(tmp_path):
    text = ("section,period,factor,measured_mg_l,target_mg_l,flow_m3,section_type,upstream,downstream\n"
            "A,1,cod,44,40,,,甲,乙\n"        # m = 0.1: not above 0.1 → 0
            "A,1,nh3_n,2.6,2.0,,,甲,乙\n"    # m = 0.3 → 100,000 × 1.3 = 130,000
            "A,2,cod,100,40,,,甲,乙\n"       # m = 1.5 → tier (1.0, 1.5] 500,000 × 2.5 = 1,250,000
            "A,2,nh3_n,8,2.0,,,甲,乙\n"      # m = 3.0 → 2,000,000 × 4 = 8,000,000
            "B,1,cod,60,40,,inflow_mouth,丙,乙\n"  # m = 0.5, inflow mouth → 150,000 × 1.5 = 225,000
            "B,1,tp,9,0.2,,,丙,乙\n")         # TP is not a Henan factor: left out, noted
    res = compute(_csv(tmp_path, text), "henan")
    s = res.sections.set_index(["section", "period"])["compensation_cny"]
    assert s[("A", "1")] == pytest.approx(130_000.0)
    assert s[("A", "2")] == pytest.approx(1_250_000.0 + 8_000_000.0)
    assert s[("B", "1")] == pytest.approx(225_000.0)
    assert any("tp" in n for n in res.notes)


def test_xinanjiang_index_direction(tmp_path):
    rows = ["section,period,factor,measured_mg_l,target_mg_l,upstream,downstream"]
    # 2013: ratios 1.0, 1.0, 1.0, 1.0 → P = 0.85 × (0.25 × 4) = 0.85 ≤ 1 → 浙江 pays 安徽
    for f in ("codmn", "nh3_n", "tn", "tp"):
        rows.append(f"街口,2013,{f},1,1,安徽,浙江")
    # 2014: ratios 2, 1, 1, 1 → P = 0.85 × 0.25 × 5 = 1.0625 > 1 → 安徽 pays 浙江
    rows += ["街口,2014,codmn,4,2,安徽,浙江", "街口,2014,氨氮,0.5,0.5,安徽,浙江", "街口,2014,总氮,1.2,1.2,安徽,浙江",
             "街口,2014,总磷,0.05,0.05,安徽,浙江"]
    res = compute(_csv(tmp_path, "\n".join(rows) + "\n"), "xinanjiang")
    s = res.sections.set_index("period")
    assert s.loc["2013", "index_p"] == pytest.approx(0.85)
    assert (s.loc["2013", "payer"], s.loc["2013", "payee"]) == ("浙江", "安徽")
    assert s.loc["2014", "index_p"] == pytest.approx(1.0625)
    assert (s.loc["2014", "payer"], s.loc["2014", "payee"]) == ("安徽", "浙江")
    assert s["compensation_cny"].tolist() == [1e8, 1e8]
    d = res.districts.set_index("unit")
    assert d.loc["安徽", "net_cny"] == 0.0


def test_tianjin_ranking(tmp_path):
    # 11 districts, one factor each, one month. District k (1..11): measured = k (target 10 → index k/10),
    # previous year = 10 for all (yoy = (k − 10)/10, same order), inflow = 10 (out/in = k/10, same order).
    # Every rank = k, rank sum = 3k, overall rank = k.
    # Rewards: rank 7 → +200,000, rank 3 → 200,000 × (7 − 3 + 1) = 1,000,000 (宁河 Nov 2021: +100 万 ✔),
    # rank 1 → 1,400,000; ranks 8, 9 → 0; rank 10 → −200,000, rank 11 → −400,000.
    rows = ["section,period,factor,measured_mg_l,target_mg_l,district,inflow_mg_l,measured_prev_year_mg_l"]
    rows += [f"S{k},2021-11,cod,{k},10,D{k:02d},10,10" for k in range(1, 12)]
    res = compute(_csv(tmp_path, "\n".join(rows) + "\n"), "tianjin")
    s = res.sections.set_index("district")
    assert s["overall_rank"].tolist() == list(range(1, 12))
    assert s.loc["D03", "compensation_cny"] == pytest.approx(1_000_000.0)
    assert s.loc["D01", "compensation_cny"] == pytest.approx(1_400_000.0)
    assert s.loc["D07", "compensation_cny"] == pytest.approx(200_000.0)
    assert s.loc["D08", "compensation_cny"] == 0.0 and s.loc["D09", "compensation_cny"] == 0.0
    assert s.loc["D11", "compensation_cny"] == pytest.approx(-400_000.0)
    d = res.districts.set_index("unit")
    assert d.loc["D11", "payable_cny"] == pytest.approx(400_000.0)
    # the city pays 2,000,000 + … : Σ ranks 1–7 = 200,000 × (7+6+…+1) = 5,600,000; receives 600,000
    assert d.loc["天津市（市级）", "payable_cny"] == pytest.approx(5_600_000.0)
    assert d.loc["天津市（市级）", "receivable_cny"] == pytest.approx(600_000.0)


def test_read_sections_keeps_input_spelling(tmp_path):
    df = read_sections(_csv(tmp_path, JIANGSU))
    assert df["factor"].tolist()[:3] == ["codmn", "nh3_n", "tp"]
    assert df["factor_input"].tolist()[2] == "总磷"


# --- GEP-based transfers --------------------------------------------------------------------------------

def test_transfer_by_gep_share():
    # GEP 1, 3 亿 → shares 1/4, 3/4 of 100 万: 250,000 and 750,000
    t = transfer_by_gep_share(1_000_000.0, pd.Series({"A": 1e8, "B": 3e8}))
    assert t.to_dict() == pytest.approx({"A": 250_000.0, "B": 750_000.0})


def test_transfer_by_regulating_per_capita():
    # R/N: A 6e8 / 2e5 = 3,000 CNY/person; B 2e8 / 1e5 = 2,000 → weights 0.6, 0.4 of 1,000,000
    t = transfer_by_regulating_per_capita(1_000_000.0, pd.Series({"A": 6e8, "B": 2e8}),
                                          pd.Series({"A": 2e5, "B": 1e5}))
    assert t.to_dict() == pytest.approx({"A": 600_000.0, "B": 400_000.0})
    with pytest.raises(TableError, match="unit 'B'"):
        transfer_by_regulating_per_capita(1.0, pd.Series({"A": 1.0, "B": 1.0}), pd.Series({"A": 1.0, "B": 0.0}))


def test_transfer_by_gep_change():
    # ΔGEP: A +30, B +10, C −50 (→ 0) → 3/4 and 1/4 of 800
    t = transfer_by_gep_change(800.0, pd.Series({"A": 100.0, "B": 100.0, "C": 100.0}),
                               pd.Series({"A": 130.0, "B": 110.0, "C": 50.0}))
    assert t.to_dict() == pytest.approx({"A": 600.0, "B": 200.0, "C": 0.0})
    with pytest.raises(TableError, match="weights sum to 0"):
        transfer_by_gep_change(800.0, pd.Series({"A": 2.0}), pd.Series({"A": 1.0}))


def test_transfer_cli(tmp_path):
    p = _csv(tmp_path, "unit,gep_cny\n甲,1e8\n乙,3e8\n", "units.csv")
    out = tmp_path / "t.csv"
    r = runner.invoke(app, ["transfer", str(p), "--fund", "1000000", "--method", "gep_share", "--out", str(out)])
    assert r.exit_code == 0, r.output
    t = pd.read_csv(out, encoding="utf-8-sig").set_index("unit")
    assert t.loc["乙", "transfer_cny"] == pytest.approx(750_000.0)
    assert t.loc["乙", "weight"] == pytest.approx(0.75)
    table = transfer_table(p, 1_000_000.0, "gep_share")
    assert table["transfer_cny"].sum() == pytest.approx(1_000_000.0)


def test_jiangsu_upstream_shares(tmp_path):
    # the liability of a section split between two upstream districts by contribution shares 0.6 / 0.4:
    # 137,800 + 150,000 = 287,800 → 甲 172,680, 乙 115,120
    text = JIANGSU.replace("上游区", "甲:0.6;乙:0.4")
    d = compute(_csv(tmp_path, text), "jiangsu").districts.set_index("unit")
    assert d.loc["甲", "payable_cny"] == pytest.approx(172_680.0)
    assert d.loc["乙", "payable_cny"] == pytest.approx(115_120.0)
    assert d.loc["下游区", "receivable_cny"] == pytest.approx(287_800.0)
    with pytest.raises(TableError, match="row 2: field 'upstream' = '甲:0.6;乙:0.3': shares sum to 0.9"):
        compute(_csv(tmp_path, JIANGSU.replace("上游区", "甲:0.6;乙:0.3")), "jiangsu")


def test_bundled_example_gives_287800():
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "data" / "sample" / "compensation" / "jiangsu_example.csv"
    assert compute(example, "jiangsu").total_cny == pytest.approx(287_800.0)
