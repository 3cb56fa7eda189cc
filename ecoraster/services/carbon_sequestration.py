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

from dataclasses import replace
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import dask
import dask.array as da
import numpy as np
import rasterio
from rasterio.windows import Window

from ..context import ServiceContext
from .. import yamlio
from ..errors import EcorasterError, TableError
from ..grid import _pixel_offset, align_to, inspect_source
from ..resources import config_path
from ..kernels.casa import (NDVI_BINS, NEP_METHODS, build_row_index, casa_block, ndvi_class_histogram,
                            percentile_from_histogram, sequestration_basis)
from ..spec import InputSpec, Issue, OutputSpec, ParameterSpec, ServiceResult, ServiceSpec
from ..tables import check_codes, lookup_arrays, read_table, unique_counts

EMAX_TABLE = config_path("parameters", "casa_emax.csv", must_exist=False)
CONSTANTS_FILE = config_path("parameters", "casa_constants.yaml", must_exist=False)
NODATA = -9999.0
PERIOD_INPUTS = ("ndvi", "sol", "temperature", "precipitation", "pet", "aet")
ALLOWED_PERIODS = (1, 2, 3, 4, 6, 12)
#: Upper bound of the bytes of one block's inputs; the service halves its chunk until it fits.
BLOCK_BYTES = 160 * 2**20
CHOICES = {
    "emax_column": ("emax_zhu2006", "emax_biome_bgc"),
    "ndvi_bounds": ("data", "table"),
    "water_stress": ("aet_pet", "precip_pet"),
    "co2_basis": ("nep", "npp"),
    "o2_basis": ("nep", "npp"),
    "stoichiometry": ("molar", "dry_matter"),
    "nep_method": NEP_METHODS[:3],
}


# --------------------------------------------------------------------------------------
# profile-selected constants (shared with air_purification)
# --------------------------------------------------------------------------------------
def load_constants(path: Path) -> dict[str, dict[str, Any]]:
    """The ``parameters:`` mapping of a constants YAML (value, unit, source, confidence,
    profiles); empty if the file is absent (the package then runs on run-config params)."""
    if not path.exists():
        return {}
    raw = yamlio.read_mapping(path, field="parameters", error=TableError)
    params = raw.get("parameters")
    if not isinstance(params, dict):
        raise TableError(f"{path}: expected a 'parameters:' mapping")
    for name, body in params.items():
        if not isinstance(body, dict) or "value" not in body:
            raise TableError(f"{path}: parameters.{name} needs a 'value'")
    return params


def parameter_specs(constants: dict[str, dict[str, Any]]) -> tuple[ParameterSpec, ...]:
    """ParameterSpecs (default = the profile-independent value) for ``eco getspec``."""
    return tuple(
        ParameterSpec(id=name, about=str(b.get("about", "")), units=str(b.get("unit", "")),
                      default=b["value"], source=b.get("source"), confidence=b.get("confidence"))
        for name, b in constants.items()
    )


def resolve_constant(ctx: ServiceContext, constants: dict[str, dict[str, Any]], name: str) -> Any:
    """A constant for this run: the run's ``params`` override, else the value of the run's
    standard profile, else the default value."""
    if name in ctx.params:
        return ctx.params[name]
    body = constants.get(name)
    if body is None:
        raise TableError(f"{CONSTANTS_FILE}: no parameter {name!r}")
    return (body.get("profiles") or {}).get(ctx.profile, body["value"])


def unknown_params(ctx: ServiceContext, constants: dict[str, dict[str, Any]]) -> list[Issue]:
    """An issue for every run parameter that is not a constant of the service (typos)."""
    return [Issue(("services", ctx.spec.id, "params", name),
                  f"unknown parameter (known: {', '.join(sorted(constants))})")
            for name in sorted(set(ctx.params) - set(constants))]


