"""Water conservation (水源涵养), two methods.

``water_balance`` (default; profile ``mee2020``): the national guides' water balance
Q = (P − R − ET) × A × 10⁻³ [m³/yr], R = P × α(ecosystem class). α and a per-class
``include`` flag come from ``configs/parameters/water_runoff_coefficients_<profile>.csv``
(or a catalogue table given as input ``runoff_coefficients``). Negative balances (ET > P,
e.g. open water of 七里海) are clipped at 0 per pixel; the clipped volume is written as its
own raster and reported as a total.

``invest_awy`` (profile ``invest``): the InVEST Annual Water Yield model (Budyko curve,
Fu / Zhang), Y = P − AET per pixel, with an InVEST-style biophysical table (lucode, Kc,
root_depth, LULC_veg) and the seasonality Z. It gives water *yield*; the retention step
some Chinese studies apply on top of it (velocity, topographic index, Ksat) is not done.

References: 生态系统生产总值核算技术指南 (MEE/CAEP 2020) 水源涵养; DB11/T 2059-2022 Annex C;
InVEST User's Guide 3.20 "Annual Water Yield"; ``docs/gep-methods.md`` §3.1.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..context import ServiceContext
from ..engine import map_blocks
from ..errors import EcorasterError, MissingLookupValuesError, TableError
from ..kernels.classes import class_lut
from ..kernels.water import annual_water_yield, water_balance
from ..resources import config_path
from ..spec import InputSpec, Issue, MethodSpec, OutputSpec, ParameterSpec, ServiceResult, ServiceSpec
from ..tables import class_codes, numeric_column, read_table, require_columns, unique_counts

NODATA = -9999.0
PRODUCT = "water_conservation"

SPEC = ServiceSpec(
    id="water_conservation",
    name="Water conservation",
    name_zh="水源涵养",
    about="Water retained by ecosystems per year: water balance P − R − ET by ecosystem class "
          "(national guides), or InVEST annual water yield (Budyko).",
    category="调节服务",
    methods=(
        MethodSpec(id="water_balance", profiles=("mee2020",),
                   about="Q = (P − P·α − ET) × A per pixel, clipped at 0 (national guides)",
                   required_inputs=("ecosystem", "precipitation", "aet"), optional_inputs=("runoff_coefficients",),
                   outputs=("water_conservation_m3", "water_balance_clipped_m3")),
        MethodSpec(id="invest_awy", profiles=("invest",),
                   about="InVEST Annual Water Yield, Y = P − AET by the Budyko curve",
                   required_inputs=("lulc", "precipitation", "et0", "root_restricting_depth", "pawc",
                                    "biophysical_table"),
                   parameters=("seasonality_z",), required_parameters=("seasonality_z",),
                   outputs=("water_yield_mm", "water_yield_m3", "aet_mm")),
    ),
    reference="MEE/CAEP 2020 GEP guide 水源涵养 (water balance, R = P·α); DB11/T 2059-2022 Annex C; "
              "InVEST User's Guide 3.20, Annual Water Yield",
    inputs=(
        InputSpec(id="ecosystem", kind="raster", units="class", categorical=True, resampling="mode",
                  required=False, about="GEP ecosystem classes 11..72 (water_balance)"),
        InputSpec(id="precipitation", kind="raster", units="mm/yr", resampling="bilinear", required=False,
                  about="annual precipitation P (both methods)"),
        InputSpec(id="aet", kind="raster", units="mm/yr", resampling="bilinear", required=False,
                  about="annual actual evapotranspiration ET, e.g. MOD16A3 / PML-V2 (water_balance)"),
        InputSpec(id="runoff_coefficients", kind="table", required=False,
                  about="runoff coefficient α per GEP class (water_balance); default "
                        "configs/parameters/water_runoff_coefficients_<profile>.csv",
                  columns={"code": "class", "alpha_pct": "%", "include": "0/1"}),
        InputSpec(id="lulc", kind="raster", units="class", categorical=True, resampling="nearest",
                  required=False, about="land-cover classes of the biophysical table (invest_awy)"),
        InputSpec(id="et0", kind="raster", units="mm/yr", resampling="bilinear", required=False,
                  about="annual reference evapotranspiration ET0 (invest_awy)"),
        InputSpec(id="root_restricting_depth", kind="raster", units="mm", resampling="bilinear",
                  required=False, about="depth to the root-restricting soil layer (invest_awy)"),
        InputSpec(id="pawc", kind="raster", units="fraction", resampling="bilinear", required=False,
                  about="plant-available water content, 0..1 (invest_awy)"),
        InputSpec(id="biophysical_table", kind="table", required=False,
                  about="InVEST biophysical table: lucode, Kc, root_depth, LULC_veg (invest_awy)",
                  columns={"lucode": "class", "Kc": "1", "root_depth": "mm", "LULC_veg": "0/1"}),
    ),
    parameters=(
        ParameterSpec(id="seasonality_z", units="1", default=None, type="number", minimum=0.0,
                      exclusive_minimum=True,
                      about="Z, seasonality of precipitation (invest_awy; InVEST suggests 1..30, "
                            "calibrate to observed flow)",
                      source="InVEST User's Guide 3.20, Annual Water Yield", confidence="◐"),
    ),
    outputs=(
        OutputSpec(id="water_conservation_m3", filename="water_conservation_m3.tif", units="m3",
                   about="water conservation per pixel per year (water_balance)", per="pixel",
                   nodata=NODATA, product=PRODUCT),
        OutputSpec(id="water_balance_clipped_m3", filename="water_balance_clipped_m3.tif", units="m3",
                   about="volume removed by clipping negative water balances at 0, per pixel per year "
                         "(water_balance)", kind="intermediate", per="pixel", nodata=NODATA),
        OutputSpec(id="water_yield_mm", filename="water_yield_mm.tif", units="mm",
                   about="annual water yield depth P − AET (invest_awy; InVEST wyield)", per="state",
                   nodata=NODATA),
        OutputSpec(id="water_yield_m3", filename="water_yield_m3.tif", units="m3",
                   about="annual water yield volume per pixel (invest_awy): 产水量, NOT 水源涵养 (storm runoff "
                         "included, no retention step); product water_yield, counted by no profile",
                   per="pixel", nodata=NODATA, product="water_yield"),
        OutputSpec(id="aet_mm", filename="aet_mm.tif", units="mm",
                   about="annual actual evapotranspiration by the Budyko curve (invest_awy)",
                   kind="intermediate", per="state", nodata=NODATA),
    ),
)


# ------------------------------------------------------------------------------------------
# parameter tables
# ------------------------------------------------------------------------------------------

def method_of(ctx: ServiceContext) -> str:
    """The run's method: the config's ``method``, else the profile's default (``MethodSpec.profiles``)."""
    return ctx.method_id


