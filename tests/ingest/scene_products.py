"""Synthetic raw products for the scene tests: a Landsat C2 L2 folder (MTL.txt and / or
MTL.json from one description), a Sentinel-2 L2A SAFE folder, a band folder with a STAC Item.

All on EPSG:32650 with the upper-left corner at (500000, 4400000); Landsat 30 m 4 × 6 px,
Sentinel-2 10 m bands 4 × 6 px with a 20 m SCL of 2 × 3 px.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from affine import Affine

from .conftest import write_tif

T30 = Affine(30, 0, 500000, 0, -30, 4400000)
T10 = Affine(10, 0, 500000, 0, -10, 4400000)
T20 = Affine(20, 0, 500000, 0, -20, 4400000)
LANDSAT_ID = "LC08_L2SP_123032_20200715_20200721_02_T1"

# DN of the red and NIR bands and QA_PIXEL words (USGS LSDS-1619 bit layout):
# 21824 clear land (bits 6, 8, 10, 12, 14); 22280 = cloud (bit 3 set); 1 = fill (bit 0);
# 21856 = 21824 | 1<<5 snow; 21826 = 21824 | 1<<1 dilated cloud; 21828 = 21824 | 1<<2 cirrus;
# 21840 = 21824 | 1<<4 cloud shadow.
LANDSAT_RED = np.array([[10000, 12000, 9000, 10000, 11000, 10000],
                        [10000, 5000, 10000, 10000, 10000, 15000],     # 5000 < 7273: out of range
                        [8000, 10000, 10000, 10000, 10000, 10000],
                        [10000, 10000, 10000, 10000, 10000, 10000]], np.uint16)
LANDSAT_NIR = np.array([[20000, 25000, 30000, 20000, 20000, 20000],
                        [20000, 20000, 20000, 50000, 20000, 18000],    # 50000 > 43636: out of range
                        [28000, 20000, 20000, 20000, 20000, 20000],
                        [20000, 20000, 20000, 20000, 20000, 20000]], np.uint16)
LANDSAT_QA = np.array([[21824, 21824, 21824, 22280, 1, 21824],
                       [21824, 21824, 21824, 21824, 21856, 21824],
                       [21824, 21826, 21828, 21840, 21824, 21824],
                       [21824, 21824, 21824, 21824, 21824, 21824]], np.uint16)
#: QA bits 0..5 (fill, dilated cloud, cirrus, cloud, shadow, snow) are masked by default.
QA_MASK = 0b111111


def landsat_expected_ndvi(red_mult, red_add, nir_mult, nir_add, red=LANDSAT_RED, nir=LANDSAT_NIR, qa=LANDSAT_QA):
    """NDVI worked out independently of the library: reflectance = DN × mult + add (the MTL's
    values), valid = no QA bit 0..5 set and both DN in 7273..43636; NaN elsewhere."""
    valid = ((qa.astype(np.int64) & QA_MASK) == 0) & (red >= 7273) & (red <= 43636) & (nir >= 7273) & (nir <= 43636)
    r = red.astype(np.float64) * red_mult + red_add
    n = nir.astype(np.float64) * nir_mult + nir_add
    return np.where(valid, (n - r) / (n + r), np.nan), valid


def landsat_groups(product_id=LANDSAT_ID, *, spacecraft="LANDSAT_8", level="L2SP", date="2020-07-15",
                   scaling=((2.0e-5, -0.1), (2.75e-5, -0.2))) -> dict:
    red_b, nir_b = (4, 5) if spacecraft in ("LANDSAT_8", "LANDSAT_9") else (3, 4)
    return {
        "PRODUCT_CONTENTS": {
            "LANDSAT_PRODUCT_ID": product_id, "PROCESSING_LEVEL": level, "COLLECTION_NUMBER": "02",
            f"FILE_NAME_BAND_{red_b}": f"{product_id}_SR_B{red_b}.TIF",
            f"FILE_NAME_BAND_{nir_b}": f"{product_id}_SR_B{nir_b}.TIF",
            "FILE_NAME_QUALITY_L1_PIXEL": f"{product_id}_QA_PIXEL.TIF",
        },
        "IMAGE_ATTRIBUTES": {"SPACECRAFT_ID": spacecraft, "SENSOR_ID": "OLI_TIRS", "DATE_ACQUIRED": date,
                             "SCENE_CENTER_TIME": "02:58:51.1234560Z", "CLOUD_COVER": "12.5"},
        "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS": {
            f"REFLECTANCE_MULT_BAND_{red_b}": f"{scaling[0][0]:.4E}", f"REFLECTANCE_ADD_BAND_{red_b}": f"{scaling[0][1]:.6f}",
            f"REFLECTANCE_MULT_BAND_{nir_b}": f"{scaling[1][0]:.4E}", f"REFLECTANCE_ADD_BAND_{nir_b}": f"{scaling[1][1]:.6f}",
        },
    }


def _odl(groups: dict) -> str:
    lines = ["GROUP = LANDSAT_METADATA_FILE"]
    for name, body in groups.items():
        lines.append(f"  GROUP = {name}")
        for k, v in body.items():
            numeric = k.startswith(("REFLECTANCE_", "CLOUD_")) or k == "COLLECTION_NUMBER"
            lines.append(f"    {k} = {v}" if numeric or k == "DATE_ACQUIRED" else f'    {k} = "{v}"')
        lines.append(f"  END_GROUP = {name}")
    lines += ["END_GROUP = LANDSAT_METADATA_FILE", "END"]
    return "\n".join(lines) + "\n"


def landsat_product(folder: Path, *, form: str = "txt", qa=LANDSAT_QA, red=LANDSAT_RED, nir=LANDSAT_NIR,
                    transform=T30, crs="EPSG:32650", **groups_kw) -> Path:
    """Write a Landsat C2 L2 product folder; ``form`` = ``txt``, ``json`` or ``both`` MTL forms."""
    groups = landsat_groups(**groups_kw)
    pid = groups["PRODUCT_CONTENTS"]["LANDSAT_PRODUCT_ID"]
    folder.mkdir(parents=True, exist_ok=True)
    files = groups["PRODUCT_CONTENTS"]
    bands = [k for k in files if k.startswith("FILE_NAME_BAND_")]
    write_tif(folder / files[bands[0]], red, nodata=0, transform=transform, crs=crs)
    write_tif(folder / files[bands[1]], nir, nodata=0, transform=transform, crs=crs)
    write_tif(folder / files["FILE_NAME_QUALITY_L1_PIXEL"], qa, nodata=1, transform=transform, crs=crs)
    if form in ("txt", "both"):
        (folder / f"{pid}_MTL.txt").write_text(_odl(groups), encoding="utf-8")
    if form in ("json", "both"):
        (folder / f"{pid}_MTL.json").write_text(json.dumps({"LANDSAT_METADATA_FILE": groups}, indent=2),
                                               encoding="utf-8")
    return folder


# -- Sentinel-2 ----------------------------------------------------------------------------

S2_RED = np.full((4, 6), 1500, np.uint16)
S2_NIR = np.full((4, 6), 4000, np.uint16)
S2_RED[0, 0], S2_NIR[0, 0] = 1200, 5200
S2_SCL = np.array([[4, 5, 8], [6, 9, 4]], np.uint8)  # 8, 9 cloud; 4, 5, 6 kept


def s2_expected_ndvi(offset: float):
    """(DN + offset) / 10000 per band, NaN where the 20 m SCL (nearest to 10 m) is not 4, 5, 6."""
    scl10 = np.kron(S2_SCL, np.ones((2, 2), np.uint8))
    r = (S2_RED.astype(np.float64) + offset) / 1e4
    n = (S2_NIR.astype(np.float64) + offset) / 1e4
    return np.where(np.isin(scl10, [4, 5, 6]), (n - r) / (n + r), np.nan)


MTD = """<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
<n1:General_Info><Product_Info>
<PRODUCT_START_TIME>2022-07-15T03:05:29.024Z</PRODUCT_START_TIME>
<PRODUCT_URI>{uri}</PRODUCT_URI><PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
<PRODUCT_TYPE>{ptype}</PRODUCT_TYPE>
<Datatake datatakeIdentifier="x"><SPACECRAFT_NAME>Sentinel-2B</SPACECRAFT_NAME></Datatake>
</Product_Info>
<Product_Image_Characteristics><QUANTIFICATION_VALUES_LIST>
<BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>
</QUANTIFICATION_VALUES_LIST>
<BOA_ADD_OFFSET_VALUES_LIST><BOA_ADD_OFFSET band_id="3">{offset}</BOA_ADD_OFFSET>
<BOA_ADD_OFFSET band_id="7">{offset}</BOA_ADD_OFFSET></BOA_ADD_OFFSET_VALUES_LIST>
</Product_Image_Characteristics></n1:General_Info></n1:Level-2A_User_Product>
"""
S2_URI = "S2B_MSIL2A_20220715T030529_N0400_R075_T50SMG_20220715T063117.SAFE"


def s2_safe(parent: Path, *, with_xml=True, baseline="04.00", offset=-1000, ptype="S2MSI2A", uri=S2_URI) -> Path:
    """A Sentinel-2 L2A SAFE folder (GeoTIFF bands in place of JP2; a 20 m B04 that must not be taken)."""
    root = parent / uri
    img = root / "GRANULE" / "L2A_T50SMG_A027981_20220715T031425" / "IMG_DATA"
    (img / "R10m").mkdir(parents=True)
    (img / "R20m").mkdir()
    write_tif(img / "R10m" / "T50SMG_20220715T030529_B04_10m.tif", S2_RED, nodata=0, transform=T10)
    write_tif(img / "R10m" / "T50SMG_20220715T030529_B08_10m.tif", S2_NIR, nodata=0, transform=T10)
    write_tif(img / "R20m" / "T50SMG_20220715T030529_B04_20m.tif", np.full((2, 3), 9999, np.uint16), nodata=0,
              transform=T20)
    write_tif(img / "R20m" / "T50SMG_20220715T030529_SCL_20m.tif", S2_SCL, nodata=0, transform=T20)
    if with_xml:
        (root / "MTD_MSIL2A.xml").write_text(MTD.format(uri=uri, baseline=baseline, offset=offset, ptype=ptype),
                                            encoding="utf-8")
    return root


def s2_stac_folder(folder: Path, *, raster_bands=True, baseline=None) -> Path:
    """Per-band COGs (red.tif, nir.tif, scl.tif, as Earth Search names them) and a STAC Item."""
    folder.mkdir(parents=True)
    write_tif(folder / "red.tif", S2_RED, nodata=0, transform=T10)
    write_tif(folder / "nir.tif", S2_NIR, nodata=0, transform=T10)
    write_tif(folder / "scl.tif", S2_SCL, nodata=0, transform=T20)
    rb = [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": -0.1}] if raster_bands else []
    props = {"datetime": "2022-07-15T03:05:29Z", "platform": "sentinel-2b", "constellation": "sentinel-2"}
    if baseline:
        props["s2:processing_baseline"] = baseline
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "S2B_50SMG_20220715_0_L2A", "properties": props,
            "geometry": None, "links": [],
            "assets": {"red": {"href": "./red.tif", "eo:bands": [{"name": "B04", "common_name": "red"}],
                               "raster:bands": rb},
                       "nir": {"href": "nir.tif", "eo:bands": [{"name": "B08", "common_name": "nir"}],
                               "raster:bands": rb},
                       "scl": {"href": "scl.tif"}}}
    path = folder / "S2B_50SMG_20220715_0_L2A.json"
    path.write_text(json.dumps(item), encoding="utf-8")
    return path
