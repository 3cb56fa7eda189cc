"""Land cover → GEP classes: tables, code checks, lazy reclassification."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine

from ecoraster.errors import MissingLookupValuesError, TableError
from ecoraster.grid import Grid
from ecoraster.ingest import landcover as lc

from .conftest import write_tif

ALL_TABLES = ["esa_worldcover", "clcd", "clcd_swb_hyrb", "sandiao_level1", "sandiao_level2", "wuhan_plus"]


@pytest.mark.parametrize("name", ALL_TABLES)
def test_every_table_maps_to_gep_classes_only(name):
    tab = lc.load_table(name)
    assert set(tab.gep_codes) <= lc.gep_class_codes()
    assert len(tab.raster_codes) > 0


def test_sandiao_second_level_rows():
    m = lc.load_table("sandiao_level2").as_dict()
    # the rows the brief names, code by code
    expected = {"0101": 51, "0102": 52, "0103": 52, "0301": 15, "0305": 22, "0401": 32, "1101": 44,
                "1102": 42, "1103": 43, "1104": 43, "1105": 45, "1106": 45, "1108": 41, "0810": 61,
                "0701": 62, "1207": 71, "1104A": 43}
    assert {k: m[k] for k in expected} == expected
    # string codes for vector DLBM attributes; integers for rasters (0101 -> 101)
    out = lc.lookup_codes(["0101", "1104A", 1102, "0810"], "sandiao_level2")
    assert out.tolist() == [51, 43, 42, 61]
    with pytest.raises(MissingLookupValuesError) as exc:
        lc.lookup_codes(["0101", "9999", "9999", "XX"], "sandiao_level2")
    assert exc.value.pixel_counts == {"9999": 2, "XX": 1}


def test_bad_tables_fail_with_file_row_and_value(tmp_cn):
    bad = tmp_cn / "坏表.csv"
    bad.write_text("src_code,src_name,gep_code,note\n1,a,11,x\n2,b,99,x\n", encoding="utf-8")
    with pytest.raises(TableError, match=r"坏表.csv: row 3: gep_code 99"):
        lc.load_table(bad)
    clash = tmp_cn / "冲突.csv"
    clash.write_text("src_code,src_name,gep_code,note\n0201,果园,53,x\n201,城市,62,x\n", encoding="utf-8")
    with pytest.raises(TableError, match="equals '0201' as an integer"):
        lc.load_table(clash)


def test_check_codes_lists_every_missing_code_with_counts(tmp_cn):
    # 4x5 raster: codes 10 (8 px), 20 (5 px), 33 (4 px, not in table), 77 (2 px, not in table), nodata 0 (1 px)
    a = np.array([[10, 10, 10, 10, 20],
                  [10, 10, 10, 10, 20],
                  [33, 33, 33, 33, 20],
                  [77, 77, 0, 20, 20]], dtype=np.uint8)
    p = write_tif(tmp_cn / "土地覆盖.tif", a, nodata=0)
    with pytest.raises(MissingLookupValuesError) as exc:
        lc.check_codes(p, "esa_worldcover", chunk=2)  # 2x2 windows: counts summed across windows
    assert exc.value.pixel_counts == {33: 4, 77: 2}
    assert "33 (4 px), 77 (2 px)" in str(exc.value) and "土地覆盖.tif" in str(exc.value)
    with pytest.raises(MissingLookupValuesError):
        lc.reclassify(p, "esa_worldcover")  # check runs before the graph is built


def test_float_rasters_are_refused(tmp_cn):
    p = write_tif(tmp_cn / "f.tif", np.ones((3, 3), np.float32), nodata=-1)
    with pytest.raises(TableError, match="integer type"):
        lc.check_codes(p, "clcd")


def test_reclassify_wuhan_counts_match_the_source(real):
    src = real / "wuhan-lulc-30m-plus" / "wh2010_refy.tif"
    counts = lc.check_codes(src, "wuhan_plus")
    # values from the folder README / an independent np.unique on the file
    with rasterio.open(src) as ds:
        ref = ds.read(1)
    vals, n = np.unique(ref[ref != -128], return_counts=True)
    assert counts == dict(zip(vals.tolist(), n.tolist()))
    eco = lc.reclassify(src, "wuhan_plus", chunk=1024)
    assert eco.dtype == np.uint8 and eco.attrs["units"] == "class" and eco.attrs["nodata"] == 0
    assert eco.chunks[0][0] == 1024
    assert eco.rio.crs.to_epsg() == 32649
    got = eco.values
    # cropland 3 -> paddy 51, water 6 -> lake 42, urban 4 -> 62; nodata -128 -> 0
    assert (got == 51).sum() == counts[3] == 2_774_437
    assert (got == 42).sum() == counts[6]
    assert (got == 0).sum() == (ref == -128).sum()
    # East Lake centre (114.40E, 30.56N) is water in the README -> lake 42
    from pyproj import Transformer
    x, y = Transformer.from_crs(4326, 32649, always_xy=True).transform(114.40, 30.56)
    r, c = rasterio.transform.rowcol(ds.transform, x, y)
    assert got[r, c] == 42


def test_reclassify_worldcover_and_clcd_samples(real):
    wc = real / "esa-worldcover-saotome" / "ESA_WorldCover_10m_2021_v200_N00E006_SaoTome_crop.tif"
    counts = lc.check_codes(wc, "esa_worldcover")
    assert set(counts) == {10, 20, 30, 40, 50, 60, 80, 90, 95}
    # coarsen onto a 0.01 deg grid (12x12 source px per cell) with the mode of the codes
    grid = Grid.from_bounds("EPSG:4326", (6.44, 0.0, 6.78, 0.43), 0.01)
    eco = lc.reclassify(wc, "esa_worldcover", grid=grid, chunk=16, check=False).values
    assert eco.shape == (43, 34)
    assert set(np.unique(eco)) <= {0, 15, 22, 32, 52, 62, 71, 42, 41}
    # tree cover (15) and water (42) dominate the crop (9.26 M and 11.1 M of 21 M px)
    share = {c: (eco == c).mean() for c in (15, 42)}
    assert share[15] > 0.3 and share[42] > 0.3

    clcd = real / "clcd-2020-yellow-river-headwater-1km" / "clcd_v01_2020_HYRB_1km_utm47n_re.tif"
    eco = lc.reclassify(clcd, "clcd_swb_hyrb").values
    # 171 grassland (42595 px) -> alpine meadow 31; 111 water (1569) -> 42; 0 stays nodata (76017)
    assert (eco == 31).sum() == 42595 and (eco == 42).sum() == 1569 and (eco == 0).sum() == 76017


def test_large_raster_chunked_equals_in_memory(tmp_cn):
    rng = np.random.default_rng(5)
    codes = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], dtype=np.uint8)
    a = rng.choice(codes, size=(3000, 2500))
    p = write_tif(tmp_cn / "大图.tif", a, nodata=0, transform=Affine(30, 0, 0, 0, -30, 90000))
    lazy = lc.reclassify(p, "clcd", chunk=1024)
    assert lazy.data.numblocks == (3, 3)
    expected = lc.reclassify_array(a, "clcd", src_nodata=0)
    # by hand: 1 -> 52, 9 -> 41, 0 -> 0
    assert expected[a == 1].min() == 52 and expected[a == 9].max() == 41 and expected[a == 0].max() == 0
    np.testing.assert_array_equal(lazy.values, expected)
