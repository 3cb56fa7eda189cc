"""on_new_imagery: one new scene for wuhan_lulc_2013 (given as a STAC Item) recomputes only what
reads it; the result equals a full run whose catalogue points at the scene."""

import hashlib
import json
import shutil

import numpy as np
import rasterio
import yaml

from ecoraster import pipeline
from ecoraster.pipeline import incremental
from flows.annual import annual_gep
from flows.new_imagery import on_new_imagery

from ..conftest import REPO
from .conftest import copy_tree_state, small_config, valued_result


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _new_scene(folder):
    """wh2013 with a 120 × 120 px block inside the run window set to class 6 (water)."""
    src = REPO / "data" / "sample" / "wuhan" / "wh2013_refy.tif"
    dst = folder / "LC_2013_revised.tif"
    shutil.copy(src, dst)
    with rasterio.open(dst, "r+") as ds:
        col, row = ~ds.transform @ (800_000, 3_368_000)
        win = rasterio.windows.Window(int(col), int(row), 120, 120)
        ds.write(np.full((120, 120), 6, np.int8), 1, window=win)
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "LC_2013_revised", "properties": {},
            "geometry": None, "links": [],
            "assets": {"lulc": {"href": dst.name, "type": "image/tiff; application=geotiff", "roles": ["data"]}}}
    (folder / "item.json").write_text(json.dumps(item), encoding="utf-8")
    return dst, folder / "item.json"


def test_new_scene_recomputes_only_its_dependents(tmp_zh, pixel_area_service):
    cfg = small_config(tmp_zh, extra_services={"test_pixel_area": {"inputs": {"lulc": "wuhan_lulc_2005"}}})
    ws = tmp_zh / "ws"
    first = annual_gep(config=str(cfg), workspace=str(ws))
    assert "service.test_pixel_area" in first["computed"]
    before = copy_tree_state(ws)
    catalogue_sha = _sha(REPO / "data_catalog.yaml")

    scenes = tmp_zh / "新影像"
    scenes.mkdir()
    raster, item = _new_scene(scenes)
    out = on_new_imagery(str(cfg), str(ws), scene=str(item), dataset="wuhan_lulc_2013")

    assert out["dependents"] == {"services": ["carbon_storage"], "zones": [], "grid": False}
    assert sorted(out["computed"]) == ["products", "service.carbon_storage", "value.carbon_storage",
                                       "zonal.districts"]
    after = copy_tree_state(ws)
    unchanged = [k for k in before if after.get(k) == before[k]]
    changed = sorted(set(after) - set(unchanged))
    # the other service is untouched (same bytes, same mtime) …
    assert {"test_pixel_area/area.tif", "test_pixel_area/result.json",
            "test_pixel_area/valued.json"} <= set(unchanged)
    # … the land cover 2013 outputs, the zone table and the manifest changed; plus the overlay
    assert {"carbon_storage/c_storage_alt.tif", "carbon_storage/c_change_bas_alt.tif", "zonal/districts.csv",
            "run.json", "catalog.overlay.yaml"} <= set(changed)
    assert not list(ws.glob(".staging*"))
    assert _sha(REPO / "data_catalog.yaml") == catalogue_sha  # the user's catalogue is never edited
    overlay = yaml.safe_load((ws / "catalog.overlay.yaml").read_text(encoding="utf-8"))
    assert overlay["datasets"]["wuhan_lulc_2013"]["uri"] == str(raster)
    assert overlay["datasets"]["wuhan_lulc_2013"]["checksum"] == "sha256:" + _sha(raster)
    manifest = json.loads((ws / "run.json").read_text(encoding="utf-8"))
    assert manifest["scenes"][0]["stac_item"] == "LC_2013_revised"

    # oracle: a one-shot run of the library with the scene in the catalogue from the start
    cat = yaml.safe_load((REPO / "data_catalog.yaml").read_text(encoding="utf-8"))
    extra = {"wuhan_lulc_2013": {**cat["datasets"]["wuhan_lulc_2013"], "uri": str(raster)}}
    oracle_cfg = small_config(tmp_zh / "新影像", catalog_extra=extra)
    oracle = pipeline.run(oracle_cfg, tmp_zh / "oracle").services["carbon_storage"]
    valued = valued_result(ws, "carbon_storage")
    for oid, rec in oracle.outputs.items():
        assert valued["outputs"][oid]["total"] == rec.total
    old = json.loads(before["run.json"][1])["results"]["carbon_storage"]
    assert valued["outputs"]["c_storage_alt"]["total"] != old["outputs"]["c_storage_alt"]["total"]
    assert valued["outputs"]["c_storage_bas"]["total"] == old["outputs"]["c_storage_bas"]["total"]

    # the same scene again through a folder scan: already ingested, nothing to do
    assert incremental.scan_folder(scenes, {"*.tif": "wuhan_lulc_2013"}, ws) == []
    assert on_new_imagery(str(cfg), str(ws), folder=str(scenes), patterns={"*.tif": "wuhan_lulc_2013"})["scenes"] == []
    # and a later annual run on this workspace keeps the new scene: nothing to recompute
    assert annual_gep(config=str(cfg), workspace=str(ws))["computed"] == []