def constants_used(ctx: ServiceContext, constants: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every constant's value for this run with unit, source, confidence (for metadata)."""
    out = {}
    for name, body in constants.items():
        origin = "run params" if name in ctx.params else (
            f"profile {ctx.profile}" if ctx.profile in (body.get("profiles") or {}) else "default")
        out[name] = {"value": resolve_constant(ctx, constants, name), "unit": body.get("unit"),
                     "source": body.get("source"), "confidence": body.get("confidence"), "from": origin}
    return out


_CONSTANTS = load_constants(CONSTANTS_FILE)

SPEC = ServiceSpec(
    id="carbon_sequestration",
    name="Carbon sequestration and oxygen release (CASA)",
    name_zh="固碳释氧",
    about="Annual NPP by the CASA light-use-efficiency model, NEP = NPP − Rh, CO₂ fixed and O₂ "
          "released, per pixel.",
    category="调节服务",
    methods=("casa",),
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
    parameters=parameter_specs(_CONSTANTS),
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
                   product="oxygen_release", created_if="oxygen_release",
                   about="O2 released in the year (basis o2_basis), per pixel; priced in CNY per t O2"),
    ),
)


# --------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------
def _const(ctx: ServiceContext, name: str) -> Any:
    return resolve_constant(ctx, _CONSTANTS, name)


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
    return str(EMAX_TABLE), read_table(EMAX_TABLE, field="carbon_sequestration.emax_table")


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
    issues = ctx.validate_inputs() + unknown_params(ctx, _CONSTANTS)
    for name, allowed in CHOICES.items():
        value = _const(ctx, name)
        if value not in allowed:
            issues.append(Issue((*key, "params", name), f"= {value!r}; use one of {', '.join(allowed)}"))
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


def block_chunk(n_float_bands: int, run_chunk: int) -> int:
    """Chunk size (pixels) such that one block's inputs stay under :data:`BLOCK_BYTES`
    (float32 bands read, plus the stacked copies and an int64 class band)."""
    chunk = run_chunk
    while chunk > 256 and chunk * chunk * (8 * n_float_bands + 8) > BLOCK_BYTES:
        chunk //= 2
    return chunk


def period_arrays(ctx: ServiceContext, input_id: str, n: int, chunk: int) -> list[da.Array]:
    """Bands 1..n of a period input, aligned lazily to the run grid as float32, NaN = nodata.

    A source on the grid's pixel lattice is read with one window read of all n bands per block
    (one open and one decode of each tile instead of n); any other source goes through
    ``align_to`` band by band (reprojection / resampling)."""
    e = ctx.entry(input_id)
    resampling = ctx.spec.input(input_id).resampling or e.effective_resampling
    field = f"services.{ctx.spec.id}.inputs.{input_id}"
    infos = [inspect_source(e.uri, band=b, crs=e.crs, nodata=e.nodata, field=field) for b in range(1, n + 1)]
    offset = _pixel_offset(infos[0].grid, ctx.grid)
    if offset is None:
        return [align_to(info, ctx.grid, resampling, dtype="float32", nodata=float("nan"), chunk=chunk,
                         name=f"{input_id}_{info.band}").data for info in infos]
    align_to(infos[0], ctx.grid, resampling, chunk=chunk)  # the overlap check (bands share one grid)
    row_chunks, col_chunks = ctx.grid.chunks(chunk)
    nodata = [info.nodata for info in infos]
    read = dask.delayed(_read_bands, pure=True)
    rows, r0 = [], 0
    for rh in row_chunks:
        cols, c0 = [], 0
        for cw in col_chunks:
            block = read(e.uri, infos[0].shape, nodata, offset, r0, r0 + rh, c0, c0 + cw, _mtime(e.uri))
            cols.append(da.from_delayed(block, shape=(n, rh, cw), dtype=np.float32))
            c0 += cw
        rows.append(cols)
        r0 += rh
    stack = da.block(rows)
    return [stack[b] for b in range(n)]