def class_input(method: str) -> str:
    """The class raster of a method (its categorical required input)."""
    return next(i for i in SPEC.method(method).required_inputs if SPEC.input(i).categorical)


def continuous_inputs(method: str) -> tuple[str, ...]:
    """The continuous rasters of a method, screened for negative values."""
    return tuple(i for i in SPEC.method(method).required_inputs
                 if SPEC.input(i).kind == "raster" and not SPEC.input(i).categorical)


def runoff_table_path(ctx: ServiceContext) -> str:
    """The runoff-coefficient table: the catalogue table given as input, else the
    profile's table under ``configs/parameters`` (the mee2020 table for profiles without one)."""
    if ctx.has("runoff_coefficients"):
        return ctx.entry("runoff_coefficients").uri
    own = config_path("parameters", f"water_runoff_coefficients_{ctx.profile or 'mee2020'}.csv", must_exist=False)
    return str(own if own.exists() else config_path("parameters", "water_runoff_coefficients_mee2020.csv"))


def _flag(df: pd.DataFrame, column: str, source: str) -> np.ndarray:
    values = numeric_column(df, column, source)
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise TableError(f"{source}: column {column!r} row {row + 2} = {df[column].iloc[row]!r} must be 0 or 1")
    return values == 1.0


def _optional_numbers(df: pd.DataFrame, column: str, needed: np.ndarray, source: str,
                      lo: float, hi: float, fill: float) -> np.ndarray:
    """A numeric column that may be empty where ``needed`` is False (filled with ``fill``)."""
    values = np.array(pd.to_numeric(df[column], errors="coerce"), dtype=np.float64)
    raw = df[column]
    for row in range(len(df)):
        v = values[row]
        if math.isnan(v):
            if pd.notna(raw.iloc[row]) and str(raw.iloc[row]).strip():
                raise TableError(f"{source}: column {column!r} row {row + 2} = {raw.iloc[row]!r} is not a number")
            if needed[row]:
                raise TableError(f"{source}: column {column!r} row {row + 2} is empty")
            values[row] = fill
        elif not (lo <= v <= hi):
            raise TableError(f"{source}: column {column!r} row {row + 2} = {v:g} is outside [{lo:g}, {hi:g}]")
    return values


