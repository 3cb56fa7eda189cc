"""Site valuation: the GEP a project's footprint would take away, by product, and the
ranking of candidate sites by that loss.

The loss of product P over footprint F is the coverage-weighted sum of P's per-pixel value
raster (CNY per pixel, price year of the run) over F:

    loss_P = Σ_pixels  v_P(pixel) × c_F(pixel)

where ``c_F`` is the exact fraction of the pixel inside F (exactextract's coverage
fractions); nodata pixels count zero. The same sum over P's physical raster gives the
quantity lost (m³, t, … per year). Because the sum runs over pixels, not parcels, a
footprint that cuts across parcels is valued exactly; the per-pixel value rasters are the
ones the parcel table was aggregated from, so a footprint equal to a parcel returns that
parcel's ``P_value`` (the "physical quantity × price" of 《陆地生态系统生产总值（GEP）核算
技术指南》 applied per pixel, then summed).

Two engines give the same numbers (tested): ``window`` reads only the footprint's window of
each raster and computes the coverage fractions once for all rasters (fast for one small
footprint); ``zonal`` calls :func:`ecoraster.zonal.zonal_stats` on the whole rasters.

Covered share. A footprint may reach outside the grid or over nodata pixels (outside the
region, gaps of an input); the loss is then the loss over the part with data only, and the
result says so: ``covered_share`` = Σ_valid c_F / (area of F / pixel area), both in the
grid CRS's planar units (the share of the footprint's area that has data, 0..1; a share
within :data:`FULL_COVER_TOLERANCE` of 1 — float32 coverage fractions — counts as 1),
``covered_area_m2`` = Σ_valid c_F × pixel area (m²), and a ``warning`` when the share is
below 1. ``min_coverage`` (default :data:`DEFAULT_MIN_COVERAGE`) refuses a footprint with a
smaller share (``partly_outside``); one with no data at all is always refused
(``outside_region``).

Concurrency. A :class:`SiteValuer` may be shared by threads (the API's worker threads):
the rasters are read through a :class:`~ecoraster.query.rasters.WindowReader` (a pool of
open datasets, one set per thread at a time, and one cache of decoded blocks shared by all
threads), and the coverage fractions come from a numba kernel that runs without the GIL
(:func:`ecoraster.kernels.coverage.window_coverage`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rasterio
import shapely
from rasterio.windows import Window
from shapely.geometry import box

from ..errors import FootprintError, QueryError
from .footprint import DEFAULT_MAX_AREA_HA, Footprint, read_footprint
from .parcels import ParcelStore
from .rasters import WindowReader
from .workspace import RasterLayer, RunWorkspace, names_of

M2_PER_HA = 10_000.0

#: At most this many intersected parcels are listed in a site result (largest overlap first).
MAX_LISTED_PARCELS = 100

#: Default smallest covered share of a footprint (0..1) valued without refusal: 0 — a footprint
#: partly outside the data is valued over its covered part and says so (``covered_share``,
#: ``warning``); ask for more with ``min_coverage`` (1.0: refuse any footprint not fully covered).
DEFAULT_MIN_COVERAGE = 0.0

#: A covered share within this of 1 counts as full cover (coverage fractions are float32:
#: their sum over a footprint's edge pixels differs from its exact area by ~1e-9 relative).
FULL_COVER_TOLERANCE = 1e-6


class PartlyOutsideError(FootprintError):
    """A footprint whose covered share is below the ``min_coverage`` asked (``partly_outside``);
    ``details`` holds the numbers (share 0..1, areas in m²)."""

    def __init__(self, message: str, source: str, details: dict[str, Any]):
        super().__init__("partly_outside", message, source)
        self.details = details


@dataclass
class ProductLoss:
    """What one product loses inside a footprint."""

    product: str
    value: float | None  # CNY (price year of the run); None if the run has no value raster
    value_units: str | None
    qty: float | None  # physical quantity, None if the run has no physical raster
    qty_units: str | None
    contested: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, **names_of(self.product)}


@dataclass
class SiteValuation:
    """The value lost over one footprint."""

    name: str
    input_crs: str
    area_ha: float  # footprint area (before clipping to the region)
    area_in_region_ha: float  # area of pixels inside the footprint that hold a valid value
    products: list[ProductLoss]
    gep_lost: float  # Σ product values, CNY
    gep_lost_excl_contested: float
    covered_share: float = 1.0  # share of the footprint's area with data, 0..1 (see the module doc)
    warning: str | None = None  # set when covered_share < 1
    parcels: list[dict[str, Any]] = field(default_factory=list)
    parcels_total: int = 0
    engine: str = "window"
    elapsed_ms: float = 0.0
    region: str | None = None
    year: int | None = None
    price_year: int | None = None
    geometry: shapely.Geometry | None = None  # grid CRS

    @property
    def gep_lost_per_ha(self) -> float | None:
        return self.gep_lost / self.area_in_region_ha if self.area_in_region_ha > 0 else None

    def product(self, code: str) -> ProductLoss:
        for p in self.products:
            if p.product == code:
                return p
        raise KeyError(code)

    def to_dict(self, *, geometry: bool = False) -> dict[str, Any]:
        out = {
            "name": self.name, "region": self.region, "year": self.year, "price_year": self.price_year,
            "input_crs": self.input_crs, "area_ha": self.area_ha, "area_in_region_ha": self.area_in_region_ha,
            "covered_share": self.covered_share, "covered_area_m2": self.area_in_region_ha * M2_PER_HA,
            "warning": self.warning,
            "gep_lost": self.gep_lost, "gep_lost_excl_contested": self.gep_lost_excl_contested,
            "gep_lost_per_ha": self.gep_lost_per_ha, "value_units": "CNY",
            "products": [p.to_dict() for p in self.products],
            "parcels": self.parcels, "parcels_total": self.parcels_total,
            "engine": self.engine, "elapsed_ms": round(self.elapsed_ms, 2),
        }
        if geometry and self.geometry is not None:
            out["geometry"] = shapely.geometry.mapping(self.geometry)
        return out


class SiteValuer:
    """Values footprints against one run workspace.

    Parameters
    ----------
    workspace : RunWorkspace
    parcels : ParcelStore, optional
        To list the parcels a footprint cuts (with overlap); None skips that.
    max_area_ha : float or None
        Largest footprint accepted (ha).
    engine : ``"window"`` | ``"zonal"``
    min_coverage : float
        Default smallest covered share (0..1) valued; :meth:`value` may override it.

    Safe to share between threads (see the module doc); :meth:`close` closes its datasets.
    """

    def __init__(self, workspace: RunWorkspace, parcels: ParcelStore | None = None, *,
                 max_area_ha: float | None = DEFAULT_MAX_AREA_HA, engine: str = "window",
                 min_coverage: float = DEFAULT_MIN_COVERAGE):
        if engine not in ("window", "zonal"):
            raise QueryError(f"engine {engine!r}: use 'window' or 'zonal'")
        self.min_coverage = check_min_coverage(min_coverage)
        if not workspace.layers:
            raise QueryError(f"{workspace.root / 'run.json'}: no per-pixel value or physical rasters with a "
                             "product in 'results' (nothing to value a site with)")
        self.ws = workspace
        self.parcels = parcels
        self.max_area_ha = max_area_ha
        self.engine = engine
        self._on_grid = {layer.path: self._matches_grid(layer) for layer in workspace.layers}
        self._row_area_m2 = workspace.grid.row_areas_m2()
        self._reader = WindowReader([layer.path for layer in workspace.layers if self._on_grid[layer.path]])

    def close(self) -> None:
        """Close the open raster datasets and drop the cached blocks (no valuation may be running)."""
        self._reader.close()

    def _matches_grid(self, layer: RasterLayer) -> bool:
        g = self.ws.grid
        with rasterio.open(layer.path) as src:
            same = (src.crs == g.crs and (src.height, src.width) == tuple(g.shape)
                    and all(math.isclose(a, b, abs_tol=1e-9 * max(1.0, abs(b)))
                            for a, b in zip(tuple(src.transform)[:6], tuple(g.transform)[:6])))
        return same

    # -- footprints ---------------------------------------------------------------------
    def footprint(self, obj: Any, *, crs: str | None = None, name: str | None = None) -> Footprint:
        """Read and check a footprint (see :func:`read_footprint`) and refuse one that lies
        outside the run grid."""
        fp = read_footprint(obj, self.ws.grid.crs, crs=crs, name=name, max_area_ha=self.max_area_ha)
        self.clip(fp)
        return fp

    def clip(self, fp: Footprint) -> shapely.Geometry:
        """The footprint clipped to the run grid; :class:`FootprintError` (``outside_region``)
        if nothing is left."""
        region_box = box(*self.ws.grid.bounds)
        if not fp.geometry.intersects(region_box):
            b = ", ".join(f"{v:.1f}" for v in fp.geometry.bounds)
            gb = ", ".join(f"{v:.1f}" for v in self.ws.grid.bounds)
            raise FootprintError("outside_region", f"footprint ({b}) lies outside the region {self.ws.region} "
                                 f"({gb} in {self.ws.grid.to_dict()['crs']})", fp.name)
        if region_box.contains(fp.geometry):
            return fp.geometry
        return shapely.intersection(fp.geometry, region_box)

    # -- valuation ----------------------------------------------------------------------
    def value(self, fp: Footprint, *, with_parcels: bool = True,
              min_coverage: float | None = None) -> SiteValuation:
        """Value lost over a checked footprint, by product (float64 sums).

        ``min_coverage`` (0..1, default the valuer's): refuse with ``partly_outside`` when
        less than this share of the footprint's area has data.
        """
        t0 = time.perf_counter()
        least = self.min_coverage if min_coverage is None else check_min_coverage(min_coverage)
        geom = self.clip(fp)
        if self.engine == "window":
            sums, valid_area_m2, valid_px = self._sums_window(geom)
        else:
            sums, valid_area_m2, valid_px = self._sums_zonal(geom)
        if valid_area_m2 <= 0:
            raise FootprintError("outside_region", f"footprint covers no pixel with values of the region "
                                 f"{self.ws.region} (all nodata)", fp.name)
        share, warning = self._covered(fp, geom, valid_px, valid_area_m2)
        if share < least:
            raise PartlyOutsideError(
                f"only {share:.1%} of the footprint has data in the region {self.ws.region} ({warning}); "
                f"at least {least:.1%} is asked (min_coverage={least:g})", fp.name,
                {"covered_share": share, "covered_area_m2": valid_area_m2, "min_coverage": least,
                 "area_m2": fp.area_ha * M2_PER_HA})
        products = []
        for code in self.ws.products:
            value_layer, qty_layer = self.ws.layer(code, "value"), self.ws.layer(code, "physical")
            if value_layer is None and qty_layer is None:
                continue
            products.append(ProductLoss(
                product=code,
                value=sums[value_layer.path] if value_layer else None,
                value_units=value_layer.units if value_layer else None,
                qty=sums[qty_layer.path] if qty_layer else None,
                qty_units=qty_layer.units if qty_layer else None,
                contested=code in self.ws.contested,
            ))
        gep = math.fsum(p.value for p in products if p.value is not None)
        gep_excl = math.fsum(p.value for p in products if p.value is not None and not p.contested)
        result = SiteValuation(
            name=fp.name, input_crs=fp.input_crs, area_ha=fp.area_ha, area_in_region_ha=valid_area_m2 / M2_PER_HA,
            products=products, gep_lost=gep, gep_lost_excl_contested=gep_excl, engine=self.engine,
            region=self.ws.region, year=self.ws.year, price_year=self.ws.price_year, geometry=fp.geometry,
            covered_share=share,
            warning=(f"partial coverage: only {share:.1%} of the footprint has data ({warning}); the loss is "
                     "that of the covered part") if share < 1.0 else None,
        )
        if with_parcels and self.parcels is not None:
            result.parcels, result.parcels_total = self._parcels_cut(geom)
        result.elapsed_ms = (time.perf_counter() - t0) * 1000
        return result

    def _covered(self, fp: Footprint, clipped: shapely.Geometry, valid_px: float,
                 valid_area_m2: float) -> tuple[float, str]:
        """(covered share 0..1, what is not covered in words) of a footprint whose valid
        pixels add up to ``valid_px`` coverage-weighted pixels (``valid_area_m2`` m²)."""
        t = self.ws.grid.transform
        full_px = float(fp.geometry.area) / abs(t.a * t.e)  # the footprint in pixel units, planar
        share = min(1.0, valid_px / full_px) if full_px > 0 else 0.0
        if share >= 1.0 - FULL_COVER_TOLERANCE:
            return 1.0, ""
        area_m2 = fp.area_ha * M2_PER_HA
        outside_m2 = area_m2 * max(0.0, 1.0 - float(clipped.area) / float(fp.geometry.area))
        nodata_m2 = max(0.0, area_m2 - outside_m2 - valid_area_m2)
        words = f"{valid_area_m2 / M2_PER_HA:,.2f} of {fp.area_ha:,.2f} ha"
        if outside_m2 > 0:
            words += f"; {outside_m2 / M2_PER_HA:,.2f} ha outside the grid"
        if nodata_m2 > 0:
            words += f"; {nodata_m2 / M2_PER_HA:,.2f} ha over nodata pixels"
        return share, words

    def _parcels_cut(self, geom: shapely.Geometry) -> tuple[list[dict[str, Any]], int]:
        cols = [c for c in ("parcel_id", "name", "area_ha", "gep") if c in self.parcels.properties]
        rows = self.parcels.intersecting(geom, columns=cols)
        listed = []
        for row in sorted(rows, key=lambda r: -r["overlap_m2"])[:MAX_LISTED_PARCELS]:
            g = row.pop("_geometry")
            overlap = row.pop("overlap_m2")
            row["overlap_ha"] = overlap / M2_PER_HA
            row["share_of_parcel"] = overlap / g.area if g.area > 0 else None
            listed.append(row)
        return listed, len(rows)

    def _window(self, geom: shapely.Geometry) -> Window:
        """The grid window (whole pixels) holding ``geom``'s bounds."""
        t = self.ws.grid.transform
        rows, cols = self.ws.grid.shape
        minx, miny, maxx, maxy = geom.bounds
        c0 = max(0, math.floor((minx - t.c) / t.a))
        c1 = min(cols, math.ceil((maxx - t.c) / t.a))
        r0 = max(0, math.floor((maxy - t.f) / t.e))  # t.e < 0: top edge → first row
        r1 = min(rows, math.ceil((miny - t.f) / t.e))
        return Window(c0, r0, max(0, c1 - c0), max(0, r1 - r0))

    def coverage(self, geom: shapely.Geometry) -> tuple[Window, np.ndarray]:
        """(window, fraction of each window pixel inside ``geom``) — exact coverage
        fractions on the grid (float32-rounded as exactextract's, held in float64), from the
        zonal engine's kernel; computed without the GIL."""
        from ..kernels.coverage import window_coverage
        from ..zonal.geometry import ring_arrays

        win = self._window(geom)
        h, w = int(win.height), int(win.width)
        if h == 0 or w == 0:
            return win, np.zeros((h, w), dtype=np.float64)
        rings = ring_arrays(np.array([geom], dtype=object))
        t = self.ws.grid.transform
        cov = window_coverage(rings.xs, rings.ys, rings.ring_off, rings.ring_hole, float(t.c), float(t.a),
                              float(t.f), float(t.e), int(win.row_off), int(win.col_off), h, w, False)
        return win, cov

    def _sums_window(self, geom: shapely.Geometry) -> tuple[dict, float, float]:
        off_grid = [layer for layer in self.ws.layers if not self._on_grid[layer.path]]
        sums: dict = {}
        valid_px = 0.0
        if off_grid:  # a raster that is not on the run grid: let the zonal engine reproject
            zsums, _, valid_px = self._sums_zonal(geom, off_grid)
            sums.update(zsums)
        win, cov = self.coverage(geom)
        area = cov * self._row_area_m2[int(win.row_off):int(win.row_off + win.height), None]
        any_valid = np.zeros(cov.shape, dtype=bool)
        blocks = self._reader.read(win)
        for layer in self.ws.layers:
            if not self._on_grid[layer.path]:
                continue
            block = blocks[layer.path].astype(np.float64, copy=False)
            valid = np.isfinite(block)
            if layer.nodata is not None and not math.isnan(layer.nodata):
                valid &= block != layer.nodata
            any_valid |= valid & (cov > 0)
            sums[layer.path] = float(np.sum(block[valid] * cov[valid], dtype=np.float64))
        valid_px = max(valid_px, float(np.sum(cov[any_valid], dtype=np.float64)))
        return sums, float(np.sum(area[any_valid], dtype=np.float64)), valid_px

    def _sums_zonal(self, geom: shapely.Geometry,
                    layers: list[RasterLayer] | None = None) -> tuple[dict, float, float]:
        import geopandas as gpd

        from ..zonal import zonal_stats

        layers = layers if layers is not None else self.ws.layers
        zone = gpd.GeoDataFrame({"site": ["site"]}, geometry=[geom], crs=self.ws.grid.crs)
        names = {f"l{i}": layer for i, layer in enumerate(layers)}
        table = zonal_stats({k: layer.path for k, layer in names.items()}, zone, "site", stats=("sum", "count"),
                            mass_balance=False)
        sums = {layer.path: float(table.loc["site", f"{k}_sum"]) for k, layer in names.items()}
        # valid area: the largest valid coverage of any layer × mean pixel area of the rows touched
        count = max(float(table.loc["site", f"{k}_count"]) for k in names) if names else 0.0
        rows = self._window(geom)
        mean_px = float(np.mean(self._row_area_m2[int(rows.row_off):int(rows.row_off + rows.height)])) \
            if rows.height else 0.0
        return sums, count * mean_px, count

    def compare(self, footprints: list[Footprint], *, with_parcels: bool = False,
                min_coverage: float | None = None) -> list[SiteValuation]:
        """Value each candidate site; return them ranked by GEP lost, least first."""
        if not footprints:
            raise QueryError("compare: no candidate sites given")
        results = [self.value(fp, with_parcels=with_parcels, min_coverage=min_coverage) for fp in footprints]
        return sorted(results, key=lambda r: (r.gep_lost, r.name))


def ranking_table(results: list[SiteValuation]) -> list[dict[str, Any]]:
    """Rows of a comparison table (rank 1 = least GEP lost), one column per product value."""
    rows = []
    for rank, r in enumerate(results, start=1):
        row: dict[str, Any] = {"rank": rank, "site": r.name, "area_ha": r.area_ha,
                               "area_in_region_ha": r.area_in_region_ha, "covered_share": r.covered_share,
                               "gep_lost": r.gep_lost,
                               "gep_lost_excl_contested": r.gep_lost_excl_contested,
                               "gep_lost_per_ha": r.gep_lost_per_ha}
        for p in r.products:
            if p.value is not None:
                row[f"{p.product}_value"] = p.value
        rows.append(row)
    return rows


def value_site(workspace: str | RunWorkspace, footprint: Any, *, crs: str | None = None, year: int | None = None,
               max_area_ha: float | None = DEFAULT_MAX_AREA_HA, engine: str = "window",
               with_parcels: bool = True, min_coverage: float = DEFAULT_MIN_COVERAGE) -> SiteValuation:
    """One-call API: value lost over ``footprint`` (GeoJSON dict / text / file) in ``workspace``
    (refused with ``partly_outside`` when less than ``min_coverage`` of it has data)."""
    ws = workspace if isinstance(workspace, RunWorkspace) else RunWorkspace.open(workspace, year)
    store = ParcelStore(ws.parcels_path) if (with_parcels and ws.parcels_path) else None
    valuer = None
    try:
        valuer = SiteValuer(ws, store, max_area_ha=max_area_ha, engine=engine, min_coverage=min_coverage)
        return valuer.value(valuer.footprint(footprint, crs=crs), with_parcels=with_parcels)
    finally:
        if valuer is not None:
            valuer.close()
        if store is not None:
            store.close()


def compare_sites(workspace: str | RunWorkspace, footprints: list[Any], *, crs: str | None = None,
                  year: int | None = None, max_area_ha: float | None = DEFAULT_MAX_AREA_HA,
                  engine: str = "window", min_coverage: float = DEFAULT_MIN_COVERAGE) -> list[SiteValuation]:
    """One-call API: candidate sites (GeoJSON dicts / texts / files) ranked by GEP lost."""
    ws = workspace if isinstance(workspace, RunWorkspace) else RunWorkspace.open(workspace, year)
    valuer = SiteValuer(ws, None, max_area_ha=max_area_ha, engine=engine, min_coverage=min_coverage)
    try:
        return valuer.compare([valuer.footprint(f, crs=crs) for f in footprints])
    finally:
        valuer.close()


def check_min_coverage(value: float) -> float:
    """``value`` as a share 0..1; :class:`QueryError` naming it otherwise."""
    v = float(value)
    if not 0.0 <= v <= 1.0:
        raise QueryError(f"min_coverage {value!r}: expected a share between 0 and 1 (e.g. 0.9 for 90 %)")
    return v
