"""Flood regulation (洪水调蓄): flood storage of lakes, reservoirs and marshes, m³ per pixel.

Accounted per water body (``ecoraster.waterbodies``: connected patches of the land cover's water
and wetland classes, overridden or merged by an analyst's named bodies), then spread over each
body's pixels in proportion to pixel area, so zonal sums, parcels and footprints work as for every
other product (gep-methods.md §3.4, after 饶恩明 et al. 2014 and the 甘孜 2017 case study):

- lake: C = e^a · A^b · T (10⁴ m³; A km² at normal water level — the analyst's ``area_km2`` when
  given, else the body's pixel area; (a, b) by lake region, ``flood_lake_regression.csv``)
- reservoir: C = 0.35 × total storage capacity (``capacity_m3`` of the named bodies); a
  reservoir without a capacity is accounted with the lake formula and listed in the notes
- marsh and pond: C = S × H (H = 0.3 m effective detention) + S × soil depth × (θs − θ) (off
  by default)
- river: 0 (conveyance), unless ``count_rivers`` (then the lake formula)

Outputs: ``flood_storage.tif`` (m³ per pixel, product ``flood_regulation``, priced at the
reservoir construction cost), ``water_body_id.tif`` (body id per pixel) and the bodies layer
``water_bodies.parquet`` / ``.gpkg`` (id, name, type, area, method, storage, the zones they
fall in).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd

from .. import waterbodies as wb
from ..context import ServiceContext
from ..engine import map_blocks
from ..errors import EcorasterError, TableError
from ..kernels.wetland import (
    lake_storage_m3,
    marsh_storage_m3,
    reservoir_storage_m3,
    spread_by_index,
)
from ..resources import config_path
from ..spec import InputSpec, Issue, MethodSpec, OutputSpec, ParameterSpec, ServiceResult, ServiceSpec
from ..tables import numeric_column, read_table, require_columns

CONSTANTS_TABLE = "flood_regulation.yaml"
LAKE_TABLE = "flood_lake_regression.csv"
NODATA = -9999.0

PARAMETERS = (
    ParameterSpec(id="body_class_types", type="mapping", table=CONSTANTS_TABLE),
    ParameterSpec(id="min_area_km2", type="number", minimum=0.0, table=CONSTANTS_TABLE),
    ParameterSpec(id="lake_region", type="string", table=CONSTANTS_TABLE),
    ParameterSpec(id="turnovers_per_year", type="number", minimum=0.0, table=CONSTANTS_TABLE),
    ParameterSpec(id="reservoir_factor", type="number", minimum=0.0, maximum=1.0, table=CONSTANTS_TABLE),
    ParameterSpec(id="detention_depth_m", type="number", minimum=0.0, table=CONSTANTS_TABLE),
    ParameterSpec(id="soil_depth_m", type="number", minimum=0.0, table=CONSTANTS_TABLE),
    ParameterSpec(id="theta_saturated", type="number", minimum=0.0, maximum=1.0, table=CONSTANTS_TABLE),
    ParameterSpec(id="theta_field", type="number", minimum=0.0, maximum=1.0, table=CONSTANTS_TABLE),
    ParameterSpec(id="count_rivers", type="bool", table=CONSTANTS_TABLE),
    ParameterSpec(id="zone_field", type="string", table=CONSTANTS_TABLE),
)

SPEC = ServiceSpec(
    id="flood_regulation",
    name="Flood regulation",
    name_zh="洪水调蓄",
    about="Flood storage of lakes (regional area regression), reservoirs (0.35 × capacity) and marshes "
          "(area × detention depth), per water body, spread over the body's pixels by area.",
    category="调节服务",
    methods=(
        MethodSpec(id="storage", about="storage per water body (lake regression, reservoir capacity, marsh detention) "
                                       "spread over the body's pixels by area",
                   required_inputs=("ecosystem",),
                   optional_inputs=("bodies", "named_bodies", "zones", "lake_regression"),
                   parameters=tuple(p.id for p in PARAMETERS),
                   outputs=("flood_storage", "body_id")),
    ),
    reference="gep-methods.md §3.4: 饶恩明 et al. 2014 (生态学报 34(21)); 甘孜 2017 (生态学报 37(19))",
    inputs=(
        InputSpec(id="ecosystem", kind="raster", about="GEP ecosystem classes (configs/classes)", units="class",
                  categorical=True, resampling="mode"),
        InputSpec(id="bodies", kind="vector", required=False,
                  about="analyst's named water bodies as polygons: name, type (lake|reservoir|marsh|river|pond), "
                        "capacity_m3 (total storage, reservoirs), area_km2 (normal water-level area); override and "
                        "merge the derived patches they cover"),
        InputSpec(id="named_bodies", kind="table", required=False,
                  about="analyst's named water bodies as points: name, type, x, y (grid CRS, or a crs column), "
                        "capacity_m3, area_km2; rename / retype the derived body holding each point",
                  columns={"x": "grid CRS", "y": "grid CRS", "capacity_m3": "m3", "area_km2": "km2"}),
        InputSpec(id="zones", kind="vector", required=False,
                  about="zones listed in each body's `zones` field (districts, townships; field params.zone_field)"),
        InputSpec(id="lake_regression", kind="table", required=False,
                  about="lake regression (a, b) by region (default configs/parameters/flood_lake_regression.csv)",
                  columns={"region": "-", "a": "1", "b": "1"}),
    ),
    parameters=PARAMETERS,
    outputs=(
        OutputSpec(id="flood_storage", filename="flood_storage.tif", units="m3", per="pixel", nodata=NODATA,
                   product="flood_regulation", values="per_class",
                   about="flood storage of the water body spread over its pixels by area (m³ per pixel)"),
        OutputSpec(id="body_id", filename="water_body_id.tif", units="1", per="state", kind="intermediate",
                   dtype="int32", nodata=-1, values="per_class",
                   about="water body id of each pixel (water_bodies.gpkg body_id), −1 for none"),
    ),
)


def _const(ctx: ServiceContext, name: str) -> Any:
    return ctx.param(name)


def class_types(ctx: ServiceContext) -> dict[int, str]:
    """Class code → body type for this run (keys may come as strings from YAML)."""
    raw = _const(ctx, "body_class_types") or {}
    try:
        return {int(k): str(v).strip().lower() for k, v in dict(raw).items()}
    except (TypeError, ValueError):
        raise TableError(f"flood_regulation: params.body_class_types = {raw!r}: expected class code → type") from None


def lake_coefficients(ctx: ServiceContext) -> tuple[float, float, str]:
    """(a, b, source) of the run's lake region."""
    if ctx.has("lake_regression"):
        source, df = ctx.entry("lake_regression").uri, ctx.table("lake_regression")
    else:
        path = config_path("parameters", LAKE_TABLE)
        source, df = str(path), read_table(path, field="flood_regulation.lake_regression")
    require_columns(df, ["region", "a", "b"], source)
    region = str(_const(ctx, "lake_region"))
    rows = df[df["region"].astype(str).str.strip() == region].reset_index(drop=True)
    if len(rows) != 1:
        raise TableError(f"{source}: lake_region {region!r} has {len(rows)} rows "
                         f"(regions: {', '.join(map(str, df['region']))})")
    a, b = numeric_column(rows, "a", source)[0], numeric_column(rows, "b", source)[0]
    conf = str(rows["confidence"].iloc[0]) if "confidence" in rows.columns else ""
    return float(a), float(b), f"{Path(source).name} row {region} (a = {a}, b = {b}) {conf}".strip()


