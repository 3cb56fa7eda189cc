"""What an operator sees: a missing watch folder or empty patterns fail the run with a message,
file tasks retry on I/O errors only, the run summary artifact, serve refusing to run without a
server that schedules."""

from __future__ import annotations

import json

import pytest

from ecoraster.errors import ConfigError, MissingFileError

from .conftest import small_config


def test_watch_folder_checks(tmp_zh):
    from flows.checks import check_watch_folder

    with pytest.raises(ConfigError, match="no patterns"):
        check_watch_folder(str(tmp_zh), {})
    with pytest.raises(ConfigError, match="empty pattern"):
        check_watch_folder(str(tmp_zh), {"*.tif": ""})
    with pytest.raises(ConfigError, match="empty pattern"):
        check_watch_folder(str(tmp_zh), {" ": "wuhan_lulc_2013"})
    missing = tmp_zh / "incomng"  # misspelt
    with pytest.raises(MissingFileError, match="watch folder.*incomng") as err:
        check_watch_folder(str(missing), {"*.tif": "wuhan_lulc_2013"})
    assert isinstance(err.value, OSError)  # → retried by the scan task
    (tmp_zh / "a.tif").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        check_watch_folder(str(tmp_zh / "a.tif"), {"*.tif": "wuhan_lulc_2013"})
    check_watch_folder(str(tmp_zh), {"*.tif": "wuhan_lulc_2013"})  # fine


def test_missing_watch_folder_fails_the_run(tmp_zh, monkeypatch):
    from flows import new_imagery

    # no waiting for the retries here; that they are configured is checked below
    monkeypatch.setattr(new_imagery, "scan_task", new_imagery.scan_task.with_options(retries=0))
    cfg = small_config(tmp_zh)
    state = new_imagery.on_new_imagery(str(cfg), str(tmp_zh / "ws"), folder=str(tmp_zh / "nowhere"),
                                       patterns={"*.tif": "wuhan_lulc_2013"}, return_state=True)
    assert state.is_failed()
    with pytest.raises(MissingFileError, match="nowhere"):
        state.result()
    state = new_imagery.on_new_imagery(str(cfg), str(tmp_zh / "ws"), folder=str(tmp_zh), patterns={},
                                       return_state=True)
    assert state.is_failed() and "no patterns" in state.message


def test_new_imagery_workspace_defaults_like_the_annual_run(tmp_zh, monkeypatch):
    from flows import new_imagery

    seen = []
    monkeypatch.setattr(new_imagery, "scan_task", lambda folder, patterns, workspace: seen.append(workspace) or [])
    monkeypatch.setenv("ECORASTER_OUTPUT_DIR", str(tmp_zh / "out"))
    out = new_imagery.on_new_imagery(str(small_config(tmp_zh)), folder=str(tmp_zh), patterns={"*.tif": "x"})
    assert out["scenes"] == []
    # $ECORASTER_OUTPUT_DIR/<region>_<year> of configs/examples/wuhan_small.yaml (wuhan_small, 2013)
    assert seen == [str((tmp_zh / "out" / "wuhan_small_2013").resolve())]


def test_every_file_task_retries_on_io_errors_only():
    from prefect.states import Failed

    from flows import new_imagery, tasks

    file_tasks = [tasks.prepare_task, tasks.verify_inputs_task, tasks.service_task, tasks.value_task,
                  tasks.zonal_task, tasks.products_task, tasks.finish_task, tasks.totals_artifact_task,
                  new_imagery.scan_task]
    for t in file_tasks:
        assert t.retries == 3 and t.retry_delay_seconds == [2, 10, 30], t.name  # backoff
        assert t.retry_condition_fn is tasks.retry_on_os_error, t.name
    assert tasks.retry_on_os_error(None, None, Failed(data=MissingFileError("/data/x.tif")))
    assert tasks.retry_on_os_error(None, None, Failed(data=TimeoutError("nfs")))
    assert not tasks.retry_on_os_error(None, None, Failed(data=ConfigError("bad year")))


