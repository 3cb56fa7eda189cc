"""The bad-input corpus (../shared/docs/bad-input-report.md) as tests: each case breaks one
thing of the mini run, and must end with exit 1, a one-line message naming the dataset / file and the
field, nothing written to a new workspace and nothing changed in an existing one."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import LineString, Point, box
from typer.testing import CliRunner

from ecoraster.cli import app

from ..conftest import TEST_ORIGIN, write_raster
from .conftest import (CATALOG, block_bytes, scramble_block, tree_digest, write_catalog, write_tiled_with_overviews,
                       write_zones)

runner = CliRunner()
X0, Y0 = TEST_ORIGIN


def _catalog_with(folder: Path, **changes: str) -> None:
    write_catalog(folder, {**CATALOG, **changes})


def _precip(folder: Path, values: np.ndarray, **kw) -> None:
    write_raster(folder / "p.tif", values.astype(np.float32), nodata=-1.0, **kw)


def _with_pixels(value: float, n: int = 9) -> np.ndarray:
    a = np.full((10, 10), 800.0)
    a.flat[33:33 + n] = value  # row 3, cols 3..
    return a


#: a declared checksum no file has
ZERO_SHA = "sha256:" + "0" * 64
P_SHA256 = "{p_sha256}"  # replaced by the sha256 of the case's p.tif


def _fine_precip(path: Path) -> Path:
    """800 mm/yr on 1024² px of 300/1024 m (the mini grid's extent), tiled 256, with overviews."""
    return write_tiled_with_overviews(path, np.full((1024, 1024), 800.0, np.float32), res=300 / 1024)


def _corrupt_tile(path: Path) -> None:
    import rasterio

    scramble_block(_fine_precip(path), 1, 2)
    with rasterio.open(path) as src:  # the damage is hidden from a sampled read (served from the overviews) …
        assert src.read(1, out_shape=(512, 512)).min() == 800.0
        with pytest.raises(rasterio.errors.RasterioIOError):  # … but not from a full-resolution read
            src.read(1)


def _truncated(path: Path) -> None:
    offset, size = block_bytes(_fine_precip(path), 3, 3)  # the last full-resolution block
    with open(path, "r+b") as f:
        f.truncate(offset + size // 2)


# name → (break it, text the message must contain)
CASES = {
    "precip_units_K": (lambda f: _catalog_with(f, p="{kind: raster, uri: p.tif, units: K}"),
                       "datasets.p.units = 'K'"),
    "precip_units_banana": (lambda f: _catalog_with(f, p="{kind: raster, uri: p.tif, units: banana}"),
                            "datasets.p.units = 'banana'"),
    "precip_1e38": (lambda f: _precip(f, _with_pixels(1e38)), "value 1e+38 mm/yr"),
    "precip_1e6": (lambda f: _precip(f, _with_pixels(1e6)), "outside the physical range [0, 15000] mm/yr"),
    "aet_negative": (lambda f: write_raster(f / "et.tif", _with_pixels(-50).astype(np.float32), nodata=-1.0),
                     "et.tif has negative values"),
    "runoff_inf": (lambda f: (f / "runoff.csv").write_text("code,alpha_pct,include\n11,inf,1\n42,0,1\n"),
                   "runoff.csv: column 'alpha_pct' row 2 = inf is outside [0, 100]"),
    "runoff_negative": (lambda f: (f / "runoff.csv").write_text("code,alpha_pct,include\n11,2.67,1\n42,-5,1\n"),
                        "runoff.csv: column 'alpha_pct' row 3 = -5 is outside [0, 100]"),
    "zones_outside_grid": (lambda f: write_zones(f / "zones.gpkg", [box(X0 + 1e5, Y0 - 300, X0 + 1e5 + 300, Y0)] * 2),
                           "zones.z"),
    "zones_points": (lambda f: write_zones(f / "zones.gpkg", [Point(X0 + 15, Y0 - 15), Point(X0 + 45, Y0 - 45)]),
                     "geometry type Point; zones must be polygons"),
    "zones_lines": (lambda f: write_zones(f / "zones.gpkg", [LineString([(X0, Y0), (X0 + 90, Y0 - 90)])] * 2),
                    "zones must be polygons"),
    "zones_duplicate_ids": (lambda f: write_zones(f / "zones.gpkg", ids=("a", "a")), "value 'a' repeats"),
    "zones_no_crs": (lambda f: write_zones(f / "zones.gpkg", crs=None), "has no CRS"),
    "zones_zero_bytes": (lambda f: (f / "zones.gpkg").write_bytes(b""), "the file is empty (0 bytes)"),
    "zones_csv": (lambda f: ((f / "zones.csv").write_text("zid,x\na,1\n"),
                             _catalog_with(f, z="{kind: vector, uri: zones.csv}")), "a table, not polygons"),
    "checksum_mismatch": (lambda f: _catalog_with(f, p=f"{{kind: raster, uri: p.tif, units: mm/yr, checksum: '{ZERO_SHA}'}}"),
                          f"p.tif has sha256:{P_SHA256}, the catalogue says {ZERO_SHA}"),
    "valid_years_without_run_year": (lambda f: _catalog_with(f, p="{kind: raster, uri: p.tif, units: mm/yr, "
                                                                  "valid_years: [2018, 2019]}"),
                                     "datasets.p.valid_years = [2018, 2019] does not include the run year 2020"),
    # 1024² px of 300/1024 m over the 10 × 10 grid, tiles 256: block (col 1, row 2) = rows 512–767, cols 256–511
    "tile_corrupt_behind_overviews": (lambda f: _corrupt_tile(f / "p.tif"),
                                      "p.tif: block (col 1, row 2) of the full resolution (rows 512–767, "
                                      "cols 256–511) cannot be read (TIFFReadEncodedTile() failed.)"),
    "raster_truncated": (lambda f: _truncated(f / "p.tif"),
                         "p.tif: block (col 3, row 3) of the full resolution (rows 768–1023, cols 768–1023) lies at "
                         "bytes"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_refused_before_work(mini, tmp_path, case):
    breaker, expected = CASES[case]
    breaker(mini)
    # the checksum case names the file's real sha256, worked out here independently
    expected = expected.replace(P_SHA256, hashlib.sha256((mini / "p.tif").read_bytes()).hexdigest())
    cfg = mini / "run.yaml"
    inputs_before = tree_digest(mini)

    res = runner.invoke(app, ["validate", str(cfg), "--json"])
    assert res.exit_code == 1, res.output
    messages = [i["message"] for i in json.loads(res.stdout)["issues"]]
    assert any(expected in m for m in messages), messages
    assert all("\n" not in m and "Traceback" not in m for m in messages)

    existing = tmp_path / "ws_existing"
    (existing / "products").mkdir(parents=True)
    (existing / "run.json").write_text('{"old": true}', encoding="utf-8")
    (existing / "products" / "catalogue.csv").write_text("old\n", encoding="utf-8")
    before = tree_digest(existing)
    res = runner.invoke(app, ["run", str(cfg), "-w", str(existing), "-q"])
    assert res.exit_code == 1 and expected in res.output and "Traceback" not in res.output
    assert res.output.startswith("error: ") and len(res.output.strip().splitlines()) == 1  # one line
    assert tree_digest(existing) == before
    assert not any(p.name.startswith(".staging") for p in existing.iterdir())

    new = tmp_path / "ws_new"
    assert runner.invoke(app, ["run", str(cfg), "-w", str(new), "-q"]).exit_code == 1
    assert not new.exists()
    assert tree_digest(mini) == inputs_before  # nothing written beside the inputs


def _total(result) -> float:
    return result.services["water_conservation"].totals["water_conservation_m3_total"][0]


def test_good_mini_run_by_hand(mini, tmp_path):
    from ecoraster.pipeline import run as execute_run

    # 100 forest px × (800 − 800 × 0.0267 − 500) mm × 900 m² / 1000 = 100 × 250.776 m³
    assert _total(execute_run(mini / "run.yaml", tmp_path / "ws")) == pytest.approx(25077.6, rel=1e-6)


def test_compatible_units_are_converted(mini, tmp_path, caplog):
    """Precipitation stored in metres and declared m/yr: converted × 1000, same result as mm/yr."""
    from ecoraster.pipeline import run as execute_run

    _precip(mini, np.full((10, 10), 0.8))
    _catalog_with(mini, p="{kind: raster, uri: p.tif, units: m/yr}")
    assert _total(execute_run(mini / "run.yaml", tmp_path / "ws")) == pytest.approx(25077.6, rel=1e-6)
    assert "m/yr → mm/yr (× 1000)" in caplog.text


def test_range_enforced_during_compute(mini, tmp_path, monkeypatch):
    """Even when validation is skipped (a value the sampled read misses), compute refuses the value
    and names the dataset, the value and the pixel."""
    from ecoraster import checks, pipeline
    from ecoraster.checks import InputRangeError

    _precip(mini, _with_pixels(1e38, n=1))
    monkeypatch.setattr(checks, "check_service_inputs", lambda ctx: [])
    with pytest.raises(InputRangeError, match=r"datasets\.p .*value 1e\+38 mm/yr at row 3, col 3 of the run grid"):
        pipeline.run(mini / "run.yaml", tmp_path / "ws")
    assert not any((tmp_path / "ws").glob("*/*.tif"))


def test_partial_coverage_warns_with_numbers(mini, caplog):
    from ecoraster.pipeline import validate_run

    # precipitation covering the west half of the grid: 5 of 10 columns
    write_raster(mini / "p.tif", np.full((10, 5), 800.0, np.float32), nodata=-1.0)
    assert validate_run(mini / "run.yaml") == []
    assert "datasets.p" in caplog.text and "covers 50.0 % of the run grid" in caplog.text


def test_zones_partly_outside_warn(mini, caplog):
    from ecoraster.pipeline import validate_run

    write_zones(mini / "zones.gpkg", [box(X0, Y0 - 300, X0 + 300, Y0), box(X0 + 300, Y0 - 300, X0 + 600, Y0)])
    assert validate_run(mini / "run.yaml") == []
    assert "zones.z" in caplog.text and "50.0 % of the zones' extent" in caplog.text


def test_gcj02_datum_declared_in_run_config(mini, tmp_path):
    """A zone set in GCJ-02 lon/lat declared `datum: gcj02` is shifted back to WGS 84 on read."""
    from ecoraster.config import RunConfig
    from ecoraster.accounting.gep_tables import read_zone_set
    from ecoraster.ingest.vectors import wgs84_to_gcj02
    from ecoraster.pipeline import load_plan

    zones = write_zones(tmp_path / "z.gpkg").__class__  # Path
    import geopandas as gpd

    z = gpd.read_file(mini / "zones.gpkg").to_crs("EPSG:4326")
    true_centroid = z.geometry.iloc[0].centroid
    z = z.set_geometry(z.geometry.apply(lambda g: __import__("shapely").ops.transform(
        lambda x, y: wgs84_to_gcj02(np.asarray(x), np.asarray(y)), g)))
    z.to_file(mini / "zones.gpkg")
    text = (mini / "run.yaml").read_text().replace("id_field: zid}", "id_field: zid, datum: gcj02}")
    (mini / "run.yaml").write_text(text)
    plan = load_plan(RunConfig.load(mini / "run.yaml"))
    back = read_zone_set(plan, "z").to_crs("EPSG:4326").geometry.iloc[0].centroid
    assert back.distance(true_centroid) < 1e-6  # degrees; the GCJ-02 shift is ~5e-3°
    assert zones is not None


def test_parcels_named_parcel_id_without_zh_field_names(mini, tmp_path):
    """A zone set `parcels` with id field `parcel_id` (no `field_names: zh`) used to crash in the
    products step (`cannot insert parcel_id, already exists`) after all the computation."""
    import geopandas as gpd

    from ecoraster.pipeline import run as execute_run

    gpd.read_file(mini / "zones.gpkg").rename(columns={"zid": "parcel_id"}).to_file(mini / "zones.gpkg")
    text = (mini / "run.yaml").read_text().replace("z: {dataset: z, id_field: zid}",
                                                   "parcels: {dataset: z, id_field: parcel_id}")
    (mini / "run.yaml").write_text(text)
    execute_run(mini / "run.yaml", tmp_path / "ws")
    table = gpd.read_file(tmp_path / "ws" / "products" / "parcels.gpkg", layer="parcels")
    assert table.columns[0] == "parcel_id" and sorted(table["parcel_id"]) == ["a", "b"]
    # each zone is half the grid: 50 px × 250.776 m³
    assert table["water_conservation_qty"].tolist() == pytest.approx([50 * 250.776] * 2, rel=1e-6)


@pytest.mark.parametrize("bad,expected", [
    ("-100", "data row 2, column 'C_soil' = -100.0 is outside [0, 5000] Mg C/ha"),
    ("inf", "data row 2, column 'C_soil' = inf is not a finite number"),
])
def test_carbon_pool_table_negative_or_infinite(tmp_path, bad, expected):
    """A negative or infinite carbon density gave a negative or infinite stock (exit 0)."""
    from ecoraster.pipeline import validate_run

    from ..test_carbon_storage import _setup

    pools = f"lucode,C_above,C_below,C_soil,C_dead\n1,1,2,3,4\n2,1,2,{bad},4\n"
    cfg = _setup(tmp_path, write_raster, np.ones((4, 4), np.uint8), pools=pools)
    messages = [str(i) for i in validate_run(cfg)]
    assert any(expected in m and "pools.csv" in m for m in messages), messages
