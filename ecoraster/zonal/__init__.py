"""Coverage-weighted zonal statistics of rasters over polygons (parcels, townships, units).

Every pixel counts with the fraction of it that a zone covers (no centroid rule), sums
are float64, and every zone is kept: a zone with no valid coverage gets 0 for ``sum`` and
a missing value for ``mean``.
"""

from .exact import ZONAL_STATS, read_zones_for, zonal_stats

__all__ = ["ZONAL_STATS", "read_zones_for", "zonal_stats"]
