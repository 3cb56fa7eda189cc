"""Planners' queries over a finished run: parcel lookups (DuckDB over the parcel GeoParquet),
the GEP a project footprint would take away (coverage fractions over the per-pixel value
rasters) and the ranking of candidate sites.

>>> from ecoraster.query import RunWorkspace, ParcelStore, SiteValuer
>>> ws = RunWorkspace.open("outputs/demo/wuhan_2013")
>>> store = ParcelStore(ws.parcels_path)
>>> store.get("420102001")["properties"]["gep"]                      # doctest: +SKIP
>>> valuer = SiteValuer(ws, store)
>>> valuer.value(valuer.footprint("site.geojson")).gep_lost           # doctest: +SKIP
"""

from .footprint import DEFAULT_MAX_AREA_HA, Footprint, read_footprint
from .parcels import ParcelStore, connect_offline, spatial_extension_path
from .site import DEFAULT_MIN_COVERAGE, SiteValuation, SiteValuer, compare_sites, ranking_table, value_site
from .workspace import RunWorkspace, resolve_workspace

__all__ = [
    "DEFAULT_MAX_AREA_HA", "DEFAULT_MIN_COVERAGE", "Footprint", "ParcelStore", "RunWorkspace", "SiteValuation", "SiteValuer",
    "compare_sites", "connect_offline", "ranking_table", "read_footprint", "resolve_workspace",
    "spatial_extension_path", "value_site",
]
