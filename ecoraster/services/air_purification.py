"""Air purification (空气净化): pollutant removed by vegetation, kg/yr per pixel per pollutant.

Two methods; a run uses one (``method:``), and the two are never summed together.

``deposition`` (default; i-Tree Eco style on gridded monitoring data, gep-methods §4)
    removal = Vd × C × L × t × (1 − resuspension) × pixel area, per pollutant with a
    concentration raster. Particles: L = LAI (Vd per unit leaf area). PM2.5: Vd and
    resuspension by wind class (Nowak et al. 2013 Table 3, wind = round(mean wind speed));
    PM10: Vd 0.0064 m/s with 50 % resuspension (Lovett 1994; Manes et al. 2016); both times the
    class's ``pm_factor`` (grass / crops 0.5 ◐). Gases (SO₂, NO₂, O₃, CO): a CONSTANT
    canopy-level Vd per class (no resistance model yet — flagged in the metadata),
    L = canopy cover 1 − exp(−k LAI). LAI is an input raster, or comes from NDVI by the
    documented relation of ``air_constants.yaml``. t = the hours of the accounting year, or
    ``removal_hours`` (in-leaf season with in-leaf LAI). No emission cap (gep-methods §4:
    a concentration-based flux does not need it).

``capacity`` (national GEP guides, gep-methods §3.6)
    Q_j = min(Σ_i q_ij × A_i, E_j): capacity per class (kg/ha/a, ``air_capacity.csv``) × area,
    capped at the region's emission E_j (t/yr; table or scalar inputs). The cap is applied to
    the regional total (first pass, float64) and allocated back to pixels in proportion to
    their capacity (second pass), so parcel sums add up to the capped total. The region is
    every valid pixel of the run grid. Whether the cap was binding is in ``metadata``.

Outputs are kg per pixel over the accounting year (unit ``kg``: the year is implicit, as valuation
expects); ``product`` codes ``air_purification_<pollutant>`` (deposition NO₂ → ``_no2``, capacity
NOx → ``_nox``). PM2.5 is part
of PM10 and dust (TSP) contains both: value at most one particle size class per run.
"""

from __future__ import annotations

import calendar
from functools import partial
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from ..context import ServiceContext
from ..engine import block_chunk, map_blocks, reduce_blocks
from ..errors import EcorasterError, ServiceError, TableError
from ..grid import align_to
from ..kernels.air import capacity_allocated, capacity_row_sums, deposition
from ..kernels.classes import row_index
from ..kernels.vegetation import lai_from_ndvi
from ..resources import config_path
from ..spec import InputSpec, Issue, MethodSpec, OutputSpec, ParameterSpec, ServiceResult, ServiceSpec, When
from ..tables import check_codes, lookup_arrays, numeric_column, read_table, require_columns, unique_counts

#: The parameter table of this service (values, per-profile values, sources, confidence).
CONSTANTS_TABLE = "air_constants.yaml"
#: Default per-class tables under ``configs/parameters`` (a catalogue table input replaces each).
#: Paths only: nothing is read at import, and ``$ECORASTER_CONFIG_DIR`` is looked up again on use.
DEPOSITION_TABLE = config_path("parameters", "air_deposition_classes.csv", must_exist=False)
PM25_WIND_TABLE = config_path("parameters", "air_pm25_wind.csv", must_exist=False)
CAPACITY_TABLE = config_path("parameters", "air_capacity.csv", must_exist=False)
NODATA = -9999.0

