"""Climate regulation (气候调节): electricity an air conditioner / humidifier would need to do what
evapotranspiration does on the hot days, kWh per pixel and year.

Electricity-equivalent method (gep-methods.md §3.9; 甘孜 2017, 博文静 2017):

- hot days: days whose daily mean temperature exceeds ``hot_threshold_c`` (26 °C ✱), counted per
  month from a daily station table (``daily_temperature``), or a per-pixel count raster
  (``hot_days``), or one number (``hot_days_scalar``)
- ``et_energy`` (default, the ET-raster route): ET on the hot days, mm — Σ_m ET_m × hot_m / days_m
  for monthly ET (12 bands); for annual ET (1 band) × the hot days' share of the year, weighted by
  monthly ``et_weights`` (e.g. ET0) when given. Evaporated volume V = ET × area (m³):
    vegetation (classes with is_vegetation): E_pt = V × ρ q / 3600 / r   (r = EER 3.0 ✔)
    water surface (classes with is_water):   E_we = V × ρ q / 3600 + V × y  (q 2450 kJ/kg ◐, y 120 kWh/m³ ◐)
  Water pixels read ``evaporation`` (open-water evaporation) when given, else ``et``.
- ``epp``: per-class EPP table (kJ m⁻² d⁻¹, ``climate_epp_classes.csv``, ✱ placeholders) × area × hot
  days / 3600 (÷ r for vegetation; + the humidifier term for water).

Outputs (kWh per pixel): ``climate_transpiration_kwh.tif`` (product
``climate_regulation_transpiration``) and ``climate_evaporation_kwh.tif``
(``climate_regulation_evaporation``: contested in the standard profiles — the catalogue reports GEP
with and without it). Valued at the regional electricity tariff of the price table.
"""

from __future__ import annotations

import calendar
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
import rasterio

from ..context import ServiceContext
from ..engine import block_chunk, map_blocks
from ..errors import EcorasterError, ServiceError, TableError
from ..grid import align_bands, align_to
from ..kernels.casa import build_row_index
from ..kernels.wetland import (
    KJ_PER_KWH,
    WATER_DENSITY_KG_M3,
    climate_epp_kwh,
    climate_kwh,
    hot_day_fractions,
    month_days,
)
from ..resources import config_path
from ..spec import InputSpec, Issue, MethodSpec, OutputSpec, ParameterSpec, ServiceResult, ServiceSpec
from ..tables import lookup_arrays, read_table, require_columns

CONSTANTS_TABLE = "climate_regulation.yaml"
EPP_TABLE = "climate_epp_classes.csv"
NODATA = -9999.0
HOT_DAY_SOURCES = ("daily_temperature", "hot_days", "hot_days_scalar")

PARAMETERS = (
    ParameterSpec(id="hot_threshold_c", type="number", minimum=-60.0, maximum=60.0, table=CONSTANTS_TABLE),
    ParameterSpec(id="eer", type="number", minimum=0.0, exclusive_minimum=True, table=CONSTANTS_TABLE),
    ParameterSpec(id="latent_heat_kj_kg", type="number", minimum=0.0, exclusive_minimum=True, table=CONSTANTS_TABLE),
    ParameterSpec(id="humidifier_kwh_m3", type="number", minimum=0.0, table=CONSTANTS_TABLE),
    ParameterSpec(id="water_divide_by_eer", type="bool", table=CONSTANTS_TABLE),
    ParameterSpec(id="date_column", type="string", table=CONSTANTS_TABLE),
    ParameterSpec(id="temperature_column", type="string", table=CONSTANTS_TABLE),
    ParameterSpec(id="max_missing_days", type="integer", minimum=0, maximum=366, table=CONSTANTS_TABLE),
)
_PARAM_IDS = tuple(p.id for p in PARAMETERS)
METHODS = (
    MethodSpec(id="et_energy", about="ET on the hot days × latent heat ÷ EER (vegetation); + humidifier (water)",
               required_inputs=("ecosystem", "et"),
               optional_inputs=("evaporation", "et_weights", *HOT_DAY_SOURCES),
               one_of_inputs=(HOT_DAY_SOURCES,), parameters=_PARAM_IDS,
               outputs=("transpiration", "evaporation")),
    MethodSpec(id="epp", about="per-class EPP table × area × hot days (÷ EER for vegetation; + humidifier for water)",
               required_inputs=("ecosystem",),
               optional_inputs=("daily_temperature", "hot_days_scalar", "epp_table"),
               one_of_inputs=(("daily_temperature", "hot_days_scalar"),), parameters=_PARAM_IDS,
               outputs=("transpiration", "evaporation")),
)

