import json

import numpy as np
import rasterio
from typer.testing import CliRunner

from ecoraster.cli import app

runner = CliRunner()


def test_landcover_check_and_reclassify(tmp_zh, raster_writer):
    # ESA WorldCover codes: 10 tree cover, 40 cropland, 80 permanent water
    codes = np.array([[10, 10, 40], [80, 40, 0]], dtype=np.uint8)
    src = raster_writer(tmp_zh / "wc.tif", codes, nodata=0)
    res = runner.invoke(app, ["ingest", "check-codes", str(src), "--table", "esa_worldcover"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"10": 2, "40": 2, "80": 1}
    out = tmp_zh / "gep.tif"
    res = runner.invoke(app, ["ingest", "landcover", str(src), "--table", "esa_worldcover", "--out", str(out)])
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as ds:
        got = ds.read(1)
    # configs/landcover/esa_worldcover.csv: 10 → 15 mixed forest, 40 → 52 dry cropland, 80 → 42 lake; nodata 0
    np.testing.assert_array_equal(got, [[15, 15, 52], [42, 52, 0]])


def test_unknown_code_exits_1_with_the_code(tmp_zh, raster_writer):
    src = raster_writer(tmp_zh / "wc.tif", np.array([[10, 77]], dtype=np.uint8), nodata=0)
    res = runner.invoke(app, ["ingest", "check-codes", str(src), "--table", "esa_worldcover"])
    assert res.exit_code == 1 and "77 (1 px)" in res.output