#: Deposition pollutants: output id → (concentration input, kind, kg/m³ per input unit, table column)
DEPOSITION: dict[str, tuple[str, str, float, str]] = {
    "pm25": ("conc_pm25", "pm25", 1e-9, "pm_factor"),
    "pm10": ("conc_pm10", "pm10", 1e-9, "pm_factor"),
    "so2": ("conc_so2", "gas", 1e-9, "so2_vd_cm_s"),
    "no2": ("conc_no2", "gas", 1e-9, "no2_vd_cm_s"),
    "o3": ("conc_o3", "gas", 1e-9, "o3_vd_cm_s"),
    "co": ("conc_co", "gas", 1e-6, "co_vd_cm_s"),
}
#: Capacity pollutants: output id → capacity table column (kg/ha/a)
CAPACITY: dict[str, str] = {"so2": "so2_kg_ha_a", "nox": "nox_kg_ha_a", "dust": "dust_kg_ha_a"}
NAMES = {"pm25": "PM2.5", "pm10": "PM10", "so2": "SO2", "no2": "NO2", "nox": "NOx (as NO2)", "o3": "O3", "co": "CO",
         "dust": "dust (TSP, 滞尘)"}

PARAMETERS = (
    ParameterSpec(id="pm10_vd_m_s", type="number", minimum=0.0, table=CONSTANTS_TABLE),
    ParameterSpec(id="pm10_resuspension", type="number", minimum=0.0, maximum=1.0, table=CONSTANTS_TABLE),
    ParameterSpec(id="removal_hours", type="number", minimum=0.0, exclusive_minimum=True, maximum=8784.0,
                  table=CONSTANTS_TABLE),
    ParameterSpec(id="lai_ndvi_soil", type="number", minimum=-1.0, maximum=1.0, table=CONSTANTS_TABLE),
    ParameterSpec(id="lai_ndvi_veg", type="number", minimum=-1.0, maximum=1.0, table=CONSTANTS_TABLE),
    ParameterSpec(id="lai_extinction_k", type="number", minimum=0.0, exclusive_minimum=True, table=CONSTANTS_TABLE),
    ParameterSpec(id="lai_fvc_max", type="number", minimum=0.0, maximum=0.999, table=CONSTANTS_TABLE),
    ParameterSpec(id="emission_cap", type="bool", table=CONSTANTS_TABLE),
    ParameterSpec(id="pm10_coarse_only", type="bool", table=CONSTANTS_TABLE),
    ParameterSpec(id="gas_daytime_fraction", type="number", minimum=0.0, maximum=1.0, table=CONSTANTS_TABLE),
)
_DEPOSITION_PARAMS = ("pm10_vd_m_s", "pm10_resuspension", "removal_hours", "lai_ndvi_soil", "lai_ndvi_veg",
                      "lai_extinction_k", "lai_fvc_max", "pm10_coarse_only", "gas_daytime_fraction")


def _conc_input(input_id: str, about: str, units: str = "ug/m3") -> InputSpec:
    return InputSpec(id=input_id, kind="raster", units=units, required=False, resampling="bilinear",
                     about=f"annual mean {about} concentration (deposition method)")