def test_run_summary_markdown_by_hand(tmp_path):
    from ecoraster.reporting.run_summary import artifact_key, run_summary_markdown

    ws = tmp_path / "ws"
    (ws / "products").mkdir(parents=True)
    # region: 1.5e8 + 2.5e7 counted, 9e7 contested but counted; 4e6 not counted → GEP 2.65e8
    rows = [("region", "wh", "武汉", "B1", "水源涵养", 1.2e9, "m3", 1.5e8, True),
            ("region", "wh", "武汉", "B3", "固碳", 3.0e5, "t", 2.5e7, True),
            ("region", "wh", "武汉", "B4", "释氧", 2.2e5, "t", 9.0e7, True),
            ("region", "wh", "武汉", "C1", "休闲旅游", 1.0, "visits", 4.0e6, False),
            ("districts", "d1", "青山区", "B1", "水源涵养", 1.0, "m3", 1.0e8, True),
            ("districts", "d1", "青山区", "B3", "固碳", 1.0, "t", 5.0e6, True),
            ("districts", "d2", "江岸区", "B1", "水源涵养", 1.0, "m3", 5.0e7, True)]
    header = "zone_set,zone_id,zone_name,code,name_zh,quantity,quantity_unit,value_cny,counted\n"
    body = "".join(",".join(map(str, r)) + "\n" for r in rows)
    (ws / "products" / "catalogue.csv").write_text(header + body, encoding="utf-8-sig")
    manifest = {"config": {"region": "wh", "region_name": "武汉", "year": 2013}, "created": "2026-11-30T00:00:00+00:00",
                "results": {"carbon_storage": {"outputs": {"c_change": {"total": -112237.2, "units": "Mg C",
                                                                        "kind": "physical"}}}},
                "products_report": {"notes": ["product B9: value ignored"], "gep_region": {
                    "gep": 2.65e8, "gep_excl_contested": 1.75e8, "units": "CNY", "price_year": 2013},
                    "zone_sets": {"districts": {"partition_check": {"ok": False, "n_gaps": 1, "gap_area_m2": 437454.0,
                                                                    "n_overlaps": 0, "overlap_area_m2": 0.0}}}},
                "valuation": {"unpriced": {"carbon_storage.c_change": "a stock, not priced"}}}
    (ws / "run.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    md = run_summary_markdown(ws, {"manifest": str(ws / "run.json"), "changed": True,
                                   "computed": ["service.carbon_storage"], "cached": ["zonal.districts"]},
                              warnings=["also recomputed service.x"])
    assert "**GEP 265,000,000 (2.65 亿元) CNY**" in md and "1.75 亿元" in md
    # by product, largest first: 1.5e8, 9e7, 2.5e7 (the uncounted C1 is not listed)
    b1, b4, b3 = md.index("| B1 | 水源涵养"), md.index("| B4 | 释氧"), md.index("| B3 | 固碳")
    assert b1 < b4 < b3 and "休闲旅游" not in md
    # by zone: 青山区 1e8 + 5e6 = 105,000,000 before 江岸区 50,000,000
    assert "| d1 | 青山区 | 105,000,000 (1.05 亿元) |" in md and md.index("青山区 | 105") < md.index("江岸区 | 50,000,000")
    assert "| carbon_storage | c_change | -112,237 | Mg C | physical |" in md
    assert "recomputed (1): `service.carbon_storage`" in md and "reused from cache (1): `zonal.districts`" in md
    for warning in ("also recomputed service.x", "products: product B9: value ignored",
                    "zone set `districts` is not a partition: 1 gap(s) (437,454 m²)",
                    "unpriced: `carbon_storage.c_change` (a stock, not priced)"):
        assert f"- {warning}" in md, warning
    assert artifact_key("wuhan_small", 2013) == "gep-run-wuhan-small-2013"


def test_serve_needs_a_server_that_schedules(monkeypatch):
    from flows.serve import ensure_server
    from flows.server import free_port

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with pytest.raises(SystemExit, match="no Prefect server"):
        ensure_server(free_port(), None, required=True)
    monkeypatch.setenv("PREFECT_API_URL", "http://gep-node:4200/api")
    assert ensure_server(free_port(), None, required=True) == ("http://gep-node:4200/api", None)


def test_serve_checks_the_watch_folder_before_starting(tmp_zh, monkeypatch):
    from flows import serve

    monkeypatch.setattr(serve, "ensure_server", lambda *a: pytest.fail("started a server"))
    with pytest.raises(MissingFileError, match="nowhere"):
        serve.main(["--config", "c.yaml", "--workspace", "ws", "--watch-folder", str(tmp_zh / "nowhere"),
                    "--pattern", "*.tif=wuhan_lulc_2013"])
    with pytest.raises(ConfigError, match="no patterns"):
        serve.main(["--config", "c.yaml", "--workspace", "ws", "--watch-folder", str(tmp_zh)])
