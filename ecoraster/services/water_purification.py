"""Water purification (水质净化): pollutant removed by wetlands and water bodies, t per pixel per year.

The national guides' method (gep-methods.md §3.7): Q_j = min(Σ_i q_ij × A_i, L_j) for COD, NH₃-N
(or TN) and TP, with q_ij the removal capacity of wetland / water type i (t km⁻² a⁻¹,
``water_purification_capacity.csv``) and L_j the pollutant load (point plus non-point sources, t/a)
of the accounting unit the load statistics belong to (a district or township table, with the
units layer; or one figure for the whole run region).

Two passes, as air_purification's capacity method: (1) Σ capacity per unit and pollutant in
float64; the unit's allocation factor is min(capacity, load) / capacity; (2) each pixel's capacity ×
its unit's factor, so the pixels (and any parcels covering them) sum to the unit's purified amount.
Pixels outside every unit get 0 (no load is known there; their capacity is reported). A unit without
a load row is left uncapped and listed. Eco-compensation for cross-boundary sections
(gep-methods.md §5) is a different thing and is not computed here.

Outputs: ``water_<pollutant>_removed.tif`` (t per pixel, products ``water_purification_<pollutant>``)
and ``water_<pollutant>_capacity.tif`` (uncapped capacity, intermediate).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from ..context import ServiceContext
from ..engine import block_chunk, map_blocks, reduce_blocks
from ..errors import EcorasterError, TableError
from ..kernels.casa import build_row_index
from ..kernels.wetland import cap_factors, capacity_capped, capacity_unit_sums
from ..resources import config_path
from ..spec import InputSpec, Issue, MethodSpec, OutputSpec, ParameterSpec, ServiceResult, ServiceSpec, When
from ..tables import lookup_arrays, numeric_column, read_table, require_columns

CONSTANTS_TABLE = "water_purification.yaml"
CAPACITY_TABLE = "water_purification_capacity.csv"
NODATA = -9999.0
POLLUTANTS = {"cod": ("COD", "cod_t_km2_a"), "nh3n": ("NH3-N", "nh3n_t_km2_a"), "tn": ("TN", "tn_t_km2_a"),
              "tp": ("TP", "tp_t_km2_a")}
PARAMETERS = (
    ParameterSpec(id="pollutants", type="list", table=CONSTANTS_TABLE),
    ParameterSpec(id="load_cap", type="bool", table=CONSTANTS_TABLE),
    ParameterSpec(id="unit_id_field", type="string", table=CONSTANTS_TABLE),
)

SPEC = ServiceSpec(
    id="water_purification",
    name="Water purification",
    name_zh="水质净化",
    about="COD, NH3-N / TN and TP removed by wetlands and water bodies: capacity per type × area, capped at the "
          "pollutant load of the accounting unit and allocated back to pixels by capacity.",
    category="调节服务",
    methods=(
        MethodSpec(id="capacity", about="capacity per class × area, capped at each accounting unit's load and "
                                        "allocated back to the pixels by capacity",
                   required_inputs=("ecosystem",),
                   optional_inputs=("loads", "units", *(f"load_{p}" for p in POLLUTANTS), "capacity_table"),
                   parameters=tuple(p.id for p in PARAMETERS),
                   outputs=(*POLLUTANTS, *(f"capacity_{p}" for p in POLLUTANTS)),
                   created_if={**{p: When(contains={"pollutants": p}) for p in POLLUTANTS},
                               **{f"capacity_{p}": When(contains={"pollutants": p}) for p in POLLUTANTS}}),
    ),
    reference="gep-methods.md §3.7 (Q_j = min(Σ q_ij A_i, L_j)); allocation as gep-methods §9 (region-capped services)",
    inputs=(
        InputSpec(id="ecosystem", kind="raster", about="GEP ecosystem classes (configs/classes)", units="class",
                  categorical=True, resampling="mode"),
        InputSpec(id="loads", kind="table", required=False,
                  about="pollutant loads (point + non-point sources): unit_id, pollutant (cod|nh3n|tn|tp), load_t",
                  columns={"unit_id": "-", "pollutant": "-", "load_t": "t/yr"}),
        InputSpec(id="units", kind="vector", required=False,
                  about="accounting units the loads belong to (field params.unit_id_field); none = the whole run region"),
        *[InputSpec(id=f"load_{p}", kind="scalar", units="t/yr", required=False,
                    about=f"{name} load of the whole run region (when there is no units layer; overrides the table)")
          for p, (name, _c) in POLLUTANTS.items()],
        InputSpec(id="capacity_table", kind="table", required=False,
                  about="capacity per class, t/km²/a (default configs/parameters/water_purification_capacity.csv)"),
    ),
    parameters=PARAMETERS,
    outputs=(
        *[OutputSpec(id=p, filename=f"water_{p}_removed.tif", units="t", per="pixel", nodata=NODATA,
                     product=f"water_purification_{p}", values="per_class",
                     about=f"{name} removed in the year (capacity capped by the unit's load), per pixel")
          for p, (name, _c) in POLLUTANTS.items()],
        *[OutputSpec(id=f"capacity_{p}", filename=f"water_{p}_capacity.tif", units="t", per="pixel", nodata=NODATA,
                     kind="intermediate", values="per_class",
                     about=f"{name} purification capacity of the year before the load cap, per pixel")
          for p, (name, _c) in POLLUTANTS.items()],
    ),
)


def _const(ctx: ServiceContext, name: str) -> Any:
    return ctx.param(name)


def pollutants(ctx: ServiceContext) -> list[str]:
    chosen = [str(p).strip().lower() for p in (_const(ctx, "pollutants") or [])]
    bad = [p for p in chosen if p not in POLLUTANTS]
    if bad or not chosen:
        raise TableError(f"water_purification: params.pollutants = {chosen!r}; use some of {', '.join(POLLUTANTS)}")
    return chosen


def capacity_table(ctx: ServiceContext, pids: list[str]) -> tuple[str, np.ndarray, np.ndarray]:
    """(source, codes, q in t per m² per year (n, len(pids)))."""
    if ctx.has("capacity_table"):
        source, df = ctx.entry("capacity_table").uri, ctx.table("capacity_table")
    else:
        path = config_path("parameters", CAPACITY_TABLE)
        source, df = str(path), read_table(path, field="water_purification.capacity_table")
    codes, values = lookup_arrays(df, "code", [POLLUTANTS[p][1] for p in pids], source)
    if (values < 0).any():
        raise TableError(f"{source}: capacities must be ≥ 0")
    return source, codes, np.ascontiguousarray(values / 1e6)


def _units(ctx: ServiceContext):
    import geopandas as gpd

    e = ctx.entry("units")
    gdf = gpd.read_file(e.uri, layer=e.layer)
    if gdf.crs is None and e.crs:
        gdf = gdf.set_crs(e.crs)
    field = str(_const(ctx, "unit_id_field"))
    if field not in gdf.columns:
        raise TableError(f"{e.uri}: no field {field!r} (params.unit_id_field; fields: {', '.join(gdf.columns)})")
    return gdf.reset_index(drop=True), gdf[field].astype(str).tolist()


def loads(ctx: ServiceContext, unit_ids: list[str], pids: list[str]) -> np.ndarray:
    """Load (t/yr) per unit × pollutant; NaN where none is given. ``unit_ids`` is ['region']
    without a units layer: then the scalars, or the table's single row per pollutant, apply."""
    out = np.full((len(unit_ids), len(pids)), np.nan)
    if ctx.has("loads"):
        src, df = ctx.entry("loads").uri, ctx.table("loads")
        require_columns(df, ["unit_id", "pollutant", "load_t"], src)
        values = numeric_column(df, "load_t", src)
        if (values < 0).any():
            row = int(np.flatnonzero(values < 0)[0])
            raise TableError(f"{src}: load_t row {row + 2} = {values[row]!r} is negative")
        polls = df["pollutant"].astype(str).str.strip().str.lower().tolist()
        units = df["unit_id"].astype(str).str.strip().tolist()
        for i, (u, p) in enumerate(zip(units, polls)):
            if p not in POLLUTANTS:
                raise TableError(f"{src}: row {i + 2}: pollutant = {p!r}; use one of {', '.join(POLLUTANTS)}")
            if p not in pids:
                continue
            k = 0 if not ctx.has("units") else (unit_ids.index(u) if u in unit_ids else -1)
            if k < 0:
                raise TableError(f"{src}: row {i + 2}: unit_id {u!r} is not in {ctx.entry('units').uri}")
            if np.isfinite(out[k, pids.index(p)]):
                raise TableError(f"{src}: row {i + 2}: unit {u!r} × {p} appears twice"
                                 + ("" if ctx.has("units") else " (no units layer: one row per pollutant)"))
            out[k, pids.index(p)] = values[i]
    if not ctx.has("units"):
        for j, p in enumerate(pids):
            if ctx.has(f"load_{p}"):
                out[0, j] = ctx.scalar(f"load_{p}")
    return out