SPEC = ServiceSpec(
    id="air_purification",
    name="Air purification",
    name_zh="空气净化",
    about="Pollutants removed by vegetation per pixel and year: dry deposition on leaves "
          "(concentration grids) or per-class capacity capped by regional emissions.",
    category="调节服务",
    methods=(
        MethodSpec(id="deposition", about="dry deposition on leaves from concentration grids (i-Tree Eco style)",
                   required_inputs=("ecosystem",),
                   optional_inputs=("wind_speed", "wind_speed_scalar", "deposition_table", "pm25_wind_table"),
                   one_of_inputs=(tuple(v[0] for v in DEPOSITION.values()), ("lai", "ndvi")),
                   parameters=_DEPOSITION_PARAMS,
                   outputs=tuple(DEPOSITION),
                   created_if={pid: When(inputs=(v[0],)) for pid, v in DEPOSITION.items()}),
        MethodSpec(id="capacity", about="capacity per class × area, capped at the regional emission",
                   required_inputs=("ecosystem",),
                   optional_inputs=("emissions", "emission_so2", "emission_nox", "emission_dust", "capacity_table"),
                   parameters=("emission_cap",),
                   outputs=(*CAPACITY, *(f"capacity_{p}" for p in CAPACITY))),
    ),
    reference="gep-methods §3.6 (capacity, emission cap) and §4 (deposition: Nowak et al. 2013; "
              "Lovett 1994; Manes et al. 2016)",
    inputs=(
        InputSpec(id="ecosystem", kind="raster", about="GEP ecosystem classes (configs/classes)",
                  units="class", categorical=True, resampling="mode"),
        InputSpec(id="lai", kind="raster", units="m2/m2", required=False, resampling="bilinear",
                  about="leaf area index (annual mean, or in-leaf with removal_hours); deposition method"),
        InputSpec(id="ndvi", kind="raster", units="1", required=False, resampling="bilinear",
                  about="NDVI, turned into LAI by the air_constants.yaml relation when no lai is given"),
        InputSpec(id="wind_speed", kind="raster", units="m/s", required=False, resampling="bilinear",
                  about="mean wind speed raster (PM2.5 wind class)"),
        InputSpec(id="wind_speed_scalar", kind="scalar", units="m/s", required=False,
                  about="mean wind speed of the region, when there is no wind raster"),
        _conc_input("conc_pm25", "PM2.5"),
        _conc_input("conc_pm10", "PM10"),
        _conc_input("conc_so2", "SO2"),
        _conc_input("conc_no2", "NO2"),
        _conc_input("conc_o3", "O3"),
        _conc_input("conc_co", "CO", units="mg/m3"),
        InputSpec(id="emissions", kind="table", required=False,
                  about="regional emissions for the capacity method's cap: pollutant (so2|nox|dust), emission_t",
                  columns={"pollutant": "-", "emission_t": "t/yr"}),
        InputSpec(id="emission_so2", kind="scalar", units="t/yr", required=False,
                  about="regional SO2 emission (capacity method cap; overrides the table)"),
        InputSpec(id="emission_nox", kind="scalar", units="t/yr", required=False,
                  about="regional NOx emission (capacity method cap; overrides the table)"),
        InputSpec(id="emission_dust", kind="scalar", units="t/yr", required=False,
                  about="regional dust / particulate emission (capacity method cap; overrides the table)"),
        InputSpec(id="deposition_table", kind="table", required=False,
                  about="per-class pm_factor and gas Vd (default configs/parameters/air_deposition_classes.csv)"),
        InputSpec(id="pm25_wind_table", kind="table", required=False,
                  about="PM2.5 Vd and resuspension by wind class (default configs/parameters/air_pm25_wind.csv)"),
        InputSpec(id="capacity_table", kind="table", required=False,
                  about="capacity per class, kg/ha/a (default configs/parameters/air_capacity.csv)"),
    ),
    parameters=PARAMETERS,
    outputs=(
        *[OutputSpec(id=pid, filename=f"air_{pid}_removed.tif", units="kg", per="pixel", nodata=NODATA,
                     product=f"air_purification_{pid}",
                     about=f"{NAMES[pid]} removed by vegetation in the year, per pixel")
          for pid in ("pm25", "pm10", "so2", "no2", "nox", "o3", "co", "dust")],
        *[OutputSpec(id=f"capacity_{pid}", filename=f"air_{pid}_capacity.tif", units="kg", per="pixel",
                     nodata=NODATA, kind="intermediate", values="per_class",
                     about=f"{NAMES[pid]} purification capacity of the year before the emission cap, per pixel")
          for pid in CAPACITY],
    ),
)


def _const(ctx: ServiceContext, name: str) -> Any:
    return ctx.param(name)


def _table(ctx: ServiceContext, input_id: str, default: Path):
    """A per-class table: the catalogue table given as input, else ``configs/parameters/<default's name>``."""
    if ctx.has(input_id):
        return ctx.entry(input_id).uri, ctx.table(input_id)
    path = config_path("parameters", default.name)
    return str(path), read_table(path, field=f"air_purification.{input_id}")


def deposition_pollutants(ctx: ServiceContext) -> list[str]:
    """Output ids of the pollutants with a concentration input."""
    return [pid for pid, (input_id, *_rest) in DEPOSITION.items() if ctx.has(input_id)]


