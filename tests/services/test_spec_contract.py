"""The service contract is enforced for every service: methods, parameters (names, types,
ranges, choices), required inputs and input kinds before compute; declared outputs after;
no file read at import; services run through ``compute(ctx)`` directly; lazy paths stay lazy."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from ecoraster import registry
from ecoraster.cli import app
from ecoraster.context import ServiceContext
from ecoraster.errors import ServiceError
from ecoraster.pipeline import load_plan, validate_run
from ecoraster.services import _constants
from ecoraster.services import carbon_storage
from ecoraster.spec import (InputSpec, MethodSpec, OutputRecord, OutputSpec, ParameterSpec, ServiceResult,
                            ServiceSpec, When, check_request)
from tests.lazy import raise_if_dask_computes

from ..test_carbon_storage import _setup

runner = CliRunner()


def _with_service_block(cfg: Path, extra: str) -> Path:
    text = cfg.read_text(encoding="utf-8").rstrip() + "\n" + textwrap.indent(extra, " " * 4) + "\n"
    cfg.write_text(text, encoding="utf-8")
    return cfg


@pytest.mark.parametrize("extra, expected", [
    ("method: no_such_method", "unknown method 'no_such_method'"),
    ("params: {no_such_param: 3}", "unknown parameter"),
])
def test_eco_validate_refuses_unknown_method_or_parameter(tmp_zh, raster_writer, extra, expected):
    cfg = _with_service_block(_setup(tmp_zh, raster_writer, np.ones((4, 4), np.uint8)), extra)
    res = runner.invoke(app, ["validate", str(cfg), "--json"])
    assert res.exit_code == 1, res.output
    issues = json.loads(res.stdout)["issues"]
    assert any(expected in i["message"] for i in issues), issues
    keys = [i["keys"] for i in issues if expected in i["message"]][0]
    assert keys[:2] == ["services", "carbon_storage"]


def test_wrong_input_kind_is_named(tmp_zh, raster_writer):
    cfg = _setup(tmp_zh, raster_writer, np.ones((4, 4), np.uint8))
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("carbon_pools: pools", "carbon_pools: bas"),
                   encoding="utf-8")
    messages = [str(i) for i in validate_run(cfg)]
    assert any("carbon_pools: 'bas' is a raster, expected a table" in m for m in messages), messages


# -- check_request: the spec alone, no files -------------------------------------------------

SPEC = ServiceSpec(
    id="toy", name="toy", name_zh="玩具", about="a toy service", category="调节服务",
    methods=(
        MethodSpec(id="plain", required_inputs=("lulc",), outputs=("a",)),
        MethodSpec(id="fancy", profiles=("invest",), required_inputs=("lulc", "dem"), one_of_inputs=(("lai", "ndvi"),),
                   parameters=("z",), required_parameters=("z",), outputs=("a", "b"),
                   created_if={"b": When(params={"flag": True})}),
    ),
    inputs=(InputSpec(id="lulc", kind="raster", about="classes"), InputSpec(id="dem", kind="raster", about="DEM"),
            InputSpec(id="lai", kind="raster", about="LAI", required=False),
            InputSpec(id="ndvi", kind="raster", about="NDVI", required=False)),
    parameters=(ParameterSpec(id="z", type="number", minimum=0.0, exclusive_minimum=True),
                ParameterSpec(id="flag", type="bool", default=True),
                ParameterSpec(id="mode", type="string", choices=("a", "b"), default="a", by_profile={"invest": "b"})),
    outputs=(OutputSpec(id="a", filename="a.tif", about="a", units="1"),
             OutputSpec(id="b", filename="b.tif", about="b", units="1"),
             OutputSpec(id="per_item", filename="<item>.tif", about="one per item", units="1", id_pattern="{item}_x")),
)


def _check(method=None, params=None, given=("lulc",), profile=None):
    params = params or {}
    resolve = lambda p: params.get(p, SPEC.parameter(p).by_profile.get(profile, SPEC.parameter(p).default))  # noqa: E731
    return [str(i) for i in check_request(SPEC, method, profile, lambda i: i in given, params, resolve)]


def test_check_request_method_parameters_and_inputs():
    assert _check() == []  # default method: the first
    assert _check(profile="invest") != [] and SPEC.method(None, "invest").id == "fancy"  # profile default
    assert _check("fancie") == ["services.toy.method: unknown method 'fancie' (did you mean 'fancy'?); "
                                "use one of plain, fancy"]
    msgs = _check("fancy", {"zz": 1, "mode": "c"}, given=("lulc",))
    assert "services.toy.params.zz: unknown parameter (did you mean 'z'?); known: z, flag, mode" in msgs
    assert "services.toy.params.mode: = 'c'; use one of a, b" in msgs
    assert "services.toy.params.z: required by method fancy (1)" not in msgs  # z has no units: about/units shown
    assert any(m.startswith("services.toy.params.z: required by method fancy") for m in msgs)
    assert any("inputs.dem: required input of method fancy missing (DEM)" in m for m in msgs)
    assert any("inputs.lai: method fancy needs lai or ndvi" in m for m in msgs)
    assert _check("fancy", {"z": 0}, given=("lulc", "dem", "ndvi")) == ["services.toy.params.z: = 0 must be > 0"]
    assert _check("fancy", {"z": True}, given=("lulc", "dem", "ndvi")) == [
        "services.toy.params.z: must be a number, got True"]
    assert _check("fancy", {"z": 2.5, "flag": "yes"}, given=("lulc", "dem", "lai")) == [
        "services.toy.params.flag: must be true or false, got 'yes'"]


def test_a_spec_naming_an_unknown_input_fails_at_import():
    with pytest.raises(ValueError, match="unknown input 'lulcc'"):
        ServiceSpec(id="bad", name="b", name_zh="b", about="b", category="存量",
                    methods=(MethodSpec(id="m", required_inputs=("lulcc",)),),
                    inputs=(InputSpec(id="lulc", kind="raster", about="x"),))


def _ctx(method=None, params=None, inputs=None) -> ServiceContext:
    return ServiceContext(spec=SPEC, grid=None, catalog=None, out_dir=Path("."), inputs=inputs or {"lulc": "x"},
                          params=params or {}, method=method)


def _result(*ids: str) -> ServiceResult:
    return ServiceResult(service="toy", outputs={
        i: OutputRecord(id=i, path=f"{i}.tif", units="1", kind="physical", per="pixel", nodata=-1.0,
                        total=0.0, valid_pixels=0) for i in ids})


def test_checked_outputs_expected_written_and_nothing_undeclared():
    _ctx("plain").checked(_result("a"))
    with pytest.raises(ServiceError, match="expected output 'a' was not written"):
        _ctx("plain").checked(_result())
    with pytest.raises(ServiceError, match="output 'b' is not declared by method plain"):
        _ctx("plain").checked(_result("a", "b"))
    # created_if flag = True (default) → b expected; flag false → b not expected but allowed
    with pytest.raises(ServiceError, match="expected output 'b'"):
        _ctx("fancy", {"z": 1}).checked(_result("a"))
    _ctx("fancy", {"z": 1, "flag": False}).checked(_result("a"))
    # a patterned output is matched by its id pattern
    assert SPEC.output("per_item").matches("rice_x") and not SPEC.output("per_item").matches("rice_y")


def test_param_resolution_by_profile():
    assert _ctx().param("mode") == "a"
    assert ServiceContext(spec=SPEC, grid=None, catalog=None, out_dir=Path("."), profile="invest").param("mode") == "b"
    assert _ctx(params={"mode": "a"}).param("mode") == "a"


# -- registry, parameter tables, import ------------------------------------------------------

class _ToyService:
    SPEC = SPEC.model_copy(update={"id": "toy_registered"})
    __name__ = "toy_registered"

    @staticmethod
    def validate(ctx):
        return ctx.validate_inputs()

    @staticmethod
    def compute(ctx):
        return ctx.checked(_result("a"))


def test_registry_register_and_unregister():
    registry.register(_ToyService)
    try:
        assert registry.get_service("toy_registered") is _ToyService
        with pytest.raises(ServiceError, match="already registered"):
            registry.register(type("Other", (_ToyService,), {"__name__": "other"}))
    finally:
        registry.unregister("toy_registered")
    assert "toy_registered" not in registry.service_ids()


def test_every_table_parameter_is_in_its_table_and_back():
    for spec in registry.all_specs():
        tables = {p.table for p in spec.parameters if p.table}
        for table in tables:
            declared = {p.id for p in spec.parameters if p.table == table}
            in_table = set(_constants.load_table(table))
            assert declared == in_table, (spec.id, table, declared ^ in_table)
        for p in _constants.described_spec(spec).parameters:
            assert p.problem(p.default) is None, (spec.id, p.id, p.default)
            for profile, value in p.by_profile.items():
                assert p.problem(value) is None, (spec.id, p.id, profile, value)


def test_no_parameter_file_is_read_at_import():
    code = textwrap.dedent("""
        import ecoraster.yamlio as y
        calls = []
        original = y.read_mapping
        y.read_mapping = lambda *a, **k: calls.append(a) or original(*a, **k)
        from ecoraster import registry
        registry.all_specs()
        assert not calls, calls
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_air_purification_does_not_import_carbon_sequestration():
    code = ("import sys; import ecoraster.services.air_purification; "
            "print('ecoraster.services.carbon_sequestration' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "False", out.stderr


# -- a service through compute(ctx), lazily --------------------------------------------------

def test_carbon_storage_compute_ctx_directly(tmp_zh, raster_writer):
    bas = np.ones((6, 6), dtype=np.uint8)
    bas[0, :] = 2
    alt = bas.copy()
    alt[5, :] = 2
    plan = load_plan(_setup(tmp_zh, raster_writer, bas, alt))
    run = plan.config.services["carbon_storage"]
    out = tmp_zh / "out"
    out.mkdir()
    ctx = ServiceContext(spec=carbon_storage.SPEC, grid=plan.grid, catalog=plan.catalog, out_dir=out,
                         inputs=dict(run.inputs), params={}, chunk=4)
    assert carbon_storage.validate(ctx) == []
    codes, density = carbon_storage._pool_table(ctx)
    with raise_if_dask_computes():  # building the lazy storage raster computes nothing
        lazy = carbon_storage.storage(ctx, "lulc_bas", codes, density)
    assert lazy.chunks == ((4, 2), (4, 2))
    res = carbon_storage.compute(ctx)
    # class 1: 86 Mg C/ha, class 2: 28 Mg C/ha, 30 m pixels = 0.09 ha
    # baseline 30 px × 86 × 0.09 + 6 px × 28 × 0.09 = 232.2 + 15.12 = 247.32 Mg C
    # alternate: row 5 turns to class 2: 6 px × (28 − 86) × 0.09 = −31.32 Mg C
    assert res.totals["c_storage_bas_total"][0] == pytest.approx(247.32, rel=1e-6)
    assert res.totals["c_change_total"][0] == pytest.approx(-31.32, rel=1e-6)
    assert sorted(ctx.written) == ["c_change", "c_storage_alt", "c_storage_bas"]
    assert {Path(r.path).name for r in res.outputs.values()} == {
        "c_storage_bas.tif", "c_storage_alt.tif", "c_change_bas_alt.tif"}


def test_a_service_that_forgets_an_output_fails_after_compute(tmp_zh, raster_writer):
    plan = load_plan(_setup(tmp_zh, raster_writer, np.ones((4, 4), np.uint8), np.ones((4, 4), np.uint8)))
    run = plan.config.services["carbon_storage"]
    ctx = ServiceContext(spec=carbon_storage.SPEC, grid=plan.grid, catalog=plan.catalog, out_dir=tmp_zh,
                         inputs=dict(run.inputs))
    # lulc_alt is given, so c_storage_alt and c_change are expected (created_if)
    with pytest.raises(ServiceError, match="expected output 'c_change' was not written"):
        ctx.checked(_result("c_storage_bas", "c_storage_alt"))


def test_getspec_lists_table_parameters_with_values():
    spec = _constants.described_spec(registry.get_spec("carbon_sequestration"))
    p = spec.parameter("o2_basis")
    assert p.default == "nep" and p.by_profile == {"lyt1721": "npp"} and p.confidence == "◐"
    assert yaml.safe_load(spec.model_dump_json())["methods"][0]["created_if"] == {
        "o2": {"inputs": [], "params": {"oxygen_release": True}, "contains": {}}}


def test_water_balance_compute_ctx_directly_two_outputs_one_kernel(tmp_zh, raster_writer):
    from ecoraster.services import water_conservation

    from ._helpers import write_run

    raster_writer(tmp_zh / "eco.tif", np.array([[11, 42], [52, 11]], np.uint8), nodata=255)
    raster_writer(tmp_zh / "p.tif", np.full((2, 2), 1000.0, np.float32), nodata=-9999.0)
    raster_writer(tmp_zh / "et.tif", np.array([[600, 1100], [900, 600]], np.float32), nodata=-9999.0)
    (tmp_zh / "runoff.csv").write_text("code,alpha_pct,include\n11,2.67,1\n42,0,1\n52,,0\n", encoding="utf-8")
    datasets = {"eco": {"kind": "raster", "uri": "eco.tif", "categorical": True},
                "p": {"kind": "raster", "uri": "p.tif"}, "et": {"kind": "raster", "uri": "et.tif"},
                "runoff": {"kind": "table", "uri": "runoff.csv"}}
    cfg = write_run(tmp_zh, "water_conservation", datasets,
                    {"ecosystem": "eco", "precipitation": "p", "aet": "et", "runoff_coefficients": "runoff"})
    plan = load_plan(cfg)
    out = tmp_zh / "out"
    out.mkdir()
    ctx = ServiceContext(spec=water_conservation.SPEC, grid=plan.grid, catalog=plan.catalog, out_dir=out,
                         inputs=dict(plan.config.services["water_conservation"].inputs), chunk=1,
                         profile="mee2020")
    assert ctx.method_id == "water_balance" and water_conservation.validate(ctx) == []
    res = water_conservation.compute(ctx)
    # forest 11: (1000 − 1000 × 0.0267 − 600) mm × 900 m² × 10⁻³ = 335.97 m³, two pixels = 671.94 m³
    # lake 42: 1000 − 0 − 1100 = −100 mm → 0 m³, clipped 100 × 0.9 = 90 m³; cropland 52 excluded → 0
    assert res.totals["water_conservation_m3_total"][0] == pytest.approx(671.94, rel=1e-6)
    assert res.totals["water_balance_clipped_m3_total"][0] == pytest.approx(90.0, rel=1e-6)
    assert sorted(ctx.written) == ["water_balance_clipped_m3", "water_conservation_m3"]


def test_a_service_written_before_method_specs_still_registers():
    legacy = ServiceSpec(
        id="legacy", name="l", name_zh="l", about="l", category="存量", methods=("a", "b"),
        inputs=(InputSpec(id="x", kind="raster", about="x"), InputSpec(id="y", kind="raster", about="y", required=False)),
        outputs=(OutputSpec(id="o", filename="o.tif", about="o", units="1"),
                 OutputSpec(id="p", filename="p.tif", about="p", units="1", created_if="method == b")))
    assert legacy.method_ids == ("a", "b") and legacy.method("b").required_inputs == ("x",)
    ctx = ServiceContext(spec=legacy, grid=None, catalog=None, out_dir=Path("."), inputs={"x": "x"}, method="b")
    ctx.checked(_result("o"))          # p has only a prose condition: allowed, not expected
    ctx.checked(_result("o", "p"))