def read_runoff_table(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes, α as a fraction, include flags) from a runoff-coefficient table.

    Columns ``code``, ``alpha_pct`` (percent; or ``alpha`` as a fraction), ``include`` (0/1).
    α may be empty for excluded classes. Sorted by code.
    """
    df = read_table(path, field="runoff_coefficients")
    alpha_col = "alpha_pct" if "alpha_pct" in df.columns else "alpha"
    require_columns(df, ["code", alpha_col, "include"], path)
    codes = class_codes(df, "code", path)
    include = _flag(df, "include", path)
    scale = 100.0 if alpha_col == "alpha_pct" else 1.0
    alpha = _optional_numbers(df, alpha_col, include, path, 0.0, scale, 0.0) / scale
    order = np.argsort(codes)
    return codes[order], alpha[order], include[order]


def read_biophysical_table(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(codes, Kc, root_depth mm, vegetated) from an InVEST biophysical table.

    Column names are matched case-insensitively, as InVEST does; ``root_depth`` may be
    empty for non-vegetated classes (``LULC_veg`` = 0), where it is not used.
    """
    df = read_table(path, field="biophysical_table")
    df = df.rename(columns={c: str(c).strip().lower() for c in df.columns})
    require_columns(df, ["lucode", "kc", "root_depth", "lulc_veg"], path)
    codes = class_codes(df, "lucode", path)
    vegetated = _flag(df, "lulc_veg", path)
    kc = _optional_numbers(df, "kc", np.ones(len(df), bool), path, 0.0, math.inf, 0.0)
    root = _optional_numbers(df, "root_depth", vegetated, path, 0.0, math.inf, 1.0)
    order = np.argsort(codes)
    return codes[order], kc[order], root[order], vegetated[order]


def _dense(codes: np.ndarray, source: str) -> tuple[int, np.ndarray]:
    """(offset, known) of the dense class table of ``codes``."""
    lut = class_lut(codes, np.ones(codes.size, dtype=np.bool_), fill=False)
    if lut is None:
        raise TableError(f"{source}: class codes span {codes.min()}..{codes.max()}, too wide for a lookup table")
    return lut.offset, lut.values


def _spread(codes: np.ndarray, values: np.ndarray, offset: int, size: int, dtype) -> np.ndarray:
    """``values`` per code on the dense table of :func:`_dense` (0 for absent codes)."""
    lut = class_lut(codes, np.asarray(values, dtype=dtype), fill=0, offset=offset, size=size)
    return lut.values


# ------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------

def class_raster(ctx: ServiceContext, input_id: str):
    """A class raster on the run grid in its own integer type (int64 if stored as floats)."""
    kind = np.dtype(ctx.source_info(input_id).dtype).kind
    return ctx.raster(input_id, dtype=None if kind in "iu" else "int64")


#: Edge (pixels) of the decimated read used to screen continuous inputs for bad values.
SCREEN_SIZE = 1024


