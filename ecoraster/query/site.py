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
from .workspace import RasterLayer, RunWorkspace, names_of

M2_PER_HA = 10_000.0

#: At most this many intersected parcels are listed in a site result (largest overlap first).
MAX_LISTED_PARCELS = 100


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
    """

    def __init__(self, workspace: RunWorkspace, parcels: ParcelStore | None = None, *,
                 max_area_ha: float | None = DEFAULT_MAX_AREA_HA, engine: str = "window"):
        if engine not in ("window", "zonal"):
            raise QueryError(f"engine {engine!r}: use 'window' or 'zonal'")
        if not workspace.layers:
            raise QueryError(f"{workspace.root / 'run.json'}: no per-pixel value or physical rasters with a "
                             "product in 'results' (nothing to value a site with)")
        self.ws = workspace
        self.parcels = parcels
        self.max_area_ha = max_area_ha
        self.engine = engine
        self._on_grid = {layer.path: self._matches_grid(layer) for layer in workspace.layers}
        self._row_area_m2 = workspace.grid.row_areas_m2()

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
    def value(self, fp: Footprint, *, with_parcels: bool = True) -> SiteValuation:
        """Value lost over a checked footprint, by product (float64 sums)."""
        t0 = time.perf_counter()
        geom = self.clip(fp)
        if self.engine == "window":
            sums, valid_area_m2 = self._sums_window(geom)
        else:
            sums, valid_area_m2 = self._sums_zonal(geom)
        if valid_area_m2 <= 0:
            raise FootprintError("outside_region", f"footprint covers no pixel with values of the region "
                                 f"{self.ws.region} (all nodata)", fp.name)
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
        )
        if with_parcels and self.parcels is not None:
            result.parcels, result.parcels_total = self._parcels_cut(geom)
        result.elapsed_ms = (time.perf_counter() - t0) * 1000
        return result

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
        """(window, fraction of each window pixel inside ``geom``) — exactextract's exact
        coverage fractions on the grid, float64."""
        import geopandas as gpd
        from exactextract import exact_extract
        from exactextract.raster import NumPyRasterSource

        win = self._window(geom)
        h, w = int(win.height), int(win.width)
        cov = np.zeros(h * w, dtype=np.float64)
        if h == 0 or w == 0:
            return win, cov.reshape(h, w)
        t = self.ws.grid.window_transform(int(win.row_off), int(win.col_off))
        xmin, ymax = t.c, t.f
        xmax, ymin = xmin + t.a * w, ymax + t.e * h
        src = NumPyRasterSource(np.zeros((h, w), dtype=np.float32), xmin, ymin, xmax, ymax,
                                srs_wkt=self.ws.grid.crs.to_wkt())
        zone = gpd.GeoDataFrame({"site": [0]}, geometry=[geom], crs=self.ws.grid.crs)
        df = exact_extract(src, zone, ["cell_id", "coverage"], output="pandas")
        if len(df):
            np.add.at(cov, np.asarray(df["cell_id"].iloc[0], dtype=np.int64),
                      np.asarray(df["coverage"].iloc[0], dtype=np.float64))
        return win, cov.reshape(h, w)

    def _sums_window(self, geom: shapely.Geometry) -> tuple[dict, float]:
        off_grid = [layer for layer in self.ws.layers if not self._on_grid[layer.path]]
        sums: dict = {}
        if off_grid:  # a raster that is not on the run grid: let the zonal engine reproject
            zsums, _ = self._sums_zonal(geom, off_grid)
            sums.update(zsums)
        win, cov = self.coverage(geom)
        area = cov * self._row_area_m2[int(win.row_off):int(win.row_off + win.height), None]
        any_valid = np.zeros(cov.shape, dtype=bool)
        for layer in self.ws.layers:
            if not self._on_grid[layer.path]:
                continue
            with rasterio.open(layer.path) as src:
                block = src.read(1, window=win).astype(np.float64, copy=False)
            valid = np.isfinite(block)
            if layer.nodata is not None and not math.isnan(layer.nodata):
                valid &= block != layer.nodata
            any_valid |= valid & (cov > 0)
            sums[layer.path] = float(np.sum(block[valid] * cov[valid], dtype=np.float64))
        return sums, float(np.sum(area[any_valid], dtype=np.float64))

    def _sums_zonal(self, geom: shapely.Geometry, layers: list[RasterLayer] | None = None) -> tuple[dict, float]:
        import geopandas as gpd

        from ..zonal import zonal_stats

        layers = layers if layers is not None else self.ws.layers
        zone = gpd.GeoDataFrame({"site": ["site"]}, geometry=[geom], crs=self.ws.grid.crs)
        names = {f"l{i}": layer for i, layer in enumerate(layers)}
        table = zonal_stats({k: layer.path for k, layer in names.items()}, zone, "site", stats=("sum", "count"))
        sums = {layer.path: float(table.loc["site", f"{k}_sum"]) for k, layer in names.items()}
        # valid area: the largest valid coverage of any layer × mean pixel area of the rows touched
        count = max(float(table.loc["site", f"{k}_count"]) for k in names) if names else 0.0
        rows = self._window(geom)
        mean_px = float(np.mean(self._row_area_m2[int(rows.row_off):int(rows.row_off + rows.height)])) \
            if rows.height else 0.0
        return sums, count * mean_px

    def compare(self, footprints: list[Footprint], *, with_parcels: bool = False) -> list[SiteValuation]:
        """Value each candidate site; return them ranked by GEP lost, least first."""
        if not footprints:
            raise QueryError("compare: no candidate sites given")
        results = [self.value(fp, with_parcels=with_parcels) for fp in footprints]
        return sorted(results, key=lambda r: (r.gep_lost, r.name))


def ranking_table(results: list[SiteValuation]) -> list[dict[str, Any]]:
    """Rows of a comparison table (rank 1 = least GEP lost), one column per product value."""
    rows = []
    for rank, r in enumerate(results, start=1):
        row: dict[str, Any] = {"rank": rank, "site": r.name, "area_ha": r.area_ha,
                               "area_in_region_ha": r.area_in_region_ha, "gep_lost": r.gep_lost,
                               "gep_lost_excl_contested": r.gep_lost_excl_contested,
                               "gep_lost_per_ha": r.gep_lost_per_ha}
        for p in r.products:
            if p.value is not None:
                row[f"{p.product}_value"] = p.value
        rows.append(row)
    return rows


def value_site(workspace: str | RunWorkspace, footprint: Any, *, crs: str | None = None, year: int | None = None,
               max_area_ha: float | None = DEFAULT_MAX_AREA_HA, engine: str = "window",
               with_parcels: bool = True) -> SiteValuation:
    """One-call API: value lost over ``footprint`` (GeoJSON dict / text / file) in ``workspace``."""
    ws = workspace if isinstance(workspace, RunWorkspace) else RunWorkspace.open(workspace, year)
    store = ParcelStore(ws.parcels_path) if (with_parcels and ws.parcels_path) else None
    try:
        valuer = SiteValuer(ws, store, max_area_ha=max_area_ha, engine=engine)
        return valuer.value(valuer.footprint(footprint, crs=crs), with_parcels=with_parcels)
    finally:
        if store is not None:
            store.close()


def compare_sites(workspace: str | RunWorkspace, footprints: list[Any], *, crs: str | None = None,
                  year: int | None = None, max_area_ha: float | None = DEFAULT_MAX_AREA_HA,
                  engine: str = "window") -> list[SiteValuation]:
    """One-call API: candidate sites (GeoJSON dicts / texts / files) ranked by GEP lost."""
    ws = workspace if isinstance(workspace, RunWorkspace) else RunWorkspace.open(workspace, year)
    valuer = SiteValuer(ws, None, max_area_ha=max_area_ha, engine=engine)
    return valuer.compare([valuer.footprint(f, crs=crs) for f in footprints])