def _read_bands(path: str, shape: tuple[int, int], nodata: list[float], offset: tuple[int, int],
                row0: int, row1: int, col0: int, col1: int, _mtime: float) -> np.ndarray:
    """Rows [row0, row1) × cols [col0, col1) of the grid from every band of a source on the
    grid's lattice (``offset`` = grid origin in source pixels): float32, NaN outside or nodata."""
    n = len(nodata)
    out = np.full((n, row1 - row0, col1 - col0), np.nan, dtype=np.float32)
    rs0, cs0 = row0 + offset[0], col0 + offset[1]
    a0, b0 = max(rs0, 0), max(cs0, 0)
    a1, b1 = min(rs0 + (row1 - row0), shape[0]), min(cs0 + (col1 - col0), shape[1])
    if a1 <= a0 or b1 <= b0:
        return out
    with rasterio.open(path) as src:
        data = src.read(list(range(1, n + 1)), window=Window(b0, a0, b1 - b0, a1 - a0))
    target = out[:, a0 - rs0:a1 - rs0, b0 - cs0:b1 - cs0]
    target[...] = data
    for b, nd in enumerate(nodata):
        if not np.isnan(nd):
            target[b][data[b] == nd] = np.nan
    return out


def _mtime(path: str) -> float:
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return 0.0


def class_array(ctx: ServiceContext, chunk: int, input_id: str = "ecosystem") -> tuple[da.Array, int]:
    """The class raster (after the catalogue's ``reclass`` table, if any) aligned as int64 with
    ``chunk``; and its nodata code."""
    arr = replace(ctx, chunk=chunk).raster(input_id, dtype="int64")
    return arr.data, int(arr.attrs["nodata"])


def map_blocks_multi(func, arrays: list[da.Array], grid, n_out: int) -> da.Array:
    """``func(*blocks, row_area_m2=…) -> (n_out, rows, cols)`` over aligned 2-D arrays, lazily;
    slice the result per output so one kernel call per block feeds every output."""
    areas = grid.row_areas_m2()

    def _block(*blocks, block_info=None):
        r0, r1 = block_info[0]["array-location"][0]
        return func(*blocks, row_area_m2=areas[r0:r1])

    return da.map_blocks(_block, *arrays, new_axis=0, chunks=((n_out,), *arrays[0].chunks),
                         dtype=np.float32, meta=np.empty((0, 0, 0), dtype=np.float32))


# --------------------------------------------------------------------------------------
# NDVI bounds per class (a first, reducing pass over NDVI)
# --------------------------------------------------------------------------------------
def _histogram_block(cls_block, *ndvi_blocks, class_nodata, row_of_code, n_rows):
    counts = np.zeros((n_rows, NDVI_BINS), dtype=np.int64)
    ndvi_class_histogram(cls_block, class_nodata, row_of_code, np.stack(ndvi_blocks), counts)
    return counts[None, None]


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
    per_block = da.map_blocks(
        _histogram_block, classes, *ndvi, class_nodata=class_nodata, row_of_code=row_of_code,
        n_rows=codes.size, new_axis=[2, 3], dtype=np.int64,
        chunks=(tuple(1 for _ in classes.chunks[0]), tuple(1 for _ in classes.chunks[1]),
                (codes.size,), (NDVI_BINS,)),
        meta=np.empty((0, 0, 0, 0), dtype=np.int64))
    counts = per_block.sum(axis=(0, 1), dtype=np.int64, split_every=4).compute()
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
    classes, class_nodata = class_array(ctx, chunk)
    series = {i: period_arrays(ctx, i, n, chunk) for i in period_ids}
    use_aet = "aet" in series
    emax, lo, hi, rh_on, counted, alpha, rate = (np.ascontiguousarray(values[:, j]) for j in range(7))
    bounds_report: dict[int, dict[str, Any]] = {}
    if _const(ctx, "ndvi_bounds") == "data":
        lo, hi, bounds_report = ndvi_bounds(classes, class_nodata, series["ndvi"], codes, lo, hi,
                                            int(_const(ctx, "ndvi_bounds_min_samples")))
    co2_factor, o2_factor = conversion_factors(ctx)
    row_of_code = build_row_index(codes)
    constants = {name: float(_const(ctx, name)) for name in (
        "par_fraction", "fpar_min", "fpar_max", "fpar_ndvi_weight", "t_cutoff",
        "rh_a", "rh_b", "rh_c", "rh_days", "rh_fraction")}
    months = 12.0 / n
    nep_co2 = _const(ctx, "co2_basis") == "nep"
    nep_o2 = _const(ctx, "o2_basis") == "nep"
    clip = bool(_const(ctx, "clip_negative_nep"))
    method = NEP_METHODS.index(_const(ctx, "nep_method"))
    npp_method = NEP_METHODS.index("npp")

    def kernel(cls_block, *blocks, row_area_m2):
        stacks = {pid: np.stack(blocks[i * n:(i + 1) * n]) for i, pid in enumerate(period_ids)}
        out = np.empty((6, *cls_block.shape), dtype=np.float32)
        casa_block(cls_block, class_nodata, row_of_code, emax, lo, hi, rh_on,
                   stacks["ndvi"], stacks["sol"], stacks["temperature"], stacks["precipitation"],
                   stacks["aet"] if use_aet else stacks["pet"], stacks["pet"], use_aet, months,
                   constants["par_fraction"], constants["fpar_min"], constants["fpar_max"],
                   constants["fpar_ndvi_weight"], constants["t_cutoff"],
                   constants["rh_a"], constants["rh_b"], constants["rh_c"], constants["rh_days"],
                   constants["rh_fraction"], row_area_m2, co2_factor, nep_co2, o2_factor, nep_o2, clip,
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
    stack = map_blocks_multi(kernel, arrays, ctx.grid, 6)
    outputs = {"npp": stack[0], "rh": stack[1], "nep": stack[2], "carbon_source": stack[5], "co2": stack[3]}
    oxygen = bool(_const(ctx, "oxygen_release"))
    if oxygen:
        outputs["o2"] = stack[4]
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
        "constants": constants_used(ctx, _CONSTANTS),
        "price_units": {"carbon_sequestration": "CNY/t CO2", "oxygen_release": "CNY/t O2"},
        "oxygen_release": oxygen,
    })
    return result


