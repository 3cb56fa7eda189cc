"""HTTP API and map page for planners (FastAPI): parcel by id, parcels by bbox (paged
GeoJSON), the parcel at a point, the value a footprint would take away, and the ranking of
candidate sites; the per-pixel layers of every product (legend, PNG of a view, XYZ tiles, via
rio-tiler), the zone sets and a printable site report (项目立项). OpenAPI docs at ``/docs`` and
``/redoc`` from assets shipped with the ``fastapi-offline`` package (nothing from a CDN); the
map page at ``/``.

Thin over :mod:`ecoraster.query`: every endpoint is one library call. Every 4xx answers
``{"error": <code>, "message": <one line>}`` (validation errors add ``details``): 404 unknown
parcel / layer / route, 422 refused footprint (``invalid_geometry``, ``not_polygon``,
``bad_geojson``, ``unknown_crs``, ``outside_region``, ``too_large``, ``partly_outside`` — less
than ``min_coverage`` of it has data; its ``details`` give the share) or invalid parameters
(``invalid_request``), 400 other bad queries.

A footprint partly outside the data (outside the grid or over nodata) is valued over its
covered part by default: the answer carries ``covered_share`` (0..1), ``covered_area_m2`` and
a ``warning``; ``?min_coverage=1`` refuses it instead (any share 0..1).

Endpoints are plain functions run in the server's thread pool; the site valuer is shared by
those threads (pooled open rasters, one cache of decoded blocks, coverage without the GIL:
:mod:`ecoraster.query.rasters`). ``eco serve --workers N`` runs N processes, each building its
app with :func:`app_from_env`.

Run with ``eco serve -w WORKSPACE`` or ``uvicorn`` on ``create_app(workspace)``.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Body, FastAPI, Path as PathParam, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import EcorasterError, FootprintError, ParcelNotFoundError, QueryError
from ..query.workspace import names_of
from ..query import DEFAULT_MAX_AREA_HA, DEFAULT_MIN_COVERAGE, ParcelStore, RunWorkspace, SiteValuer, ranking_table
from ..query.footprint import bbox_to_grid, footprints_from_collection, normalise_crs
from ..query.layers import LayerNotFoundError, MapLayers, dedupe_breaks, zone_sets, zones_geojson
from ..query.report import site_report_html

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


_MIN_COVERAGE = Query(DEFAULT_MIN_COVERAGE, ge=0.0, le=1.0,
                      description="refuse (422 partly_outside) a footprint with less than this share of its "
                                  "area over data (0..1); default 0: value the covered part, with a warning")


class QueryService:
    """What the app holds for one run: workspace, parcel store, site valuer."""

    def __init__(self, workspace: str | os.PathLike, *, year: int | None = None,
                 max_area_ha: float | None = DEFAULT_MAX_AREA_HA, in_memory: bool = True):
        self.ws = RunWorkspace.open(workspace, year)
        self.store = ParcelStore(self.ws.parcels_path, in_memory=in_memory) if self.ws.parcels_path else None
        self.valuer = SiteValuer(self.ws, self.store, max_area_ha=max_area_ha) if self.ws.layers else None
        self.map_layers = MapLayers(self.ws)
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
        from ..query.footprint import as_pyproj_crs, transformer

        label, target = normalise_crs(crs, self.ws.grid.crs, "crs")
        if target is as_pyproj_crs(self.ws.grid.crs):
            return feature
        import numpy as np
        import shapely

        tr = transformer(self.ws.grid.crs, target)
        geom = shapely.geometry.shape(feature["geometry"])
        geom = shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
        return {**feature, "geometry": shapely.geometry.mapping(geom)}


#: Content-Security-Policy of every HTML page: scripts, styles, images and workers from this
#: server only (inline code and data:/blob: URLs of the pages themselves allowed). Redoc's
#: bundle asks a CDN for its logo: the browser refuses that, so nothing leaves the machine.
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' blob:; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; worker-src 'self' blob:; font-src 'self' data:; connect-src 'self'")


def _error(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    content: dict[str, Any] = {"error": code, "message": message}
    if details is not None:
        content["details"] = details
    return JSONResponse(status_code=status, content=content)


#: Error codes of plain HTTP errors (unknown route, wrong method …).
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 413: "too_large"}


def _validation_message(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    details = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", "")} for e in exc.errors()]
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(first["loc"]) or "request"
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return f"{where}: {first['msg']}{more}", details


def _parse_bbox(bbox: str) -> list[float]:
    try:
        numbers = [float(v) for v in bbox.split(",")]
    except ValueError:
        raise QueryError(f"bbox {bbox!r}: expected four numbers minx,miny,maxx,maxy") from None
    if len(numbers) != 4:
        raise QueryError(f"bbox {bbox!r}: expected four numbers minx,miny,maxx,maxy")
    return numbers


def create_app(workspace: str | os.PathLike, *, year: int | None = None,
               max_area_ha: float | None = DEFAULT_MAX_AREA_HA, in_memory: bool = True) -> FastAPI:
    """The API + map page for the run in ``workspace`` (opened once, at start-up)."""
    svc = QueryService(workspace, year=year, max_area_ha=max_area_ha, in_memory=in_memory)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        if svc.valuer is not None:  # the valuer's open rasters and cached blocks
            svc.valuer.close()

    app = FastAPIOffline(
        lifespan=lifespan,
        redoc_url=None,  # our own /redoc below: the same assets, with a CSP
        title="ecoraster GEP queries",
        description=(f"Parcel values and project siting for **{svc.ws.region}** {svc.ws.year} "
                     f"(prices of {svc.ws.price_year}). Geometries are in the grid CRS {svc.crs_label} "
                     "unless a `crs` is given; footprints may come in EPSG:4326, EPSG:4490 or the grid CRS."),
        version="1",
    )
    app.state.service = svc

    @app.middleware("http")
    async def _csp(request: Request, call_next):
        response = await call_next(request)
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers["Content-Security-Policy"] = CSP
        return response

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        from fastapi.openapi.docs import get_redoc_html

        return get_redoc_html(openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} - ReDoc",
                              redoc_js_url="/static-offline-docs/redoc.standalone.js", with_google_fonts=False,
                              redoc_favicon_url="/static-offline-docs/favicon.png")

    @app.exception_handler(FootprintError)
    async def _footprint_error(request: Request, exc: FootprintError) -> JSONResponse:
        return _error(422, exc.reason, str(exc), getattr(exc, "details", None))

    @app.exception_handler(ParcelNotFoundError)
    async def _not_found(request: Request, exc: ParcelNotFoundError) -> JSONResponse:
        return _error(404, "parcel_not_found", f"no parcel with parcel_id {exc.parcel_id!r}")

    @app.exception_handler(LayerNotFoundError)
    async def _no_layer(request: Request, exc: LayerNotFoundError) -> JSONResponse:
        return _error(404, "layer_not_found", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, details = _validation_message(exc)
        return _error(422, "invalid_request", message, details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such path {request.url.path!r} (see /docs)"
        return _error(exc.status_code, code, message)

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
        row = cur.execute(f'SELECT quantile_cont("{column}", ?), min("{column}") FROM parcels '
                          f'WHERE "{column}" IS NOT NULL', [qs]).fetchone()
        lowest = row[1]
        # equal quantiles (many parcels with the same value) would give classes with the same
        # bounds: each bound is kept once, at 3 significant digits
        out = {"column": column, "units": svc.ws.units.get(column), "breaks": dedupe_breaks(row[0] or []),
               "min": lowest, "has_negative": bool(lowest is not None and lowest < 0)}
        code = column.rsplit("_", 1)[0] if column.endswith(("_value", "_qty")) else None
        if code:
            out.update({k: v for k, v in names_of(code).items()})
        return out

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
             geometry: bool = Query(False, description="echo the footprint (grid CRS) in the answer"),
             min_coverage: float = _MIN_COVERAGE) -> dict:
        valuer = svc.require_valuer()
        fp = valuer.footprint(footprint, crs=crs)
        return valuer.value(fp, min_coverage=min_coverage).to_dict(geometry=geometry)

    @app.post("/api/compare", summary="Rank candidate sites by GEP lost (least first)")
    def compare(sites: dict = Body(..., description="FeatureCollection: one feature per candidate site "
                                                    "(name in properties.name)"),
                crs: str | None = Query(None, description="CRS of the coordinates"),
                min_coverage: float = _MIN_COVERAGE) -> dict:
        valuer = svc.require_valuer()
        fps = footprints_from_collection(sites, svc.ws.grid.crs, crs=crs, max_area_ha=svc.max_area_ha)
        for fp in fps:
            valuer.clip(fp)  # refuse a site outside the region before valuing any
        ranked = valuer.compare(fps, min_coverage=min_coverage)
        return {"ranking": ranking_table(ranked), "sites": [r.to_dict() for r in ranked]}

    @app.get("/api/layers", summary="Per-pixel map layers: every product's value and quantity, names, units")
    def layers() -> dict[str, Any]:
        return {"layers": svc.map_layers.describe(),
                "zone_sets": [{"id": z, "title": zones_title(z)} for z in zone_sets(svc.ws)]}

    def zones_title(name: str) -> str:
        from ..query.layers import ZONE_LABELS

        return ZONE_LABELS.get(name, name)

    @app.get("/api/layers/{layer_id}/legend", summary="Classes (colours, bounds, units) and notes of a layer")
    def layer_legend(layer_id: str = PathParam(..., description="<product>.<value|physical>"),
                     classes: int = Query(7, ge=2, le=7)) -> dict[str, Any]:
        return svc.map_layers.legend(layer_id, classes)

    @app.get("/api/layers/{layer_id}/image.png", summary="A layer drawn over a bbox of the grid CRS (PNG)",
             response_class=Response, responses={200: {"content": {"image/png": {}}}})
    def layer_image(layer_id: str, bbox: str = Query(..., description="minx,miny,maxx,maxy in the grid CRS"),
                    width: int = Query(512, ge=1, le=4096), height: int = Query(512, ge=1, le=4096)) -> Response:
        png = svc.map_layers.render(layer_id, _parse_bbox(bbox), width, height)
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @app.get("/api/tiles/{layer_id}/{z}/{x}/{y}.png", summary="XYZ tile (Web Mercator, 256 px) of a layer",
             response_class=Response, responses={200: {"content": {"image/png": {}}}})
    def layer_tile(layer_id: str, z: int = PathParam(..., ge=0, le=24), x: int = PathParam(..., ge=0),
                   y: int = PathParam(..., ge=0)) -> Response:
        png = svc.map_layers.tile(layer_id, z, x, y)
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @app.get("/api/zones/{zone_set}", summary="A zone set (districts, townships, wetland units) as GeoJSON")
    def zones(zone_set: str, simplify: float = Query(0.0, ge=0, description="tolerance, grid CRS units")) -> dict:
        out = zones_geojson(svc.ws, zone_set, simplify)
        return {**out, "crs": {"type": "name", "properties": {"name": svc.crs_label}}}

    @app.post("/api/report", summary="Printable site report (项目立项) for footprints: HTML",
              response_class=HTMLResponse)
    def report(sites: dict = Body(..., description="Feature (the proposed site) or FeatureCollection "
                                                   "(proposed site first, then the candidates)"),
               crs: str | None = Query(None, description="CRS of the coordinates")) -> HTMLResponse:
        valuer = svc.require_valuer()
        fc = sites if sites.get("type") == "FeatureCollection" else {"type": "FeatureCollection",
                                                                      "features": [sites], **(
            {"crs": sites["crs"]} if "crs" in sites else {})}
        fps = footprints_from_collection(fc, svc.ws.grid.crs, crs=crs, max_area_ha=svc.max_area_ha)
        results = [valuer.value(fp) for fp in fps]
        return HTMLResponse(site_report_html(svc.map_layers, results))

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


#: Environment variable through which ``eco serve --workers N`` hands each worker process its
#: run: JSON ``{"workspace": path, "max_area_ha": float | null}``.
SERVE_ENV = "ECORASTER_SERVE"


def app_from_env() -> FastAPI:
    """The app of the run named by :data:`SERVE_ENV` (uvicorn's factory for several workers)."""
    import json

    raw = os.environ.get(SERVE_ENV)
    if not raw:
        raise QueryError(f"environment variable {SERVE_ENV} is not set (start the server with eco serve)")
    spec = json.loads(raw)
    return create_app(spec["workspace"], max_area_ha=spec.get("max_area_ha", DEFAULT_MAX_AREA_HA))
