"""Coastal protection (海岸带防护): length of coast protected by salt marsh or other vegetation belts.

A stretch of coastline counts as protected where a vegetation belt at least ``belt_width_m`` wide
lies against it (gep-methods.md §3.5): the marsh polygons are opened by the belt width (eroded by
half the width, then dilated back), which removes every part narrower than the belt; the coastline
within ``snap_m`` of what remains is protected (mitred buffers keep straight belt ends square; each
belt's protected stretch is over-counted by at most 2 × ``snap_m`` at its ends). Its length is written as a raster of km per pixel
(each line cut at the pixel edges it crosses, so per-pixel lengths are exact), so the zonal
sums apply. Valued at the replacement cost of a sea wall per km and year (price
``seawall_replacement_2023`` of ``configs/prices/mee2020.yaml``: the construction cost of a sea wall
per km, from four Zhejiang 海塘安澜 projects, × (1 / service life + yearly maintenance share); the
shares are declared assumptions ✱). Runs in ``configs/chongming_2020.yaml`` once a coastline and a
marsh extent exist.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from ..context import ServiceContext
from ..spec import InputSpec, Issue, MethodSpec, OutputSpec, ParameterSpec, ServiceResult, ServiceSpec

NODATA = -9999.0
PRODUCT = "coastal_protection"

SPEC = ServiceSpec(
    id="coastal_protection",
    name="Coastal protection",
    name_zh="海岸带防护",
    about="Coastline protected by vegetation belts of a declared width (km), valued at the replacement cost "
          "of a sea wall.",
    category="调节服务",
    methods=(
        MethodSpec(id="belt_width", about="coastline within snap_m of vegetation belts at least belt_width_m wide",
                   required_inputs=("coastline", "marsh"), parameters=("belt_width_m", "snap_m"),
                   required_parameters=("belt_width_m", "snap_m"), outputs=("protected_coast_km",)),
    ),
    reference="gep-methods.md §3.5 (protected coast length × sea-wall replacement cost)",
    inputs=(
        InputSpec(id="coastline", kind="vector", about="coastline (lines, or polygons whose boundary is used)"),
        InputSpec(id="marsh", kind="vector", about="salt marsh / coastal vegetation extent (polygons)"),
    ),
    parameters=(
        ParameterSpec(id="belt_width_m", units="m", default=100.0, type="number", minimum=0.0,
                      about="narrowest vegetation belt that protects the coast behind it",
                      source="declared per study; wave attenuation by salt marsh is large within the first "
                             "~100 m (Möller et al. 2014, Nature Geosci.)", confidence="✱"),
        ParameterSpec(id="snap_m", units="m", default=30.0, type="number", minimum=0.0,
                      about="largest gap between the coastline and the belt still counted as touching",
                      source="our choice: one 30 m pixel", confidence="✱"),
    ),
    outputs=(
        OutputSpec(id="protected_coast_km", filename="protected_coast_km.tif", units="km", per="pixel",
                   nodata=NODATA, product=PRODUCT,
                   about="length of coastline protected by a vegetation belt, per pixel"),
    ),
)


def _lines(geoms) -> BaseGeometry:
    parts = []
    for g in geoms:
        if g is None or g.is_empty:
            continue
        parts.append(g.boundary if g.geom_type in ("Polygon", "MultiPolygon") else g)
    return shapely.union_all(parts) if parts else shapely.GeometryCollection()


def protected_coast(coast: BaseGeometry, marsh: BaseGeometry, belt_width_m: float, snap_m: float) -> BaseGeometry:
    """The part of ``coast`` (lines) within ``snap_m`` of marsh at least ``belt_width_m`` wide."""
    half = belt_width_m / 2.0
    opened = marsh.buffer(-half, join_style="mitre").buffer(half, join_style="mitre")
    return coast.intersection(opened.buffer(snap_m, join_style="mitre"))


def length_per_pixel(lines: BaseGeometry, transform, shape) -> np.ndarray:
    """Exact line length [m] per pixel: each segment is cut where it crosses a pixel edge, and
    each piece (inside one pixel) adds its length there. Lengths outside the grid are dropped."""
    out = np.zeros(shape, dtype=np.float64)
    inv = ~transform
    for part in getattr(lines, "geoms", [lines]):
        if hasattr(part, "geoms"):
            out += length_per_pixel(part, transform, shape)
            continue
        if part.is_empty or part.geom_type not in ("LineString", "LinearRing"):
            continue
        xy = np.asarray(part.coords)[:, :2]
        for (x0, y0), (x1, y1) in zip(xy[:-1], xy[1:]):
            seg = float(np.hypot(x1 - x0, y1 - y0))
            if seg == 0.0:
                continue
            c0, r0 = inv @ (x0, y0)
            c1, r1 = inv @ (x1, y1)
            cuts = [0.0, 1.0]
            for a, b in ((c0, c1), (r0, r1)):  # crossings of integer pixel edges, as fractions of the segment
                if b != a:
                    lo, hi = sorted((a, b))
                    k = np.arange(np.floor(lo) + 1, np.ceil(hi))
                    cuts.extend(((k - a) / (b - a)).tolist())
            t = np.unique(np.clip(cuts, 0.0, 1.0))
            tm = (t[:-1] + t[1:]) / 2
            col = np.floor(c0 + tm * (c1 - c0)).astype(np.int64)
            row = np.floor(r0 + tm * (r1 - r0)).astype(np.int64)
            ok = (row >= 0) & (row < shape[0]) & (col >= 0) & (col < shape[1])
            np.add.at(out, (row[ok], col[ok]), (np.diff(t) * seg)[ok])
    return out


def validate(ctx: ServiceContext) -> list[Issue]:
    """The spec's checks (inputs, lengths ≥ 0 m), then a projected grid (lengths in metres)."""
    issues = ctx.validate_inputs()
    if ctx.grid.crs is None or not ctx.grid.crs.is_projected:
        issues.append(Issue(("services", SPEC.id, "grid"), "the grid must be projected in metres (lengths)"))
    return issues


def compute(ctx: ServiceContext) -> ServiceResult:
    import geopandas as gpd

    def read(input_id):
        e = ctx.entry(input_id)
        return gpd.read_file(e.uri, layer=e.layer).to_crs(ctx.grid.crs).geometry

    coast = _lines(read("coastline"))
    marsh = shapely.union_all([g for g in read("marsh") if g is not None and not g.is_empty])
    belt, snap = float(ctx.param("belt_width_m")), float(ctx.param("snap_m"))
    prot = protected_coast(coast, marsh, belt, snap)
    # vector → raster in one pass over the line segments (not a per-pixel block kernel): the
    # protected length is small (a coastline), so the whole-grid float64 array is cheap at any extent
    km = length_per_pixel(prot, ctx.grid.transform, ctx.grid.shape) / 1000.0
    records = ctx.write({"protected_coast_km": da.from_array(km.astype(np.float32), chunks=ctx.chunk)})
    result = ServiceResult(service=SPEC.id, outputs=records,
                           metadata={"belt_width_m": belt, "snap_m": snap, "coast_km": coast.length / 1000.0})
    result.totals["protected_coast_km_total"] = (records["protected_coast_km"].total, "km")
    result.notes.append(f"{prot.length / 1000:.3f} km of {coast.length / 1000:.3f} km of coastline lie against "
                        f"vegetation belts ≥ {belt:g} m wide (gap ≤ {snap:g} m)")
    return ctx.checked(result)
