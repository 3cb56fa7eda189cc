"""Shared helpers of the casa / air service tests: multi-band rasters, catalogue + run config."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import rasterio
import yaml
from affine import Affine

from ..conftest import TEST_CRS, TEST_ORIGIN


def write_bands(path: Path, bands, *, nodata=-9999.0, res: float = 30.0, dtype="float32",
                origin=TEST_ORIGIN, crs=TEST_CRS) -> Path:
    """Write a (n, rows, cols) or (rows, cols) array as an n-band GeoTIFF in EPSG:4527."""
    arr = np.asarray(bands, dtype=dtype)
    if arr.ndim == 2:
        arr = arr[None]
    with rasterio.open(path, "w", driver="GTiff", width=arr.shape[2], height=arr.shape[1], count=arr.shape[0],
                       dtype=dtype, crs=crs, nodata=nodata,
                       transform=Affine(res, 0, origin[0], 0, -res, origin[1])) as dst:
        dst.write(arr)
    return path


def write_run(tmp: Path, service: str, datasets: dict[str, dict], inputs: dict, *, params=None, method=None,
              profile="mee2020", year=2021, chunk=64, grid_like="eco") -> Path:
    """A data_catalog.yaml (``datasets``: id → entry with uri relative to ``tmp``) and run.yaml."""
    (tmp / "data_catalog.yaml").write_text(yaml.safe_dump({"datasets": datasets}, allow_unicode=True),
                                           encoding="utf-8")
    run = {"region": "test", "year": year, "profile": profile, "grid": {"like": grid_like}, "chunk": chunk,
           "services": {service: {"inputs": inputs, "params": params or {}}}}
    if method:
        run["services"][service]["method"] = method
    (tmp / "run.yaml").write_text(yaml.safe_dump(run, allow_unicode=True), encoding="utf-8")
    return tmp / "run.yaml"


def read(path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


__all__ = ["write_bands", "write_run", "read", "textwrap"]
