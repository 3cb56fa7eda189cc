"""Generated test data for zonal statistics: Voronoi parcels of all sizes, random rasters."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

from ..grid import Grid


def voronoi_parcels(
    bounds: tuple[float, float, float, float],
    n: int,
    crs,
    *,
    seed: int = 0,
    cluster_share: float = 0.3,
    cluster_radius: float = 15.0,
) -> gpd.GeoDataFrame:
    """About ``n`` Voronoi parcels tiling ``bounds`` exactly, of very different sizes.

    A share ``cluster_share`` of the seed points sits in tight clusters (radius
    ``cluster_radius`` CRS units), which gives parcels far smaller than a 10 m pixel;
    the rest is uniform. Parcels are clipped to ``bounds`` and form a partition of it.

    Returns
    -------
    GeoDataFrame with ``parcel_id`` (int64, from 1) and polygons, in ``crs``.
    """
    rng = np.random.default_rng(seed)
    left, bottom, right, top = bounds
    n_cluster = int(n * cluster_share)
    n_uniform = n - n_cluster
    pts = [np.column_stack([rng.uniform(left, right, n_uniform), rng.uniform(bottom, top, n_uniform)])]
    if n_cluster:
        n_centres = max(1, n_cluster // 20)
        centres = np.column_stack([rng.uniform(left, right, n_centres), rng.uniform(bottom, top, n_centres)])
        which = rng.integers(0, n_centres, n_cluster)
        offs = rng.normal(0.0, cluster_radius / 2.0, (n_cluster, 2))
        pts.append(np.clip(centres[which] + offs, [left, bottom], [right, top]))
    pts = np.concatenate(pts)
    frame = shapely.box(left, bottom, right, top)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=frame))
    cells = shapely.intersection(cells, frame)
    cells = cells[~shapely.is_empty(cells) & (shapely.area(cells) > 0)]
    cells = cells[np.argsort(rng.random(len(cells)))]  # input order unrelated to position
    return gpd.GeoDataFrame({"parcel_id": np.arange(1, len(cells) + 1, dtype=np.int64)},
                            geometry=cells, crs=crs)


def random_raster(grid: Grid, *, seed: int = 0, nodata: float = -9999.0, nodata_share: float = 0.02,
                  dtype=np.float32) -> np.ndarray:
    """Random positive values (0–1000) on ``grid`` with a share of ``nodata`` pixels."""
    rng = np.random.default_rng(seed)
    data = rng.uniform(0.0, 1000.0, grid.shape).astype(dtype)
    if nodata_share > 0:
        data[rng.random(grid.shape) < nodata_share] = nodata
    return data
