"""A static STAC catalogue of a run: ``stac/catalog.json`` (self-contained, relative links).

- one Collection per service, holding one Item per region × year with the service's COG
  assets (physical and value), each with ``raster:bands`` (nodata, unit, data_type),
  ``file:checksum`` (sha256 multihash) and the ``proj:`` fields of the run grid on the Item;
- one Collection ``gep-products`` with one Item per region × year holding the GeoParquet,
  GeoPackage and catalogue assets.

Follows ecosystem-conventions.md §2 (projection + raster + file extensions).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import rasterio

from ..datasets import multihash_sha256
from ..spec import ServiceResult

log = logging.getLogger(__name__)

MEDIA = {
    ".tif": "image/tiff; application=geotiff; profile=cloud-optimized",
    ".parquet": "application/vnd.apache.parquet",
    ".gpkg": "application/geopackage+sqlite3",
    ".csv": "text/csv",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".json": "application/json",
}


def _footprint(grid) -> tuple[list[float], dict[str, Any]]:
    from rasterio.warp import transform_bounds

    west, south, east, north = transform_bounds(grid.crs, "EPSG:4326", *grid.bounds, densify_pts=21)
    geom = {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north],
                                                 [west, north], [west, south]]]}
    return [west, south, east, north], geom


def _add_cog_asset(item, key: str, path: Path, rec, checksum: str, href: Path) -> None:
    import pystac
    from pystac.extensions.file import FileExtension
    from pystac.extensions.raster import DataType, RasterBand, RasterExtension

    with rasterio.open(path) as src:
        dtype = src.dtypes[0]
        tags = src.tags()
    asset = pystac.Asset(href=str(href), media_type=MEDIA[".tif"], roles=["data"],
                         title=f"{rec.id} [{rec.units}]",
                         extra_fields={"ecoraster:kind": rec.kind, "ecoraster:per": rec.per,
                                       **({"ecoraster:product": rec.product} if rec.product else {}),
                                       **({"ecoraster:price_year": int(tags["price_year"])}
                                          if "price_year" in tags else {})})
    item.add_asset(key, asset)
    RasterExtension.ext(asset, add_if_missing=True).bands = [
        RasterBand.create(nodata=rec.nodata, data_type=DataType(dtype), unit=rec.units)]
    FileExtension.ext(asset, add_if_missing=True).checksum = checksum


def write_stac(plan, results: dict[str, ServiceResult], products: dict[str, Path], out_dir: Path,
               layout: Callable[[Path], Path] | None = None) -> Path:
    """Write ``out_dir/stac/catalog.json`` and its collections and items; return its path.

    ``layout`` maps a file to where it sits relative to ``out_dir`` once the run is committed
    (a staged run links files already in the workspace); asset links are relative to that."""
    import pystac
    from pystac.extensions.projection import ProjectionExtension

    cfg, grid = plan.config, plan.grid
    bbox, geom = _footprint(grid)
    start = datetime(cfg.year, 1, 1, tzinfo=timezone.utc)
    end = datetime(cfg.year, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    extent = pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[start, end]]))
    catalog = pystac.Catalog(id=f"ecoraster-{cfg.region}-{cfg.year}",
                             description=f"ecoraster GEP run: {cfg.region_name or cfg.region} {cfg.year}",
                             title=f"GEP {cfg.region} {cfg.year}")
    epsg = grid.crs.to_epsg()

    def new_item(item_id: str, props: dict[str, Any]) -> pystac.Item:
        item = pystac.Item(id=item_id, geometry=geom, bbox=bbox, datetime=None, start_datetime=start,
                           end_datetime=end, properties={"ecoraster:region": cfg.region, "ecoraster:year": cfg.year,
                                                         "ecoraster:profile": cfg.profile, **props})
        proj = ProjectionExtension.ext(item, add_if_missing=True)
        if epsg:
            proj.code = f"EPSG:{epsg}"
        else:
            proj.wkt2 = grid.crs.to_wkt()
        proj.shape = list(grid.shape)
        proj.transform = list(tuple(grid.transform)[:6])
        return item

    files = {k: p for k, p in products.items() if Path(p).suffix in (".parquet", ".gpkg", ".csv", ".xlsx")}
    # checksums of every asset, read side by side while the items are built
    hashing = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="eco-sha256")
    checksums = {str(p): hashing.submit(multihash_sha256, p)
                 for p in [*(rec.path for res in results.values() for rec in res.outputs.values()
                             if Path(rec.path).suffix == ".tif"), *files.values()]}
    try:
        _add_items(catalog, new_item, extent, cfg, results, files, checksums, layout or (lambda p: p))
    finally:
        hashing.shutdown(wait=True, cancel_futures=True)
    root = Path(out_dir) / "stac"
    catalog.normalize_hrefs(str(root))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


def _add_items(catalog, new_item, extent, cfg, results, files, checksums, layout) -> None:
    """One collection + item per service (its COGs) and one for the product tables."""
    import pystac
    from pystac.extensions.file import FileExtension

    for sid, res in results.items():
        cogs = {oid: rec for oid, rec in res.outputs.items() if Path(rec.path).suffix == ".tif"}
        if not cogs:
            continue
        coll = pystac.Collection(id=sid, description=f"outputs of service {sid}", extent=extent,
                                 license="other")
        item = new_item(f"{sid}-{cfg.region}-{cfg.year}", {"ecoraster:service": sid})
        for oid, rec in cogs.items():
            _add_cog_asset(item, oid, Path(rec.path), rec, checksums[str(rec.path)].result(), layout(Path(rec.path)))
        coll.add_item(item)
        catalog.add_child(coll)

    if files:
        coll = pystac.Collection(id="gep-products", description="parcel / zone GEP tables and the catalogue",
                                 extent=extent, license="other")
        item = new_item(f"gep-{cfg.region}-{cfg.year}", {})
        for key, p in files.items():
            p = Path(p)
            role = "data" if p.suffix in (".parquet", ".gpkg") else "metadata"
            asset = pystac.Asset(href=str(layout(p)), media_type=MEDIA[p.suffix], roles=[role], title=p.name)
            item.add_asset(key, asset)
            FileExtension.ext(asset, add_if_missing=True).checksum = checksums[str(p)].result()
        coll.add_item(item)
        catalog.add_child(coll)
