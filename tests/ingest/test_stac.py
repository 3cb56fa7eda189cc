"""STAC Items for ingested inputs and the idempotent new-scene scan."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pystac
import pytest
from affine import Affine

from ecoraster.ingest import stac

from .conftest import write_tif


def test_raster_item_fields(tmp_cn):
    p = write_tif(tmp_cn / "影像.tif", np.arange(12, dtype=np.int16).reshape(3, 4), crs="EPSG:4527",
                  transform=Affine(10, 0, 39500000, 0, -10, 4400000), nodata=-1)
    item = stac.raster_item(p, datetime="2024-05-01T02:30:00", units="mm")
    d = item.to_dict()  # (schema validation would fetch the extension schemas over the network)
    exts = " ".join(d["stac_extensions"])
    assert "projection" in exts and "raster" in exts and "file" in exts
    assert d["properties"]["proj:code"] == "EPSG:4527"
    assert d["properties"]["proj:shape"] == [3, 4]
    assert d["properties"]["proj:transform"] == [10.0, 0.0, 39500000.0, 0.0, -10.0, 4400000.0]
    band = d["assets"]["data"]["raster:bands"][0]
    assert band == {"data_type": "int16", "nodata": -1, "unit": "mm"}
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    assert d["assets"]["data"]["file:checksum"] == "1220" + digest
    assert d["assets"]["data"]["file:size"] == p.stat().st_size
    # Tianjin-ish bbox in lon/lat: GK zone 39 x = 39 500 000 is the central meridian 117 E
    assert d["bbox"][0] == pytest.approx(117.0, abs=0.01) and 39 < d["bbox"][1] < 40


def test_scan_is_idempotent_and_keyed_by_checksum(tmp_cn):
    inbox = tmp_cn / "新影像"
    inbox.mkdir()
    a = write_tif(inbox / "a.tif", np.ones((4, 4), np.uint8), nodata=0)
    b = write_tif(inbox / "b.tif", np.full((4, 4), 2, np.uint8), nodata=0)
    (inbox / "readme.txt").write_text("not a scene")
    catalog = tmp_cn / "目录" / "catalog.json"
    assert stac.scan_new_scenes(inbox, catalog) == [a, b]  # no catalogue yet: everything is new
    added = stac.add_scenes(stac.scan_new_scenes(inbox, catalog), catalog)
    assert len(added) == 2 and catalog.exists()
    assert stac.scan_new_scenes(inbox, catalog) == []  # idempotent
    assert stac.add_scenes([a], catalog) == []  # adding again adds nothing
    shutil.copy(a, inbox / "a_copy.tif")  # same bytes, new name: not new
    assert stac.scan_new_scenes(inbox, catalog) == []
    (inbox / "sub").mkdir()
    c = write_tif(inbox / "sub" / "c.tif", np.full((4, 4), 3, np.uint8), nodata=0)
    assert stac.scan_new_scenes(inbox, catalog) == [c]
    cat = pystac.Catalog.from_file(str(catalog))
    assert len(list(cat.get_items(recursive=True))) == 2


def test_real_sample_item(real):
    p = real / "esa-worldcover-saotome" / "ESA_WorldCover_10m_2021_v200_N00E006_SaoTome_crop.tif"
    d = stac.raster_item(p, units="class").to_dict()
    assert d["properties"]["proj:code"] == "EPSG:4326" and d["properties"]["proj:shape"] == [5160, 4080]
    assert d["assets"]["data"]["raster:bands"][0]["nodata"] == 0
    assert d["bbox"] == pytest.approx([6.44, 0.0, 6.78, 0.43], abs=1e-6)