def capacity_pollutants(ctx: ServiceContext) -> list[str]:
    """Capacity pollutants of this run: those with an emission figure, or all when the cap
    is off."""
    if not _const(ctx, "emission_cap"):
        return list(CAPACITY)
    return [pid for pid in CAPACITY if emission_t(ctx, pid) is not None]


def emission_t(ctx: ServiceContext, pid: str) -> float | None:
    """Regional emission of ``pid`` (t/yr): the scalar input, else the table row, else None."""
    if ctx.has(f"emission_{pid}"):
        return ctx.scalar(f"emission_{pid}")
    if not ctx.has("emissions"):
        return None
    source, df = ctx.entry("emissions").uri, ctx.table("emissions")
    require_columns(df, ["pollutant", "emission_t"], source)
    rows = df[df["pollutant"].astype(str).str.strip().str.lower() == pid]
    if rows.empty:
        return None
    if len(rows) > 1:
        raise TableError(f"{source}: pollutant {pid!r} appears {len(rows)} times")
    value = numeric_column(rows.reset_index(drop=True), "emission_t", source)[0]
    if value < 0:
        raise TableError(f"{source}: emission_t of {pid!r} = {value} is negative")
    return float(value)


def validate(ctx: ServiceContext) -> list[Issue]:
    """Every problem at once: method, inputs per method, tables, class codes. Never raises."""
    key = ("services", SPEC.id)
    issues = ctx.validate_inputs()  # method, parameters, a concentration input, lai or ndvi
    try:
        method = ctx.method_id
    except KeyError:
        return issues
    try:
        if method == "deposition":
            pollutants = deposition_pollutants(ctx)
            if "pm25" in pollutants and not (ctx.has("wind_speed") or ctx.has("wind_speed_scalar")):
                issues.append(Issue((*key, "inputs", "wind_speed"),
                                    "PM2.5 needs wind_speed (raster) or wind_speed_scalar (m/s)"))
            if ctx.has("wind_speed") and ctx.has("wind_speed_scalar"):
                issues.append(Issue((*key, "inputs", "wind_speed_scalar"), "give wind_speed or wind_speed_scalar, not both"))
            _pm25_wind(ctx)
            source, codes, _factors = _deposition_factors(ctx, pollutants or list(DEPOSITION))
        else:
            if _const(ctx, "emission_cap"):
                for pid in CAPACITY:
                    if emission_t(ctx, pid) is None:
                        issues.append(Issue((*key, "inputs", f"emission_{pid}"),
                                            f"capacity method with emission_cap needs the regional {NAMES[pid]} "
                                            "emission (t/yr): emission_<pollutant> or an emissions table row "
                                            "(or set params.emission_cap: false to report uncapped capacity)"))
            source, codes, _q = _capacity_table(ctx, list(CAPACITY))
        if not issues:
            eco = ctx.raster("ecosystem")
            check_codes(unique_counts(eco.data, eco.attrs["nodata"]), codes, ctx.entry("ecosystem").uri,
                        source, "code")
    except EcorasterError as exc:
        issues.append(Issue((*key, "inputs"), str(exc)))
    return issues


# --------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------
def _pm25_wind(ctx: ServiceContext) -> tuple[np.ndarray, np.ndarray]:
    """(Vd m/s, resuspended fraction) by wind class 0..n−1."""
    source, df = _table(ctx, "pm25_wind_table", PM25_WIND_TABLE)
    winds, values = lookup_arrays(df, "wind_m_s", ("vd_cm_s", "resuspension_pct"), source)
    if not np.array_equal(winds, np.arange(winds.size)):
        raise TableError(f"{source}: column 'wind_m_s' must list every whole m/s from 0 up")
    return values[:, 0] / 100.0, values[:, 1] / 100.0