def validate(ctx: ServiceContext) -> list[Issue]:
    """Inputs, constants, capacity table and class codes, loads and units. Never raises."""
    key = ("services", SPEC.id)
    issues = ctx.validate_inputs()
    if issues:
        return issues
    try:
        pids = pollutants(ctx)
        if "nh3n" in pids and "tn" in pids:
            issues.append(Issue((*key, "params", "pollutants"), "NH3-N is part of TN: account one of nh3n and tn"))
        capacity_table(ctx, pids)
        unit_ids = _units(ctx)[1] if ctx.has("units") else ["region"]
        table = loads(ctx, unit_ids, pids)
        if _const(ctx, "load_cap") and not np.isfinite(table).any():
            issues.append(Issue((*key, "inputs", "loads"),
                                "load_cap needs pollutant loads: a loads table (with units) or load_<pollutant> "
                                "scalars (or params.load_cap: false to report the uncapped capacity)"))
    except EcorasterError as exc:
        issues.append(Issue((*key, "inputs"), str(exc)))
    return issues


def _capped_block(cls_b, uidx_b, *, row_area_m2, class_nodata, row_of_code, q_col, factor):
    out = np.empty(cls_b.shape, dtype=np.float32)
    capacity_capped(cls_b, class_nodata, row_of_code, q_col, uidx_b, factor, row_area_m2, np.float32(NODATA), out)
    return out


