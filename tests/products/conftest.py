"""Fixtures of the valuation / products tests: a fake service (water conservation m3, carbon
sequestration t C, oxygen release t per pixel from input rasters), a small price table and CPI
with hand-friendly numbers, and a run folder with parcels and a wetland unit."""

from __future__ import annotations

import textwrap
import types
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from ecoraster import registry
from ecoraster.spec import InputSpec, OutputSpec, ServiceResult, ServiceSpec

from ..conftest import TEST_CRS, TEST_ORIGIN

FAKE_SPEC = ServiceSpec(
    id="fake_gep", name="fake GEP service", name_zh="测试服务", about="copies input rasters to outputs",
    category="调节服务",
    inputs=(InputSpec(id="wc", kind="raster", about="m3 per pixel", units="m3"),
            InputSpec(id="carbon", kind="raster", about="t C per pixel", units="t C"),
            InputSpec(id="o2", kind="raster", about="t O2 per pixel", units="t")),
    outputs=(OutputSpec(id="wc", filename="wc.tif", about="water conservation", units="m3",
                        product="water_conservation"),
             OutputSpec(id="carbon", filename="carbon.tif", about="carbon sequestration", units="t C",
                        product="carbon_sequestration"),
             OutputSpec(id="o2", filename="o2.tif", about="oxygen release", units="t", product="oxygen_release")),
)


def _validate(ctx):
    return ctx.validate_inputs()


def _compute(ctx):
    arrays = {k: ctx.raster(k, dtype="float32", nodata=-9999.0).data for k in ("wc", "carbon", "o2")}
    return ServiceResult(service="fake_gep", outputs=ctx.write(arrays))


FAKE = types.SimpleNamespace(SPEC=FAKE_SPEC, validate=_validate, compute=_compute)

# Test prices (CNY, price years below) and CPI: 2011→2013 = 1.05 × 1.10 = 1.155.
PRICES = """
id: testprices
version: "t1"
cpi: cpi.csv
prices:
  - {id: wc_2011, product: water_conservation, value: 10, unit: CNY/m3, price_year: 2011, source: test, confidence: ✱, default: true}
  - {id: c_2013, product: carbon_sequestration, value: 100, unit: CNY/t CO2, price_year: 2013, source: test, confidence: ✱, default: true}
  - {id: o2_2013, product: oxygen_release, value: 1000, unit: CNY/t, price_year: 2013, source: test, confidence: ✱, default: true}
"""
CPI_CSV = "year,index_prev_year_100\n2011,102.0\n2012,105.0\n2013,110.0\n"


@pytest.fixture
def fake_service(monkeypatch):
    found = dict(registry._discover())
    found["fake_gep"] = FAKE
    monkeypatch.setattr(registry, "_discover", lambda: found)
    return FAKE


def write_inputs(tmp: Path, raster_writer, shape=(6, 6), nodata_at=(5, 5)) -> None:
    for name, value in (("wc", 100.0), ("carbon", 1.0), ("o2", 2.0)):
        arr = np.full(shape, value, dtype=np.float32)
        if nodata_at is not None:
            arr[nodata_at] = -1.0
        raster_writer(tmp / f"{name}.tif", arr, nodata=-1.0)


def parcels(tmp: Path) -> None:
    """A (cols 0-2, 18 px), B (cols 3-5, rows 0-2), C (cols 3-5, rows 3-5 minus E), E a quarter
    pixel (15 m × 15 m) in the top-left corner of pixel (row 4, col 4): a partition of the grid."""
    x0, y0 = TEST_ORIGIN
    px = 30.0
    e = box(x0 + 4 * px, y0 - 4 * px - 15, x0 + 4 * px + 15, y0 - 4 * px)
    c = box(x0 + 3 * px, y0 - 6 * px, x0 + 6 * px, y0 - 3 * px).difference(e)
    geoms = [box(x0, y0 - 6 * px, x0 + 3 * px, y0), box(x0 + 3 * px, y0 - 3 * px, x0 + 6 * px, y0), c, e]
    gpd.GeoDataFrame({"pid": ["A", "B", "C", "E"], "owner": ["甲", "乙", "丙", "丁"]},
                     geometry=geoms, crs=TEST_CRS).to_file(tmp / "parcels.gpkg")
    gpd.GeoDataFrame({"uid": ["W1"], "uname": ["测试湿地"]},
                     geometry=[box(x0 + 2 * px, y0 - 2 * px, x0 + 4 * px, y0)], crs=TEST_CRS).to_file(
        tmp / "wetland.gpkg")


def setup_run(tmp: Path, raster_writer, *, chunk: int = 64, extra_outputs: str = "", field_names: str = "zh",
              shape=(6, 6)) -> Path:
    write_inputs(tmp, raster_writer, shape=shape)
    parcels(tmp)
    (tmp / "prices.yaml").write_text(PRICES, encoding="utf-8")
    (tmp / "cpi.csv").write_text(CPI_CSV, encoding="utf-8")
    (tmp / "data_catalog.yaml").write_text(textwrap.dedent(f"""
        datasets:
          wc: {{kind: raster, uri: wc.tif}}
          carbon: {{kind: raster, uri: carbon.tif}}
          o2: {{kind: raster, uri: o2.tif}}
          parcels: {{kind: vector, uri: parcels.gpkg, options: {{field_names: {field_names}}}}}
          wetland: {{kind: vector, uri: wetland.gpkg}}
    """), encoding="utf-8")
    (tmp / "run.yaml").write_text(textwrap.dedent(f"""
        region: testregion
        region_name: 测试区
        year: 2013
        grid: {{like: wc}}
        chunk: {chunk}
        profile: mee2020
        prices: prices.yaml
        price_year: 2013
        services:
          fake_gep:
            inputs: {{wc: wc, carbon: carbon, o2: o2}}
        zones:
          parcels: {{dataset: parcels, id_field: pid, name_field: owner, partition: true}}
          wetland_units: {{dataset: wetland, id_field: uid, name_field: uname}}
    """), encoding="utf-8")
    return tmp / "run.yaml"
