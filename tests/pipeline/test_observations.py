"""New observations for a finished run (library path of `eco flow new-imagery / new-monitoring`):
a raw Landsat scene for a dataset with ``derive:`` and a real CNEMC city table; only the services
that read the replaced dataset recompute, the files of the rest keep their bytes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import yaml
from affine import Affine

from ecoraster.errors import ConfigError, NoOverlapError, TableError
from ecoraster.pipeline import observations as obs
from ecoraster.pipeline.runner import run

from ..conftest import REPO
from ..ingest.conftest import REAL
from ..ingest.scene_products import landsat_product

pytestmark = pytest.mark.slow  # one annual run of the 9 km window (CASA, air, carbon) and three updates

#: the 9 km window of configs/examples/wuhan_small.yaml (EPSG:32649, 30 m, 300 × 300 px)
ORIGIN = (798570, 3370860)
N = 300
RED_DN, NIR_DN = 9000, 25000


def _config(folder):
    extra = folder / "derived_catalog.yaml"
    base = yaml.safe_load((REPO / "data_catalog.yaml").read_text(encoding="utf-8"))["datasets"]["wuhan_ndvi_monthly"]
    base["uri"] = str(REPO / "data_catalog.yaml").replace("data_catalog.yaml", base["uri"])
    extra.write_text(yaml.safe_dump({"datasets": {"scene_ndvi_monthly": {
        **base, "derive": {"index": "ndvi", "composite": "max", "period": "month"}}}}), encoding="utf-8")
    gep = yaml.safe_load((REPO / "configs" / "wuhan_2013_gep.yaml").read_text(encoding="utf-8"))
    services = {k: gep["services"][k] for k in ("carbon_sequestration", "air_purification", "carbon_storage")}
    services["carbon_sequestration"]["inputs"]["ndvi"] = "scene_ndvi_monthly"
    cfg = {"region": "wuhan_small", "year": 2015, "catalog": str(REPO / "data_catalog.yaml"),
           "extra_catalogs": [str(REPO / "catalogs" / "valuation.yaml"), str(extra)],
           "grid": {"crs": "EPSG:32649", "resolution": 30, "bounds": [798570, 3361860, 807570, 3370860]},
           "chunk": 128, "profile": "mee2020", "prices": "prices_mee2020", "price_year": 2013,
           "services": services, "dask": {"scheduler": "threads"},
           "allow_outside_years": ["wuhan_lulc_2013"],  # the 2013 land cover stands in for 2015 here
           "zones": {"districts": {"dataset": "wuhan_districts", "id_field": "gb", "name_field": "name"}}}
    path = folder / "wuhan_small_2015.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _scene(folder, date="2015-07-15", origin=ORIGIN):
    """A Landsat 8 C2 L2 product over the window; QA cloud over the left 100 columns (valid share 2/3)."""
    qa = np.full((N, N), 21824, np.uint16)
    qa[:, :100] = 22280
    pid = f"LC08_L2SP_123039_{date.replace('-', '')}_20200908_02_T1"
    return landsat_product(folder / pid, product_id=pid, date=date, qa=qa, red=np.full((N, N), RED_DN, np.uint16),
                           nir=np.full((N, N), NIR_DN, np.uint16), transform=Affine(30, 0, origin[0], 0, -30, origin[1]),
                           crs="EPSG:32649",
                           scaling=((2.75e-5, -0.2), (2.75e-5, -0.2)))


def _state(ws):
    """{relative path: bytes} of every committed service output."""
    return {p.relative_to(ws).as_posix(): p.read_bytes() for d in ("carbon_sequestration", "air_purification",
                                                                    "carbon_storage") for p in sorted((ws / d).glob("*.tif"))}


def _changed(before, after, service):
    return [k for k in before if k.startswith(service) and before[k] != after.get(k)]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folder = tmp_path_factory.mktemp("观测_更新")
    config = _config(folder)
    ws = folder / "ws"
    run(config, ws)
    return config, ws, folder


def test_raw_scene_updates_only_ndvi_dependents(finished):
    config, ws, folder = finished
    scene = _scene(folder / "incoming")
    before = _state(ws)
    summary = obs.new_imagery(config, ws, scene=str(scene), dataset="scene_ndvi_monthly")
    after = _state(ws)
    assert summary["dependents"]["services"] == ["carbon_sequestration"]
    assert "service.carbon_sequestration" in summary["computed"]
    assert not any(s in summary["computed"] for s in ("service.air_purification", "service.carbon_storage"))
    assert _changed(before, after, "carbon_sequestration")
    assert not _changed(before, after, "air_purification") and not _changed(before, after, "carbon_storage")
    [fact] = summary["scenes"]
    assert fact["period"] == "2015-07" and fact["valid_share"] == pytest.approx(2 / 3) and fact["new"]

    overlay = yaml.safe_load((ws / "catalog.overlay.yaml").read_text(encoding="utf-8"))
    prov = overlay["provenance"]["scene_ndvi_monthly"]
    assert [s["scene_id"] for s in prov["scenes"]] == [fact["scene_id"]] and prov["scenes"][0]["acquired"][:10] == "2015-07-15"
    uri = overlay["datasets"]["scene_ndvi_monthly"]["uri"]
    with rasterio.open(uri) as src, rasterio.open(REPO / "data/sample/wuhan/climate/ndvi_monthly.tif") as base:
        assert src.count == 12 and src.transform == Affine(30, 0, *ORIGIN[:1], 0, -30, ORIGIN[1])
        july = src.read(7)
        # by hand: (25000 − 9000) × 2.75e-5 / ((25000 + 9000) × 2.75e-5 − 0.4) = 0.44 / 0.535
        assert july[5, 150] == pytest.approx(0.44 / 0.535, abs=1e-6)
        assert np.allclose(july[:, 100:], 0.44 / 0.535, atol=1e-6)
        assert not np.isclose(july[:, :100], 0.44 / 0.535).any()  # clouded columns keep the catalogue values
        assert 0 < float(np.nanmean(src.read(1))) < 1 and base.count == 12
    stac = json.loads((ws / "derived" / "stac" / "catalog.json").read_text())
    item_link = next(lk["href"] for lk in stac["links"] if lk["rel"] == "item")
    item = json.loads((ws / "derived" / "stac" / item_link).read_text())
    assert item["properties"]["ecoraster:scenes"][0]["valid_share"] == pytest.approx(2 / 3)

    # the same scene again: nothing changes, nothing runs
    again = obs.new_imagery(config, ws, scene=str(scene), dataset="scene_ndvi_monthly")
    assert again["changed"] is False and again["computed"] == [] and not again["scenes"][0]["new"]
    assert _state(ws) == after
    assert yaml.safe_load((ws / "catalog.overlay.yaml").read_text(encoding="utf-8")) == overlay
    # a folder scan recognises the product by its MTL and finds nothing new
    found, _ = obs.scan_products(folder / "incoming", config, ws, "scene_ndvi_monthly")
    assert found == []


def test_bad_scenes_refused_before_anything_is_written(finished):
    config, ws, folder = finished
    before = _state(ws)
    overlay = (ws / "catalog.overlay.yaml").read_bytes() if (ws / "catalog.overlay.yaml").exists() else None
    derived = sorted((ws / "derived").rglob("*"))
    with pytest.raises(ConfigError, match="outside the run's year 2015"):
        obs.new_imagery(config, ws, scene=str(_scene(folder / "bad", date="2014-07-15")), dataset="scene_ndvi_monthly")
    with pytest.raises(NoOverlapError):
        obs.new_imagery(config, ws, scene=str(_scene(folder / "far", origin=(500000, 3000000))),
                        dataset="scene_ndvi_monthly")
    with pytest.raises(Exception, match="no derive"):
        obs.add_scenes(config, ws, [{"scene": str(_scene(folder / "x")), "dataset": "wuhan_pm25"}])
    assert _state(ws) == before
    assert ((ws / "catalog.overlay.yaml").read_bytes() if overlay is not None else None) == overlay
    assert sorted((ws / "derived").rglob("*")) == derived


def test_station_table_updates_only_air(finished):
    config, ws, folder = finished
    table = REAL / "cnemc_pm25_city_daily_2014_2016" / "pm25_dat_183cities_2014_2016.csv.gz"
    if not table.is_file():
        pytest.skip("../shared/data/real is absent")
    bad = folder / "bad_stations.csv"
    bad.write_text("site,lon,lat,date,PM2.5,colour\nA,114.3,30.6,2015-01-01,50,red\n", encoding="utf-8")
    before = _state(ws)
    with pytest.raises(TableError, match=r"unknown column\(s\) \['colour'\]"):
        obs.new_monitoring(config, ws, str(bad), datasets=["wuhan_pm25"])
    with pytest.raises(ConfigError, match="outside the run's year 2015"):
        obs.new_monitoring(config, ws, str(table), datasets=["wuhan_pm25"], period="2016")
    assert _state(ws) == before
    summary = obs.new_monitoring(config, ws, str(table), datasets=["wuhan_pm25"], method="kriging")
    after = _state(ws)
    [d] = summary["stations"]["datasets"]
    assert d["n_stations"] == 183 and d["period"] == "2015" and d["loocv_rmse"] > 0
    assert summary["dependents"]["services"] == ["air_purification"]
    assert _changed(before, after, "air_purification")
    assert not _changed(before, after, "carbon_sequestration") and not _changed(before, after, "carbon_storage")
    prov = yaml.safe_load((ws / "catalog.overlay.yaml").read_text(encoding="utf-8"))["provenance"]["wuhan_pm25"]
    assert prov["method"] == "kriging" and prov["pollutant"] == "PM2_5"
    assert "scene_ndvi_monthly" in yaml.safe_load((ws / "catalog.overlay.yaml").read_text())["provenance"]


def test_cli_bad_input_is_one_line_before_computing(finished):
    from typer.testing import CliRunner

    from ecoraster.cli.main import app

    config, ws, folder = finished
    before = _state(ws)
    unknown = folder / "unknown_sensor"
    unknown.mkdir(exist_ok=True)
    stations = folder / "odd_columns.csv"
    stations.write_text("site,lon,lat,date,PM2.5,colour\nA,114.3,30.6,2015-01-01,50,red\n", encoding="utf-8")
    cases = [(["new-imagery", str(config), "-w", str(ws), "--dataset", "scene_ndvi_monthly", "--scene", str(unknown)],
              "unknown sensor"),
             (["new-imagery", str(config), "-w", str(ws), "--dataset", "scene_ndvi_monthly",
               "--scene", str(_scene(folder / "y2014", date="2014-06-01"))], "outside the run's year 2015"),
             (["new-monitoring", str(config), "-w", str(ws), "--stations", str(stations)], "unknown column(s)")]
    for args, match in cases:
        res = CliRunner().invoke(app, ["flow", *args, "--no-prefect"])
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert res.exit_code == 1 and len(lines) == 1 and match in lines[0], res.output
    assert _state(ws) == before
