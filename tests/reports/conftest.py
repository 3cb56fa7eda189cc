"""Tiny run workspaces that follow the run contract, for the reports (change, audit, assessment,
publish) with numbers that can be worked out by hand.

Grid: 4 × 4 pixels of 100 m (1 ha each), EPSG:4527. Zones: districts ``W`` (columns 0–1) and
``E`` (columns 2–3); parcels P1 (rows 0–1, cols 0–1), P2 (rows 0–1, cols 2–3), P3 (rows 2–3,
cols 0–1), P4 (rows 2–3, cols 2–3).

Land cover (GEP classes)       A (2005)            B (2013)
                               11 11 42 42         52 52 42 42      ← 2 ha forest → dry cropland in P1
                               11 11 42 42         11 11 42 42
                               51 51 62 62         51 51 62 62
                               51 51 62 62         51 51 62 62

water_conservation m³/pixel: 100 on every pixel that is not built-up (62 → 0), except 40 on class 52.
  A price 5 CNY/m³ (2005 prices); B price 7 CNY/m³ (2013 prices).
oxygen_release (contested): 1 t/pixel everywhere; 1000 CNY/t in both runs (each in its own price year).
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from ecoraster.accounting.product_catalogue import catalogue_rows, write_catalogue
from ecoraster.grid import Grid
from ecoraster.accounting.gep_tables import gep_columns, write_zone_table
from ecoraster.standards import load_profile
from tests.conftest import TEST_CRS, TEST_ORIGIN, write_raster

RES = 100.0
LC_A = np.array([[11, 11, 42, 42], [11, 11, 42, 42], [51, 51, 62, 62], [51, 51, 62, 62]], dtype=np.uint8)
LC_B = np.array([[52, 52, 42, 42], [11, 11, 42, 42], [51, 51, 62, 62], [51, 51, 62, 62]], dtype=np.uint8)
X0, Y0 = TEST_ORIGIN


def wc_quantity(lc: np.ndarray) -> np.ndarray:
    q = np.where(lc == 62, 0.0, 100.0)
    return np.where(lc == 52, 40.0, q).astype(np.float32)


def _cell(r0, r1, c0, c1):
    return box(X0 + c0 * RES, Y0 - r1 * RES, X0 + c1 * RES, Y0 - r0 * RES)


DISTRICTS = {"W": ("西区", _cell(0, 4, 0, 2)), "E": ("东区", _cell(0, 4, 2, 4))}
PARCELS = {"P1": _cell(0, 2, 0, 2), "P2": _cell(0, 2, 2, 4), "P3": _cell(2, 4, 0, 2), "P4": _cell(2, 4, 2, 4)}
SLICES = {"W": (slice(0, 4), slice(0, 2)), "E": (slice(0, 4), slice(2, 4)), "P1": (slice(0, 2), slice(0, 2)),
          "P2": (slice(0, 2), slice(2, 4)), "P3": (slice(2, 4), slice(0, 2)), "P4": (slice(2, 4), slice(2, 4))}


def write_catalog(folder: Path) -> Path:
    for name, lc in (("lc_2005.tif", LC_A), ("lc_2013.tif", LC_B)):
        write_raster(folder / name, lc, nodata=0, res=RES)
    path = folder / "data_catalog.yaml"
    path.write_text("datasets:\n" + "".join(
        f"  {i}:\n    kind: raster\n    uri: {i}.tif\n    units: class\n    categorical: true\n    resampling: mode\n"
        for i in ("lc_2005", "lc_2013")), encoding="utf-8")
    return path


def make_run(root: Path, catalog: Path, *, year: int, lc_id: str, lc: np.ndarray, wc_price: float,
             carbon_change: np.ndarray | None = None, created: str = "2026-11-30T00:00:00+00:00",
             o2_price: float = 1000.0, kinds: dict[str, str] | None = None) -> Path:
    """A run folder; with ``kinds`` (product → price kind) the valuation records each product's
    unit price and kind and the catalogue names its source, as a real run does."""
    root.mkdir(parents=True, exist_ok=True)
    wc = wc_quantity(lc)
    o2 = np.ones(lc.shape, dtype=np.float32)
    products = {"water_conservation": (wc, wc_price, "m3", "CNY/m3"), "oxygen_release": (o2, o2_price, "t", "CNY/t")}
    outputs = {}
    for pid, (q, price, unit, punit) in products.items():
        (root / "svc").mkdir(exist_ok=True)
        qp = write_raster(root / "svc" / f"{pid}.tif", q, nodata=-9999.0, res=RES)
        vp = write_raster(root / "svc" / f"{pid}_value.tif", (q * price).astype(np.float32), nodata=-9999.0, res=RES)
        outputs[pid] = {"path": str(qp), "units": unit, "kind": "physical", "per": "pixel", "nodata": -9999.0,
                        "product": pid, "total": float(q.sum())}
        outputs[f"{pid}_value"] = {"path": str(vp), "units": "CNY", "kind": "value", "per": "pixel",
                                   "nodata": -9999.0, "product": pid, "total": float((q * price).sum())}
    results = {"svc": {"outputs": outputs, "notes": ["water balance negative on 3 px: clipped to 0"]}}
    services = {"svc": {"inputs": {"ecosystem": lc_id}}}
    if carbon_change is not None:
        cp = write_raster(root / "carbon_storage_change.tif", carbon_change.astype(np.float32), nodata=-9999.0, res=RES)
        results["carbon_storage"] = {"outputs": {"c_change": {"path": str(cp), "units": "Mg C",
                                                                      "kind": "physical", "per": "pixel",
                                                                      "nodata": -9999.0}}, "notes": []}
        services["carbon_storage"] = {"inputs": {"lulc_bas": "lc_2005", "lulc_alt": "lc_2013"}}
    grid = Grid.from_raster(root / "svc" / "water_conservation.tif")
    config = {"region": "test", "region_name": "测试区", "year": year, "catalog": str(catalog),
              "grid": {"like": lc_id}, "services": services, "price_year": year, "profile": "mee2020",
              "zones": {"districts": {"dataset": "d", "id_field": "zone_id", "name_field": "name", "partition": True},
                        "parcels": {"dataset": "p", "id_field": "parcel_id", "partition": True}}}
    valued = {f"svc.{pid}": {"price_id": f"{pid}_{year}", "product": pid, "kind": kind, "price_year": year,
                             "factor_cny_per_unit": products[pid][1], "physical_units": products[pid][2]}
              for pid, kind in (kinds or {}).items()}
    manifest = {"created": created, "config": config, "grid": grid.to_dict(), "results": results,
                "valuation": {"price_year": year, "unpriced": {}, "valued": valued}}
    (root / "run.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    # catalogue + zone tables
    profile = load_profile("mee2020")
    prices = {pid: {"price": p, "price_unit": pu, "price_year": year, "price_id": f"{pid}_{year}",
                    "price_source": "test", "confidence": "✱"} for pid, (_, p, _, pu) in products.items()}
    units = {pid: u for pid, (_, _, u, _) in products.items()}
    parts = []
    folder = root / "products"
    meta = {"price_year": year, "region": "test", "year": year, "profile": "mee2020"}
    region_q = pd.DataFrame({pid: [float(q.sum())] for pid, (q, *_r) in products.items()}, index=["test"])
    region_v = pd.DataFrame({pid: [float((q * p).sum())] for pid, (q, p, *_r) in products.items()}, index=["test"])
    sources = {pid: {"source": f"svc.{pid}"} for pid in (kinds or {})}
    parts.append(catalogue_rows(region_q, region_v, zone_set="region", zone_names=pd.Series({"test": "测试区"}),
                                units=units, prices=prices, sources=sources, profile=profile))
    for zs, zones, idc in (("districts", {k: v[1] for k, v in DISTRICTS.items()}, "zone_id"),
                           ("parcels", PARCELS, "parcel_id")):
        ids = list(zones)
        qty = pd.DataFrame({pid: [float(q[SLICES[z]].sum()) for z in ids] for pid, (q, *_r) in products.items()},
                           index=ids)
        val = pd.DataFrame({pid: [float((q * p)[SLICES[z]].sum()) for z in ids]
                            for pid, (q, p, *_r) in products.items()}, index=ids)
        names = pd.Series({k: DISTRICTS[k][0] for k in ids}) if zs == "districts" else pd.Series({k: k for k in ids})
        parts.append(catalogue_rows(qty, val, zone_set=zs, zone_names=names, units=units, prices=prices,
                                    sources=sources, profile=profile))
        body = gep_columns(qty, val, profile)
        area = pd.Series({z: zones[z].area / 1e4 for z in ids})
        body["gep_per_ha"] = body["gep"] / area
        front = pd.DataFrame({idc: ids, "name": names.reindex(ids).to_numpy(), "area_ha": area.to_numpy()}, index=ids)
        gdf = gpd.GeoDataFrame(pd.concat([front, body], axis=1), geometry=[zones[z] for z in ids], crs=TEST_CRS)
        write_zone_table(gdf, folder, zs, {**meta, "units": {"gep": "CNY"}})
    write_catalogue(pd.concat(parts, ignore_index=True), folder, meta)
    (root / "stac").mkdir(exist_ok=True)
    (root / "stac" / "catalog.json").write_text('{"type": "Catalog", "id": "test", "links": []}', encoding="utf-8")
    return root


def cpi_factor(a: int, b: int) -> float:
    """Π_{y=a+1..b} index_y / 100 read straight from configs/prices/cpi_china.csv."""
    t = pd.read_csv(Path(__file__).resolve().parents[2] / "configs" / "prices" / "cpi_china.csv", comment="#")
    idx = dict(zip(t["year"], t["index_prev_year_100"]))
    f = 1.0
    for y in range(a + 1, b + 1):
        f *= idx[y] / 100.0
    return f


@pytest.fixture
def runs(tmp_path):
    """(A 2005, B 2013, C = B's prices on A's land cover) run folders."""
    catalog = write_catalog(tmp_path)
    change = np.zeros((4, 4), dtype=np.float32)
    change[0, 0:2] = -10.0  # Mg C lost on the two converted pixels
    a = make_run(tmp_path / "run_2005", catalog, year=2005, lc_id="lc_2005", lc=LC_A, wc_price=5.0)
    b = make_run(tmp_path / "run_2013", catalog, year=2013, lc_id="lc_2013", lc=LC_B, wc_price=7.0,
                 carbon_change=change)
    c = make_run(tmp_path / "run_c", catalog, year=2013, lc_id="lc_2005", lc=LC_A, wc_price=7.0)
    return a, b, c
