"""HTTP API and map page for planners (FastAPI): parcel by id, parcels by bbox (paged
GeoJSON), the parcel at a point, the value a footprint would take away, and the ranking of
candidate sites. OpenAPI docs at ``/docs``; the map page at ``/``.

Thin over :mod:`ecoraster.query`: every endpoint is one library call. Errors answer 4xx
with ``{"error": <code>, "message": <one line>}``: 404 unknown parcel, 422 refused
footprint (``invalid_geometry``, ``not_polygon``, ``bad_geojson``, ``unknown_crs``,
``outside_region``, ``too_large``), 400 other bad queries.

Run with ``eco serve -w WORKSPACE`` or ``uvicorn`` on ``create_app(workspace)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import Body, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from ..errors import EcorasterError, FootprintError, ParcelNotFoundError, QueryError
from ..query import DEFAULT_MAX_AREA_HA, ParcelStore, RunWorkspace, SiteValuer, ranking_table
from ..query.footprint import bbox_to_grid, footprints_from_collection, normalise_crs

STATIC = Path(__file__).parent / "static"

#: Largest page of parcels one request may ask for.
MAX_PAGE = 10_000

_SQUARE = {"type": "Polygon", "coordinates": [[[114.30, 30.55], [114.31, 30.55], [114.31, 30.56],
                                                [114.30, 30.56], [114.30, 30.55]]]}
_SITE_EXAMPLES = {
    "lonlat": {"summary": "Polygon in WGS 84 lon/lat (GeoJSON default)",
               "value": {"type": "Feature", "properties": {"name": "site A"}, "geometry": _SQUARE}},
    "grid": {"summary": "Polygon in the grid CRS, named by the crs member",
             "value": {"type": "Feature", "crs": {"type": "name", "properties": {"name": "EPSG:4527"}},
                       "properties": {"name": "site B"},
                       "geometry": {"type": "Polygon", "coordinates": [[[39500500, 4349300], [39500800, 4349300],
                                                                        [39500800, 4349600], [39500500, 4349600],
                                                                        [39500500, 4349300]]]}}},
}


class QueryService:
    """What the app holds for one run: workspace, parcel store, site valuer."""

    def __init__(self, workspace: str | os.PathLike, *, year: int | None = None,
                 max_area_ha: float | None = DEFAULT_MAX_AREA_HA, in_memory: bool = True):
        self.ws = RunWorkspace.open(workspace, year)
        self.store = ParcelStore(self.ws.parcels_path, in_memory=in_memory) if self.ws.parcels_path else None
        self.valuer = SiteValuer(self.ws, self.store, max_area_ha=max_area_ha) if self.ws.layers else None
        self.max_area_ha = max_area_ha
        self.crs_label = self.ws.grid.to_dict()["crs"]

    def require_store(self) -> ParcelStore:
        if self.store is None:
            raise QueryError(f"{self.ws.root}: this run has no products/parcels.parquet")
        return self.store

    def require_valuer(self) -> SiteValuer:
        if self.valuer is None:
            raise QueryError(f"{self.ws.root}: this run has no per-pixel value rasters to value a site with")
        return self.valuer

    def to_output_crs(self, feature: dict[str, Any], crs: str | None) -> dict[str, Any]:
        """Reproject a feature's geometry from the grid CRS to ``crs`` (EPSG:4326/4490)."""
        if not crs or feature.get("geometry") is None:
            return feature
        label, target = normalise_crs(crs, self.ws.grid.crs, "crs")
        if target == self.ws.grid.crs:
            return feature
        import numpy as np
        import shapely
        from pyproj import Transformer

        tr = Transformer.from_crs(self.ws.grid.crs, target, always_xy=True)
        geom = shapely.geometry.shape(feature["geometry"])
        geom = shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
        return {**feature, "geometry": shapely.geometry.mapping(geom)}


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": code, "message": message})


