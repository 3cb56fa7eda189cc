"""New imagery in, STAC out: one STAC Item per ingested raster, and an idempotent folder scan.

Each Item carries the projection extension (``proj:code``, ``proj:shape``,
``proj:transform``), the raster extension (``raster:bands`` with ``data_type``,
``nodata``, ``unit``) and the file extension (``file:checksum`` as a sha2-256 multihash,
``file:size``). :func:`scan_new_scenes` lists files of a folder whose checksum is not yet in
the catalogue, so scanning twice, or scanning a renamed copy, finds nothing new.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from pathlib import Path

import pystac
import rasterio
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterBand, RasterExtension
from rasterio.warp import transform_bounds
from shapely.geometry import box, mapping

from ..datasets import multihash_sha256
from ..errors import InputDataError, MissingCRSError, MissingFileError

DEFAULT_PATTERNS = ("*.tif", "*.tiff", "*.TIF", "*.TIFF", "*.nc", "*.grib", "*.grb2", "*.jp2")


def _datetime_of(src, path: Path, when) -> tuple[dt.datetime, str]:
    if when is not None:
        value = when if isinstance(when, dt.datetime) else dt.datetime.fromisoformat(str(when))
        return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)), "given"
    tag = src.tags().get("TIFFTAG_DATETIME")
    if tag:
        try:
            return dt.datetime.strptime(tag, "%Y:%m:%d %H:%M:%S").replace(tzinfo=dt.timezone.utc), "TIFFTAG_DATETIME"
        except ValueError:
            pass
    return dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.timezone.utc), "file modification time"


def raster_item(
    path: str | Path,
    *,
    item_id: str | None = None,
    datetime=None,
    units: str | list[str] | None = None,
    checksum: str | None = None,
    properties: dict | None = None,
) -> pystac.Item:
    """A STAC Item describing one raster file (the asset ``data`` points at the file).

    Parameters
    ----------
    path : path
        Raster readable by rasterio.
    datetime : datetime or ISO string, optional
        Acquisition time; default the GeoTIFF ``TIFFTAG_DATETIME`` or the file time
        (recorded in ``ecoraster:datetime_source``).
    units : str or list, optional
        Unit per band for ``raster:bands[].unit`` (default the band's GDAL unit, if any).
    checksum : str, optional
        Precomputed multihash (else computed).
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(str(path), field="scene")
    with rasterio.open(path) as src:
        if src.crs is None:
            raise MissingCRSError(str(path))
        bbox = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
        when, when_source = _datetime_of(src, path, datetime)
        epsg = src.crs.to_epsg()
        band_units = units if isinstance(units, list) else [units] * src.count
        if len(band_units) != src.count:
            raise InputDataError(f"{path}: {len(band_units)} units given for {src.count} bands")
        bands = [RasterBand.create(data_type=src.dtypes[i], nodata=src.nodatavals[i],
                                   unit=band_units[i] or (src.units[i] or None))
                 for i in range(src.count)]
        shape, transform, wkt = [src.height, src.width], list(src.transform)[:6], src.crs.to_wkt()
    checksum = checksum or multihash_sha256(path)
    item = pystac.Item(id=item_id or f"{path.stem}-{checksum[4:16]}", geometry=mapping(box(*bbox)), bbox=list(bbox),
                       datetime=when, properties={"ecoraster:datetime_source": when_source, **(properties or {})})
    asset = pystac.Asset(href=str(path.resolve()), media_type=_media_type(path), roles=["data"], title=path.name)
    item.add_asset("data", asset)
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    if epsg:
        proj.code = f"EPSG:{epsg}"
    else:
        proj.wkt2 = wkt
    proj.shape = shape
    proj.transform = transform
    RasterExtension.ext(asset, add_if_missing=True).bands = bands
    fext = FileExtension.ext(asset, add_if_missing=True)
    fext.checksum = checksum
    fext.size = path.stat().st_size
    return item


def _media_type(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        return pystac.MediaType.GEOTIFF
    if suffix == ".nc":
        return "application/netcdf"
    if suffix == ".jp2":
        return pystac.MediaType.JPEG2000
    return "application/octet-stream"


def _open_catalog(catalog_json: str | Path, create: bool) -> pystac.Catalog | None:
    p = Path(catalog_json)
    if p.exists():
        return pystac.Catalog.from_file(str(p))
    if not create:
        return None
    return pystac.Catalog(id="ecoraster-inputs", description="Input scenes ingested by ecoraster")


def catalog_checksums(catalog_json: str | Path) -> dict[str, int]:
    """``{file:checksum: file:size}`` of every asset of every Item in the catalogue."""
    cat = _open_catalog(catalog_json, create=False)
    out: dict[str, int] = {}
    if cat is None:
        return out
    for item in cat.get_items(recursive=True):
        for asset in item.assets.values():
            checksum = asset.extra_fields.get("file:checksum")
            if checksum:
                out[checksum] = asset.extra_fields.get("file:size", -1)
    return out


def _candidate_files(folder: Path, patterns) -> list[Path]:
    files = [p for p in folder.rglob("*") if p.is_file() and any(fnmatch.fnmatchcase(p.name, pat) for pat in patterns)]
    return sorted(files)


def scan_new_scenes(folder: str | Path, catalog_json: str | Path, *, patterns=DEFAULT_PATTERNS) -> list[Path]:
    """Files under ``folder`` (recursive, matching ``patterns``) whose sha256 is not in the
    catalogue. A file whose size matches no catalogued asset is new without hashing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(str(folder), field="scan folder")
    known = catalog_checksums(catalog_json)
    sizes = set(known.values())
    new = []
    for p in _candidate_files(folder, patterns):
        if p.stat().st_size not in sizes and -1 not in sizes:
            new.append(p)
        elif multihash_sha256(p) not in known:
            new.append(p)
    return new


def add_scenes(paths, catalog_json: str | Path, *, units=None, datetime=None) -> list[pystac.Item]:
    """Describe ``paths`` as Items and add them to the catalogue (created if absent), skipping
    files already catalogued (same checksum); saves the catalogue self-contained."""
    catalog_json = Path(catalog_json)
    cat = _open_catalog(catalog_json, create=True)
    known = catalog_checksums(catalog_json)
    added = []
    for p in paths:
        checksum = multihash_sha256(p)
        if checksum in known:
            continue
        item = raster_item(p, units=units, datetime=datetime, checksum=checksum)
        cat.add_item(item)
        known[checksum] = Path(p).stat().st_size
        added.append(item)
    cat.normalize_hrefs(str(catalog_json.parent))
    cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return added