def screen_range(path: str, band: int, nodata: float) -> tuple[float, float]:
    """(min, max) of the valid values of a decimated read (≤ SCREEN_SIZE² pixels; served
    from overviews when the file has them). A cheap screen for mis-declared nodata or wrong
    units; stray negative pixels are made nodata by the kernels anyway."""
    import rasterio

    from ..io.integrity import checked_read

    with rasterio.open(path) as src:
        shape = (min(src.height, SCREEN_SIZE), min(src.width, SCREEN_SIZE))
        data = checked_read(src, band, out_shape=shape).astype(np.float64)
    valid = ~np.isnan(data) & (data != nodata)
    if not valid.any():
        return math.nan, math.nan
    return float(data[valid].min()), float(data[valid].max())


def _data_issues(ctx: ServiceContext, method: str, table_codes: np.ndarray, table_path: str) -> list[Issue]:
    """Class codes missing from the table, with pixel counts (one pass over the class
    raster); negative continuous values and PAWC above 1 (a decimated screen)."""
    class_id = class_input(method)
    cls = class_raster(ctx, class_id)
    issues: list[Issue] = []
    counts = unique_counts(cls.data, cls.attrs["nodata"])
    known = set(int(c) for c in table_codes)
    missing = {k: n for k, n in counts.items() if k not in known}
    if missing:
        column = "code" if method == "water_balance" else "lucode"
        err = MissingLookupValuesError(missing, ctx.entry(class_id).uri, table_path, column)
        issues.append(Issue(("services", SPEC.id, "inputs", class_id), str(err)))
    for input_id in continuous_inputs(method):
        info = ctx.source_info(input_id)
        lo, hi = screen_range(info.path, info.band, info.nodata)
        keys = ("services", SPEC.id, "inputs", input_id)
        if np.isnan(lo):
            issues.append(Issue(keys, f"{info.path} has no valid pixel (nodata {info.nodata:g})"))
        elif lo < 0:
            issues.append(Issue(keys, f"{info.path} has negative values (minimum {lo:g} "
                                      f"{SPEC.input(input_id).units}); expected ≥ 0"))
        if input_id == "pawc" and not np.isnan(hi) and hi > 1:
            issues.append(Issue(keys, f"{info.path} has values above 1 (maximum {hi:g}); PAWC is a fraction 0..1"))
    return issues


def validate(ctx: ServiceContext) -> list[Issue]:
    """All problems at once: the method, its required inputs and parameters, the parameter
    table, class codes missing from it (with pixel counts; reads the class raster once),
    negative P / ET / ET0 / depth / PAWC and PAWC above 1 (screened on a decimated read;
    single bad pixels become nodata in the outputs)."""
    base = ("services", SPEC.id)
    issues = ctx.validate_inputs()  # method, parameters (Z required and > 0), required inputs
    try:
        method = ctx.method_id
    except KeyError:
        return issues
    table_key = "runoff_coefficients" if method == "water_balance" else "biophysical_table"
    try:
        if method == "water_balance":
            table_path = runoff_table_path(ctx)
            codes = read_runoff_table(table_path)[0]
        else:
            table_path = ctx.entry("biophysical_table").uri if ctx.has("biophysical_table") else ""
            codes = read_biophysical_table(table_path)[0] if table_path else None
        if codes is not None:
            _dense(codes, table_path)
    except EcorasterError as exc:
        issues.append(Issue((*base, "inputs", table_key), str(exc)))
        codes = None
    if issues or codes is None:
        return issues
    try:
        issues.extend(_data_issues(ctx, method, codes, table_path))
    except EcorasterError as exc:
        issues.append(Issue(base, str(exc)))
    return issues


# ------------------------------------------------------------------------------------------
# compute
# ------------------------------------------------------------------------------------------

