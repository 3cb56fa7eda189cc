"""Coverage-weighted zonal statistics of rasters over polygons (parcels, townships, units).

Every pixel counts with the fraction of it that a zone covers (no centroid rule), sums
are float64, and every zone is kept: a zone with no valid coverage gets 0 for ``sum`` and
a missing value for ``mean``.

Two engines: ``ecoraster`` (default; :class:`ZoneWeights` — coverage computed once per
zones × grid, reused for every raster) and ``exactextract`` (the reference).
"""

from .api import ENGINES, zonal_stats
from .exact import ZONAL_STATS, read_zones_for
from .geometry import PartitionReport, check_partition
from .weights import MassBalance, ZoneWeights

__all__ = [
    "ENGINES",
    "ZONAL_STATS",
    "MassBalance",
    "PartitionReport",
    "ZoneWeights",
    "check_partition",
    "read_zones_for",
    "zonal_stats",
]