SPEC = ServiceSpec(
    id="climate_regulation",
    name="Climate regulation",
    name_zh="气候调节",
    about="Electricity equivalent of vegetation transpiration (÷ air-conditioner EER) and water-surface "
          "evaporation (latent heat + humidifier) on the hot days, per pixel.",
    category="调节服务",
    methods=METHODS,
    reference="gep-methods.md §3.9 (甘孜 2017; 博文静 2017; ET-energy variant); GB/T 46869-2025 A.11 ◐",
    inputs=(
        InputSpec(id="ecosystem", kind="raster", about="GEP ecosystem classes (configs/classes)", units="class",
                  categorical=True, resampling="mode"),
        InputSpec(id="et", kind="raster", units="mm", required=False, resampling="bilinear",
                  about="actual evapotranspiration: 12 bands (mm per month) or 1 band (mm per year); et_energy"),
        InputSpec(id="evaporation", kind="raster", units="mm", required=False, resampling="bilinear",
                  about="open-water evaporation for water pixels, same band layout as et (default: et)"),
        InputSpec(id="et_weights", kind="raster", units="mm", required=False, resampling="bilinear",
                  about="12 monthly weights (e.g. ET0) that place an annual et in the months"),
        InputSpec(id="daily_temperature", kind="table", required=False,
                  about="daily station series: date, daily mean temperature (params date_column, temperature_column)",
                  columns={"date": "YYYY-MM-DD", "tavg_degC": "degC"}),
        InputSpec(id="hot_days", kind="raster", units="d", required=False, resampling="bilinear",
                  about="hot days of the year per pixel (a gridded count, instead of a station table)"),
        InputSpec(id="hot_days_scalar", kind="scalar", units="d", required=False,
                  about="hot days of the year for the whole region"),
        InputSpec(id="epp_table", kind="table", required=False,
                  about="epp method: code, epp_kj_m2_d, kind (vegetation|water) (default "
                        "configs/parameters/climate_epp_classes.csv)"),
    ),
    parameters=PARAMETERS,
    outputs=(
        OutputSpec(id="transpiration", filename="climate_transpiration_kwh.tif", units="kWh", per="pixel",
                   nodata=NODATA, product="climate_regulation_transpiration",
                   about="electricity equivalent of vegetation transpiration on the hot days, per pixel"),
        OutputSpec(id="evaporation", filename="climate_evaporation_kwh.tif", units="kWh", per="pixel",
                   nodata=NODATA, product="climate_regulation_evaporation",
                   about="electricity equivalent of water-surface evaporation on the hot days, per pixel"),
    ),
)


def _const(ctx: ServiceContext, name: str) -> Any:
    return ctx.param(name)


def _method(ctx: ServiceContext) -> str:
    return ctx.method_id


def band_count(ctx: ServiceContext, input_id: str) -> int:
    """Number of bands (periods) of a raster input."""
    with rasterio.open(ctx.entry(input_id).uri) as src:
        return src.count


def _bands(ctx: ServiceContext, input_id: str, n: int, chunk: int) -> list[da.Array]:
    """Bands 1..n of an input on the run grid as float32, NaN = nodata (:func:`grid.align_bands`)."""
    e = ctx.entry(input_id)
    resampling = ctx.spec.input(input_id).resampling or e.effective_resampling
    return align_bands(e.uri, ctx.grid, resampling, n, src_crs=e.crs, src_nodata=e.nodata, chunk=chunk,
                       name=input_id, field=f"services.{ctx.spec.id}.inputs.{input_id}")


def _year(ctx: ServiceContext) -> int:
    if ctx.year is None:
        raise ServiceError("climate_regulation: the run needs a year (hot days are counted in the accounting year)")
    return int(ctx.year)


