"""Small helpers shared by the ingest modules (georeferencing of DataArrays)."""

from __future__ import annotations

import xarray as xr

from ..grid import Grid


def georef(da: xr.DataArray, grid: Grid) -> xr.DataArray:
    """Attach pixel-centre coords, CRS and transform of ``grid`` (rioxarray convention)."""
    import rioxarray  # noqa: F401  (registers the .rio accessor)

    da = da.assign_coords(grid.coords())
    return da.rio.write_crs(grid.crs).rio.write_transform(grid.transform)
