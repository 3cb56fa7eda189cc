"""carbon_storage: hand-worked 10×10 case, error cases, and the InVEST Willamette oracle."""

import json
import textwrap

import numpy as np
import pytest
import rasterio

from ecoraster.errors import MissingLookupValuesError, ValidationFailed
from ecoraster import pipeline
from ecoraster.pipeline import validate_run

from .conftest import REPO

POOLS = """lucode,C_above,C_below,C_soil,C_dead
1,15,10,60,1
2,5,3,20,0
"""


def _setup(tmp, raster_writer, bas, alt=None, pools=POOLS):
    raster_writer(tmp / "bas.tif", bas, nodata=255)
    if alt is not None:
        raster_writer(tmp / "alt.tif", alt, nodata=255)
    (tmp / "pools.csv").write_text(pools, encoding="utf-8")
    (tmp / "data_catalog.yaml").write_text(textwrap.dedent("""
        datasets:
          bas: {kind: raster, uri: bas.tif, categorical: true}
          alt: {kind: raster, uri: alt.tif, categorical: true}
          pools: {kind: table, uri: pools.csv}
    """), encoding="utf-8")
    inputs = "{lulc_bas: bas, carbon_pools: pools" + (", lulc_alt: alt}" if alt is not None else "}")
    (tmp / "run.yaml").write_text(textwrap.dedent(f"""
        region: test
        year: 2020
        grid: {{like: bas}}
        chunk: 64
        services:
          carbon_storage:
            inputs: {inputs}
    """), encoding="utf-8")
    return tmp / "run.yaml"


def test_storage_and_change_by_hand(tmp_zh, raster_writer):
    bas = np.ones((10, 10), dtype=np.uint8)
    bas[0, :] = 2
    bas[9, 9] = 255
    alt = bas.copy()
    alt[1, :] = 2
    cfg = _setup(tmp_zh, raster_writer, bas, alt)
    result = pipeline.run(cfg, tmp_zh / "ws")
    res = result.services["carbon_storage"]
    # class 1: 15+10+60+1 = 86 Mg C/ha; class 2: 5+3+20+0 = 28 Mg C/ha; pixel 30 m = 0.09 ha
    # baseline: 89 px of class 1 (100 − 10 in row 0 − 1 nodata) and 10 of class 2
    bas_total = 89 * 86 * 0.09 + 10 * 28 * 0.09          # 688.86 + 25.2 = 714.06 Mg C
    # alternate: row 1 turns from class 1 to class 2: 10 px × (28 − 86) × 0.09 = −52.2 Mg C
    assert res.totals["c_storage_bas_total"][0] == pytest.approx(bas_total, rel=1e-6)
    assert res.totals["c_change_total"][0] == pytest.approx(-52.2, rel=1e-6)
    assert res.totals["c_storage_alt_total"][0] == pytest.approx(bas_total - 52.2, rel=1e-6)
    with rasterio.open(res.outputs["c_storage_bas"].path) as src:
        arr = src.read(1)
        assert src.nodata == -9999.0 and arr[9, 9] == -9999.0
        assert arr[0, 0] == pytest.approx(28 * 0.09) and arr[5, 5] == pytest.approx(86 * 0.09)
        assert src.tags(1)["units"] == "Mg C"
    for out in res.outputs.values():  # pool lookups are constant per class: predictor 2 (spec: values="per_class")
        assert out.values == "per_class"
        with rasterio.open(out.path) as src:
            assert src.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "2"
    manifest = json.loads(result.manifest_path.read_text(encoding="utf-8"))
    assert manifest["results"]["carbon_storage"]["totals"]["c_change_total"]["units"] == "Mg C"
    assert "sha256" in manifest["inputs"]["bas"]
    assert not list((tmp_zh / "ws").glob(".staging*"))
    for written in (result.manifest_path, tmp_zh / "ws" / "carbon_storage" / "result.json"):
        assert ".staging" not in written.read_text(encoding="utf-8")  # paths point at the workspace


def test_numpy_equals_dask_chunking(tmp_zh, raster_writer):
    rng = np.random.default_rng(0)
    bas = rng.integers(1, 3, size=(150, 130)).astype(np.uint8)
    cfg = _setup(tmp_zh, raster_writer, bas)
    res = pipeline.run(cfg, tmp_zh / "ws").services["carbon_storage"]
    with rasterio.open(res.outputs["c_storage_bas"].path) as src:
        got = src.read(1)
    # numpy reference: table lookup × 0.09 ha, no chunking
    density = np.array([0, 86.0, 28.0])
    np.testing.assert_allclose(got, (density[bas] * 0.09).astype(np.float32), rtol=1e-7)


def test_missing_codes_listed_with_counts_and_nothing_written(tmp_zh, raster_writer):
    bas = np.ones((10, 10), dtype=np.uint8)
    bas[0, :3] = 7
    bas[5, 5] = 9
    cfg = _setup(tmp_zh, raster_writer, bas)
    issues = validate_run(cfg)
    assert len(issues) == 1
    msg = str(issues[0])
    assert "bas.tif" in msg and "pools.csv" in msg and "7 (3 px)" in msg and "9 (1 px)" in msg
    with pytest.raises(ValidationFailed, match="7 \\(3 px\\), 9 \\(1 px\\)"):
        pipeline.run(cfg, tmp_zh / "ws")
    assert not (tmp_zh / "ws").exists() or not any((tmp_zh / "ws").iterdir())
    assert issubclass(MissingLookupValuesError, ValueError)


def test_bad_pool_table_value_is_named(tmp_zh, raster_writer):
    cfg = _setup(tmp_zh, raster_writer, np.ones((3, 3), np.uint8), pools="lucode,C_above,C_below,C_soil,C_dead\n1,15,x,60,1\n")
    (issue,) = validate_run(cfg)
    assert "column 'C_below' row 2 = 'x' is not a number" in str(issue)


@pytest.mark.shared
def test_willamette_matches_invest(shared_data, tmp_zh):
    """InVEST 3.20.2 on its Willamette sample: 41,401,390.815 / 37,875,295.71 / −3,526,095.105 Mg C."""
    result = pipeline.run(REPO / "configs" / "examples" / "willamette_carbon.yaml", tmp_zh / "ws")
    totals = result.services["carbon_storage"].totals
    assert totals["c_storage_bas_total"][0] == pytest.approx(41_401_390.815, rel=1e-7)
    assert totals["c_storage_alt_total"][0] == pytest.approx(37_875_295.71, rel=1e-7)
    assert totals["c_change_total"][0] == pytest.approx(-3_526_095.105, rel=1e-7)
    names = sorted(p.name for p in (tmp_zh / "ws" / "carbon_storage").glob("*.tif"))
    assert any("storage" in n and "bas" in n for n in names)
    assert any("storage" in n and "alt" in n for n in names)
    assert any("change" in n for n in names)
    with rasterio.open(tmp_zh / "ws" / "carbon_storage" / "c_storage_bas.tif") as out, \
            rasterio.open(shared_data / "invest-sample/carbon_willamette/lulc_samp_cur.tif") as lulc:
        assert out.transform == lulc.transform and out.shape == lulc.shape  # on the input grid
        assert np.array_equal(out.read(1) == out.nodata, lulc.read(1) == lulc.nodata)