def hot_days_by_month(ctx: ServiceContext) -> tuple[np.ndarray, np.ndarray, str]:
    """(hot days (12,), days with data (12,), description) from the daily temperature table."""
    src, df = ctx.entry("daily_temperature").uri, ctx.table("daily_temperature")
    dcol, tcol = str(_const(ctx, "date_column")), str(_const(ctx, "temperature_column"))
    require_columns(df, [dcol, tcol], src)
    dates = pd.to_datetime(df[dcol], errors="coerce")
    if dates.isna().any():
        row = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise TableError(f"{src}: column {dcol!r} row {row + 2} = {df[dcol].iloc[row]!r} is not a date")
    temps = pd.to_numeric(df[tcol], errors="coerce")
    bad = temps.isna() & df[tcol].notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise TableError(f"{src}: column {tcol!r} row {row + 2} = {df[tcol].iloc[row]!r} is not a number")
    if (temps < -60).any() or (temps > 60).any():
        row = int(np.flatnonzero(((temps < -60) | (temps > 60)).to_numpy())[0])
        raise TableError(f"{src}: column {tcol!r} row {row + 2} = {float(temps.iloc[row])!r} °C is out of range "
                         "(−60…60; a −9999 missing-value code?)")
    year = _year(ctx)
    dup = dates[dates.dt.year == year].duplicated()
    if dup.any():
        raise TableError(f"{src}: date {dates[dates.dt.year == year][dup].iloc[0].date()} appears twice")
    threshold = float(_const(ctx, "hot_threshold_c"))
    hot, have, missing = hot_day_fractions(dates.to_numpy().astype("datetime64[D]"), temps.to_numpy(), year, threshold)
    if missing > int(_const(ctx, "max_missing_days")):
        raise TableError(f"{src}: {missing} days of {year} have no {tcol} (max_missing_days "
                         f"{_const(ctx, 'max_missing_days')}); fill the gaps or use hot_days_scalar")
    if have.min() == 0:
        raise TableError(f"{src}: month(s) {', '.join(str(m + 1) for m in np.flatnonzero(have == 0))} of {year} "
                         f"have no {tcol}")
    text = (f"{int(hot.sum())} hot days (daily mean {tcol} > {threshold} °C) in {year} from {Path(src).name}"
            + (f"; {missing} day(s) missing (each month's share over its days with data)" if missing else ""))
    return hot, have, text


def _hot_share(ctx: ServiceContext) -> tuple[np.ndarray | None, float | None, str]:
    """Monthly hot-day shares (12,) from the station table, or the year's share from the scalar;
    (None, None) when the per-pixel raster is used."""
    year = _year(ctx)
    ndays = 366 if calendar.isleap(year) else 365
    if ctx.has("daily_temperature"):
        hot, have, text = hot_days_by_month(ctx)
        return hot / have, None, text
    if ctx.has("hot_days_scalar"):
        d = ctx.scalar("hot_days_scalar")
        return None, d / ndays, f"{d:g} hot days (hot_days_scalar), spread evenly over the year's ET"
    return None, None, "hot days per pixel from the hot_days raster, spread evenly over the year's ET"


def validate(ctx: ServiceContext) -> list[Issue]:
    """Method, inputs per method, the hot-day source, tables. Never raises."""
    key = ("services", SPEC.id)
    issues = ctx.validate_inputs()
    if issues:
        return issues
    method = _method(ctx)
    given = [i for i in ("daily_temperature", "hot_days", "hot_days_scalar") if ctx.has(i)]
    if len(given) != 1:
        issues.append(Issue((*key, "inputs", "daily_temperature"),
                            f"give exactly one hot-day source: daily_temperature, hot_days or hot_days_scalar "
                            f"(given: {', '.join(given) or 'none'})"))
    if method == "et_energy" and not ctx.has("et"):
        issues.append(Issue((*key, "inputs", "et"), "et_energy needs et (12 monthly bands or 1 annual band, mm)"))
    if method == "epp" and ctx.has("hot_days"):
        issues.append(Issue((*key, "inputs", "hot_days"), "the epp method takes a station table or hot_days_scalar"))
    if issues:
        return issues
    try:
        _year(ctx)
        if ctx.has("daily_temperature"):
            hot_days_by_month(ctx)
        if method == "et_energy":
            n = band_count(ctx, "et")
            if n not in (1, 12):
                issues.append(Issue((*key, "inputs", "et"), f"{ctx.entry('et').uri} has {n} bands; use 12 or 1"))
            for other in ("evaporation",):
                if ctx.has(other) and band_count(ctx, other) != n:
                    issues.append(Issue((*key, "inputs", other), f"needs {n} band(s) like et"))
            if ctx.has("et_weights") and band_count(ctx, "et_weights") != 12:
                issues.append(Issue((*key, "inputs", "et_weights"), "needs 12 monthly bands"))
        else:
            _epp(ctx)
    except EcorasterError as exc:
        issues.append(Issue((*key, "inputs"), str(exc)))
    return issues


