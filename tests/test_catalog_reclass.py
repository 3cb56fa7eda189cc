"""A land-cover raster in a product's own legend is reclassified to GEP classes through the catalogue."""

import textwrap

import numpy as np
import pytest

from ecoraster import pipeline
from ecoraster.pipeline import validate_run


def _setup(tmp, raster_writer, lulc):
    raster_writer(tmp / "lulc.tif", lulc, nodata=0)
    (tmp / "legend.csv").write_text("src_code,src_name,gep_code,note\n10,tree,11,x\n40,crops,51,x\n", encoding="utf-8")
    (tmp / "pools.csv").write_text("lucode,C_above,C_below,C_soil,C_dead\n11,45,11,115,3\n51,5,1,100,0\n", encoding="utf-8")
    (tmp / "data_catalog.yaml").write_text(textwrap.dedent("""
        datasets:
          lulc: {kind: raster, uri: lulc.tif, categorical: true, reclass: legend.csv}
          pools: {kind: table, uri: pools.csv}
    """), encoding="utf-8")
    (tmp / "run.yaml").write_text(textwrap.dedent("""
        region: t
        year: 2021
        grid: {like: lulc}
        services:
          carbon_storage: {inputs: {lulc_bas: lulc, carbon_pools: pools}}
    """), encoding="utf-8")
    return tmp / "run.yaml"


def test_reclassified_input_feeds_gep_class_table(tmp_zh, raster_writer):
    lulc = np.full((4, 5), 10, dtype=np.uint8)
    lulc[0, :] = 40
    lulc[3, 4] = 0
    cfg = _setup(tmp_zh, raster_writer, lulc)
    res = pipeline.run(cfg, tmp_zh / "ws").services["carbon_storage"]
    # 14 tree px → class 11: 174 Mg C/ha; 5 crop px → class 51: 106 Mg C/ha; 0.09 ha per pixel
    assert res.totals["c_storage_bas_total"][0] == pytest.approx((14 * 174 + 5 * 106) * 0.09, rel=1e-6)


def test_code_missing_from_reclass_table_is_reported(tmp_zh, raster_writer):
    lulc = np.full((4, 5), 10, dtype=np.uint8)
    lulc[1, 1:3] = 95
    cfg = _setup(tmp_zh, raster_writer, lulc)
    (issue,) = validate_run(cfg)
    assert "lulc.tif" in str(issue) and "legend.csv" in str(issue) and "95 (2 px)" in str(issue)