def create_app(workspace: str | os.PathLike, *, year: int | None = None,
               max_area_ha: float | None = DEFAULT_MAX_AREA_HA, in_memory: bool = True) -> FastAPI:
    """The API + map page for the run in ``workspace`` (opened once, at start-up)."""
    svc = QueryService(workspace, year=year, max_area_ha=max_area_ha, in_memory=in_memory)
    app = FastAPI(
        title="ecoraster GEP queries",
        description=(f"Parcel values and project siting for **{svc.ws.region}** {svc.ws.year} "
                     f"(prices of {svc.ws.price_year}). Geometries are in the grid CRS {svc.crs_label} "
                     "unless a `crs` is given; footprints may come in EPSG:4326, EPSG:4490 or the grid CRS."),
        version="1",
    )
    app.state.service = svc

    @app.exception_handler(FootprintError)
    async def _footprint_error(request: Request, exc: FootprintError) -> JSONResponse:
        return _error(422, exc.reason, str(exc))

    @app.exception_handler(ParcelNotFoundError)
    async def _not_found(request: Request, exc: ParcelNotFoundError) -> JSONResponse:
        return _error(404, "parcel_not_found", f"no parcel with parcel_id {exc.parcel_id!r}")

    @app.exception_handler(EcorasterError)
    async def _bad_query(request: Request, exc: EcorasterError) -> JSONResponse:
        return _error(400, "bad_query", str(exc))

    @app.get("/api/info", summary="The run: region, year, price year, CRS, extent, products")
    def info() -> dict[str, Any]:
        out = svc.ws.describe()
        out.pop("workspace", None)
        out.pop("parcels", None)
        out["parcels"] = svc.store.count if svc.store else 0
        out["parcel_extent"] = svc.store.extent() if svc.store else None
        out["parcel_columns"] = svc.store.properties if svc.store else []
        out["max_area_ha"] = svc.max_area_ha
        out["can_value_sites"] = svc.valuer is not None
        return out

    @app.get("/api/legend", summary="Class breaks (quantiles) of a parcel column, for colouring a map")
    def legend(column: str = Query("gep_per_ha", description="a numeric column of the parcel table"),
               classes: int = Query(7, ge=2, le=12)) -> dict[str, Any]:
        store = svc.require_store()
        if column not in store.properties:
            raise QueryError(f"no column {column!r} in the parcel table")
        qs = [i / classes for i in range(classes + 1)]
        cur = store.cursor()
        row = cur.execute(f'SELECT quantile_cont("{column}", ?) FROM parcels WHERE "{column}" IS NOT NULL',
                          [qs]).fetchone()
        return {"column": column, "units": svc.ws.units.get(column), "breaks": row[0] or []}

    @app.get("/api/parcels/{parcel_id}", summary="One parcel: its catalogue (products, GEP) and outline")
    def parcel(parcel_id: str, crs: str | None = Query(None, description="output CRS: EPSG:4326, EPSG:4490 "
                                                                           "(default: the grid CRS)")) -> dict:
        feature = svc.to_output_crs(svc.require_store().get(parcel_id), crs)
        feature["catalogue"] = svc.ws.parcel_catalogue(feature["properties"])
        feature["crs"] = {"type": "name", "properties": {"name": crs or svc.crs_label}}
        return feature

    @app.get("/api/parcels", summary="Parcels intersecting a bbox, as a paged GeoJSON FeatureCollection")
    def parcels(request: Request,
                bbox: str = Query(..., description="minx,miny,maxx,maxy", examples=["39500500,4349300,39500800,4349600"]),
                bbox_crs: str | None = Query(None, description="CRS of bbox (default: the grid CRS)"),
                limit: int = Query(100, ge=1, le=MAX_PAGE), offset: int = Query(0, ge=0),
                columns: str | None = Query(None, description="comma-separated columns (default: all)"),
                simplify: float | None = Query(None, ge=0, description="outline tolerance, grid CRS units")) -> dict:
        try:
            numbers = [float(v) for v in bbox.split(",")]
        except ValueError:
            raise QueryError(f"bbox {bbox!r}: expected four numbers minx,miny,maxx,maxy") from None
        grid_bbox = bbox_to_grid(numbers, svc.ws.grid.crs, bbox_crs)
        cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
        page = svc.require_store().in_bbox(grid_bbox, limit=limit, offset=offset, columns=cols, simplify=simplify)
        out = page.to_geojson(crs=svc.crs_label)
        if page.next_offset is not None:
            out["links"] = [{"rel": "next", "type": "application/geo+json",
                             "href": str(request.url.include_query_params(offset=page.next_offset))}]
        return out

    @app.get("/api/parcel-at", summary="The parcel containing a point (grid CRS unless crs is given)")
    def parcel_at(x: float, y: float, crs: str | None = Query(None)) -> dict:
        gx, gy, _, _ = bbox_to_grid([x, y, x, y], svc.ws.grid.crs, crs)
        feature = svc.require_store().at(gx, gy)
        if feature is None:
            return _error(404, "no_parcel_here", f"no parcel at ({x}, {y})")
        feature["catalogue"] = svc.ws.parcel_catalogue(feature["properties"])
        return feature

    @app.post("/api/site", summary="Value lost if a footprint is built (by product), from the per-pixel rasters")
    def site(footprint: dict = Body(..., openapi_examples=_SITE_EXAMPLES,
                                    description="GeoJSON Feature / FeatureCollection / Polygon"),
             crs: str | None = Query(None, description="CRS of the coordinates (overrides the crs member)"),
             geometry: bool = Query(False, description="echo the footprint (grid CRS) in the answer")) -> dict:
        valuer = svc.require_valuer()
        fp = valuer.footprint(footprint, crs=crs)
        return valuer.value(fp).to_dict(geometry=geometry)

    @app.post("/api/compare", summary="Rank candidate sites by GEP lost (least first)")
    def compare(sites: dict = Body(..., description="FeatureCollection: one feature per candidate site "
                                                    "(name in properties.name)"),
                crs: str | None = Query(None, description="CRS of the coordinates")) -> dict:
        valuer = svc.require_valuer()
        fps = footprints_from_collection(sites, svc.ws.grid.crs, crs=crs, max_area_ha=svc.max_area_ha)
        for fp in fps:
            valuer.clip(fp)  # refuse a site outside the region before valuing any
        ranked = valuer.compare(fps)
        return {"ranking": ranking_table(ranked), "sites": [r.to_dict() for r in ranked]}

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