def _compute_water_balance(ctx: ServiceContext) -> ServiceResult:
    table_path = runoff_table_path(ctx)
    codes, alpha, include = read_runoff_table(table_path)
    offset, known = _dense(codes, table_path)
    alpha_lut = _spread(codes, alpha, offset, known.size, np.float64)
    include_lut = _spread(codes, include, offset, known.size, np.bool_)
    cls = class_raster(ctx, "ecosystem")
    precip = ctx.raster("precipitation", dtype="float32", nodata=np.nan)
    aet = ctx.raster("aet", dtype="float32", nodata=np.nan)
    cls_nodata = int(cls.attrs["nodata"])
    nodata = np.float32(NODATA)

    def kernel(c, p, e, *, row_area_m2):
        out = np.empty((2, *c.shape), dtype=np.float32)
        water_balance(c, cls_nodata, p, e, offset, known, alpha_lut, include_lut, row_area_m2, nodata,
                      out[0], out[1])
        return out

    q, clipped = map_blocks(kernel, cls.data, precip.data, aet.data, grid=ctx.grid, n_out=2)
    records = ctx.write({"water_conservation_m3": q, "water_balance_clipped_m3": clipped},
                        tags={"method": "water_balance", "runoff_table": Path(table_path).name})
    result = ServiceResult(service=SPEC.id, outputs=records,
                           metadata={"method": "water_balance", "runoff_table": table_path})
    q, clipped = records["water_conservation_m3"], records["water_balance_clipped_m3"]
    result.totals["water_conservation_m3_total"] = (q.total, "m3")
    result.totals["water_balance_clipped_m3_total"] = (clipped.total, "m3")
    result.notes.append(
        f"water balance P − P·α − ET clipped at 0 per pixel: {clipped.total:,.1f} m³ of negative balance "
        f"(ET > P, mostly open water and wetland) not subtracted from the {q.total:,.1f} m³ total; "
        f"map: {Path(clipped.path).name}")
    result.notes.append(f"runoff coefficients: {table_path} (classes with include = 0 get 0 m³)")
    return result


def _compute_invest_awy(ctx: ServiceContext) -> ServiceResult:
    table_path = ctx.entry("biophysical_table").uri
    codes, kc, root, vegetated = read_biophysical_table(table_path)
    offset, known = _dense(codes, table_path)
    kc_lut = _spread(codes, kc, offset, known.size, np.float64)
    root_lut = _spread(codes, root, offset, known.size, np.float64)
    veg_lut = _spread(codes, vegetated, offset, known.size, np.bool_)
    z = float(ctx.param("seasonality_z"))
    cls = class_raster(ctx, "lulc")
    layers = [ctx.raster(i, dtype="float32", nodata=np.nan).data
              for i in ("precipitation", "et0", "root_restricting_depth", "pawc")]
    cls_nodata = int(cls.attrs["nodata"])
    nodata = np.float32(NODATA)

    def kernel(c, p, e0, soil, pw, *, row_area_m2):
        out = np.empty((3, *c.shape), dtype=np.float32)
        annual_water_yield(c, cls_nodata, p, e0, soil, pw, offset, known, kc_lut, root_lut, veg_lut, z,
                           row_area_m2, nodata, out[0], out[1], out[2])
        return out

    yield_mm, yield_m3, aet_mm = map_blocks(kernel, cls.data, *layers, grid=ctx.grid, n_out=3)
    records = ctx.write({"water_yield_mm": yield_mm, "water_yield_m3": yield_m3, "aet_mm": aet_mm},
                        tags={"method": "invest_awy", "seasonality_z": f"{z:g}",
                              "biophysical_table": Path(table_path).name})
    result = ServiceResult(service=SPEC.id, outputs=records,
                           metadata={"method": "invest_awy", "seasonality_z": z, "biophysical_table": table_path})
    vol = records["water_yield_m3"]
    result.totals["water_yield_m3_total"] = (vol.total, "m3")
    if vol.valid_pixels:
        result.totals["water_yield_mm_mean"] = (records["water_yield_mm"].total / records["water_yield_mm"].valid_pixels, "mm")
    result.notes.append("invest_awy gives water yield P − AET (InVEST Annual Water Yield); no retention "
                        "step (velocity / topographic index / Ksat) is applied")
    result.notes.append("pixels with P = 0 are nodata, as in InVEST (AET/P undefined)")
    return result


def compute(ctx: ServiceContext) -> ServiceResult:
    """Write the method's rasters (m³ per pixel, product ``water_conservation``; mm for
    invest_awy) in one streaming pass; totals in float64."""
    return ctx.checked(COMPUTE[ctx.method_id](ctx))


#: The compute function of each method of :data:`SPEC`.
COMPUTE = {"water_balance": _compute_water_balance, "invest_awy": _compute_invest_awy}
