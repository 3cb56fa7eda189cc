"""water_purification: capacity per wetland class × area, capped at each township's load and allocated back by
capacity (hand-worked on a 七里海-shaped grid); a region-wide cap from scalars; bad inputs named."""

from __future__ import annotations

import numpy as np
import pytest

from ecoraster.kernels.wetland import cap_factors
from ecoraster import pipeline
from ecoraster.pipeline import validate_run

from ._helpers import read, write_run
from .test_flood_regulation import _qilihai_like

ND = -9999.0


def test_cap_factors():
    # capacity 4, load 2 → 0.5; load above capacity → 1; no load (NaN) → 1 (uncapped); no capacity → 0
    assert cap_factors(np.array([4.0, 1.0, 3.0, 0.0]), np.array([2.0, 5.0, np.nan, 1.0])).tolist() == [0.5, 1, 1, 0]


def _towns(tmp, datasets, loads_csv):
    (tmp / "loads.csv").write_text(loads_csv, encoding="utf-8")
    datasets["loads"] = {"kind": "table", "uri": "loads.csv"}
    return datasets


def test_townships_capped_by_hand_and_sum_to_units(tmp_zh):
    _eco, datasets = _qilihai_like(tmp_zh)
    datasets = _towns(tmp_zh, datasets, "unit_id,pollutant,load_t\nT1,cod,2.124\nT2,cod,10\nT2,tp,0.0033\n")
    cfg = write_run(tmp_zh, "water_purification", datasets, {"ecosystem": "eco", "loads": "loads", "units": "towns"},
                    params={"unit_id_field": "code", "pollutants": ["cod", "tp"]}, year=2020)
    assert validate_run(cfg) == []
    res = pipeline.run(cfg, tmp_zh / "ws").services["water_purification"]
    cod, tp = read(res.outputs["cod"].path), read(res.outputs["tp"].path)
    assert cod[19, 19] == ND and tp[19, 19] == ND        # nodata class → nodata (then 0 for the sums below)
    cod, tp = np.where(cod == ND, 0, cod), np.where(tp == ND, 0, tp)
    cap_cod = read(res.outputs["capacity_cod"].path)
    # COD capacity: marsh 40 t/km² = 40e-6 t/m² × 900 m² = 0.036 t/px; lake and reservoir 20 → 0.018 t/px
    #   T1 (cols 0-9): 100 marsh px × 0.036 + 36 lake px × 0.018 = 3.6 + 0.648 = 4.248 t; load 2.124 → factor 0.5
    #   T2 (cols 10-19): 22 reservoir/pond px × 0.018 = 0.396 t; load 10 t does not bind → factor 1
    assert cap_cod[0, 0] == pytest.approx(0.036, rel=1e-6)
    assert cod[0, 0] == pytest.approx(0.018, rel=1e-6) and cod[12, 2] == pytest.approx(0.009, rel=1e-6)
    assert cod[3, 14] == pytest.approx(0.018, rel=1e-6)
    assert cod[:, :10].sum(dtype=np.float64) == pytest.approx(2.124, rel=1e-6)   # T1 sums to its load
    assert cod[:, 10:].sum(dtype=np.float64) == pytest.approx(0.396, rel=1e-6)   # T2 sums to its capacity
    assert res.totals["cod_total"][0] == pytest.approx(2.124 + 0.396, rel=1e-6)
    # paddy purifies nothing
    assert cod[19, 0] == 0
    # TP: T1 has no load row → uncapped: 100 × 0.0009 + 36 × 0.00045 = 0.1062 t; T2: 22 × 0.00045 = 0.0099 t,
    #   load 0.0033 → factor 1/3
    assert tp[:, :10].sum(dtype=np.float64) == pytest.approx(0.1062, rel=1e-6)
    assert tp[:, 10:].sum(dtype=np.float64) == pytest.approx(0.0033, rel=1e-6)
    assert any("no load for unit(s) T1" in n for n in res.notes)
    units = {u["unit_id"]: u for u in res.metadata["cap"]["cod"]["units"]}
    assert units["T1"]["cap_binding"] and not units["T2"]["cap_binding"]


def test_region_cap_from_scalar_and_bad_inputs(tmp_zh):
    _eco, datasets = _qilihai_like(tmp_zh)
    cfg = write_run(tmp_zh, "water_purification", datasets, {"ecosystem": "eco", "load_cod": 1.0, "load_nh3n": 100.0,
                                                                "load_tp": 0.0})
    res = pipeline.run(cfg, tmp_zh / "ws").services["water_purification"]
    # region COD capacity 4.248 + 0.396 = 4.644 t > load 1 t → 1 t spread by capacity
    assert res.totals["cod_total"][0] == pytest.approx(1.0, rel=1e-6)
    assert read(res.outputs["cod"].path)[0, 0] == pytest.approx(0.036 / 4.644, rel=1e-6)
    # NH3-N: capacity 100 × 0.0018 + 58 × 0.0009 = 0.2322 t < load 100 → uncapped; TP load 0 → nothing
    assert res.totals["nh3n_total"][0] == pytest.approx(0.2322, rel=1e-6)
    assert res.totals["tp_total"][0] == 0
    datasets = _towns(tmp_zh, datasets, "unit_id,pollutant,load_t\nT9,cod,-1\n")
    cfg = write_run(tmp_zh, "water_purification", datasets, {"ecosystem": "eco", "loads": "loads", "units": "towns"},
                    params={"unit_id_field": "code"})
    issues = validate_run(cfg)
    assert len(issues) == 1 and "loads.csv" in str(issues[0]) and "-1" in str(issues[0])