def _deposition_factors(ctx: ServiceContext, pollutants: list[str]) -> tuple[str, np.ndarray, dict[str, np.ndarray]]:
    """(source, codes, {pollutant: per-row factor}): pm_factor for particles; for gases Vd in m/s ×
    leaf_on_fraction (the in-leaf share of the year, if the table has that column)."""
    source, df = _table(ctx, "deposition_table", DEPOSITION_TABLE)
    columns = sorted({DEPOSITION[p][3] for p in pollutants})
    if any(DEPOSITION[p][1] == "gas" for p in pollutants) and "leaf_on_fraction" in df.columns:
        columns.append("leaf_on_fraction")
    codes, values = lookup_arrays(df, "code", columns, source)
    leaf_on = values[:, columns.index("leaf_on_fraction")] if "leaf_on_fraction" in columns else 1.0
    factors = {}
    for p in pollutants:
        col = values[:, columns.index(DEPOSITION[p][3])]
        factors[p] = np.ascontiguousarray(col / 100.0 * leaf_on if DEPOSITION[p][1] == "gas" else col)
    return source, codes, factors


def _capacity_table(ctx: ServiceContext, pollutants: list[str]) -> tuple[str, np.ndarray, np.ndarray]:
    source, df = _table(ctx, "capacity_table", CAPACITY_TABLE)
    codes, values = lookup_arrays(df, "code", [CAPACITY[p] for p in pollutants], source)
    if (values < 0).any():
        raise TableError(f"{source}: capacities must be ≥ 0")
    return source, codes, values


# --------------------------------------------------------------------------------------
# compute
# --------------------------------------------------------------------------------------
def _aligned_float(ctx: ServiceContext, input_id: str, chunk: int) -> da.Array:
    e = ctx.entry(input_id)
    resampling = ctx.spec.input(input_id).resampling or e.effective_resampling
    return align_to(ctx.source_info(input_id), ctx.grid, resampling, dtype="float32",
                    nodata=float("nan"), chunk=chunk).data


def _lai(ctx: ServiceContext, chunk: int) -> tuple[da.Array, str]:
    if ctx.has("lai"):
        return _aligned_float(ctx, "lai", chunk), "input lai"
    ndvi = _aligned_float(ctx, "ndvi", chunk)
    soil, veg = float(_const(ctx, "lai_ndvi_soil")), float(_const(ctx, "lai_ndvi_veg"))
    k, fvc_max = float(_const(ctx, "lai_extinction_k")), float(_const(ctx, "lai_fvc_max"))

    def _block(block):
        out = np.empty(block.shape, dtype=np.float32)
        lai_from_ndvi(block, soil, veg, k, fvc_max, out)
        return out

    lai = map_blocks(_block, ndvi)
    return lai, f"from ndvi: FVC = clip((NDVI − {soil})/({veg} − {soil}), 0, {fvc_max}); LAI = −ln(1 − FVC)/{k}"


def removal_seconds(ctx: ServiceContext) -> float:
    """Seconds of deposition per year: ``removal_hours`` or every hour of the accounting year."""
    hours = _const(ctx, "removal_hours")
    if hours is None:
        hours = 8784 if (ctx.year and calendar.isleap(ctx.year)) else 8760
    return float(hours) * 3600.0


def _deposition_block(cls_b, lai_b, conc_b, wind_b, *, row_area_m2, class_nodata, row_of_code, factor, scale,
                      use_wind, vd_wind, rs_wind, vd, rs, per_leaf, k_ext, seconds):
    out = np.empty(cls_b.shape, dtype=np.float32)
    deposition(cls_b, class_nodata, row_of_code, factor, lai_b, conc_b, scale, wind_b, use_wind,
               vd_wind, rs_wind, vd, rs, per_leaf, k_ext, seconds, row_area_m2, np.float32(NODATA), out)
    return out


def _capacity_block(cls_b, *, row_area_m2, class_nodata, row_of_code, q_col, scale):
    out = np.empty(cls_b.shape, dtype=np.float32)
    capacity_allocated(cls_b, class_nodata, row_of_code, q_col, scale, row_area_m2, np.float32(NODATA), out)
    return out


