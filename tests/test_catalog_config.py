import textwrap

import pytest

from ecoraster.datasets import Catalog
from ecoraster.config import RunConfig, build_grid
from ecoraster.errors import CatalogError, ConfigError, MissingFileError


def _write(path, text):
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_relative_uri_resolves_against_catalog_folder(tmp_zh):
    (tmp_zh / "data").mkdir()
    cat = _write(tmp_zh / "data_catalog.yaml", """
        datasets:
          lulc: {kind: raster, uri: data/lulc.tif, categorical: true, nodata: 0}
          pools: {kind: table, uri: /abs/pools.csv}
    """)
    c = Catalog.load(cat)
    assert c.get("lulc").uri == str((tmp_zh / "data" / "lulc.tif").resolve())
    assert c.get("lulc").effective_resampling == "mode"
    assert c.get("pools").uri == "/abs/pools.csv"


def test_bad_entry_names_entry_field_and_value(tmp_zh):
    cat = _write(tmp_zh / "c.yaml", """
        datasets:
          dem: {kind: raster, uri: dem.tif, resampling: cubicle}
    """)
    with pytest.raises(CatalogError, match=r"datasets\.dem\.resampling = 'cubicle'"):
        Catalog.load(cat)


def test_bad_crs_and_checksum(tmp_zh):
    cat = _write(tmp_zh / "c.yaml", "datasets:\n  a: {kind: raster, uri: a.tif, crs: 'EPSG:999999'}\n")
    with pytest.raises(CatalogError, match=r"datasets\.a\.crs"):
        Catalog.load(cat)
    cat = _write(tmp_zh / "c.yaml", "datasets:\n  a: {kind: table, uri: a.csv, checksum: md5:abc}\n")
    with pytest.raises(CatalogError, match=r"datasets\.a\.checksum = 'md5:abc'"):
        Catalog.load(cat)


def test_unknown_id_is_a_clear_error(tmp_zh):
    cat = _write(tmp_zh / "c.yaml", "datasets:\n  a: {kind: table, uri: a.csv}\n")
    with pytest.raises(CatalogError, match=r"grid.like: unknown catalogue id 'b'"):
        Catalog.load(cat).get("b", field="grid.like")


def test_checksum_verification(tmp_zh):
    (tmp_zh / "a.csv").write_text("x\n1\n")
    cat = _write(tmp_zh / "c.yaml", "datasets:\n  a: {kind: table, uri: a.csv, checksum: 'sha256:" + "0" * 64 + "'}\n")
    with pytest.raises(CatalogError, match="a.csv has sha256:"):
        Catalog.load(cat).get("a").verify_checksum()


def test_config_errors_name_file_field_value(tmp_zh):
    _write(tmp_zh / "data_catalog.yaml", "datasets: {}\n")
    cfg = _write(tmp_zh / "run.yaml", """
        region: x
        year: twenty
        grid: {like: a}
        services: {}
    """)
    with pytest.raises(ConfigError, match=r"run.yaml: year = 'twenty'"):
        RunConfig.load(cfg)
    with pytest.raises(MissingFileError, match="missing.yaml"):
        RunConfig.load(tmp_zh / "missing.yaml")


def test_config_finds_catalog_upwards_and_builds_grid(tmp_zh):
    _write(tmp_zh / "data_catalog.yaml", "datasets:\n  zones: {kind: vector, uri: z.gpkg}\n")
    (tmp_zh / "configs").mkdir()
    cfg = _write(tmp_zh / "configs" / "run.yaml", """
        region: x
        year: 2020
        grid: {crs: 'EPSG:4527', resolution: 100, bounds: [39500000, 4300000, 39501000, 4300550]}
        services: {}
    """)
    rc = RunConfig.load(cfg)
    assert rc.catalog == str(tmp_zh / "data_catalog.yaml")
    grid = build_grid(rc, rc.load_catalog())
    assert grid.shape == (6, 10)  # 550 m snapped up to 600 m
