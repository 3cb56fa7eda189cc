"""annual_gep end to end on the bundled Wuhan data (a 300 × 300 px window): results equal the
library's one-shot ``ecoraster.pipeline.run``; a re-run reuses everything; a run that dies half-way leaves
the workspace as it was and a re-run finishes with the same results."""

import json
import time

import numpy as np
import pandas as pd
import pytest
import rasterio

from ecoraster import pipeline
from ecoraster.pipeline import stages
from ecoraster.pipeline.cache import CacheStore
from flows.annual import annual_gep

from .conftest import copy_tree_state, small_config, valued_result

OUTPUTS = ("c_storage_bas", "c_storage_alt", "c_change")


def _read(path):
    with rasterio.open(path) as src:
        return src.read(1)


def test_annual_flow_equals_library_run_then_reuses_everything(tmp_zh):
    cfg = small_config(tmp_zh)
    ws = tmp_zh / "工作区"
    out = annual_gep(config=str(cfg), workspace=str(ws))
    assert out["computed"] == ["service.carbon_storage", "value.carbon_storage", "zonal.districts", "products"]
    assert not list(ws.glob(".staging*"))

    oracle = pipeline.run(cfg, tmp_zh / "oracle")  # the foundation's one-shot runner
    flow_res = valued_result(ws, "carbon_storage")
    for oid in OUTPUTS:
        rec = flow_res["outputs"][oid]
        assert rec["total"] == oracle.services["carbon_storage"].outputs[oid].total
        assert np.array_equal(_read(rec["path"]), _read(oracle.services["carbon_storage"].outputs[oid].path))
    ours = pd.read_csv(ws / "zonal" / "districts.csv", encoding="utf-8-sig").set_index("gb")
    theirs = pd.read_csv(oracle.zonal_tables["districts"], encoding="utf-8-sig").set_index("gb")
    pd.testing.assert_frame_equal(ours, theirs)
    # the window lies inside Wuhan: the districts' sums add up to the raster total
    assert ours["carbon_storage.c_storage_bas"].sum() == pytest.approx(flow_res["outputs"]["c_storage_bas"]["total"],
                                                                       rel=1e-9)
    manifest = json.loads((ws / "run.json").read_text(encoding="utf-8"))
    import re
    assert ".staging" not in json.dumps(manifest), re.findall(r".{300}\.staging.{80}", json.dumps(manifest, ensure_ascii=False))
    assert manifest["steps"]["service.carbon_storage"]["computed"] is True
    assert manifest["inputs"]["wuhan_lulc_2005"]["sha256"]

    before = copy_tree_state(ws)
    t0 = time.monotonic()
    again = annual_gep(config=str(cfg), workspace=str(ws))
    assert time.monotonic() - t0 < 15  # flow overhead only: nothing is computed
    assert again["computed"] == [] and again["changed"] is False
    assert copy_tree_state(ws) == before  # not one file rewritten, run.json included

    # the totals table artifact of the run
    import httpx
    from prefect.settings import PREFECT_API_URL

    body = {"artifacts": {"key": {"any_": ["gep-totals-wuhan-small-2013"]}}, "limit": 5, "offset": 0,
            "sort": "CREATED_DESC"}
    arts = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter", json=body, timeout=30).json()
    assert arts and "c_storage_bas" in str(arts[0]["data"])


def test_killed_run_leaves_workspace_and_rerun_finishes(tmp_zh, monkeypatch):
    cfg = small_config(tmp_zh)
    ws = tmp_zh / "ws"

    def crash(*args, **kwargs):
        raise RuntimeError("node lost power during zonal statistics")

    # 1. a fresh workspace, killed after the service was computed: nothing is left behind
    monkeypatch.setattr(stages, "aggregate_zones", crash)
    with pytest.raises(RuntimeError, match="lost power"):
        pipeline.run(cfg, ws)
    assert not list(ws.glob(".staging*")) and not (ws / "run.json").exists()
    assert not (ws / "carbon_storage").exists()
    assert "service.carbon_storage" not in CacheStore(ws).names()
    monkeypatch.undo()
    first = pipeline.run(cfg, ws)
    assert "service.carbon_storage" in first.computed
    state = copy_tree_state(ws)

    # 2. a forced re-run killed half-way: every committed file stays as it was
    monkeypatch.setattr(stages, "aggregate_zones", crash)
    with pytest.raises(RuntimeError):
        annual_gep(config=str(cfg), workspace=str(ws), force=True)
    assert copy_tree_state(ws) == state
    assert not list(ws.glob(".staging*"))
    monkeypatch.undo()
    # 3. started again: same results (totals and pixels) as before
    again = annual_gep(config=str(cfg), workspace=str(ws), force=True)
    assert again["changed"]
    for name, (_, data) in state.items():
        if name.endswith(".tif"):
            assert np.array_equal(_read(ws / name), _read_bytes(data)), name
    a = json.loads(state["run.json"][1])["results"]["carbon_storage"]
    b = valued_result(ws, "carbon_storage")
    assert {k: v["total"] for k, v in a["outputs"].items()} == {k: v["total"] for k, v in b["outputs"].items()}


def _read_bytes(data: bytes):
    from rasterio.io import MemoryFile

    with MemoryFile(data) as mem, mem.open() as src:
        return src.read(1)
