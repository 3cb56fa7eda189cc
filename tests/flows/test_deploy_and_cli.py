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
        assert d["parameters"]["config"] == "configs/wuhan_2013_gep.yaml"  # the full GEP run
    assert deps["on-new-monitoring"]["parameters"]["stations"]
    # runs start in the checkout `prefect deploy` ran in (or $ECORASTER_HOME), never a fixed path
    (build,) = spec["build"]
    step = build["prefect.deployments.steps.run_shell_script"]
    assert step["id"] == "checkout" and step["script"] == 'echo "${ECORASTER_HOME:-$(pwd -P)}"'
    assert spec["pull"] == [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ checkout.stdout }}"}}]
    docker = yaml.safe_load((REPO / "deploy" / "prefect-docker.yaml").read_text(encoding="utf-8"))
    assert {d["name"] for d in docker["deployments"]} == set(deps)
    assert all(d["work_pool"]["name"] == "gep-docker" for d in docker["deployments"])


def test_serve_builds_both_deployments(tmp_zh):
    from flows.serve import build_deployments

    cfg = small_config(tmp_zh)
    annual, watch, stations = build_deployments(str(cfg), str(tmp_zh / "ws"), str(tmp_zh),
                                                {"*.tif": "wuhan_lulc_2013"}, 600)
    # other names than prefect.yaml's, so serving never takes a work pool's deployment over
    assert annual.name == "annual-gep-served" and watch.name == "on-new-imagery-served"
    assert stations.name == "on-new-monitoring-served" and not stations.schedules
    shipped = {d["name"] for d in yaml.safe_load((REPO / "prefect.yaml").read_text(encoding="utf-8"))["deployments"]}
    assert not shipped & {annual.name, watch.name, stations.name}
    cron = annual.schedules[0].schedule
    assert cron.cron == "0 2 1 3 *" and cron.timezone == "Asia/Shanghai"
    assert watch.parameters["patterns"] == {"*.tif": "wuhan_lulc_2013"}


def test_dockerfile_is_a_compute_node_image():
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11", text, re.M)
    assert "pip install ." in text and "COPY flows ./flows" in text and "prefect.yaml" in text
    assert "PREFECT_SERVER_ANALYTICS_ENABLED=false" in text and "DO_NOT_TRACK=1" in text
    assert '"flows/serve.py"' in text and "flows.worker --pool" in text
    assert "configs/wuhan_2013_gep.yaml" in text  # the default command runs the full GEP config
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


def test_systemd_units_run_what_the_repo_has():
    units = REPO / "deploy" / "systemd"
    text = {p.name: p.read_text(encoding="utf-8") for p in units.glob("*.service")}
    assert set(text) == {"prefect-server.service", "gep-deploy.service", "gep-worker.service", "gep-serve.service"}
    assert "prefect server start --host 127.0.0.1 --port 4200" in text["prefect-server.service"]
    assert "prefect --no-prompt deploy --all" in text["gep-deploy.service"]
    assert "-m flows.worker --pool gep-process" in text["gep-worker.service"]
    assert "flows/serve.py --no-server" in text["gep-serve.service"]
    for name, unit in text.items():
        if name != "prefect-server.service":
            assert "EnvironmentFile=/etc/ecoraster/ecoraster.env" in unit and "-m flows.server wait" in unit, name
    env = dict(line.split("=", 1) for line in (units / "ecoraster.env").read_text(encoding="utf-8").splitlines()
               if line and not line.startswith("#"))
    assert env["PREFECT_API_URL"] == "http://127.0.0.1:4200/api" and env["ECORASTER_OUTPUT_DIR"] == "/data/outputs"
    # the entry points the units name exist and parse their arguments
    from flows import server, worker

    assert server.main(["wait", "--url", "http://127.0.0.1:9/api", "--timeout", "0"]) == 1
    assert callable(worker.main)


def test_installed_server_dependencies_match_the_pins():
    """Fast drift check (the real-server test is the slow one): what is installed satisfies the
    pins that keep Prefect's server working (see pyproject.toml)."""
    import tomllib
    from importlib.metadata import version

    from packaging.requirements import Requirement

    reqs = [Requirement(d) for d in tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
            ["dependencies"]]
    pins = {r.name.lower(): r for r in reqs}
    for name in ("prefect", "fastapi", "sqlalchemy"):
        assert pins[name].specifier.contains(version(name), prereleases=True), \
            f"{name} {version(name)} installed, pyproject wants {pins[name].specifier}: pip install -e ."
    assert not pins["fastapi"].specifier.contains("0.151.0") and not pins["sqlalchemy"].specifier.contains("2.1.0")