def validate(ctx: ServiceContext) -> list[Issue]:
    """Inputs, constants, class types, lake region, analyst bodies. Never raises."""
    key = ("services", SPEC.id)
    issues = ctx.validate_inputs()
    if issues:
        return issues
    try:
        for code, kind in class_types(ctx).items():
            if kind not in wb.BODY_TYPES:
                issues.append(Issue((*key, "params", "body_class_types"),
                                    f"class {code} → {kind!r}; use one of {', '.join(wb.BODY_TYPES)}"))
        lake_coefficients(ctx)
        if ctx.has("named_bodies"):
            wb.check_analyst(ctx.table("named_bodies"), ctx.entry("named_bodies").uri, points=True)
        if ctx.has("bodies"):
            _analyst_polygons(ctx)
        if ctx.has("zones"):
            zones = _read_vector(ctx, "zones")
            if str(_const(ctx, "zone_field")) not in zones.columns:
                issues.append(Issue((*key, "params", "zone_field"),
                                    f"{ctx.entry('zones').uri} has no field {_const(ctx, 'zone_field')!r}"))
    except EcorasterError as exc:
        issues.append(Issue((*key, "inputs"), str(exc)))
    return issues


def _read_vector(ctx: ServiceContext, input_id: str):
    import geopandas as gpd

    e = ctx.entry(input_id)
    gdf = gpd.read_file(e.uri, layer=e.layer)
    if gdf.crs is None and e.crs:
        gdf = gdf.set_crs(e.crs)
    return gdf


