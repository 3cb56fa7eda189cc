"""Optical: Landsat / Sentinel-2 / MODIS reflectance and masks, NDVI, FVC, LAI, composites."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
from affine import Affine

from ecoraster.errors import ConfigError, InputDataError
from ecoraster.ingest import optical as op
from ecoraster.kernels import ingest_optical as kern

from .conftest import write_tif

T10 = Affine(10, 0, 600000, 0, -10, 4400000)
T20 = Affine(20, 0, 600000, 0, -20, 4400000)

MTL = """GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS
    REFLECTANCE_MULT_BAND_4 = 2.75E-05
    REFLECTANCE_ADD_BAND_4 = -0.200000
    REFLECTANCE_MULT_BAND_5 = {mult5}
    REFLECTANCE_ADD_BAND_5 = {add5}
END_GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS
"""


def _landsat(tmp, mult5="2.75E-05", add5="-0.200000"):
    red = np.array([[10000, 10000, 0], [10000, 10000, 10000]], np.uint16)
    nir = np.array([[20000, 20000, 20000], [20000, 20000, 50000]], np.uint16)
    # 21824 clear; 22280 has bit 3 (cloud); 1 = fill; 21856 = 21824 | 32 (snow)
    qa = np.array([[21824, 22280, 1], [21856, 21824, 21824]], np.uint16)
    stem = "LC08_L2SP_122033_20200801_20200807_02_T1"
    paths = [write_tif(tmp / f"{stem}_SR_B4.TIF", red, nodata=0, transform=T10),
             write_tif(tmp / f"{stem}_SR_B5.TIF", nir, nodata=0, transform=T10),
             write_tif(tmp / f"{stem}_QA_PIXEL.TIF", qa, nodata=1, transform=T10)]
    mtl = tmp / f"{stem}_MTL.txt"
    mtl.write_text(MTL.format(mult5=mult5, add5=add5))
    return paths, mtl


def test_landsat_c2l2_scaling_and_qa(tmp_cn):
    (red, nir, qa), mtl = _landsat(tmp_cn)
    ds = op.read_landsat_c2l2(red, nir, qa, mtl_path=mtl)
    # only (0,0) and (1,1) are valid: cloud, fill, snow and NIR DN 50000 > 43636 are masked
    np.testing.assert_array_equal(ds["valid"].values, [[True, False, False], [False, True, False]])
    # red 10000 * 2.75e-5 - 0.2 = 0.075; nir 20000 * 2.75e-5 - 0.2 = 0.35; NDVI = 0.275 / 0.425
    assert float(ds["red"][0, 0]) == pytest.approx(0.075, abs=1e-6)
    v = op.ndvi(ds).values
    assert v[0, 0] == pytest.approx(0.275 / 0.425, abs=1e-6) and np.isnan(v[0, 1]) and np.isnan(v[1, 2])
    assert op.valid_share(ds) == pytest.approx(2 / 6)
    # the MTL wins over the defaults: nir = 20000 * 2e-5 - 0.1 = 0.3 -> NDVI = 0.225 / 0.375 = 0.6
    (red, nir, qa), mtl = _landsat(tmp_cn / "..", mult5="2.0E-05", add5="-0.100000")
    assert op.ndvi(op.read_landsat_c2l2(red, nir, qa, mtl_path=mtl)).values[0, 0] == pytest.approx(0.6, abs=1e-6)


def _s2(tmp):
    red = np.full((2, 4), 1500, np.uint16)
    nir = np.full((2, 4), 4000, np.uint16)
    scl = np.array([[4, 8]], np.uint8)  # 20 m: left half vegetation, right half cloud (medium prob.)
    return (write_tif(tmp / "T50SMG_B04_10m.jp2.tif", red, nodata=0, transform=T10),
            write_tif(tmp / "T50SMG_B08_10m.tif", nir, nodata=0, transform=T10),
            write_tif(tmp / "T50SMG_SCL_20m.tif", scl, nodata=0, transform=T20))


def test_sentinel2_offset_by_baseline_and_scl(tmp_cn):
    red, nir, scl = _s2(tmp_cn)
    new = op.read_sentinel2_l2a(red, nir, scl, processing_baseline="04.00")
    np.testing.assert_array_equal(new["valid"].values, [[True, True, False, False]] * 2)
    # (4000 - 1000 - (1500 - 1000)) / (3000 + 500) = 2500 / 3500
    assert op.ndvi(new).values[0, 0] == pytest.approx(2500 / 3500, abs=1e-6)
    old = op.read_sentinel2_l2a(red, nir, scl, processing_baseline="03.01")
    assert op.ndvi(old).values[0, 0] == pytest.approx(2500 / 5500, abs=1e-6)  # no offset before 04.00
    xml = tmp_cn / "MTD_MSIL2A.xml"
    xml.write_text('<x><PROCESSING_BASELINE>05.09</PROCESSING_BASELINE><BOA_QUANTIFICATION_VALUE unit="none">10000'
                   '</BOA_QUANTIFICATION_VALUE><BOA_ADD_OFFSET band_id="3">-1000</BOA_ADD_OFFSET>'
                   '<BOA_ADD_OFFSET band_id="7">-1000</BOA_ADD_OFFSET></x>')
    meta = op.read_sentinel2_l2a(red, nir, scl, metadata_path=xml)
    assert float(meta["red"][0, 0]) == pytest.approx(0.05) and meta.attrs["processing_baseline"] == "05.09"
    with pytest.raises(ConfigError, match="processing_baseline"):
        op.read_sentinel2_l2a(red, nir, scl)


def test_modis_sample_ndvi_matches_band_math(real):
    path = real / "modis-myd09gq-red-nir-iowa" / "MYD09GQ_15TWF79_20171019_red_nir_qc.tif"
    ds = op.read_modis_sr(path)
    with rasterio.open(path) as src:
        r, n, qc = (src.read(b).astype(float) for b in (1, 2, 3))
    assert (qc == 4096).all() and op.valid_share(ds) == 1.0  # clear scene (README)
    expected = (n - r) / (n + r)  # the 1e-4 scale cancels in the ratio
    got = op.ndvi(ds).values
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert 0.3 < float(np.mean(got)) < 0.6  # cropland NDVI in the README
    assert float(ds["red"].max()) < 1.0 and float(ds["red"][0, 0]) == pytest.approx(r[0, 0] * 1e-4, rel=1e-6)


def test_fvc_percentiles_per_scene_and_class():
    rng = np.random.default_rng(3)
    nd = rng.uniform(-0.2, 0.9, (60, 50)).astype(np.float32)
    nd[:5, :5] = np.nan
    classes = np.where(np.arange(50)[None, :] < 25, 52, 11).astype(np.uint8).repeat(60, 0)
    nd[:, 25:] = np.clip(nd[:, 25:] + 0.05, -1, 1)
    grid_coords = {"y": np.arange(60.0), "x": np.arange(50.0)}
    nda = xr.DataArray(nd, dims=("y", "x"), coords=grid_coords).chunk(16)
    f, ends = op.fvc(nda)
    valid = nd[np.isfinite(nd)]
    # the histogram percentile is the inverted-CDF definition, to one 1e-4 bin
    s, v = np.percentile(valid, 5, method="inverted_cdf"), np.percentile(valid, 95, method="inverted_cdf")
    assert ends["scene"][0] == pytest.approx(s, abs=1e-4) and ends["scene"][1] == pytest.approx(v, abs=1e-4)
    got = f.values
    exp = np.clip((nd - ends["scene"][0]) / (ends["scene"][1] - ends["scene"][0]), 0, 1)
    np.testing.assert_allclose(got, exp, atol=1e-6, equal_nan=True)
    assert np.isnan(got[0, 0]) and f.attrs["units"] == "1"
    cls = xr.DataArray(classes, dims=("y", "x"), coords=grid_coords).chunk(16)
    fc, ends_c = op.fvc(nda, classes=cls)
    crop = nd[:, :25][np.isfinite(nd[:, :25])]
    assert ends_c[52][1] == pytest.approx(np.percentile(crop, 95, method="inverted_cdf"), abs=1e-4)
    assert ends_c[11][0] == pytest.approx(np.percentile(nd[:, 25:], 5, method="inverted_cdf"), abs=1e-4)


def test_lai_relations_by_hand():
    x = np.array([[0.5, 0.0, 0.1, 0.7, np.nan]], np.float32)
    arr = xr.DataArray(x, dims=("y", "x")).chunk(4)
    metric = op.lai(arr, "metric_savi").values[0]
    # -ln((0.69 - 0.5) / 0.59) / 0.91 = 1.24512; SAVI 0 -> negative -> 0; 0.1 -> -ln(1)=0; 0.7 >= 0.69 -> 6
    np.testing.assert_allclose(metric[:4], [np.log(0.59 / 0.19) / 0.91, 0.0, 0.0, 6.0], atol=1e-5)
    assert np.isnan(metric[4])
    beer = op.lai(arr, "beer_lambert_fvc").values[0]
    # FVC 0.5 -> -ln(0.5) / 0.5 = 1.386294; FVC 0.7 -> -ln(0.3) / 0.5 = 2.407946
    np.testing.assert_allclose(beer[[0, 1, 3]], [np.log(2) / 0.5, 0.0, -np.log(0.3) / 0.5], atol=1e-5)
    with pytest.raises(ConfigError):
        op.lai(arr, "made_up")
    params = op.load_parameters("lai_ndvi")
    for rel in params.values():
        for key, p in rel.items():
            if isinstance(p, dict):
                assert {"value", "unit", "source", "confidence"} <= set(p) and p["confidence"] in "✔◐✱"


def test_composite_drops_empty_scenes_and_matches_numpy(tmp_cn):
    rng = np.random.default_rng(9)
    data = rng.uniform(0, 0.8, (4, 30, 20)).astype(np.float32)
    cloud = np.zeros((4, 30, 20), np.uint8)
    cloud[1, :10] = 1
    data[2] = 0.99  # a scene fully clouded: its bright values must not reach the max composite
    cloud[2] = 1
    dates = ["2020-03-01T10:00:00", "2020-05-01T10:00:00", "2020-07-01T10:00:00", "2021-01-01T10:00:00"]
    p = write_tif(tmp_cn / "植被指数.tif", data, descriptions=dates)
    m = write_tif(tmp_cn / "云掩膜.tif", cloud, descriptions=dates)
    ts = op.read_time_series(p, mask_path=m, chunk=16)
    mx, rep = op.composite(ts, "max", year=2020)
    assert rep["used"] == 2 and rep["dropped"] == ["2020-07-01T10:00:00"]
    assert [round(s["valid_share"], 4) for s in rep["scenes"]] == [1.0, round(20 / 30, 4), 0.0]
    masked = np.where(cloud == 1, np.nan, data)[:3]
    np.testing.assert_allclose(mx.values, np.nanmax(masked, axis=0), atol=0)
    assert float(mx.max()) < 0.99
    med, _ = op.composite(ts, "median")
    np.testing.assert_allclose(med.values, np.nanmedian(np.where(cloud == 1, np.nan, data), axis=0), atol=1e-7)
    undated = write_tif(tmp_cn / "无日期.tif", data, descriptions=dates[:3])
    with pytest.raises(InputDataError, match="1 of 4 bands have no date"):
        op.read_time_series(undated)


def test_slovenia_series_composites(real):
    folder = real / "eolearn-slovenia-s2-patch"
    ts = op.read_time_series(folder / "ndvi_timeseries_s2.tif", mask_path=folder / "cloud_mask_s2cloudless.tif",
                             undated="skip", chunk=64)
    # 68 dated bands (timestamps json); the file has 100 bands, 32 without a date (see report)
    assert ts.sizes["time"] == 68 and ts.attrs["skipped_bands"] == list(range(69, 101))
    stamps = pd.read_json(folder / "ndvi_timestamps.json", typ="series")
    assert pd.Timestamp(stamps.iloc[0]) == pd.Timestamp(ts.time.values[0])
    mx, rep = op.composite(ts, "max", year=2016)
    med, _ = op.composite(ts, "median", year=2016)
    with rasterio.open(folder / "ndvi_timeseries_s2.tif") as a, rasterio.open(folder / "cloud_mask_s2cloudless.tif") as c:
        years = np.array([pd.Timestamp(d).year if d else 0 for d in a.descriptions])
        bands = [int(b) for b in np.flatnonzero(years == 2016) + 1]
        ref = np.where(c.read(bands) == 1, np.nan, a.read(bands))
    assert rep["used"] + len(rep["dropped"]) == len(bands)
    np.testing.assert_allclose(mx.values, np.nanmax(ref, axis=0), atol=0)
    assert np.all((mx.values >= med.values) | np.isnan(med.values))
    shares = [s["valid_share"] for s in rep["scenes"]]
    assert all(0 <= s <= 1 for s in shares)


def test_histogram_percentile_kernel():
    hist = np.zeros(kern.NDVI_BINS)
    hist[10000] = 50  # NDVI 0.00005 bin centre
    hist[15000] = 50  # NDVI 0.50005
    assert kern.histogram_percentile(hist, 40) == pytest.approx(0.00005)
    assert kern.histogram_percentile(hist, 95) == pytest.approx(0.50005)
    assert np.isnan(kern.histogram_percentile(np.zeros(kern.NDVI_BINS), 5))
