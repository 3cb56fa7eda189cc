"""Carbon sequestration (固碳) and oxygen release (释氧): CASA NPP, NEP = NPP − Rh, CO₂ and O₂.

Per pixel and year (gep-methods §3.8; MEE/CAEP 2020 GEP guide family; LY/T 1721-2008 for the
dry-matter route):

- NPP by the CASA light-use-efficiency model (Potter et al. 1993; 朱文泉 et al. 2006) from NDVI,
  solar radiation, temperature and the water-stress ratio E/Ep, with εmax per GEP class
  (``configs/parameters/casa_emax.csv``);
- Rh, soil heterotrophic respiration, from the monthly temperature–precipitation regression;
- NEP = NPP − Rh (negative where the soil respires more than the vegetation fixes), kept signed as
  an unpriced diagnostic;
- the sequestration basis (``nep_method``; GB/T 46869-2025 A.7 / MEE 2020 ◐): NEP (default), α·NPP or
  固碳速率 × area per class; cropland is not counted by the NEP routes (its harvest is a material
  product; ``sequestration`` column of casa_emax.csv). The priced basis is max(basis, 0) per pixel;
  the negative part is the ``carbon_source`` output (t C), reported and never priced
  (science-review.md §3: a carbon source is not a negative product);
- CO₂ = basis × 44/12 and O₂ = basis × 32/12 (``stoichiometry: molar``), or basis / carbon
  fraction × 1.63 and × 1.19 (``dry_matter``, LY/T 1721); the basis is NEP or NPP
  (``co2_basis``, ``o2_basis``); O₂ can be switched off (``oxygen_release``).

All outputs are totals per pixel over the accounting year (units t C, t CO₂, t O₂: the year is implicit,
as valuation expects), so zonal sums are totals. The
``carbon_sequestration`` product is the CO₂ output: price it in CNY per t CO₂. The
``oxygen_release`` product is the O₂ output: price it in CNY per t O₂.

Period inputs (``ndvi``, ``sol``, ``temperature``, ``precipitation``, ``pet``, ``aet``) are
multi-band rasters, one band per period: 12 bands = months (the method as published), or
1 band = an *annual surrogate* (annual mean NDVI and temperature, annual totals of SOL, P, PET,
AET; Topt is then the annual mean temperature and Rh is the monthly regression applied to the
mean month × 12 — a documented approximation). 2, 3, 4 or 6 periods also work (each period's
totals, its months = 12 / n). Twelve separate files can be stacked with
``gdalbuildvrt -separate`` or :func:`write_band_stack_vrt`. Nodata in any period of any input
makes the pixel nodata in every output.

The carbon *stock* is the ``carbon_storage`` service; a run can configure both.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import rasterio

from ..context import ServiceContext
from ..engine import block_chunk, map_blocks, reduce_blocks
from ..errors import EcorasterError, TableError
from ..grid import align_bands
from ..io.vrt import write_band_stack_vrt  # noqa: F401  (the catalogue form of 12 monthly files)
from ..kernels.casa import (NDVI_BINS, NEP_METHODS, CasaParams, build_row_index, casa_block, ndvi_class_histogram,
                            percentile_from_histogram, sequestration_basis)
from ..resources import config_path
from ..spec import InputSpec, Issue, MethodSpec, OutputSpec, ParameterSpec, ServiceResult, ServiceSpec, When
from ..tables import check_codes, lookup_arrays, read_table, unique_counts

#: The parameter table of this service (values, per-profile values, sources, confidence).
CONSTANTS_TABLE = "casa_constants.yaml"
#: The default class table (a path only: nothing is read at import; ``$ECORASTER_CONFIG_DIR`` is
#: looked up again when the table is read).
EMAX_TABLE = config_path("parameters", "casa_emax.csv", must_exist=False)
NODATA = -9999.0
PERIOD_INPUTS = ("ndvi", "sol", "temperature", "precipitation", "pet", "aet")
ALLOWED_PERIODS = (1, 2, 3, 4, 6, 12)


def _p(id: str, type: str = "number", **kw: Any) -> ParameterSpec:
    """A parameter whose value, unit, source and confidence are in :data:`CONSTANTS_TABLE`."""
    return ParameterSpec(id=id, type=type, table=CONSTANTS_TABLE, **kw)


PARAMETERS = (
    _p("emax_column", "string", choices=("emax_zhu2006", "emax_biome_bgc")),
    _p("par_fraction", minimum=0.0, maximum=1.0),
    _p("fpar_max", minimum=0.0, maximum=1.0),
    _p("fpar_min", minimum=0.0, maximum=1.0),
    _p("fpar_ndvi_weight", minimum=0.0, maximum=1.0),
    _p("ndvi_bounds", "string", choices=("data", "table")),
    _p("ndvi_bounds_min_samples", "integer", minimum=0),
    _p("t_cutoff"),
    _p("rh_a"),
    _p("rh_b"),
    _p("rh_c", minimum=0.0),
    _p("rh_days", minimum=0.0, exclusive_minimum=True),
    _p("rh_fraction", minimum=0.0, maximum=1.0),
    _p("water_stress", "string", choices=("aet_pet", "precip_pet")),
    _p("co2_basis", "string", choices=("nep", "npp")),
    _p("o2_basis", "string", choices=("nep", "npp")),
    _p("stoichiometry", "string", choices=("molar", "dry_matter")),
    _p("carbon_fraction", minimum=0.0, maximum=1.0, exclusive_minimum=True),
    _p("co2_per_dry_matter", minimum=0.0, exclusive_minimum=True),
    _p("o2_per_dry_matter", minimum=0.0, exclusive_minimum=True),
    _p("oxygen_release", "bool"),
    _p("clip_negative_nep", "bool"),
    _p("nep_method", "string", choices=NEP_METHODS[:3]),
    _p("emax_override", "mapping"),
)

SPEC = ServiceSpec(
    id="carbon_sequestration",
    name="Carbon sequestration and oxygen release (CASA)",
    name_zh="固碳释氧",
    about="Annual NPP by the CASA light-use-efficiency model, NEP = NPP − Rh, CO₂ fixed and O₂ "
          "released, per pixel.",
    category="调节服务",
    methods=(
        MethodSpec(id="casa", about="CASA NPP, Rh regression, NEP, CO₂ and O₂ by stoichiometry",
                   required_inputs=("ecosystem", "ndvi", "sol", "temperature", "precipitation", "pet"),
                   optional_inputs=("aet", "emax_table"),
                   parameters=tuple(p.id for p in PARAMETERS),
                   outputs=("npp", "rh", "nep", "carbon_source", "co2", "o2"),
                   created_if={"o2": When(params={"oxygen_release": True})}),
    ),
    reference="gep-methods §3.8: CASA (Potter 1993; 朱文泉 2006; 池源 2018), Rh regression, "
              "44/12 and 32/12 or LY/T 1721-2008 1.63 / 1.19",
    inputs=(
        InputSpec(id="ecosystem", kind="raster", about="GEP ecosystem classes (configs/classes)",
                  units="class", categorical=True, resampling="mode"),
        InputSpec(id="ndvi", kind="raster", units="1", resampling="bilinear",
                  about="NDVI, one band per period (12 = months; 1 = annual mean surrogate)"),
        InputSpec(id="sol", kind="raster", units="MJ/m2", resampling="bilinear",
                  about="total solar radiation of each period (MJ m-2 per period)"),
        InputSpec(id="temperature", kind="raster", units="degC", resampling="bilinear",
                  about="mean air temperature of each period"),
        InputSpec(id="precipitation", kind="raster", units="mm", resampling="bilinear",
                  about="precipitation of each period (mm per period)"),
        InputSpec(id="pet", kind="raster", units="mm", resampling="bilinear",
                  about="potential evapotranspiration Ep (ET0 or PET) of each period (mm per period)"),
        InputSpec(id="aet", kind="raster", units="mm", resampling="bilinear", required=False,
                  about="actual evapotranspiration E of each period (mm); needed when water_stress = aet_pet"),
        InputSpec(id="emax_table", kind="table", required=False,
                  about="εmax / NDVI bounds / Rh flag per GEP class (default configs/parameters/casa_emax.csv)",
                  columns={"code": "class", "emax_zhu2006": "g C/MJ", "emax_biome_bgc": "g C/MJ",
                           "ndvi_lo": "1", "ndvi_hi": "1", "rh": "0/1", "sequestration": "0/1",
                           "nep_npp_ratio": "1", "rate_t_c_ha": "t C/ha/yr"}),
    ),
    parameters=PARAMETERS,
    outputs=(
        OutputSpec(id="npp", filename="npp.tif", units="t C", per="pixel", nodata=NODATA,
                   about="net primary production (CASA) of the year, per pixel"),
        OutputSpec(id="rh", filename="rh.tif", units="t C", per="pixel", nodata=NODATA, kind="intermediate",
                   about="soil heterotrophic respiration of the year, per pixel"),
        OutputSpec(id="nep", filename="nep.tif", units="t C", per="pixel", nodata=NODATA,
                   about="net ecosystem production NEP = NPP − Rh of the year, per pixel (negative = carbon "
                         "source); a diagnostic, never priced"),
        OutputSpec(id="carbon_source", filename="carbon_source.tif", units="t C", per="pixel", nodata=NODATA,
                   about="negative part of the sequestration basis (a carbon source), per pixel: reported "
                         "beside 固碳, not subtracted from it and not priced"),
        OutputSpec(id="co2", filename="co2_sequestered.tif", units="t CO2", per="pixel", nodata=NODATA,
                   product="carbon_sequestration",
                   about="CO2 fixed in the year, 44/12 × max(basis, 0) (nep_method), per pixel; priced in CNY per t CO2"),
        OutputSpec(id="o2", filename="o2_released.tif", units="t O2", per="pixel", nodata=NODATA,
                   product="oxygen_release",
                   about="O2 released in the year (basis o2_basis), per pixel; priced in CNY per t O2"),
    ),
)


# --------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------
def _const(ctx: ServiceContext, name: str) -> Any:
    return ctx.param(name)


def _period_inputs(ctx: ServiceContext) -> list[str]:
    ids = ["ndvi", "sol", "temperature", "precipitation", "pet"]
    if _const(ctx, "water_stress") == "aet_pet":
        ids.append("aet")
    return ids


def band_count(ctx: ServiceContext, input_id: str) -> int:
    """Number of bands (periods) of a period input."""
    with rasterio.open(ctx.entry(input_id).uri) as src:
        return src.count


def _emax_table(ctx: ServiceContext) -> tuple[str, Any]:
    if ctx.has("emax_table"):
        return ctx.entry("emax_table").uri, ctx.table("emax_table")
    path = config_path("parameters", "casa_emax.csv")
    return str(path), read_table(path, field="carbon_sequestration.emax_table")


def class_table(ctx: ServiceContext) -> tuple[np.ndarray, np.ndarray, str]:
    """(codes, values (n, 7): εmax, ndvi_lo, ndvi_hi, rh, sequestration, nep_npp_ratio, rate_t_c_ha,
    source path); εmax of the run's ``emax_override`` ({code: g C/MJ}) replaces the table's."""
    source, df = _emax_table(ctx)
    columns = (_const(ctx, "emax_column"), "ndvi_lo", "ndvi_hi", "rh", "sequestration", "nep_npp_ratio", "rate_t_c_ha")
    codes, values = lookup_arrays(df, "code", columns, source)
    for code, emax in (_const(ctx, "emax_override") or {}).items():
        hit = np.flatnonzero(codes == int(code))
        if hit.size == 0:
            raise TableError(f"params.emax_override: class {code} is not in {source}")
        values[hit[0], 0] = float(emax)
    bad = (values[:, 1] >= values[:, 2]) | (values[:, 2] >= 1.0) | (values[:, 0] < 0)
    if bad.any():
        code = int(codes[np.flatnonzero(bad)[0]])
        raise TableError(f"{source}: code {code}: needs εmax ≥ 0 and ndvi_lo < ndvi_hi < 1")
    return codes, values, source


def validate(ctx: ServiceContext) -> list[Issue]:
    """Every problem at once: inputs, constants, period counts, class codes. Never raises."""
    key = ("services", SPEC.id)
    issues = ctx.validate_inputs()  # method, parameters (names, types, ranges, choices), inputs
    if issues:
        return issues
    if _const(ctx, "water_stress") == "aet_pet" and not ctx.has("aet"):
        issues.append(Issue((*key, "inputs", "aet"),
                            "required when water_stress = aet_pet (or set params.water_stress: precip_pet)"))
        return issues
    try:
        counts = {i: band_count(ctx, i) for i in _period_inputs(ctx)}
    except Exception as exc:
        return [Issue((*key, "inputs"), f"cannot read band counts: {exc}")]
    n = counts["ndvi"]
    if n not in ALLOWED_PERIODS:
        issues.append(Issue((*key, "inputs", "ndvi"),
                            f"{ctx.entry('ndvi').uri} has {n} bands; use 12 (months) or 1 (annual surrogate)"))
    for input_id, count in counts.items():
        if count != n:
            issues.append(Issue((*key, "inputs", input_id),
                                f"{ctx.entry(input_id).uri} has {count} bands but ndvi has {n}: "
                                "every period input needs one band per period"))
    try:
        codes, _, source = class_table(ctx)
        eco = ctx.raster("ecosystem")
        check_codes(unique_counts(eco.data, eco.attrs["nodata"]), codes, ctx.entry("ecosystem").uri,
                    source, "code")
    except EcorasterError as exc:
        issues.append(Issue((*key, "inputs", "ecosystem"), str(exc)))
    return issues


def period_arrays(ctx: ServiceContext, input_id: str, n: int, chunk: int) -> list[da.Array]:
    """Bands 1..n of a period input on the run grid as float32, NaN = nodata (:func:`grid.align_bands`)."""
    e = ctx.entry(input_id)
    resampling = ctx.spec.input(input_id).resampling or e.effective_resampling
    return align_bands(e.uri, ctx.grid, resampling, n, src_crs=e.crs, src_nodata=e.nodata, chunk=chunk,
                       name=input_id, field=f"services.{ctx.spec.id}.inputs.{input_id}")


# --------------------------------------------------------------------------------------
# NDVI bounds per class (a first, reducing pass over NDVI)
# --------------------------------------------------------------------------------------
def _histogram_block(cls_block, *ndvi_blocks, class_nodata, row_of_code, n_rows):
    counts = np.zeros((n_rows, NDVI_BINS), dtype=np.int64)
    ndvi_class_histogram(cls_block, class_nodata, row_of_code, np.stack(ndvi_blocks), counts)
    return counts


def ndvi_bounds(classes: da.Array, class_nodata: int, ndvi: list[da.Array], codes: np.ndarray,
                table_lo: np.ndarray, table_hi: np.ndarray, min_samples: int
                ) -> tuple[np.ndarray, np.ndarray, dict[int, dict[str, Any]]]:
    """Per-class NDVI bounds: the lower bound is always the table's bare-soil NDVI (FPAR = FPARmin
    there; 朱文泉 2006 — a class's own 5 % percentile is not bare soil and collapses FPAR of homogeneous
    classes, science-review.md §1.3.4); the upper bound is the class's 95 % percentile of the
    positive NDVI values of every period, falling back to the table for classes with fewer than
    ``min_samples`` values or a percentile not above the lower bound. Reads the class and NDVI rasters once, block by block: one histogram
    per block, summed by a dask tree reduction (bounded memory at any raster size)."""
    row_of_code = build_row_index(codes)
    counts = reduce_blocks(_histogram_block, classes, *ndvi, shape=(codes.size, NDVI_BINS), dtype=np.int64,
                           class_nodata=class_nodata, row_of_code=row_of_code, n_rows=codes.size).compute()
    lo, hi = table_lo.copy(), table_hi.copy()
    report: dict[int, dict[str, Any]] = {}
    for k, code in enumerate(codes):
        n = int(counts[k].sum())
        p5, p95 = percentile_from_histogram(counts[k], 0.05), percentile_from_histogram(counts[k], 0.95)
        if n >= min_samples and p95 - lo[k] >= 0.01:
            hi[k] = min(p95, 0.999)
            origin = "data"
        else:
            origin = "table"
        if n or origin == "data":
            report[int(code)] = {"ndvi_lo": float(lo[k]), "ndvi_hi": float(hi[k]), "samples": n, "from": origin,
                                 "p5_of_class": float(p5)}
    return lo, hi, report


# --------------------------------------------------------------------------------------
# compute
# --------------------------------------------------------------------------------------
def conversion_factors(ctx: ServiceContext) -> tuple[float, float]:
    """(t CO₂ per t C, t O₂ per t C) of the chosen stoichiometry."""
    if _const(ctx, "stoichiometry") == "molar":
        return 44.0 / 12.0, 32.0 / 12.0
    cf = float(_const(ctx, "carbon_fraction"))
    return float(_const(ctx, "co2_per_dry_matter")) / cf, float(_const(ctx, "o2_per_dry_matter")) / cf


def compute(ctx: ServiceContext) -> ServiceResult:
    """Write NPP, Rh, NEP (t C/yr), CO₂ (t CO₂/yr) and O₂ (t O₂/yr) per pixel; float64 totals."""
    codes, values, table_source = class_table(ctx)
    period_ids = _period_inputs(ctx)
    n = band_count(ctx, "ndvi")
    chunk = block_chunk(n * len(period_ids), ctx.chunk)
    classes, class_nodata = ctx.class_array("ecosystem", chunk)
    series = {i: period_arrays(ctx, i, n, chunk) for i in period_ids}
    use_aet = "aet" in series
    emax, lo, hi, rh_on, counted, alpha, rate = (np.ascontiguousarray(values[:, j]) for j in range(7))
    bounds_report: dict[int, dict[str, Any]] = {}
    if _const(ctx, "ndvi_bounds") == "data":
        lo, hi, bounds_report = ndvi_bounds(classes, class_nodata, series["ndvi"], codes, lo, hi,
                                            int(_const(ctx, "ndvi_bounds_min_samples")))
    co2_factor, o2_factor = conversion_factors(ctx)
    row_of_code = build_row_index(codes)
    nep_co2 = _const(ctx, "co2_basis") == "nep"
    nep_o2 = _const(ctx, "o2_basis") == "nep"
    clip = bool(_const(ctx, "clip_negative_nep"))
    method = NEP_METHODS.index(_const(ctx, "nep_method"))
    npp_method = NEP_METHODS.index("npp")
    params = CasaParams(
        use_aet=use_aet, months=12.0 / n, par_fraction=float(_const(ctx, "par_fraction")),
        fpar_min=float(_const(ctx, "fpar_min")), fpar_max=float(_const(ctx, "fpar_max")),
        w_ndvi=float(_const(ctx, "fpar_ndvi_weight")), t_cutoff=float(_const(ctx, "t_cutoff")),
        rh_a=float(_const(ctx, "rh_a")), rh_b=float(_const(ctx, "rh_b")), rh_c=float(_const(ctx, "rh_c")),
        rh_days=float(_const(ctx, "rh_days")), rh_fraction=float(_const(ctx, "rh_fraction")),
        co2_factor=float(co2_factor), co2_on_nep=bool(nep_co2), o2_factor=float(o2_factor),
        o2_on_nep=bool(nep_o2), clip_negative=clip)

    def kernel(cls_block, *blocks, row_area_m2):
        stacks = {pid: np.stack(blocks[i * n:(i + 1) * n]) for i, pid in enumerate(period_ids)}
        out = np.empty((6, *cls_block.shape), dtype=np.float32)
        casa_block(cls_block, class_nodata, row_of_code, emax, lo, hi, rh_on,
                   stacks["ndvi"], stacks["sol"], stacks["temperature"], stacks["precipitation"],
                   stacks["aet"] if use_aet else stacks["pet"], stacks["pet"], params, row_area_m2,
                   np.float32(NODATA), out[:5])
        valid = out[0] != NODATA
        if not clip:  # the signed basis of casa_block (the code before issue 15), for comparison only
            out[5] = np.where(valid, 0.0, NODATA)
            return out
        basis = np.empty(cls_block.shape, dtype=np.float32)
        source = np.empty(cls_block.shape, dtype=np.float32)
        out[5] = np.where(valid, 0.0, NODATA)
        for band, factor, on_nep in ((3, co2_factor, nep_co2), (4, o2_factor, nep_o2)):
            sequestration_basis(cls_block, class_nodata, row_of_code, method if on_nep else npp_method, counted,
                                alpha, rate, out[0], out[2], row_area_m2, np.float32(NODATA), basis, source)
            out[band] = np.where(valid, basis * factor, NODATA)
            if on_nep:
                out[5] = source  # the carbon-source memo of the NEP-route basis
        return out

    arrays = [classes, *[a for pid in period_ids for a in series[pid]]]
    npp, rh, nep, co2, o2, carbon_source = map_blocks(kernel, *arrays, grid=ctx.grid, n_out=6)
    outputs = {"npp": npp, "rh": rh, "nep": nep, "carbon_source": carbon_source, "co2": co2}
    oxygen = bool(_const(ctx, "oxygen_release"))
    if oxygen:
        outputs["o2"] = o2
    records = ctx.write(outputs)
    result = ServiceResult(service=SPEC.id, outputs=records)
    for out_id, rec in records.items():
        result.totals[f"{out_id}_total"] = (rec.total, rec.units)
    result.notes.append(
        f"CASA on {n} period(s) ({'monthly' if n == 12 else 'annual surrogate' if n == 1 else f'{n} periods'}); "
        f"εmax column {_const(ctx, 'emax_column')}; water stress {_const(ctx, 'water_stress')}; "
        f"NDVI bounds {_const(ctx, 'ndvi_bounds')}")
    result.notes.append(
        f"CO2 from {'NEP' if nep_co2 else 'NPP'}, O2 from {'NEP' if nep_o2 else 'NPP'} "
        f"({_const(ctx, 'stoichiometry')}: {co2_factor:.4f} t CO2/t C, {o2_factor:.4f} t O2/t C)"
        + ("" if oxygen else "; oxygen release switched off by the profile"))
    result.notes.append(
        f"sequestration basis {_const(ctx, 'nep_method')}"
        + (f", max(basis, 0) per pixel; negative part reported as carbon_source ({result.totals['carbon_source_total'][0]:,.1f}"
           " t C), not priced" if clip else "; clip_negative_nep false: negative basis netted and priced")
        + "; classes with sequestration = 0 in the class table (cropland) not counted by the NEP / α·NPP routes")
    result.notes.append("Rh: climate-only regression (no class or soil term; the same per m² on every Rh class "
                        "under the same climate) — kept as published for want of a per-class calibration; the "
                        "alpha_npp and rate methods do not use it")
    if n == 1:
        result.notes.append("annual surrogate inputs: Topt = annual mean temperature, Rh from the mean "
                            "month × 12; less exact than 12 monthly periods")
    result.metadata.update({
        "method": "casa", "profile": ctx.profile, "periods": n, "chunk": chunk,
        "class_table": table_source, "ndvi_bounds": bounds_report,
        "constants": ctx.parameters_used(),
        "price_units": {"carbon_sequestration": "CNY/t CO2", "oxygen_release": "CNY/t O2"},
        "oxygen_release": oxygen,
    })
    return ctx.checked(result)


__all__ = ["SPEC", "validate", "compute", "write_band_stack_vrt", "ndvi_bounds"]