def _unit_sums_block(cls_b, uidx_b, *, row_area_m2, class_nodata, row_of_code, q, n_units):
    return capacity_unit_sums(cls_b, class_nodata, row_of_code, q, uidx_b, row_area_m2, n_units)


def unit_capacity(classes: da.Array, uidx: da.Array, class_nodata: int, row_of_code: np.ndarray, q: np.ndarray,
                  n_units: int, grid) -> np.ndarray:
    """Pass 1: Σ capacity (t/yr, float64) per unit (+ a last row: outside every unit) × pollutant; one
    partial sum per block, summed by a dask tree reduction (blocks are read and dropped one by one)."""
    return reduce_blocks(_unit_sums_block, classes, uidx, grid=grid, shape=(n_units + 1, q.shape[1]),
                         class_nodata=class_nodata, row_of_code=row_of_code, q=q, n_units=n_units).compute()


def compute(ctx: ServiceContext) -> ServiceResult:
    """Capacity per unit → load cap → capped purification allocated to pixels by capacity."""
    from ..allocation import unit_index

    pids = pollutants(ctx)
    source, codes, q = capacity_table(ctx, pids)
    row_of_code = build_row_index(codes)
    # per block: int64 classes, int32 units and two float32 outputs per pollutant
    chunk = block_chunk(2 * len(pids) + 3, ctx.chunk)
    classes, class_nodata = ctx.class_array("ecosystem", chunk)
    if ctx.has("units"):
        units, unit_ids = _units(ctx)
        uidx = unit_index(units, ctx.grid, chunk)
        where = f"units {Path(ctx.entry('units').uri).name} ({len(unit_ids)})"
    else:
        unit_ids = ["region"]
        uidx = da.zeros(classes.shape, dtype=np.int32, chunks=classes.chunks)
        where = "the whole run region"
    if uidx.chunks != classes.chunks:
        uidx = uidx.rechunk(classes.chunks)
    n = len(unit_ids)
    cap = unit_capacity(classes, uidx, class_nodata, row_of_code, q, n, ctx.grid)  # (n + 1, P), t/yr
    load = loads(ctx, unit_ids, pids) if _const(ctx, "load_cap") else np.full((n, len(pids)), np.nan)
    outputs: dict[str, Any] = {}
    summary: dict[str, dict[str, Any]] = {}
    for j, p in enumerate(pids):
        factor = np.append(cap_factors(cap[:n, j], load[:, j]), 0.0)  # outside every unit: 0
        kw = {"class_nodata": class_nodata, "row_of_code": row_of_code, "q_col": np.ascontiguousarray(q[:, j])}
        outputs[p] = map_blocks(_capped_block, classes, uidx, grid=ctx.grid, dtype=np.float32, factor=factor, **kw)
        outputs[f"capacity_{p}"] = map_blocks(_capped_block, classes, uidx, grid=ctx.grid, dtype=np.float32,
                                              factor=np.append(np.ones(n), 0.0), **kw)
        purified = cap[:n, j] * factor[:n]
        summary[p] = {
            "units": [{"unit_id": u, "capacity_t": float(cap[k, j]), "load_t": None if not np.isfinite(load[k, j])
                       else float(load[k, j]), "purified_t": float(purified[k]),
                       "cap_binding": bool(np.isfinite(load[k, j]) and load[k, j] < cap[k, j])}
                      for k, u in enumerate(unit_ids)],
            "capacity_t": float(cap[:n, j].sum()), "purified_t": float(purified.sum()),
            "capacity_outside_units_t": float(cap[n, j]),
        }
    records = ctx.write(outputs, tags={"method": "capacity"})
    result = ServiceResult(service=SPEC.id, outputs=records)
    for oid, rec in records.items():
        result.totals[f"{oid}_total"] = (rec.total, "t")
    for p, s in summary.items():
        binding = sum(u["cap_binding"] for u in s["units"])
        uncapped = [u["unit_id"] for u in s["units"] if u["load_t"] is None]
        result.notes.append(f"{POLLUTANTS[p][0]}: capacity {s['capacity_t']:.6g} t/yr over {where}; load cap binding "
                            f"in {binding} of {len(s['units'])} unit(s); purified {s['purified_t']:.6g} t/yr, "
                            "allocated to pixels by capacity")
        if uncapped and _const(ctx, "load_cap"):
            result.notes.append(f"{POLLUTANTS[p][0]}: no load for unit(s) {', '.join(uncapped[:10])}: left uncapped")
        if s["capacity_outside_units_t"] > 0:
            result.notes.append(f"{POLLUTANTS[p][0]}: capacity {s['capacity_outside_units_t']:.6g} t/yr outside every "
                                "unit is not counted (no load known there)")
    result.notes.append(f"capacities: {Path(source).name} (✱ placeholders unless replaced — see the table header)")
    result.metadata.update({
        "method": "capacity", "profile": ctx.profile, "pollutants": pids, "capacity_table": source,
        "region": where, "cap": summary, "chunk": chunk, "constants": ctx.parameters_used(),
        "price_units": {f"water_purification_{p}": "CNY/t" for p in pids},
    })
    return ctx.checked(result)