def _kinds() -> np.ndarray:
    """kind_of_code: 1 vegetation, 2 water, 0 other, from configs/classes/gep_ecosystem_classes.csv."""
    path = config_path("classes", "gep_ecosystem_classes.csv")
    df = read_table(path, field="climate_regulation.classes")
    codes, values = lookup_arrays(df, "code", ("is_vegetation", "is_water"), str(path))
    kinds = np.zeros(int(codes.max()) + 1, dtype=np.int64)
    kinds[codes] = np.where(values[:, 1] > 0, 2, np.where(values[:, 0] > 0, 1, 0))
    return kinds


def _epp(ctx: ServiceContext) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    if ctx.has("epp_table"):
        src, df = ctx.entry("epp_table").uri, ctx.table("epp_table")
    else:
        path = config_path("parameters", EPP_TABLE)
        src, df = str(path), read_table(path, field="climate_regulation.epp_table")
    require_columns(df, ["code", "epp_kj_m2_d", "kind"], src)
    codes, values = lookup_arrays(df, "code", ("epp_kj_m2_d",), src)
    kinds = df["kind"].astype(str).str.strip().str.lower()
    bad = ~kinds.isin(["vegetation", "water"])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise TableError(f"{src}: row {row + 2}: kind = {df['kind'].iloc[row]!r}; use vegetation or water")
    if (values < 0).any():
        raise TableError(f"{src}: epp_kj_m2_d must be ≥ 0")
    return src, codes, np.ascontiguousarray(values[:, 0]), np.where(kinds == "water", 2, 1).astype(np.int64)


def _factors(ctx: ServiceContext) -> tuple[float, float, float, float]:
    """(kWh per m³ evaporated by vegetation, kWh per m³ from water, EER, water EER)."""
    q, eer, y = float(_const(ctx, "latent_heat_kj_kg")), float(_const(ctx, "eer")), float(_const(ctx, "humidifier_kwh_m3"))
    water_eer = eer if _const(ctx, "water_divide_by_eer") else 1.0
    latent = WATER_DENSITY_KG_M3 * q / KJ_PER_KWH  # kWh per m³ evaporated
    return latent / eer, latent / water_eer + y, eer, water_eer


def _et_hot_block(*bands, n, monthly, year_share, weights_n, hot_px, days):
    """ET on the hot days (mm, float32) of one block.

    ``bands``: n ET bands, then ``weights_n`` monthly weights, then the hot-day raster if ``hot_px``.
    Monthly shares (hot days / days with data, per month): 12 ET bands → Σ share_m ET_m; 1 band →
    ET × Σ share_m w_m / Σ w_m (w = weights, else the days of each month). A year share (scalar
    hot days / days of the year) or the hot-day raster: Σ ET × share.
    """
    et = np.stack(bands[:n]).astype(np.float64)
    if monthly is not None and n == 12:
        return np.tensordot(monthly, et, axes=1).astype(np.float32)
    total = et.sum(axis=0)
    if hot_px:
        frac = np.asarray(bands[-1], dtype=np.float64) / days.sum()
    elif monthly is not None:
        if weights_n:
            w = np.stack(bands[n:n + weights_n]).astype(np.float64)
            wsum = w.sum(axis=0)
            frac = np.where(wsum > 0, np.tensordot(monthly, w, axes=1) / np.where(wsum > 0, wsum, 1.0), np.nan)
        else:
            frac = float(monthly @ days) / days.sum()
    else:
        frac = year_share
    return (total * frac).astype(np.float32)


def _et_hot(ctx: ServiceContext, input_id: str, chunk: int, monthly, year_share) -> da.Array:
    n = band_count(ctx, input_id)
    bands = _bands(ctx, input_id, n, chunk)
    weights = (_bands(ctx, "et_weights", 12, chunk)
               if n == 1 and monthly is not None and ctx.has("et_weights") else [])
    hot = [align_to(ctx.source_info("hot_days"), ctx.grid, "bilinear", dtype="float32", nodata=float("nan"),
                    chunk=chunk).data] if ctx.has("hot_days") else []
    return map_blocks(_et_hot_block, *bands, *weights, *hot, dtype=np.float32, n=n, monthly=monthly,
                      year_share=year_share, weights_n=len(weights), hot_px=bool(hot), days=month_days(_year(ctx)))


def _kwh_block(cls_b, et_b, ev_b, *, row_area_m2, class_nodata, kinds, veg, water):
    out_v = np.empty(cls_b.shape, dtype=np.float32)
    out_w = np.empty(cls_b.shape, dtype=np.float32)
    et = np.where(kinds[np.clip(cls_b, 0, kinds.size - 1)] == 2, ev_b, et_b)
    climate_kwh(cls_b, class_nodata, kinds, et, row_area_m2, veg, water, np.float32(NODATA), out_v, out_w)
    return np.stack([out_v, out_w])


