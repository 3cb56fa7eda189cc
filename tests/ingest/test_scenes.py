"""Raw scenes → recognised sensor → masked, scaled index COG (eco ingest scene), bad input refused."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from affine import Affine
from rasterio.crs import CRS

from ecoraster.cli.main import app
from ecoraster.errors import ConfigError, InputDataError, MissingFileError, NoOverlapError
from ecoraster.grid import Grid
from ecoraster.ingest import optical as op
from ecoraster.ingest import scenes as sc

from .conftest import write_tif
from .scene_products import (LANDSAT_ID, LANDSAT_QA, T30, landsat_expected_ndvi, landsat_product, s2_expected_ndvi,
                             s2_safe, s2_stac_folder)

runner = CliRunner()
# the MTL's own scaling, on purpose not the product defaults (2.75e-5, -0.2) for the red band
RED_SCALING, NIR_SCALING = (2.0e-5, -0.1), (2.75e-5, -0.2)


@pytest.mark.parametrize("form", ["txt", "json"])
def test_landsat_folder_either_mtl_form(tmp_cn, form):
    folder = landsat_product(tmp_cn / LANDSAT_ID, form=form)
    scene = sc.recognise(folder)
    assert scene.sensor == "landsat_c2l2" and scene.scene_id == LANDSAT_ID
    assert scene.acquired.isoformat() == "2020-07-15T02:58:51.123456+00:00"
    assert scene.scaling["reflectance"] == [RED_SCALING, NIR_SCALING]
    result = sc.scene_index(scene, "ndvi")
    expected, valid = landsat_expected_ndvi(*RED_SCALING, *NIR_SCALING)
    # e.g. (0, 0): red 10000 × 2e-5 − 0.1 = 0.1, nir 20000 × 2.75e-5 − 0.2 = 0.35 → 0.25 / 0.45
    assert expected[0, 0] == pytest.approx(0.25 / 0.45)
    np.testing.assert_allclose(result.data.values, expected, atol=1e-6)
    # 24 px: cloud, fill, snow, dilated cloud, cirrus, shadow (6 QA) + red 5000, nir 50000 → 16 valid
    assert valid.sum() == 16 and result.valid_share == pytest.approx(16 / 24)
    # the MTL file itself is an entry point too
    mtl = next(folder.glob(f"*_MTL.{form}"))
    assert sc.recognise(mtl).scaling == scene.scaling


def test_parse_mtl_scaling_reads_the_json_form(tmp_cn):
    folder = landsat_product(tmp_cn / "p", form="both")
    txt, js = folder / f"{LANDSAT_ID}_MTL.txt", folder / f"{LANDSAT_ID}_MTL.json"
    assert op.parse_mtl_scaling(js, 4) == op.parse_mtl_scaling(txt, 4) == RED_SCALING
    assert op.read_mtl(js) == op.read_mtl(txt)  # same groups, same strings
    with pytest.raises(InputDataError, match="REFLECTANCE_MULT/ADD_BAND_7"):
        op.parse_mtl_scaling(js, 7)


def test_landsat7_takes_bands_3_and_4(tmp_cn):
    folder = landsat_product(tmp_cn / "le07", spacecraft="LANDSAT_7", product_id="LE07_L2SP_123032_20200715_20200810_02_T1")
    scene = sc.recognise(folder)
    assert scene.red.name.endswith("_SR_B3.TIF") and scene.nir.name.endswith("_SR_B4.TIF")


def test_cli_scene_writes_a_tagged_cog(tmp_cn):
    folder = landsat_product(tmp_cn / LANDSAT_ID, form="json")
    out = tmp_cn / "out" / "ndvi.tif"
    res = runner.invoke(app, ["ingest", "scene", str(folder), "--index", "ndvi", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    facts = json.loads(res.output)
    assert facts["scene_id"] == LANDSAT_ID and facts["valid_share"] == pytest.approx(16 / 24)
    with rasterio.open(out) as src:
        tags = src.tags()
        assert src.transform == T30 and src.crs.to_epsg() == 32650 and np.isnan(src.nodata)
        assert src.profile["tiled"] and src.units[0] == "1"
        expected, _ = landsat_expected_ndvi(*RED_SCALING, *NIR_SCALING)
        np.testing.assert_allclose(src.read(1), expected, atol=1e-6)
    assert tags["scene_id"] == LANDSAT_ID and tags["acquired"].startswith("2020-07-15")
    assert float(tags["valid_share"]) == pytest.approx(16 / 24)
    assert "QA_PIXEL bits [0, 1, 2, 3, 4, 5]" in tags["mask"] and tags["sensor"] == "Landsat C2 L2"


def test_fvc_and_lai_follow_the_library_relations(tmp_cn):
    folder = landsat_product(tmp_cn / LANDSAT_ID)
    ndvi = sc.scene_index(folder, "ndvi").data
    fvc, _ = op.fvc(ndvi)
    np.testing.assert_allclose(sc.scene_index(folder, "fvc").data.values, fvc.values, equal_nan=True)
    np.testing.assert_allclose(sc.scene_index(folder, "lai").data.values, op.lai(fvc).values, equal_nan=True)
    assert sc.scene_index(folder, "lai").tags["index"] == "lai"


def test_mostly_clouded_scene_is_refused_with_its_share(tmp_cn):
    qa = np.full_like(LANDSAT_QA, 22280)  # cloud everywhere ...
    qa[3, :2] = 21824  # ... but two pixels: 2 / 24 = 8.3 % < 10 %
    folder = landsat_product(tmp_cn / LANDSAT_ID, qa=qa)
    out = tmp_cn / "ndvi.tif"
    res = runner.invoke(app, ["ingest", "scene", str(folder), "--out", str(out)])
    assert res.exit_code == 1 and "8.3% valid pixels" in res.output and "min_valid_share 10.0%" in res.output
    assert not out.exists()
    assert sc.scene_index(folder, "ndvi", min_valid_share=0.05).valid_share == pytest.approx(2 / 24)


# -- Sentinel-2 -------------------------------------------------------------------------------

def test_sentinel2_safe_with_baseline_0400(tmp_cn):
    root = s2_safe(tmp_cn)
    for entry in (root, root / "MTD_MSIL2A.xml"):
        scene = sc.recognise(entry)
        assert scene.sensor == "sentinel2_l2a" and scene.red.name.endswith("_B04_10m.tif")  # not the 20 m B04
        assert scene.scene_id == "S2B_MSIL2A_20220715T030529_N0400_R075_T50SMG_20220715T063117"
    result = sc.scene_index(root, "ndvi")
    # (0, 0): red (1200 − 1000) / 1e4 = 0.02, nir (5200 − 1000) / 1e4 = 0.42 → 0.40 / 0.44
    np.testing.assert_allclose(result.data.values, s2_expected_ndvi(-1000), atol=1e-6)
    assert result.data.values[0, 0] == pytest.approx(0.40 / 0.44, abs=1e-6)
    assert result.valid_share == pytest.approx(16 / 24)  # SCL 8 and 9 are 2 × 4 px of 10 m
    assert "SCL in [4, 5, 6]" in result.tags["mask"] and result.tags["acquired"].startswith("2022-07-15T03:05:29")


def test_sentinel2_before_baseline_0400_has_no_offset(tmp_cn):
    root = s2_safe(tmp_cn, baseline="03.01", offset=0, uri="S2B_MSIL2A_20210715T030529_N0301_R075_T50SMG_x.SAFE")
    np.testing.assert_allclose(sc.scene_index(root).data.values, s2_expected_ndvi(0), atol=1e-6)


def test_sentinel2_band_cogs_with_a_stac_item(tmp_cn):
    item = s2_stac_folder(tmp_cn / "earth-search")
    for entry in (item, item.parent):
        scene = sc.recognise(entry)
        assert scene.sensor == "sentinel2_l2a" and scene.scaling["boa_offsets"] == pytest.approx([-1000, -1000])
    np.testing.assert_allclose(sc.scene_index(item).data.values, s2_expected_ndvi(-1000), atol=1e-6)
    only_baseline = s2_stac_folder(tmp_cn / "mpc", raster_bands=False, baseline="05.09")
    np.testing.assert_allclose(sc.scene_index(only_baseline).data.values, s2_expected_ndvi(-1000), atol=1e-6)


def test_landsat_stac_item_scaling_from_raster_bands(tmp_cn):
    folder = landsat_product(tmp_cn / "l8")
    for mtl in folder.glob("*_MTL.*"):
        mtl.unlink()
    rb = lambda m, a: [{"scale": m, "offset": a, "nodata": 0}]  # noqa: E731
    item = {"type": "Feature", "id": LANDSAT_ID, "properties": {"datetime": "2020-07-15T02:58:51Z",
                                                               "platform": "LANDSAT_8"},
            "assets": {"red": {"href": f"{LANDSAT_ID}_SR_B4.TIF", "raster:bands": rb(*RED_SCALING)},
                       "nir08": {"href": f"{LANDSAT_ID}_SR_B5.TIF", "raster:bands": rb(*NIR_SCALING)},
                       "qa_pixel": {"href": f"{LANDSAT_ID}_QA_PIXEL.TIF"}}}
    path = folder / "item.json"
    path.write_text(json.dumps(item))
    expected, _ = landsat_expected_ndvi(*RED_SCALING, *NIR_SCALING)
    np.testing.assert_allclose(sc.scene_index(path).data.values, expected, atol=1e-6)


# -- MODIS (real sample) ----------------------------------------------------------------------

def test_modis_sample_recognised_from_band_descriptions(real, tmp_cn):
    path = real / "modis-myd09gq-red-nir-iowa" / "MYD09GQ_15TWF79_20171019_red_nir_qc.tif"
    scene = sc.recognise(path)
    assert scene.sensor == "modis_sr" and scene.acquired.date().isoformat() == "2017-10-19"
    out = tmp_cn / "modis_ndvi.tif"
    res = runner.invoke(app, ["ingest", "scene", str(path), "--index", "ndvi", "--out", str(out)])
    assert res.exit_code == 0, res.output
    with rasterio.open(path) as src:
        r, n = (src.read(b).astype(float) * 1e-4 for b in (1, 2))
    with rasterio.open(out) as got:
        np.testing.assert_allclose(got.read(1), (n - r) / (n + r), atol=1e-6)  # QC = 4096: all clear
        assert got.tags()["valid_share"] == "1.000000" and "MODLAND" in got.tags()["mask"]


# -- bad input: one error, nothing written -------------------------------------------------------

def _cli_fails(args, out, match):
    res = runner.invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and match in lines[0], res.output
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*"))


def test_unknown_sensor(tmp_cn):
    plain = write_tif(tmp_cn / "something.tif", np.ones((3, 3), np.float32), nodata=-1)
    _cli_fails(["ingest", "scene", str(plain)], tmp_cn / "a.tif", "unknown sensor")
    empty = tmp_cn / "empty_folder"
    empty.mkdir()
    _cli_fails(["ingest", "scene", str(empty)], tmp_cn / "b.tif", "unknown sensor")
    craft = landsat_product(tmp_cn / "l1", spacecraft="LANDSAT_3")
    _cli_fails(["ingest", "scene", str(craft)], tmp_cn / "c.tif", "SPACECRAFT_ID = 'LANDSAT_3': unknown sensor")


def test_missing_band_or_qa_file(tmp_cn):
    folder = landsat_product(tmp_cn / "noqa")
    (folder / f"{LANDSAT_ID}_QA_PIXEL.TIF").unlink()
    _cli_fails(["ingest", "scene", str(folder)], tmp_cn / "a.tif", "QA_PIXEL")
    folder = landsat_product(tmp_cn / "nonir")
    (folder / f"{LANDSAT_ID}_SR_B5.TIF").unlink()
    _cli_fails(["ingest", "scene", str(folder)], tmp_cn / "b.tif", "NIR band")
    nomtl = landsat_product(tmp_cn / "nomtl")
    (nomtl / f"{LANDSAT_ID}_MTL.txt").unlink()
    _cli_fails(["ingest", "scene", str(nomtl)], tmp_cn / "c.tif", "Landsat MTL")
    root = s2_safe(tmp_cn)
    scl = next(root.rglob("*_SCL_20m.tif"))
    scl.unlink()
    _cli_fails(["ingest", "scene", str(root)], tmp_cn / "d.tif", "Sentinel-2 SCL band")


def test_level1_and_no_baseline_refused(tmp_cn):
    with pytest.raises(InputDataError, match="PROCESSING_LEVEL = 'L1TP'"):
        sc.recognise(landsat_product(tmp_cn / "l1", level="L1TP"))
    bare = tmp_cn / "bare"
    shutil.copytree(next(s2_safe(tmp_cn).rglob("R10m")), bare)
    shutil.copy(next((tmp_cn / "S2B_MSIL2A_20220715T030529_N0400_R075_T50SMG_20220715T063117.SAFE").rglob("*SCL*")),
                bare)
    with pytest.raises(ConfigError, match="processing baseline"):
        sc.recognise(bare)


def test_scene_outside_the_grid(tmp_cn):
    folder = landsat_product(tmp_cn / LANDSAT_ID)
    far = Grid.from_bounds("EPSG:32650", (700000, 4000000, 700300, 4000300), 30)
    with pytest.raises(NoOverlapError, match="does not overlap"):
        sc.scene_index(folder, grid=far)
    config = tmp_cn / "run.yaml"
    config.write_text(json.dumps({"region": "t", "year": 2020, "catalog": str(sc.Path(__file__).parents[2] / "data_catalog.yaml"),
                                  "grid": {"crs": "EPSG:32650", "resolution": 30,
                                           "bounds": [700000, 4000000, 700300, 4000300]}, "services": {}}))
    _cli_fails(["ingest", "scene", str(folder), "--config", str(config)], tmp_cn / "a.tif", "does not overlap")


def test_scene_on_the_run_grid(tmp_cn):
    folder = landsat_product(tmp_cn / LANDSAT_ID)
    # a 60 m run grid over the scene and one column east of it: 2 × 4 px, the last column outside
    grid = Grid(CRS.from_epsg(32650), Affine(60, 0, 500000, 0, -60, 4400000), (2, 4))
    result = sc.scene_index(folder, grid=grid, min_valid_share=0)
    assert result.data.shape == (2, 4) and np.isnan(result.data.values[:, 3]).all()
    with pytest.raises(MissingFileError):
        sc.recognise(tmp_cn / "nope")