def _analyst_polygons(ctx: ServiceContext):
    gdf = _read_vector(ctx, "bodies")
    checked = wb.check_analyst(pd.DataFrame(gdf.drop(columns="geometry")), ctx.entry("bodies").uri, points=False)
    for col in ("type", "capacity_m3", "area_km2"):
        gdf[col] = checked[col].to_numpy()
    return gdf


def _point_cells(ctx: ServiceContext, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Grid row, col of each analyst point (x, y in the grid CRS, or in the row's ``crs``)."""
    from rasterio.warp import transform as warp

    xs, ys = df["x"].to_numpy(dtype=float).copy(), df["y"].to_numpy(dtype=float).copy()
    if "crs" in df.columns:
        for crs in df["crs"].dropna().unique():
            m = (df["crs"] == crs).to_numpy()
            tx, ty = warp(str(crs), ctx.grid.crs, xs[m].tolist(), ys[m].tolist())
            xs[m], ys[m] = tx, ty
    tr = ctx.grid.transform  # north-up (Grid refuses rotated transforms)
    cols, rows = (xs - tr.c) / tr.a, (ys - tr.f) / tr.e
    return np.floor(rows).astype(np.int64), np.floor(cols).astype(np.int64)


def build_bodies(ctx: ServiceContext) -> tuple[wb.WaterBodies, np.ndarray, int]:
    """Water bodies of the run (derived + analyst), the class array and its nodata."""
    from ..allocation import unit_index

    eco, class_nodata = ctx.class_array("ecosystem")
    classes = np.empty(eco.shape, dtype=np.int32)  # class codes fit int32 (a quarter of the int64 array)
    da.store(eco.astype(np.int32), classes, lock=False)  # block by block into one array (no concatenated copy)
    analyst_index, analyst = None, None
    if ctx.has("bodies"):
        analyst = _analyst_polygons(ctx)
        analyst_index = unit_index(analyst, ctx.grid, ctx.chunk).compute()
    bodies = wb.derive_bodies(classes, class_nodata, class_types(ctx), ctx.grid.row_areas_m2(),
                              min_area_km2=float(_const(ctx, "min_area_km2")), analyst_index=analyst_index,
                              analyst=None if analyst is None else pd.DataFrame(analyst.drop(columns="geometry")))
    del analyst_index
    if ctx.has("named_bodies"):
        src = ctx.entry("named_bodies").uri
        points = wb.check_analyst(ctx.table("named_bodies"), src, points=True)
        if "crs" in ctx.table("named_bodies").columns:
            points["crs"] = ctx.table("named_bodies")["crs"]
        rows, cols = _point_cells(ctx, points)
        wb.apply_points(bodies, points, rows, cols, src)
    return bodies, classes, class_nodata


def body_storage(table: pd.DataFrame, *, a: float, b: float, turnovers: float, reservoir_factor: float,
                 depth_m: float, soil_depth_m: float, theta_s: float, theta: float,
                 count_rivers: bool) -> tuple[np.ndarray, list[str]]:
    """Flood storage (m³, float64) and the method text of every body of ``table``."""
    storage, methods = [], []
    for rec in table.itertuples(index=False):
        area_km2 = rec.area_km2_given if np.isfinite(rec.area_km2_given) else rec.area_m2 / 1e6
        lake = (f"lake: e^{a} × A^{b} × T (A = {area_km2:.6g} km²"
                f"{' given' if np.isfinite(rec.area_km2_given) else ''}, T = {turnovers})")
        if rec.type == "reservoir" and np.isfinite(rec.capacity_m3):
            storage.append(reservoir_storage_m3(rec.capacity_m3, reservoir_factor))
            methods.append(f"reservoir: {reservoir_factor} × total capacity {rec.capacity_m3:.6g} m³")
        elif rec.type in ("lake", "reservoir") or (rec.type == "river" and count_rivers):
            storage.append(lake_storage_m3(area_km2, a, b, turnovers))
            methods.append(lake + (" — reservoir without a capacity" if rec.type == "reservoir" else ""))
        elif rec.type in ("marsh", "pond"):
            storage.append(marsh_storage_m3(area_km2 * 1e6, depth_m, soil_depth_m, theta_s, theta))
            soil = f" + S × {soil_depth_m} m × (θs − θ)" if soil_depth_m > 0 else ""
            methods.append(f"{rec.type}: S × {depth_m} m detention{soil}")
        else:
            storage.append(0.0)
            methods.append("river: conveyance, not counted")
    return np.asarray(storage, dtype=np.float64), methods


def _spread_block(classes: np.ndarray, *, row_area_m2: np.ndarray, window, index: np.ndarray, class_nodata: int,
                  per_m2: np.ndarray) -> np.ndarray:
    (r0, r1), (c0, c1) = window
    out = np.empty(classes.shape, dtype=np.float32)
    spread_by_index(index[r0:r1, c0:c1], classes != class_nodata, per_m2, row_area_m2, np.float32(NODATA), out)
    return out


def _body_id_block(classes: np.ndarray, *, window, index: np.ndarray) -> np.ndarray:
    (r0, r1), (c0, c1) = window
    blk = index[r0:r1, c0:c1]
    return np.where(blk >= 0, blk + 1, -1).astype(np.int32)


def spread_lazy(index: np.ndarray, classes: da.Array, class_nodata: int, per_m2: np.ndarray, grid) -> da.Array:
    """Lazy float32 raster: ``per_m2[body] × pixel area`` (0 off bodies, nodata off data); the body index (in
    memory) is read through a view of each block's window."""
    return map_blocks(_spread_block, classes, grid=grid, window=True, dtype=np.float32, index=index,
                      class_nodata=class_nodata, per_m2=per_m2)


def body_id_lazy(index: np.ndarray, classes: da.Array) -> da.Array:
    """Lazy int32 raster of body ids (1..n, −1 for none)."""
    return map_blocks(_body_id_block, classes, window=True, dtype=np.int32, index=index)


def body_zones(gdf, zones, field: str) -> list[str]:
    """For each body, the ``field`` values of the zones it intersects, joined by '; '."""
    import geopandas as gpd

    zones = zones.to_crs(gdf.crs)
    hits = gpd.sjoin(gdf[["body_id", "geometry"]], zones[[field, "geometry"]], how="left", predicate="intersects")
    listed = hits.groupby("body_id")[field].apply(lambda s: "; ".join(sorted({str(v) for v in s.dropna()})))
    return [listed.get(i, "") for i in gdf["body_id"]]


def compute(ctx: ServiceContext) -> ServiceResult:
    """Bodies → storage per body → m³ per pixel; write the raster and the bodies layer."""
    bodies, classes, class_nodata = build_bodies(ctx)
    del classes  # the writers read the class raster again block by block
    lazy_classes, _ = ctx.class_array("ecosystem")
    a, b, lake_source = lake_coefficients(ctx)
    storage, methods = body_storage(
        bodies.table, a=a, b=b, turnovers=float(_const(ctx, "turnovers_per_year")),
        reservoir_factor=float(_const(ctx, "reservoir_factor")), depth_m=float(_const(ctx, "detention_depth_m")),
        soil_depth_m=float(_const(ctx, "soil_depth_m")), theta_s=float(_const(ctx, "theta_saturated")),
        theta=float(_const(ctx, "theta_field")), count_rivers=bool(_const(ctx, "count_rivers")))
    t = bodies.table
    t["storage_m3"] = storage
    t["method"] = methods
    area = t["area_m2"].to_numpy()
    lost = (area <= 0) & (storage > 0)
    per_m2 = np.where(area > 0, storage / np.where(area > 0, area, 1.0), 0.0)
    flood = spread_lazy(bodies.index, lazy_classes, class_nodata, per_m2, ctx.grid)
    body_id = body_id_lazy(bodies.index, lazy_classes)
    records = ctx.write({"flood_storage": flood, "body_id": body_id}, tags={"method": "storage"})
    del flood, body_id, lazy_classes  # only the body index is needed for the outlines

    gdf = wb.polygons(bodies, ctx.grid.transform, ctx.grid.crs, min_hole_m2=float(_const(ctx, "min_area_km2")) * 1e6)
    gdf["area_km2"] = gdf["area_m2"] / 1e6
    gdf["zones"] = body_zones(gdf, _read_vector(ctx, "zones"), str(_const(ctx, "zone_field"))) \
        if ctx.has("zones") else ""
    columns = ["body_id", "name", "type", "area_km2", "area_km2_given", "capacity_m3", "storage_m3", "method",
               "origin", "class_code", "n_pixels", "zones", "geometry"]
    files = wb.write_bodies(gdf[columns], Path(ctx.out_dir))

    result = ServiceResult(service=SPEC.id, outputs=records)
    result.totals["flood_storage_total"] = (records["flood_storage"].total, "m3")
    result.totals["bodies_storage_total"] = (float(storage.sum()), "m3")
    by_type = t.groupby("type").agg(n=("body_id", "size"), area_km2=("area_m2", lambda s: s.sum() / 1e6),
                                    storage_m3=("storage_m3", "sum"))
    types = class_types(ctx)
    result.notes += bodies.notes + [
        f"{len(t)} water bodies (class types {types}; min area {_const(ctx, 'min_area_km2')} km²): "
        + "; ".join(f"{k} n={int(r.n)} {r.area_km2:.4g} km² {r.storage_m3:.6g} m³" for k, r in by_type.iterrows()),
        f"lake regression {lake_source}",
        ("lake storage may overlap the water conservation of the same lakes (science-review §4): the profile decides "
        "whether both count"),
        f"water bodies layer: {Path(files['gpkg']).name} / {Path(files['parquet']).name}",
    ]
    no_cap = t[(t["type"] == "reservoir") & ~np.isfinite(t["capacity_m3"])]
    if len(no_cap):
        result.notes.append(f"{len(no_cap)} reservoir(s) without a total capacity accounted with the lake formula: "
                            + ", ".join(no_cap["name"].head(10)))
    if lost.any():
        result.notes.append(f"{int(lost.sum())} analyst bod(ies) have no water pixel on the grid; their storage "
                            f"{storage[lost].sum():.6g} m³ is not in the raster: " + ", ".join(t["name"][lost].head(10)))
    result.metadata.update({
        "method": "storage", "profile": ctx.profile, "water_bodies": files, "class_types": {str(k): v for k, v in types.items()},
        "lake_regression": lake_source, "bodies_by_type": by_type.reset_index().to_dict(orient="records"),
        "constants": ctx.parameters_used(), "price_units": {"flood_regulation": "CNY/m3"},
    })
    return ctx.checked(result)
