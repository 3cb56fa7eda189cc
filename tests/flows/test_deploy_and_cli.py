"""The deployment files say what the docs promise; the CLI runs the steps."""

import json
import re

import yaml
from typer.testing import CliRunner

from ecoraster.cli import app

from ..conftest import REPO
from .conftest import small_config


def test_prefect_yaml_deployments_point_at_real_flows():
    import importlib

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text(encoding="utf-8"))
    deps = {d["name"]: d for d in spec["deployments"]}
    assert deps["annual-gep"]["schedules"] == [{"cron": "0 2 1 3 *", "timezone": "Asia/Shanghai"}]
    for d in deps.values():
        path, func = d["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert getattr(module, func).name in ("annual_gep", "on_new_imagery", "on_new_monitoring")
        if func != "on_new_monitoring":  # station tables are run on arrival, not on a schedule
            assert d["schedules"][0]["timezone"] == "Asia/Shanghai"
    assert deps["on-new-monitoring"]["parameters"]["stations"]


def test_serve_builds_both_deployments(tmp_zh):
    from flows.serve import build_deployments

    cfg = small_config(tmp_zh)
    annual, watch, stations = build_deployments(str(cfg), str(tmp_zh / "ws"), str(tmp_zh),
                                                {"*.tif": "wuhan_lulc_2013"}, 600)
    assert annual.name == "annual-gep" and watch.name == "on-new-imagery"
    assert stations.name == "on-new-monitoring" and not stations.schedules
    cron = annual.schedules[0].schedule
    assert cron.cron == "0 2 1 3 *" and cron.timezone == "Asia/Shanghai"
    assert watch.parameters["patterns"] == {"*.tif": "wuhan_lulc_2013"}


def test_dockerfile_is_a_compute_node_image():
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11", text, re.M)
    assert "pip install ." in text and "COPY flows ./flows" in text and "prefect.yaml" in text
    assert "PREFECT_SERVER_ANALYTICS_ENABLED=false" in text and "DO_NOT_TRACK=1" in text
    assert '"flows/serve.py"' in text and "prefect worker start --pool" in text
    assert "USER eco" in text


def test_settings_do_not_override_the_user(monkeypatch):
    from flows import _settings

    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "DEBUG")
    monkeypatch.delenv("DO_NOT_TRACK", raising=False)
    applied = _settings.apply_defaults()
    import os

    assert os.environ["PREFECT_LOGGING_LEVEL"] == "DEBUG" and "PREFECT_LOGGING_LEVEL" not in applied
    assert applied["DO_NOT_TRACK"] == "1"


def test_cli_annual_without_prefect_then_cached(tmp_zh):
    cfg = small_config(tmp_zh)
    runner = CliRunner()
    res = runner.invoke(app, ["flow", "annual", str(cfg), "-w", str(tmp_zh / "ws"), "--no-prefect", "--json"])
    assert res.exit_code == 0, res.output
    first = json.loads(res.stdout)
    assert "service.carbon_storage" in first["computed"]
    res = runner.invoke(app, ["flow", "annual", str(cfg), "-w", str(tmp_zh / "ws"), "--no-prefect", "--json"])
    assert json.loads(res.stdout)["computed"] == []
    res = runner.invoke(app, ["flow", "new-imagery", str(cfg), "-w", str(tmp_zh / "ws"), "--json"])
    assert res.exit_code == 1 and "give --scene" in res.stdout