# --------------------------------------------------------------------------------------
# helper: stack single-band files (12 months) into one multi-band VRT
# --------------------------------------------------------------------------------------
def write_band_stack_vrt(paths: list[str | Path], vrt_path: str | Path, *, relative: bool = True) -> Path:
    """Write a VRT whose band i is band 1 of ``paths[i]`` (all on one grid): the catalogue
    form of "12 monthly rasters" (same as ``gdalbuildvrt -separate``). Paths are stored
    relative to the VRT when ``relative``."""
    vrt_path = Path(vrt_path)
    with rasterio.open(paths[0]) as first:
        width, height, crs, transform = first.width, first.height, first.crs, first.transform
    bands = []
    for i, p in enumerate(paths, start=1):
        with rasterio.open(p) as src:
            if (src.width, src.height, src.transform) != (width, height, transform):
                raise EcorasterError(f"{p}: grid differs from {paths[0]}; cannot stack")
            dtype, nodata = src.dtypes[0], src.nodata
        rel = Path(p).resolve()
        name = Path(_relpath(rel, vrt_path.resolve().parent)) if relative else rel
        gdal_type = {"int16": "Int16", "int32": "Int32", "uint8": "Byte", "uint16": "UInt16",
                     "float32": "Float32", "float64": "Float64"}[dtype]
        nd = "" if nodata is None else f"<NoDataValue>{_fmt(nodata)}</NoDataValue>"
        bands.append(
            f'  <VRTRasterBand dataType="{gdal_type}" band="{i}">{nd}\n'
            f'    <SimpleSource><SourceFilename relativeToVRT="{int(relative)}">{escape(str(name))}</SourceFilename>'
            f"<SourceBand>1</SourceBand></SimpleSource>\n  </VRTRasterBand>")
    gt = ", ".join(repr(v) for v in transform.to_gdal())
    text = (f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">\n'
            f"  <SRS>{escape(crs.to_wkt())}</SRS>\n  <GeoTransform>{gt}</GeoTransform>\n"
            + "\n".join(bands) + "\n</VRTDataset>\n")
    vrt_path.write_text(text, encoding="utf-8")
    return vrt_path


def _relpath(path: Path, start: Path) -> str:
    import os

    return os.path.relpath(path, start)


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


__all__ = ["SPEC", "validate", "compute", "write_band_stack_vrt", "load_constants", "resolve_constant"]