def compute_deposition(ctx: ServiceContext) -> ServiceResult:
    """Deposition method: kg/yr per pixel for every pollutant with a concentration input."""
    pollutants = deposition_pollutants(ctx)
    source, codes, factors = _deposition_factors(ctx, pollutants)
    vd_wind, rs_wind = _pm25_wind(ctx)
    row_of_code = row_index(codes)
    # per block: LAI (or NDVI), wind, one concentration and one float32 output per pollutant
    chunk = block_chunk(2 + 2 * len(pollutants), ctx.chunk)
    classes, class_nodata = ctx.class_array("ecosystem", chunk)
    lai, lai_note = _lai(ctx, chunk)
    if ctx.has("wind_speed"):
        wind, wind_note = _aligned_float(ctx, "wind_speed", chunk), "wind_speed raster"
    else:
        value = ctx.scalar("wind_speed_scalar") if ctx.has("wind_speed_scalar") else 0.0
        wind = da.full(classes.shape, value, chunks=classes.chunks, dtype=np.float32)
        wind_note = f"wind_speed_scalar {value} m/s"
    seconds = removal_seconds(ctx)
    k_ext = float(_const(ctx, "lai_extinction_k"))
    pm10_vd, pm10_rs = float(_const(ctx, "pm10_vd_m_s")), float(_const(ctx, "pm10_resuspension"))
    coarse = bool(_const(ctx, "pm10_coarse_only")) and "pm25" in pollutants
    gas_share = float(_const(ctx, "gas_daytime_fraction"))
    outputs = {}
    for pid in pollutants:
        input_id, kind, scale, _col = DEPOSITION[pid]
        conc = _aligned_float(ctx, input_id, chunk)
        if kind == "pm10" and coarse:  # i-Tree PM10*: the 2.5–10 µm fraction; NaN stays NaN
            conc = da.maximum(conc - _aligned_float(ctx, DEPOSITION["pm25"][0], chunk), 0.0)
        vd_const, rs_const = (pm10_vd, pm10_rs) if kind == "pm10" else (1.0, 0.0)

        kernel = partial(_deposition_block, class_nodata=class_nodata, row_of_code=row_of_code,
                         factor=factors[pid], scale=scale, use_wind=kind == "pm25", vd_wind=vd_wind,
                         rs_wind=rs_wind, vd=vd_const, rs=rs_const, per_leaf=kind != "gas", k_ext=k_ext,
                         seconds=seconds * gas_share if kind == "gas" else seconds)
        outputs[pid] = map_blocks(kernel, classes, lai, conc, wind, grid=ctx.grid)
    records = ctx.write(outputs, tags={"method": "deposition"})
    result = ServiceResult(service=SPEC.id, outputs=records)
    for pid, rec in records.items():
        result.totals[f"{pid}_total"] = (rec.total, "kg")
    result.notes += [
        f"deposition method, {seconds / 3600:.0f} h/yr; LAI {lai_note}; PM2.5 by {wind_note}",
        "gases use a constant canopy Vd per class (no resistance model): first-version approximation",
        "no emission cap (concentration-based flux); " + (
            "PM10 = coarse fraction (PM10 − PM2.5, i-Tree PM10*): PM2.5 and PM10 do not overlap" if coarse
            else "PM10 Vd on total PM10 mass: PM2.5 ⊂ PM10, value one of them"),
        f"gases: {gas_share:g} of the hours (daytime) × leaf_on_fraction of the class (in-leaf season)",
    ]
    result.metadata.update({
        "method": "deposition", "profile": ctx.profile, "pollutants": pollutants,
        "constant_gas_vd": True, "class_table": source, "removal_seconds": seconds, "lai": lai_note,
        "wind": wind_note, "chunk": chunk, "pm10_coarse_only": coarse, "gas_daytime_fraction": gas_share,
        "constants": ctx.parameters_used(),
        "price_units": {f"air_purification_{p}": "CNY/kg" for p in pollutants},
    })
    return result


