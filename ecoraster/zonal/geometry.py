"""Zone geometries for the coverage kernel, and a partition check (overlaps and gaps)."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import shapely

log = logging.getLogger(__name__)

_POLYGON = 3
_MULTI = (4, 5, 6, 7)  # multipoint, multilinestring, multipolygon, geometrycollection


@dataclass(frozen=True)
class RingArrays:
    """Zone polygons flattened for :mod:`ecoraster.kernels.coverage`.

    Attributes
    ----------
    xs, ys : float64 arrays
        Vertex coordinates (CRS units), every ring closed.
    ring_off : int64 array (n_rings + 1)
        Vertex offsets of the rings; each polygon's exterior ring comes before its holes.
    ring_hole : bool array (n_rings)
    geom_ring_off : int64 array (n_zones + 1)
        Ring offsets of each zone (zones without polygon parts have no rings).
    """

    xs: np.ndarray
    ys: np.ndarray
    ring_off: np.ndarray
    ring_hole: np.ndarray
    geom_ring_off: np.ndarray

    @property
    def n_zones(self) -> int:
        return len(self.geom_ring_off) - 1

    def digest(self) -> str:
        """A hash of the coordinates and structure (a cache key part)."""
        h = hashlib.blake2b(digest_size=16)
        for a in (self.xs, self.ys, self.ring_off, self.ring_hole, self.geom_ring_off):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()

    def subset(self, g0: int, g1: int) -> RingArrays:
        """The zones g0..g1 (exclusive) as their own arrays (offsets rebased)."""
        k0, k1 = int(self.geom_ring_off[g0]), int(self.geom_ring_off[g1])
        v0, v1 = int(self.ring_off[k0]), int(self.ring_off[k1])
        return RingArrays(
            self.xs[v0:v1], self.ys[v0:v1], self.ring_off[k0:k1 + 1] - v0,
            self.ring_hole[k0:k1], self.geom_ring_off[g0:g1 + 1] - k0,
        )


def polygon_parts(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Polygons of each geometry (multi-parts and collections opened, non-areal parts
    dropped) and the index of the geometry each one belongs to, in input order."""
    parts = np.asarray(geoms, dtype=object)
    index = np.arange(len(parts))
    for _ in range(8):  # nesting depth of collections
        types = shapely.get_type_id(parts)
        multi = np.isin(types, _MULTI)
        if not multi.any():
            break
        sub, sub_idx = shapely.get_parts(parts, return_index=True)
        # get_parts keeps singles as they are, so this opens exactly one level
        parts, index = sub, index[sub_idx]
    types = shapely.get_type_id(parts)
    keep = (types == _POLYGON) & ~shapely.is_empty(parts)
    return parts[keep], index[keep]


def ring_arrays(geoms: np.ndarray) -> RingArrays:
    """Flatten polygonal geometries (one per zone) into :class:`RingArrays`."""
    n = len(geoms)
    polys, poly_geom = polygon_parts(geoms)
    rings, ring_poly = shapely.get_rings(polys, return_index=True)
    coords, coord_ring = shapely.get_coordinates(rings, return_index=True)
    n_rings = len(rings)
    ring_off = np.zeros(n_rings + 1, dtype=np.int64)
    np.cumsum(np.bincount(coord_ring, minlength=n_rings), out=ring_off[1:])
    ring_hole = np.ones(n_rings, dtype=bool)
    if n_rings:
        first = np.r_[True, ring_poly[1:] != ring_poly[:-1]]
        ring_hole[first] = False
    ring_geom = poly_geom[ring_poly]
    geom_ring_off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(ring_geom, minlength=n), out=geom_ring_off[1:])
    return RingArrays(
        np.ascontiguousarray(coords[:, 0], dtype=np.float64),
        np.ascontiguousarray(coords[:, 1], dtype=np.float64),
        ring_off, ring_hole, geom_ring_off,
    )


@dataclass
class PartitionReport:
    """Outcome of :func:`check_partition` (areas in CRS units², e.g. m²).

    ``ok`` is True when the overlap and gap areas are both at most ``tolerance``.
    """

    n_zones: int
    zones_area: float
    union_area: float
    overlap_area: float
    gap_area: float
    n_overlaps: int
    n_gaps: int
    tolerance: float
    overlaps: list[tuple[object, object, float]] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.overlap_area <= self.tolerance and self.gap_area <= self.tolerance

    def __str__(self) -> str:
        state = "ok" if self.ok else "NOT a partition"
        return (f"partition check: {state}; {self.n_zones} zones, area {self.zones_area:.6g}, "
                f"union {self.union_area:.6g}, overlaps {self.n_overlaps} pairs / {self.overlap_area:.6g}, "
                f"gaps {self.n_gaps} / {self.gap_area:.6g} (tolerance {self.tolerance:.3g})")


def check_partition(
    zones: gpd.GeoDataFrame,
    id_field: str | None = None,
    *,
    extent=None,
    tolerance: float | None = None,
    max_listed: int = 20,
) -> PartitionReport:
    """Check that zones form a partition: no overlaps and no gaps (area-based).

    Parameters
    ----------
    zones : GeoDataFrame
        Polygons in a projected CRS (areas in its units², e.g. m²).
    id_field : str, optional
        Field naming zones in the listed overlaps (default: the row index).
    extent : shapely geometry, optional
        The area the zones should cover exactly (e.g. the county); without it, gaps
        are the holes inside the zones' union.
    tolerance : float, optional
        Overlap and gap areas up to this are accepted, and single overlaps or gaps
        smaller than it are ignored (CRS units²; default 1e-6 × the zones' area).
    max_listed : int
        How many of the largest overlaps and gaps to list.

    Returns
    -------
    PartitionReport
    """
    geoms = np.asarray(zones.geometry.values, dtype=object)
    ids = zones[id_field].to_numpy() if id_field else zones.index.to_numpy()
    valid = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    geoms = shapely.make_valid(geoms[valid])
    ids = ids[valid]
    areas = shapely.area(geoms)
    zones_area = float(areas.sum())
    tol = float(tolerance) if tolerance is not None else 1e-6 * zones_area
    piece_tol = tol if tolerance is not None else 1e-9 * zones_area

    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    inter = shapely.area(shapely.intersection(geoms[left], geoms[right])) if len(left) else np.zeros(0)
    big = inter > piece_tol
    overlap_area = float(inter[big].sum())
    order = np.argsort(-inter[big])[:max_listed]
    overlaps = [(ids[left[big][i]], ids[right[big][i]], float(inter[big][i])) for i in order]

    union = shapely.union_all(geoms)
    union_area = float(shapely.area(union))
    if extent is not None:
        gap_geom = shapely.difference(extent, union)
        gap_parts = shapely.get_parts(gap_geom)
    else:
        polys, _ = polygon_parts(np.array([union], dtype=object))
        holes = [shapely.Polygon(r) for p in polys for r in p.interiors]
        gap_parts = np.array(holes, dtype=object)
    gap_areas = shapely.area(gap_parts) if len(gap_parts) else np.zeros(0)
    gap_areas = gap_areas[gap_areas > piece_tol]
    report = PartitionReport(
        n_zones=int(valid.sum()), zones_area=zones_area, union_area=union_area,
        overlap_area=overlap_area, gap_area=float(gap_areas.sum()),
        n_overlaps=int(big.sum()), n_gaps=len(gap_areas), tolerance=tol,
        overlaps=overlaps, gaps=sorted(map(float, gap_areas), reverse=True)[:max_listed],
    )
    log.info("%s", report)
    return report
