"""Stack single-band rasters on one grid into one multi-band VRT (``gdalbuildvrt -separate``
without needing the GDAL command-line tools): the catalogue form of "12 monthly rasters" for
the period inputs of ``carbon_sequestration``."""

from __future__ import annotations

import os
from pathlib import Path
from xml.sax.saxutils import escape

import rasterio

from ..errors import EcorasterError


def write_band_stack_vrt(paths: list[str | Path], vrt_path: str | Path, *, relative: bool = True) -> Path:
    """Write a VRT whose band i is band 1 of ``paths[i]`` (all on one grid): the catalogue
    form of "12 monthly rasters" (same as ``gdalbuildvrt -separate``). Paths are stored
    relative to the VRT when ``relative``."""
    vrt_path = Path(vrt_path)
    with rasterio.open(paths[0]) as first:
        width, height, crs, transform = first.width, first.height, first.crs, first.transform
    bands = []
    for i, p in enumerate(paths, start=1):
        with rasterio.open(p) as src:
            if (src.width, src.height, src.transform) != (width, height, transform):
                raise EcorasterError(f"{p}: grid differs from {paths[0]}; cannot stack")
            dtype, nodata = src.dtypes[0], src.nodata
        rel = Path(p).resolve()
        name = Path(_relpath(rel, vrt_path.resolve().parent)) if relative else rel
        gdal_type = {"int16": "Int16", "int32": "Int32", "uint8": "Byte", "uint16": "UInt16",
                     "float32": "Float32", "float64": "Float64"}[dtype]
        nd = "" if nodata is None else f"<NoDataValue>{_fmt(nodata)}</NoDataValue>"
        bands.append(
            f'  <VRTRasterBand dataType="{gdal_type}" band="{i}">{nd}\n'
            f'    <SimpleSource><SourceFilename relativeToVRT="{int(relative)}">{escape(str(name))}</SourceFilename>'
            f"<SourceBand>1</SourceBand></SimpleSource>\n  </VRTRasterBand>")
    gt = ", ".join(repr(v) for v in transform.to_gdal())
    text = (f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">\n'
            f"  <SRS>{escape(crs.to_wkt())}</SRS>\n  <GeoTransform>{gt}</GeoTransform>\n"
            + "\n".join(bands) + "\n</VRTDataset>\n")
    vrt_path.write_text(text, encoding="utf-8")
    return vrt_path


def _relpath(path: Path, start: Path) -> str:
    return os.path.relpath(path, start)


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


