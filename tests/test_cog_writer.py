import dask.array as da
import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from ecoraster.errors import NodataNotRepresentableError
from ecoraster.grid import Grid
from ecoraster.io.raster import RasterOutput, read_band_tags, write_rasters

from .conftest import TEST_CRS


def _grid(n=1100):
    return Grid.from_bounds(TEST_CRS, (39_500_000, 4_300_000, 39_500_000 + 10 * n, 4_300_000 + 10 * n), 10)


def test_cog_is_valid_with_overviews_tags_and_float64_totals(tmp_zh):
    grid = _grid()
    data = da.ones(grid.shape, chunks=512, dtype="float32") * np.float32(0.1)
    data[0, 0] = -9999.0
    path = tmp_zh / "out" / "x.tif"
    stats = write_rasters([RasterOutput(path, data, -9999.0, "Mg C", "test layer", tags={"year": "2020"})], grid)
    ok, errors, _warnings = cog_validate(str(path))
    assert ok, errors
    with rasterio.open(path) as src:
        assert src.nodata == -9999.0
        assert src.overviews(1), "COG must carry overviews"
        assert src.profile["blockxsize"] == 512
        assert src.compression.name.upper() in {"DEFLATE", "ZSTD"}
    tags = read_band_tags(path)
    assert tags["units"] == "Mg C" and tags["year"] == "2020" and tags["description"] == "test layer"
    st = stats[str(path)]
    # 1100² − 1 valid pixels of float32(0.1) summed in float64
    assert st.valid_pixels == 1100 * 1100 - 1
    assert st.total == pytest.approx((1100 * 1100 - 1) * float(np.float32(0.1)), rel=1e-12)
    assert not list(path.parent.glob(".*partial*")) and not list(path.parent.glob(".*cog*"))


def test_failure_leaves_previous_file_and_no_partials(tmp_zh):
    grid = _grid(600)
    path = tmp_zh / "keep.tif"
    write_rasters([RasterOutput(path, da.zeros(grid.shape, chunks=256, dtype="float32"), -1.0, "m")], grid)
    before = path.read_bytes()

    def boom(block, block_info=None):
        if block_info[None]["chunk-location"] == (1, 1):
            raise RuntimeError("disk on fire")
        return block

    bad = da.ones(grid.shape, chunks=256, dtype="float32").map_blocks(boom, dtype="float32")
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_rasters([RasterOutput(path, bad, -1.0, "m")], grid)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_zh.iterdir()) == ["keep.tif"]


def test_unrepresentable_nodata_is_refused_before_writing(tmp_zh):
    grid = _grid(10)
    with pytest.raises(NodataNotRepresentableError):
        write_rasters([RasterOutput(tmp_zh / "u.tif", np.zeros(grid.shape), -1, "m", dtype="uint8")], grid)
    assert not any(tmp_zh.iterdir())


def test_own_first_overview_equals_gdal_average(tmp_zh):
    """Continuous outputs get their factor-2 overview from the streaming pass: on an even-sized
    grid every overview level equals what GDAL's COG driver computes itself (AVERAGE, nodata
    skipped). (On odd sizes GDAL rounds the overview size down and averages fractional windows;
    ours keeps whole 2×2 windows and a half-window edge, checked by hand on the 2×3 block.)"""
    import rasterio.shutil

    from ecoraster.io.raster import halve_average, overview_factors

    # 2×3 block, nodata −1: [[1, 3, 5], [−1, 7, −1]] → [(1+3+7)/3, 5/1] = [3.6667, 5]
    np.testing.assert_allclose(halve_average(np.array([[1, 3, 5], [-1, 7, -1]], np.float32), -1.0), [[11 / 3, 5.0]],
                               rtol=1e-6)
    assert overview_factors((10_000, 10_000), 512) == [2, 4, 8, 16, 32]
    assert overview_factors((400, 300), 512) == []
    grid = Grid.from_bounds(TEST_CRS, (39_500_000, 4_300_000, 39_500_000 + 10 * 1300, 4_300_000 + 10 * 1156), 10)
    rng = np.random.default_rng(5)
    data = rng.gamma(2.0, 3.0, size=grid.shape).astype("float32")
    data[rng.random(grid.shape) < 0.1] = -9999.0
    path = tmp_zh / "ours.tif"
    write_rasters([RasterOutput(path, da.from_array(data, chunks=256), -9999.0, "m3")], grid)
    ref = tmp_zh / "gdal.tif"
    write_rasters([RasterOutput(tmp_zh / "plain.tif", da.from_array(data, chunks=255), -9999.0, "m3")], grid)
    # chunks of 255 (odd) fall back to GDAL's own overviews: the reference
    rasterio.shutil.copy(str(tmp_zh / "plain.tif"), str(ref), driver="GTiff")
    ok, errors, _ = cog_validate(str(path))
    assert ok, errors
    with rasterio.open(path) as a, rasterio.open(tmp_zh / "plain.tif") as b:
        assert a.overviews(1) == b.overviews(1) == [2, 4]
        np.testing.assert_array_equal(a.read(1), b.read(1))
        for level in range(len(a.overviews(1))):
            with rasterio.open(path, overview_level=level) as ao, \
                    rasterio.open(tmp_zh / "plain.tif", overview_level=level) as bo:
                np.testing.assert_allclose(ao.read(1), bo.read(1), rtol=1e-6)
    assert not list(tmp_zh.glob(".*"))  # no staged file or .ovr left behind