def _epp_block(cls_b, *, row_area_m2, class_nodata, row_of_code, epp, kind, hot_days, eer, water_eer, humid):
    out_v = np.empty(cls_b.shape, dtype=np.float32)
    out_w = np.empty(cls_b.shape, dtype=np.float32)
    climate_epp_kwh(cls_b, class_nodata, row_of_code, epp, kind, hot_days, eer, water_eer, humid, row_area_m2,
                    np.float32(NODATA), out_v, out_w)
    return np.stack([out_v, out_w])


def compute(ctx: ServiceContext) -> ServiceResult:
    """Hot days → ET on hot days (or EPP) → kWh for vegetation and water surfaces."""
    method = _method(ctx)
    veg, water, eer, water_eer = _factors(ctx)
    monthly, year_share, hot_text = _hot_share(ctx)
    year = _year(ctx)
    days_year = 366 if calendar.isleap(year) else 365
    if method == "et_energy":
        n = band_count(ctx, "et")
        chunk = block_chunk(2 * n + 4, ctx.chunk)
        classes, class_nodata = ctx.class_array("ecosystem", chunk)
        et_hot = _et_hot(ctx, "et", chunk, monthly, year_share)
        ev_hot = _et_hot(ctx, "evaporation", chunk, monthly, year_share) if ctx.has("evaporation") else et_hot
        kinds = _kinds()
        trans, evap = map_blocks(_kwh_block, classes, et_hot, ev_hot, grid=ctx.grid, n_out=2, dtype=np.float32,
                                 class_nodata=class_nodata, kinds=kinds, veg=veg, water=water)
        route = (f"ET on hot days from {Path(ctx.entry('et').uri).name} ({n} band(s)"
                 + (f", annual ET placed in months by {Path(ctx.entry('et_weights').uri).name}"
                    if n == 1 and ctx.has("et_weights") and monthly is not None else "") + ")"
                 + (f"; water pixels: {Path(ctx.entry('evaporation').uri).name}" if ctx.has("evaporation") else ""))
    else:
        classes, class_nodata = ctx.class_array("ecosystem")
        src, codes, epp, kind = _epp(ctx)
        if monthly is not None:
            hot, _have, _t = hot_days_by_month(ctx)
            hot_days = float(hot.sum())
        else:
            if year_share is None:  # _hot_share gives either monthly counts or a year share
                raise ServiceError("climate_regulation: no hot-day share for the year (no monthly counts either)")
            hot_days = float(year_share * days_year)
        humid = float(_const(ctx, "humidifier_kwh_m3")) / (float(_const(ctx, "latent_heat_kj_kg")) * WATER_DENSITY_KG_M3)
        trans, evap = map_blocks(_epp_block, classes, grid=ctx.grid, n_out=2, dtype=np.float32,
                                 class_nodata=class_nodata, row_of_code=build_row_index(codes), epp=epp, kind=kind,
                                 hot_days=hot_days, eer=eer, water_eer=water_eer, humid=humid)
        route = f"EPP table {Path(src).name} (✱ placeholders unless replaced) × {hot_days:g} hot days"
    records = ctx.write({"transpiration": trans, "evaporation": evap}, tags={"method": method})
    result = ServiceResult(service=SPEC.id, outputs=records)
    for oid, rec in records.items():
        result.totals[f"{oid}_total"] = (rec.total, "kWh")
    result.notes += [
        hot_text, route,
        (f"vegetation {veg:.4g} kWh per m³ transpired (ρ q / 3600 / EER {eer}); water {water:.4g} kWh per m³ evaporated "
        f"(ρ q / 3600{' / EER' if water_eer != 1 else ''} + humidifier {_const(ctx, 'humidifier_kwh_m3')} kWh/m³)"),
        ("climate_regulation_evaporation is contested in the standard profiles: the catalogue reports GEP with and "
        "without it"),
    ]
    result.metadata.update({
        "method": method, "profile": ctx.profile, "hot_days": hot_text, "route": route,
        "hot_day_share_by_month": None if monthly is None else [float(x) for x in monthly],
        "kwh_per_m3": {"vegetation": veg, "water": water}, "constants": ctx.parameters_used(),
        "price_units": {"climate_regulation_transpiration": "CNY/kWh", "climate_regulation_evaporation": "CNY/kWh"},
    })
    return ctx.checked(result)
