"""A tiny self-contained run (10 × 10 px at 30 m, EPSG:4527) that the bad-input cases break one
thing at a time: a class raster, precipitation and AET rasters, a runoff table, a zone set."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from ..conftest import TEST_CRS, TEST_ORIGIN, write_raster

RUNOFF = "code,alpha_pct,include\n11,2.67,1\n42,0,1\n"
CATALOG = {
    "eco": "{kind: raster, uri: eco.tif, categorical: true, units: class}",
    "p": "{kind: raster, uri: p.tif, units: mm/yr}",
    "et": "{kind: raster, uri: et.tif, units: mm/yr}",
    "runoff": "{kind: table, uri: runoff.csv}",
    "z": "{kind: vector, uri: zones.gpkg}",
}


def write_catalog(folder: Path, entries: dict[str, str]) -> None:
    lines = ["datasets:"] + [f"  {k}: {v}" for k, v in entries.items()]
    (folder / "data_catalog.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_zones(path: Path, geoms=None, ids=("a", "b"), crs=TEST_CRS) -> Path:
    x0, y0 = TEST_ORIGIN
    geoms = geoms or [box(x0, y0 - 300, x0 + 150, y0), box(x0 + 150, y0 - 300, x0 + 300, y0)]
    gpd.GeoDataFrame({"zid": list(ids)}, geometry=geoms, crs=crs).to_file(path)
    return path


def tree_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (what a failed run must leave unchanged); the empty
    lock file ``.flow.lock`` a refused run may leave in an existing workspace is not a result."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".flow.lock"}


@pytest.fixture
def mini(tmp_path: Path) -> Path:
    """The good mini case: ``mini/run.yaml`` runs water_conservation and sums it over zones ``z``.
    By hand: forest (class 11) 800 − 800 × 0.0267 − 500 = 278.64 mm × 900 m² = 250.776 m³ per pixel."""
    folder = tmp_path / "mini"
    folder.mkdir()
    write_raster(folder / "eco.tif", np.full((10, 10), 11, np.uint8), nodata=255)
    write_raster(folder / "p.tif", np.full((10, 10), 800.0, np.float32), nodata=-1.0)
    write_raster(folder / "et.tif", np.full((10, 10), 500.0, np.float32), nodata=-1.0)
    (folder / "runoff.csv").write_text(RUNOFF, encoding="utf-8")
    write_zones(folder / "zones.gpkg")
    write_catalog(folder, CATALOG)
    (folder / "run.yaml").write_text(textwrap.dedent("""
        region: test
        year: 2020
        grid: {like: eco}
        chunk: 64
        services:
          water_conservation:
            inputs: {ecosystem: eco, precipitation: p, aet: et, runoff_coefficients: runoff}
        zones:
          z: {dataset: z, id_field: zid}
    """), encoding="utf-8")
    return folder


def write_tiled_with_overviews(path: Path, array: np.ndarray, *, res: float, block: int = 256,
                               nodata: float = -1.0) -> Path:
    """A tiled, DEFLATE-compressed GeoTIFF at ``TEST_ORIGIN`` with overviews 2, 4, 8 (a sampled
    read of it is served from the overviews)."""
    import rasterio
    from affine import Affine
    from rasterio.enums import Resampling

    from ..conftest import TEST_CRS

    profile = dict(driver="GTiff", width=array.shape[1], height=array.shape[0], count=1, dtype=array.dtype,
                   crs=TEST_CRS, transform=Affine(res, 0, TEST_ORIGIN[0], 0, -res, TEST_ORIGIN[1]),
                   nodata=nodata, tiled=True, blockxsize=block, blockysize=block, compress="deflate")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array, 1)
        dst.build_overviews([2, 4, 8], Resampling.average)
    return path


def block_bytes(path: Path, bx: int, by: int) -> tuple[int, int]:
    """(offset, size) in bytes of the full-resolution block (column ``bx``, row ``by``)."""
    import rasterio

    with rasterio.open(path) as src:
        return (int(src.get_tag_item(f"BLOCK_OFFSET_{bx}_{by}", "TIFF", bidx=1)),
                int(src.get_tag_item(f"BLOCK_SIZE_{bx}_{by}", "TIFF", bidx=1)))


def scramble_block(path: Path, bx: int, by: int) -> None:
    """Overwrite the compressed bytes of one full-resolution block with 0xFF (same length: the
    file's layout stays valid, the block no longer decodes)."""
    offset, size = block_bytes(path, bx, by)
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(b"\xff" * size)