def test_outputs_written_side_by_side_keep_values_stats_and_predictor(tmp_zh):
    """Three outputs share one streaming pass (one writer thread each): every pixel, the
    float64 totals / min / max (against numpy) and the predictor declared per output —
    2 (horizontal differencing) for a per-class raster, 3 (floating point) for a continuous one."""
    grid = _grid(1300)
    rng = np.random.default_rng(11)
    classes = rng.integers(0, 4, size=grid.shape)
    per_class = np.array([1.5, 2.25, 4.0, -9999.0], np.float32)[classes]   # piecewise constant
    smooth = rng.normal(10.0, 2.0, size=grid.shape).astype(np.float32)
    smooth[:, :3] = np.nan
    outs = [RasterOutput(tmp_zh / "a.tif", da.from_array(per_class, chunks=256), -9999.0, "Mg C", per_class=True),
            RasterOutput(tmp_zh / "b.tif", da.from_array(smooth, chunks=256), -9999.0, "mm"),
            RasterOutput(tmp_zh / "c.tif", da.from_array(smooth, chunks=256) * 2, -9999.0, "mm")]
    stats = write_rasters(outs, grid, blocks_per_batch=3)
    for out, ref, predictor in [(outs[0], per_class, "2"), (outs[1], smooth, "3"), (outs[2], smooth * 2, "3")]:
        ok, errors, _ = cog_validate(str(out.path))
        assert ok, errors
        with rasterio.open(out.path) as src:
            np.testing.assert_array_equal(src.read(1), ref)
            assert src.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == predictor
        valid = ref[(ref != -9999.0) & ~np.isnan(ref)].astype(np.float64)
        st = stats[str(out.path)]
        assert st.valid_pixels == valid.size
        assert st.total == pytest.approx(valid.sum(), rel=1e-12)
        assert (st.minimum, st.maximum) == (valid.min(), valid.max())
    assert sorted(p.name for p in tmp_zh.iterdir()) == ["a.tif", "b.tif", "c.tif"]


def test_failure_in_a_writer_thread_leaves_no_partials(tmp_zh, monkeypatch):
    import ecoraster.io.raster as raster

    grid = _grid(1100)
    calls = {"n": 0}
    real = raster.halve_average

    def fails_on_fifth_block(block, nodata):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("no space left on device")
        return real(block, nodata)

    monkeypatch.setattr(raster, "halve_average", fails_on_fifth_block)
    data = da.ones(grid.shape, chunks=256, dtype="float32")
    with pytest.raises(OSError, match="no space left"):
        write_rasters([RasterOutput(tmp_zh / "a.tif", data, -1.0, "m"),
                       RasterOutput(tmp_zh / "b.tif", data * 2, -1.0, "m")], grid)
    assert not any(tmp_zh.iterdir())


def test_malloc_arena_cap_is_harmless_and_can_be_switched_off(monkeypatch):
    from ecoraster.io.raster import limit_malloc_arenas

    limit_malloc_arenas(2)                      # glibc: mallopt(M_ARENA_MAX, 2); elsewhere a no-op
    monkeypatch.setenv("ECORASTER_MALLOC_ARENAS", "0")
    limit_malloc_arenas(2)                      # switched off: returns without touching malloc
    monkeypatch.setenv("ECORASTER_MALLOC_ARENAS", "4")
    limit_malloc_arenas()
