"""Synthetic run workspaces that follow the run contract exactly, for tests and benchmarks
of the query side (until a real run writes value rasters and the parcel table).

Not used by real runs. A workspace holds ``run.json`` (``config``, ``grid``, ``results``),
per-pixel physical and value COGs per product, and ``products/parcels.parquet`` +
``products/parcels.gpkg`` with ``P_qty`` / ``P_value`` / ``gep`` / ``gep_excl_contested`` /
``gep_per_ha`` and the ``ecoraster`` schema metadata. :func:`write_parcel_table` is the
part that turns any set of per-pixel rasters and parcels into that table (coverage-fraction
sums with :func:`ecoraster.zonal.zonal_stats`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

M2_PER_HA = 10_000.0


@dataclass(frozen=True)
class SyntheticProduct:
    """A made-up product: physical density (units per m²) × price (CNY per unit)."""

    code: str
    qty_units: str
    density_per_m2: float
    price_cny: float
    contested: bool = False


#: Made-up densities and prices; only their arithmetic matters (not real coefficients).
SYNTHETIC_PRODUCTS = (
    SyntheticProduct("water_conservation", "m3", 0.30, 6.0),
    SyntheticProduct("carbon_sequestration", "t CO2", 0.0008, 60.0),
    SyntheticProduct("oxygen_release", "t O2", 0.0006, 1000.0, contested=True),
    SyntheticProduct("air_purification_pm25", "kg", 0.00002, 30.0),
)


def _layer_record(path: Path, units: str, kind: str, product: str, nodata: float, total: float) -> dict[str, Any]:
    return {"id": path.stem, "path": str(path), "units": units, "kind": kind, "per": "pixel",
            "nodata": nodata, "total": total, "valid_pixels": 0, "product": product}


def write_parcel_table(root: Path, parcels, layers: Sequence[dict[str, Any]], *, region: str, year: int,
                       price_year: int, profile: str = "synthetic", contested: Sequence[str] = (),
                       parcel_sums: bool = True, seed: int = 0) -> Path:
    """Write ``products/parcels.parquet`` (+ ``.gpkg``) by the run contract.

    Parameters
    ----------
    parcels : GeoDataFrame
        ``parcel_id`` (str), optional ``name``, geometry in the grid CRS.
    layers : list of dict
        ``{"product", "kind" ("value"|"physical"), "path", "units"}`` per raster.
    parcel_sums : bool
        True: ``P_value`` / ``P_qty`` are the coverage-fraction sums of the rasters
        (what the real run does); False: random numbers (fast, for large benchmarks).
    """
    import geopandas as gpd
    import pyarrow.parquet as pq

    from ..zonal import zonal_stats

    table = gpd.GeoDataFrame(parcels[[c for c in ("parcel_id", "name") if c in parcels.columns]].copy(),
                             geometry=parcels.geometry.to_numpy(), crs=parcels.crs)
    table["parcel_id"] = table["parcel_id"].astype(str)
    table["area_ha"] = table.geometry.area / M2_PER_HA
    units = {"area_ha": "ha"}
    if parcel_sums:
        sums = zonal_stats({f"{lay['product']}_{'value' if lay['kind'] == 'value' else 'qty'}": lay["path"]
                            for lay in layers}, table, "parcel_id", stats=("sum",))
    rng = np.random.default_rng(seed)
    products = []
    for lay in layers:
        col = f"{lay['product']}_{'value' if lay['kind'] == 'value' else 'qty'}"
        if parcel_sums:
            table[col] = sums[f"{col}_sum"].reindex(table["parcel_id"]).to_numpy(dtype=np.float64)
        else:
            table[col] = rng.uniform(0, 1000, len(table)) * table["area_ha"].to_numpy()
        units[col] = lay["units"]
        if lay["product"] not in products:
            products.append(lay["product"])
    value_cols = [f"{p}_value" for p in products if f"{p}_value" in table.columns]
    table["gep"] = table[value_cols].sum(axis=1).astype(np.float64)
    table["gep_excl_contested"] = table[[c for c in value_cols if c[:-6] not in contested]].sum(axis=1)
    table["gep_per_ha"] = np.where(table["area_ha"] > 0, table["gep"] / table["area_ha"].where(
        table["area_ha"] > 0, 1.0), np.nan)
    units.update({"gep": "CNY", "gep_excl_contested": "CNY", "gep_per_ha": "CNY/ha"})
    out = root / "products"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "parcels.parquet"
    table.to_parquet(path, write_covering_bbox=True)
    arrow = pq.read_table(path)
    meta = {"units": units, "price_year": price_year, "region": region, "year": year, "profile": profile,
            "contested": list(contested)}
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}),
                                           b"ecoraster": json.dumps(meta, ensure_ascii=False).encode()})
    pq.write_table(arrow, path)
    table.to_file(out / "parcels.gpkg", layer="parcels", driver="GPKG")
    return path


def _field(rows: np.ndarray, cols: np.ndarray, k: int) -> np.ndarray:
    """A smooth, positive pattern in [0.2, 1.8] that differs per product index ``k``."""
    return 1.0 + 0.8 * np.sin(rows / (37.0 + 11 * k)) * np.cos(cols / (53.0 + 7 * k))


def _product_block(zeros: np.ndarray, *, k: int, factor: float, shape: tuple[int, int], nodata: float,
                   window: tuple[tuple[int, int], tuple[int, int]]) -> np.ndarray:
    """One block of a product raster: ``factor × pattern`` inside the region ellipse."""
    h, w = shape
    (r0, r1), (c0, c1) = window
    rows = np.arange(r0, r1, dtype=np.float64)[:, None] + 0.5  # pixel centres
    cols = np.arange(c0, c1, dtype=np.float64)[None, :] + 0.5
    inside = ((rows - h / 2.0) / (h / 2.0)) ** 2 + ((cols - w / 2.0) / (w / 2.0)) ** 2 <= 1.0
    return np.where(inside, factor * _field(rows, cols, k), nodata).astype(np.float32)


def synthetic_workspace(root: str | Path, *, shape: tuple[int, int] = (120, 160), res: float = 10.0,
                        origin: tuple[float, float] = (39_499_980.0, 4_350_000.0), crs: str = "EPSG:4527",
                        n_parcels: int = 60, products: Sequence[SyntheticProduct] = SYNTHETIC_PRODUCTS,
                        region: str = "synthetic", year: int = 2020, price_year: int = 2020,
                        parcel_sums: bool = True, chunk: int = 2048, seed: int = 0) -> Path:
    """Write a complete synthetic run workspace under ``root``; return ``root``.

    The region is an ellipse inscribed in the grid; pixels outside it are nodata. Parcels
    are Voronoi cells of ``n_parcels`` random points clipped to the region. Per pixel:
    ``qty = density × pattern × pixel area`` (units per pixel) and ``value = qty × price``
    (CNY per pixel), float32, nodata −9999.
    """
    import dask.array as da
    import geopandas as gpd
    import shapely
    from affine import Affine
    from rasterio.crs import CRS
    from shapely.affinity import scale

    from ..engine import map_blocks
    from ..grid import Grid
    from ..io.raster import RasterOutput, write_rasters

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    grid = Grid(CRS.from_user_input(crs), Affine(res, 0, origin[0], 0, -res, origin[1]), tuple(shape))
    h, w = shape
    nodata = -9999.0
    pixel_m2 = res * res

    outputs, layers = [], []
    results: dict[str, Any] = {}
    for k, prod in enumerate(products):
        svc_dir = root / prod.code
        qty_factor = prod.density_per_m2 * pixel_m2
        for kind, factor, units in (("physical", qty_factor, prod.qty_units),
                                    ("value", qty_factor * prod.price_cny, "CNY")):
            zeros = da.zeros(shape, chunks=(min(chunk, h), min(chunk, w)), dtype=np.float32)
            arr = map_blocks(_product_block, zeros, window=True, k=k, factor=factor, shape=shape, nodata=nodata)
            path = svc_dir / f"{prod.code}_{'value' if kind == 'value' else 'qty'}.tif"
            tags = {"kind": kind, "per": "pixel", "product": prod.code}
            if kind == "value":
                tags["price_year"] = str(price_year)
            outputs.append(RasterOutput(path=path, data=arr, nodata=nodata, units=units, tags=tags))
            layers.append({"product": prod.code, "kind": kind, "path": path, "units": units, "service": prod.code})
    stats = write_rasters(outputs, grid)
    for lay in layers:
        st = stats[str(lay["path"])]
        rec = _layer_record(lay["path"], lay["units"], lay["kind"], lay["product"], nodata, st.total)
        rec["valid_pixels"] = st.valid_pixels
        results.setdefault(lay["service"], {"service": lay["service"], "outputs": {}, "totals": {},
                                            "notes": [], "metadata": {}})["outputs"][rec["id"]] = rec

    rng = np.random.default_rng(seed)
    left, bottom, right, top = grid.bounds
    ellipse = scale(shapely.Point((left + right) / 2, (bottom + top) / 2).buffer(1.0, quad_segs=64),
                    (right - left) / 2, (top - bottom) / 2)
    pts = shapely.points(rng.uniform(left, right, 4 * n_parcels), rng.uniform(bottom, top, 4 * n_parcels))
    pts = pts[shapely.contains(ellipse, pts)][:n_parcels]
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=box_of(grid)))
    cells = shapely.intersection(cells, ellipse)
    cells = cells[~shapely.is_empty(cells)]
    cells = cells[np.argsort(shapely.get_y(shapely.centroid(cells)) * -1e9 + shapely.get_x(shapely.centroid(cells)))]
    parcels = gpd.GeoDataFrame({"parcel_id": [f"P{i:06d}" for i in range(len(cells))],
                                "name": [f"地块{i}" for i in range(len(cells))]}, geometry=cells, crs=crs)
    contested = [p.code for p in products if p.contested]
    write_parcel_table(root, parcels, layers, region=region, year=year, price_year=price_year,
                       contested=contested, parcel_sums=parcel_sums, seed=seed)
    manifest = {
        "ecoraster_version": "synthetic",
        "config": {"region": region, "region_name": f"{region} (synthetic)", "year": year,
                   "price_year": price_year, "profile": "synthetic"},
        "grid": grid.to_dict(),
        "services": [p.code for p in products],
        "results": results,
        "products": {"parcels": str(root / "products" / "parcels.parquet")},
    }
    (root / "run.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    return root


def box_of(grid) -> Any:
    from shapely.geometry import box

    return box(*grid.bounds)