def _sums_block(cls_block, *, row_area_m2, class_nodata, row_of_code, q):
    sums = np.empty((cls_block.shape[0], q.shape[1]), dtype=np.float64)
    capacity_row_sums(cls_block, class_nodata, row_of_code, q, row_area_m2, sums)
    return sums.sum(axis=0)


def regional_capacity(classes: da.Array, class_nodata: int, row_of_code: np.ndarray, q: np.ndarray,
                      grid) -> np.ndarray:
    """First pass: Σ capacity (kg/yr, float64) per pollutant over every valid pixel; one
    partial sum per block, summed by a dask tree reduction."""
    return reduce_blocks(_sums_block, classes, grid=grid, shape=(q.shape[1],), class_nodata=class_nodata,
                         row_of_code=row_of_code, q=q).compute()


def compute_capacity(ctx: ServiceContext) -> ServiceResult:
    """Capacity method: capped regional totals allocated to pixels by capacity (two passes)."""
    pollutants = capacity_pollutants(ctx)
    if not pollutants:
        raise ServiceError("air_purification: capacity method has no pollutant with an emission figure")
    source, codes, q = _capacity_table(ctx, pollutants)
    row_of_code = row_index(codes)
    classes, class_nodata = ctx.class_array("ecosystem")
    capacity_kg = regional_capacity(classes, class_nodata, row_of_code, np.ascontiguousarray(q), ctx.grid)
    cap_on = bool(_const(ctx, "emission_cap"))
    outputs, summary = {}, {}
    for j, pid in enumerate(pollutants):
        emission = emission_t(ctx, pid) if cap_on else None
        cap_kg = None if emission is None else emission * 1000.0
        scale = 1.0 if cap_kg is None or capacity_kg[j] <= cap_kg else cap_kg / capacity_kg[j]
        q_col = np.ascontiguousarray(q[:, j])

        block = partial(_capacity_block, class_nodata=class_nodata, row_of_code=row_of_code, q_col=q_col)
        outputs[pid] = map_blocks(partial(block, scale=scale), classes, grid=ctx.grid)
        outputs[f"capacity_{pid}"] = map_blocks(partial(block, scale=1.0), classes, grid=ctx.grid)
        purified = capacity_kg[j] if cap_kg is None else min(capacity_kg[j], cap_kg)
        summary[pid] = {"capacity_kg": float(capacity_kg[j]), "emission_kg": cap_kg,
                        "purified_kg": float(purified), "cap_binding": None if cap_kg is None else bool(cap_kg < capacity_kg[j]),
                        "allocation_factor": scale}
    records = ctx.write(outputs, tags={"method": "capacity"})
    result = ServiceResult(service=SPEC.id, outputs=records)
    for out_id, rec in records.items():
        result.totals[f"{out_id}_total"] = (rec.total, "kg")
    for pid, s in summary.items():
        if s["cap_binding"] is None:
            result.notes.append(f"{NAMES[pid]}: no emission cap applied; capacity {s['capacity_kg']:.6g} kg/yr reported")
        else:
            state = "binding" if s["cap_binding"] else "not binding"
            result.notes.append(f"{NAMES[pid]}: capacity {s['capacity_kg']:.6g} kg/yr, emission "
                                f"{s['emission_kg']:.6g} kg/yr, cap {state}; purified {s['purified_kg']:.6g} kg/yr "
                                "allocated to pixels by capacity")
    result.metadata.update({
        "method": "capacity", "profile": ctx.profile, "pollutants": pollutants, "class_table": source,
        "region": "every valid pixel of the run grid", "cap": summary,
        "constants": ctx.parameters_used(),
        "price_units": {f"air_purification_{p}": "CNY/kg" for p in pollutants},
    })
    return result


def compute(ctx: ServiceContext) -> ServiceResult:
    """Run the configured method (``deposition`` by default)."""
    return ctx.checked(COMPUTE[ctx.method_id](ctx))


#: The compute function of each method of :data:`SPEC`.
COMPUTE = {"deposition": compute_deposition, "capacity": compute_capacity}
