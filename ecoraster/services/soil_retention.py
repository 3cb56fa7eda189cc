"""Soil retention (土壤保持): R·K·LS − R·K·LS·C·P, potential minus actual soil loss (t/yr).

Two methods:

``invest_sdr`` (profile ``invest``): the factors exactly as InVEST 3.20 SDR computes them, so
InVEST users can check us (the InVEST example ``configs/examples/soil_retention_invest.yaml``):
the DEM is masked where any input is nodata (and outside the optional watersheds), pits are
filled, slope is Horn's in percent, flow is routed by multiple flow direction, LS is
Desmet & Govers with InVEST's slope-class exponent and S and the ``l_max`` clamp
(:func:`ecoraster.kernels.soil.ls_invest`), streams are traced from a flow-accumulation
threshold and left out of RKLS (nodata there, as InVEST); C and P come from the InVEST
biophysical table (``lucode``, ``usle_c``, ``usle_p``; codes used as they are). Avoided
erosion = RKLS − USLE [t/ha/yr]. SRTM noise is not treated (InVEST does not).

``rusle_cn`` (profile ``mee2020``): the Chinese guide's factors (gep-methods.md §3.2): L =
(λ/22.13)^m with m by slope class in degrees, S by Liu Baoyuan, C from vegetation cover
(FVC by the dimidiate pixel model from NDVI, Cai Chongfa's relation), P and "soil or not" by
GEP class (``configs/parameters/soil_p_gep_classes.csv``); R from an erosivity raster, or from
precipitation (≥ 365 bands: daily series, 章文波 2002 daily model; 12 bands: monthly Wischmeier–Smith
regression; 1 band: 章文波 annual power law);
K from an erodibility raster or a table keyed by soil unit (``k``, or EPIC from sand, silt,
clay and organic carbon). **SRTM noise on flat floodplains**: slopes where the filled DEM's
relief within a 5 × 5 window is ≤ ``flat_relief_m`` (3 m) are set to 0 before LS, so noise of
a few metres does not invent 3 % slopes; filled pits (lakes, polders) are flat by construction.

Both write soil retention in t per pixel (product ``soil_retention``; valued by the composite
price: dredging of λ·Q/ρ plus N and P, ``configs/prices/mee2020.yaml``).

Streaming: flow accumulation depends on whole catchments, so the routing runs on whole arrays
in compact types (see :mod:`ecoraster.kernels.hydrology`), in an order that holds at most
≈ 13 bytes per pixel (directions + accumulation + in-degree): the masked DEM (float32) is filled, written to a scratch file and
dropped; directions (uint32) → accumulation (float64) → streams (uint8); then the outputs
stream block by block through the block engine: the slope by ``engine.map_overlap`` on the
memory-mapped filled DEM (halo 1, or the noise window's radius), LS and the factors by
``engine.map_blocks`` (pixel areas from the grid). Monthly / daily precipitation stacks (3-D) go
through dask directly.
Measured in ``bench/bench_soil_retention.py`` (``bench/README.md``): at 100 Mpx the peak is still above
2 GB (2.66 GB; see ``docs/soil_retention.md`` for where it comes from and the next steps).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import dask.array as da
import numpy as np
import rasterio

from ..context import ServiceContext
from ..engine import block_chunk, map_blocks, map_overlap
from ..errors import EcorasterError, TableError
from ..io.raster import GDAL_CACHE_BYTES, release_memory
from ..io.scratch import ScratchArray
from ..kernels import hydrology as hyd
from ..kernels import soil as soilk
from ..resources import config_path
from ..spec import InputSpec, Issue, MethodSpec, OutputSpec, ParameterSpec, ServiceResult, ServiceSpec, When
from ..tables import check_codes, class_codes, numeric_column, read_table, require_columns, unique_counts

NODATA = -9999.0
PRODUCT = "soil_retention"
M2_PER_HA = 10_000.0
K_UNITS = "t·ha·h/(ha·MJ·mm)"
R_UNITS = "MJ·mm/(ha·h·yr)"
#: value, unit, about, source and confidence of every parameter (read lazily, ``services._constants``)
TABLE = "soil_retention.yaml"
INVEST_PARAMS = ("threshold_flow_accumulation", "l_max", "stream_trace_proportion")
RUSLE_CN_PARAMS = ("slope_length_max_m", "flat_relief_m", "flat_window_radius", "r_annual_alpha", "r_annual_beta",
                   "r_daily_threshold_mm", "ndvi_soil", "ndvi_veg")
COMMON_OUTPUTS = ("rkls", "usle", "avoided_erosion", "soil_retention_t", "ls")


SPEC = ServiceSpec(
    id="soil_retention",
    name="Soil retention",
    name_zh="土壤保持",
    about="Soil loss avoided by vegetation and practices: R·K·LS·(1 − C·P), InVEST SDR factors or the "
          "Chinese guide's RUSLE factors.",
    category="调节服务",
    methods=(
        MethodSpec(id="rusle_cn", profiles=("mee2020",),
                   about="RUSLE with the Chinese guide's factors (Liu Baoyuan S, Cai Chongfa C from NDVI, R from "
                         "erosivity or precipitation, K from erodibility or soil units), SRTM noise flattened",
                   required_inputs=("dem", "ecosystem", "ndvi"),
                   optional_inputs=("p_table", "soil_k_table"),
                   one_of_inputs=(("erosivity", "precipitation"), ("erodibility", "soil_units")),
                   parameters=RUSLE_CN_PARAMS, required_parameters=RUSLE_CN_PARAMS,
                   outputs=(*COMMON_OUTPUTS, "c_factor")),
        MethodSpec(id="invest_sdr", profiles=("invest",),
                   about="the factors of InVEST 3.20 SDR (MFD routing, Desmet & Govers LS, streams left out): "
                         "RKLS, USLE, avoided erosion",
                   required_inputs=("dem", "erosivity", "erodibility", "lulc", "biophysical_table"),
                   optional_inputs=("watersheds",),
                   parameters=INVEST_PARAMS, required_parameters=INVEST_PARAMS,
                   outputs=(*COMMON_OUTPUTS, "stream"),
                   created_if={"stream": When()}),
    ),
    reference="InVEST User's Guide 3.20, SDR (RKLS, USLE, avoided erosion); MEE/CAEP 2020 GEP guide 土壤保持; "
              "gep-methods.md §3.2 (Liu Baoyuan S, Cai Chongfa C, EPIC K, 章文波 R)",
    inputs=(
        InputSpec(id="dem", kind="raster", units="m", resampling="bilinear",
                  about="elevation; the run grid should be the DEM's (grid: {like: <dem>})"),
        InputSpec(id="erosivity", kind="raster", units=R_UNITS, resampling="bilinear", required=False,
                  about="rainfall erosivity R (invest_sdr: required; rusle_cn: or from precipitation)"),
        InputSpec(id="erodibility", kind="raster", units=K_UNITS, resampling="bilinear", required=False,
                  about="soil erodibility K (invest_sdr: required; rusle_cn: or soil_units + soil_k_table)"),
        InputSpec(id="lulc", kind="raster", units="class", categorical=True, resampling="mode", required=False,
                  about="land cover of the biophysical table (invest_sdr)"),
        InputSpec(id="biophysical_table", kind="table", required=False,
                  about="InVEST SDR biophysical table: lucode, usle_c, usle_p (invest_sdr)",
                  columns={"lucode": "class", "usle_c": "1", "usle_p": "1"}),
        InputSpec(id="watersheds", kind="vector", required=False,
                  about="optional watersheds: pixels outside are left out (invest_sdr, as InVEST)"),
        InputSpec(id="ecosystem", kind="raster", units="class", categorical=True, resampling="mode",
                  required=False, about="GEP ecosystem classes 11..72 → P and soil / no soil (rusle_cn)"),
        InputSpec(id="ndvi", kind="raster", units="1", resampling="bilinear", required=False,
                  about="NDVI (annual mean or growing season) → FVC → C (rusle_cn)"),
        InputSpec(id="precipitation", kind="raster", units="mm", resampling="bilinear", required=False,
                  about="precipitation for R (rusle_cn): ≥ 365 bands daily mm, 12 bands monthly mm, or 1 band "
                        "annual mm/yr"),
        InputSpec(id="soil_units", kind="raster", units="class", categorical=True, resampling="nearest",
                  required=False, about="soil mapping units (e.g. HWSD MU_GLOBAL) keyed by soil_k_table (rusle_cn)"),
        InputSpec(id="soil_k_table", kind="table", required=False,
                  about="K per soil unit: soil_unit and k, or sand_pct, silt_pct, clay_pct, org_carbon_pct (EPIC)",
                  columns={"soil_unit": "class", "k": K_UNITS}),
        InputSpec(id="p_table", kind="table", required=False,
                  about="P and include (0/1) per GEP class (rusle_cn); default "
                        "configs/parameters/soil_p_gep_classes.csv", columns={"code": "class", "p": "1"}),
    ),
    parameters=(
        ParameterSpec(id="threshold_flow_accumulation", type="number", minimum=0.0, exclusive_minimum=True,
                      table=TABLE),
        ParameterSpec(id="l_max", type="number", minimum=0.0, exclusive_minimum=True, table=TABLE),
        ParameterSpec(id="stream_trace_proportion", type="number", minimum=0.0, maximum=1.0, table=TABLE),
        ParameterSpec(id="slope_length_max_m", type="number", minimum=0.0, exclusive_minimum=True, table=TABLE),
        ParameterSpec(id="flat_relief_m", type="number", minimum=0.0, table=TABLE),
        ParameterSpec(id="flat_window_radius", type="integer", minimum=0.0, maximum=50.0, table=TABLE),
        ParameterSpec(id="r_annual_alpha", type="number", minimum=0.0, exclusive_minimum=True, table=TABLE),
        ParameterSpec(id="r_annual_beta", type="number", minimum=0.0, exclusive_minimum=True, table=TABLE),
        ParameterSpec(id="r_daily_threshold_mm", type="number", minimum=0.0, table=TABLE),
        ParameterSpec(id="ndvi_soil", type="number", minimum=-1.0, maximum=1.0, table=TABLE),
        ParameterSpec(id="ndvi_veg", type="number", minimum=-1.0, maximum=1.0, table=TABLE),
    ),
    outputs=(
        OutputSpec(id="rkls", filename="rkls.tif", units="t/ha/yr", per="ha", nodata=NODATA,
                   about="potential soil loss R·K·LS (invest_sdr: nodata on streams)"),
        OutputSpec(id="usle", filename="usle.tif", units="t/ha/yr", per="ha", nodata=NODATA,
                   about="actual soil loss R·K·LS·C·P"),
        OutputSpec(id="avoided_erosion", filename="avoided_erosion.tif", units="t/ha/yr", per="ha", nodata=NODATA,
                   about="soil retention density RKLS − USLE (InVEST avoided_erosion)"),
        OutputSpec(id="soil_retention_t", filename="soil_retention_t.tif", units="t", per="pixel",
                   nodata=NODATA, product=PRODUCT,
                   about="soil retention per pixel per year, (RKLS − USLE) × pixel area"),
        OutputSpec(id="ls", filename="ls_factor.tif", units="1", kind="intermediate", per="state", nodata=NODATA,
                   about="LS factor"),
        OutputSpec(id="stream", filename="stream.tif", units="0/1", kind="intermediate", per="state",
                   dtype="uint8", nodata=255, values="per_class",
                   about="stream pixels from the flow-accumulation threshold (invest_sdr)"),
        OutputSpec(id="c_factor", filename="c_factor.tif", units="1", kind="intermediate", per="state",
                   nodata=NODATA, about="cover factor C (Cai Chongfa, from NDVI)"),
    ),
)


# ------------------------------------------------------------------------------------------
# tables
# ------------------------------------------------------------------------------------------

def read_biophysical(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes sorted, usle_c, usle_p) from an InVEST SDR biophysical table (columns matched
    case-insensitively, as InVEST does); C and P must lie in 0..1."""
    df = read_table(path, field="biophysical_table")
    df = df.rename(columns={c: str(c).strip().lower() for c in df.columns})
    require_columns(df, ["lucode", "usle_c", "usle_p"], path)
    codes = class_codes(df, "lucode", path)
    c = numeric_column(df, "usle_c", path)
    p = numeric_column(df, "usle_p", path)
    for name, v in (("usle_c", c), ("usle_p", p)):
        bad = np.flatnonzero((v < 0) | (v > 1))
        if bad.size:
            raise TableError(f"{path}: column {name!r} row {bad[0] + 2} = {v[bad[0]]:g} is outside [0, 1]")
    order = np.argsort(codes)
    return codes[order], c[order], p[order]


def read_p_table(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes, P, include) per GEP class."""
    df = read_table(path, field="p_table")
    require_columns(df, ["code", "p", "include"], path)
    codes = class_codes(df, "code", path)
    p = numeric_column(df, "p", path)
    inc = numeric_column(df, "include", path)
    order = np.argsort(codes)
    return codes[order], p[order], inc[order] == 1


def read_k_table(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(soil unit codes, K in t·ha·h/(ha·MJ·mm)): a ``k`` column, else EPIC from sand_pct,
    silt_pct, clay_pct, org_carbon_pct. Empty K (no soil: water, urban) → K = 0."""
    df = read_table(path, field="soil_k_table")
    require_columns(df, ["soil_unit"], path)
    codes = class_codes(df, "soil_unit", path)
    if "k" in df.columns:
        k = np.array(df["k"].astype(float).fillna(0.0), dtype=np.float64)
    else:
        cols = ["sand_pct", "silt_pct", "clay_pct", "org_carbon_pct"]
        require_columns(df, cols, path)
        parts = [np.array(df[c].astype(float), dtype=np.float64) for c in cols]
        k = np.nan_to_num(soilk.k_epic(*parts), nan=0.0)
    if (k < 0).any() or (k > 0.1).any():
        bad = int(np.flatnonzero((k < 0) | (k > 0.1))[0])
        raise TableError(f"{path}: soil unit {codes[bad]} has K = {k[bad]:g}; expected 0..0.1 {K_UNITS}")
    order = np.argsort(codes)
    return codes[order], k[order]


def p_table_path(ctx: ServiceContext) -> str:
    return ctx.entry("p_table").uri if ctx.has("p_table") else str(config_path("parameters", "soil_p_gep_classes.csv"))


def m_classes() -> tuple[np.ndarray, np.ndarray]:
    df = read_table(config_path("parameters", "soil_m_classes_cn.csv"))
    return df["upper_deg"].to_numpy(np.float64), df["m"].to_numpy(np.float64)


def _lookup(codes: np.ndarray, values: np.ndarray, block: np.ndarray, fill: float) -> np.ndarray:
    """values[code] for each pixel of ``block`` (codes sorted); ``fill`` where unknown."""
    idx = np.searchsorted(codes, block)
    idx = np.clip(idx, 0, codes.size - 1)
    found = codes[idx] == block
    return np.where(found, values[idx], fill)


# ------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------

def validate(ctx: ServiceContext) -> list[Issue]:
    """All problems at once: the spec's checks (method, its inputs, parameter types and ranges),
    then soil units without their K table, the tables, land-cover codes missing from the
    biophysical table (with pixel counts), a projected grid with square pixels."""
    base = ("services", SPEC.id)
    issues = ctx.validate_inputs()
    if issues and any(i.keys[:3] == (*base, "method") for i in issues):
        return issues
    method = ctx.method_id
    if method == "rusle_cn" and not ctx.has("erodibility") and ctx.has("soil_units") and not ctx.has("soil_k_table"):
        issues.append(Issue((*base, "inputs", "soil_k_table"),
                            "rusle_cn: soil_units need soil_k_table (K per soil unit)"))
    if ctx.grid.crs is None or not ctx.grid.crs.is_projected:
        issues.append(Issue((*base, "grid"), f"the grid must be projected in metres (got {ctx.grid.crs}); "
                                             "LS needs the pixel size in metres"))
    elif abs(abs(ctx.grid.transform.a) - abs(ctx.grid.transform.e)) > 1e-6 * abs(ctx.grid.transform.a):
        issues.append(Issue((*base, "grid"), f"pixels must be square (got {ctx.grid.transform.a} × "
                                             f"{abs(ctx.grid.transform.e)} m)"))
    if issues:
        return issues
    try:
        if method == "invest_sdr":
            codes = read_biophysical(ctx.entry("biophysical_table").uri)[0]
            lulc = ctx.raster("lulc")
            check_codes(unique_counts(lulc.data, lulc.attrs["nodata"]), codes, ctx.entry("lulc").uri,
                        ctx.entry("biophysical_table").uri, "lucode")
        else:
            read_p_table(p_table_path(ctx))
            if ctx.has("soil_k_table"):
                read_k_table(ctx.entry("soil_k_table").uri)
    except EcorasterError as exc:
        issues.append(Issue(base, str(exc)))
    return issues


# ------------------------------------------------------------------------------------------
# routing (whole arrays, compact types)
# ------------------------------------------------------------------------------------------

def _watershed_mask(ctx: ServiceContext) -> np.ndarray:
    import geopandas as gpd
    from rasterio.features import rasterize

    e = ctx.entry("watersheds")
    gdf = gpd.read_file(e.uri, layer=e.layer).to_crs(ctx.grid.crs)
    return rasterize(((g, 1) for g in gdf.geometry if g is not None and not g.is_empty),
                     out_shape=ctx.grid.shape, transform=ctx.grid.transform, fill=0, dtype="uint8")


def route(holder: list, work: Path, *, streams: bool, threshold: float, trace: float) -> dict:
    """Fill, MFD directions, accumulation, streams; every result spilled to ``work`` as a
    :class:`~ecoraster.io.scratch.ScratchArray` and freed, so that the block-by-block writing
    after the routing holds only its windows. ``holder`` is a one-item list with the DEM
    (float32, NaN = nodata), emptied here so the DEM is freed before the accumulation (4 bytes
    per pixel less at the peak). Returns ``dem`` (filled, float32), ``acc`` (float64),
    ``stream`` (uint8, or None), ``raised`` (pixels raised by filling) and ``stream_pixels``."""
    dem = holder.pop()
    release_memory()  # the dask blocks that built the DEM
    raised = hyd.fill_depressions(dem)
    dem_filled = ScratchArray.save(work / "dem_filled.npy", dem)
    flow_dir = hyd.flow_dir_mfd(dem)
    del dem
    release_memory()
    acc = hyd.flow_accumulation_mfd(flow_dir)
    release_memory()  # the in-degree counts
    stream_scratch, stream_pixels = None, 0
    if streams:
        stream = hyd.extract_streams_mfd(acc, flow_dir, float(threshold), float(trace))
        del flow_dir
        stream_pixels = int(np.count_nonzero(stream == 1))
        stream_scratch = ScratchArray.save(work / "stream.npy", stream)
        del stream
    else:
        del flow_dir
    acc_scratch = ScratchArray.save(work / "acc.npy", acc)
    del acc
    release_memory()
    return {"dem": dem_filled, "acc": acc_scratch, "stream": stream_scratch, "raised": raised,
            "stream_pixels": stream_pixels}


def _lazy(scratch: ScratchArray, chunks) -> da.Array:
    """A spilled routing result as a lazy array with the run's chunks (windows read on demand)."""
    return da.from_array(scratch, chunks=chunks, lock=False, asarray=True)


def _slope_kernel(win: np.ndarray, *, cell: float, radius: int = 0, relief: float = 0.0) -> np.ndarray:
    """Horn's slope [%] of a haloed DEM block (NaN off the raster, as nodata); with ``relief`` > 0,
    0 where the relief within (2·radius + 1)² is ≤ ``relief`` m (SRTM noise, rusle_cn)."""
    win = np.ascontiguousarray(win, dtype=np.float32)
    slope = np.empty_like(win)
    hyd.slope_percent(win, cell, cell, slope)
    if relief > 0:
        soilk.flatten_noise(slope, win, radius, relief)
    return slope


# ------------------------------------------------------------------------------------------
# compute
# ------------------------------------------------------------------------------------------

def _finish(out: np.ndarray, rkls: np.ndarray, usle: np.ndarray, ls: np.ndarray, valid: np.ndarray,
            pixel_ha: np.ndarray) -> None:
    """Layers 0..4 of ``out`` (NODATA-filled): RKLS, USLE, RKLS − USLE [t/ha/yr], (RKLS − USLE) ×
    pixel area [t], LS."""
    out[0][valid] = rkls[valid]
    out[1][valid] = usle[valid]
    out[2][valid] = (rkls - usle)[valid]
    out[3][valid] = ((rkls - usle) * pixel_ha)[valid]
    lv = ~np.isnan(ls)
    out[4][lv] = ls[lv]


def compute(ctx: ServiceContext) -> ServiceResult:
    """Route the DEM in memory, then write the rasters block by block; totals in float64."""
    method = ctx.method_id
    invest = method == "invest_sdr"
    cell = abs(ctx.grid.transform.a)
    # blocks of ≈ 1 Mpx: a block's kernel holds ≈ 130 bytes per pixel of temporaries (float64 LS, RKLS,
    # USLE, …), two blocks compute at once and two batches are being written
    ctx = replace(ctx, chunk=block_chunk(16, ctx.chunk))
    dem = ctx.raster("dem", dtype="float32", nodata=np.nan).data
    notes: list[str] = []
    if invest:
        codes, usle_c, usle_p = read_biophysical(ctx.entry("biophysical_table").uri)
        cp = usle_c * usle_p
        r_in = ctx.raster("erosivity", dtype="float32", nodata=np.nan).data
        k_in = ctx.raster("erodibility", dtype="float32", nodata=np.nan).data
        lulc, lulc_nd = ctx.class_array("lulc")
        valid = ~da.isnan(dem) & ~da.isnan(r_in) & ~da.isnan(k_in) & (lulc != lulc_nd)
        cls_in = lulc
    else:
        cls_in, eco_nd = ctx.class_array("ecosystem")
        valid = ~da.isnan(dem) & (cls_in != eco_nd)
    # the masked DEM is stored chunk by chunk into one preallocated array (no concatenation copy),
    # with GDAL's block cache capped as the writer does (its default is 5 % of the RAM)
    holder = [np.empty(ctx.grid.shape, dtype=np.float32)]
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
        da.store(da.where(valid, dem, np.float32(np.nan)).astype(np.float32), holder[0], lock=False)
    if ctx.has("watersheds"):
        holder[0][_watershed_mask(ctx) == 0] = np.nan
    work = Path(tempfile.mkdtemp(prefix="soil_routing_", dir=ctx.out_dir))
    try:
        routed = route(holder, work, streams=invest, threshold=ctx.param("threshold_flow_accumulation"),
                       trace=ctx.param("stream_trace_proportion"))
        notes.append(f"pit filling raised {routed['raised']:,} pixels to their spill height")
        if invest:
            arrays, meta = _invest_arrays(ctx, routed, cell, codes, cp, r_in, k_in, cls_in, lulc_nd)
        else:
            arrays, meta = _rusle_cn_arrays(ctx, routed, cell, cls_in, eco_nd, notes)
        records = ctx.write(arrays, tags={"method": method})
        for scratch in (routed["dem"], routed["acc"], routed["stream"]):
            if scratch is not None:
                scratch.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = ServiceResult(service=SPEC.id, outputs=records, metadata={"method": method, **meta})
    result.totals["soil_retention_t_total"] = (records["soil_retention_t"].total, "t")
    for oid in ("rkls", "usle", "avoided_erosion"):
        rec = records[oid]
        result.totals[f"{oid}_sum_t_per_ha"] = (rec.total, "t/ha/yr (sum over pixels)")
    result.notes.extend(notes)
    result.notes.append("rkls, usle and avoided_erosion are densities in t/ha/yr (R in MJ·mm/(ha·h·yr) × "
                        "K in t·ha·h/(ha·MJ·mm)); soil_retention_t = avoided_erosion × pixel area in ha")
    return ctx.checked(result)


def _invest_arrays(ctx, routed, cell, codes, cp, r_in, k_in, cls_in, lulc_nd):
    l_max = float(ctx.param("l_max"))
    chunks = cls_in.chunks
    slope = map_overlap(_slope_kernel, _lazy(routed["dem"], chunks), depth=1, boundary=np.nan, cell=cell)
    acc_da = _lazy(routed["acc"], chunks)
    stream_da = _lazy(routed["stream"], chunks)

    def kernel(s_b, a_b, st, r_b, k_b, c_b, *, row_area_m2):
        out = np.full((5, *s_b.shape), NODATA, dtype=np.float32)
        ls = np.empty(s_b.shape, dtype=np.float64)
        soilk.ls_invest(s_b.astype(np.float64), a_b, cell, l_max, ls)
        cpv = _lookup(codes, cp, c_b, np.nan)
        valid = ~np.isnan(ls) & ~np.isnan(r_b) & ~np.isnan(k_b) & (c_b != lulc_nd) & (st == 0) & ~np.isnan(cpv)
        rkls = ls * r_b.astype(np.float64) * k_b.astype(np.float64)
        usle = rkls * cpv
        _finish(out, rkls, usle, ls, valid, row_area_m2[:, None] / M2_PER_HA)
        return out

    rkls, usle, avoided, sr_t, ls = map_blocks(kernel, slope, acc_da, stream_da, r_in, k_in, cls_in, grid=ctx.grid,
                                               n_out=5)
    arrays = {"rkls": rkls, "usle": usle, "avoided_erosion": avoided, "soil_retention_t": sr_t, "ls": ls,
              "stream": stream_da}
    meta = {"threshold_flow_accumulation": ctx.param("threshold_flow_accumulation"), "l_max": l_max,
            "stream_pixels": routed["stream_pixels"]}
    return arrays, meta


def _r_factor(ctx: ServiceContext):
    """R as a lazy float32 array on the grid: the erosivity raster, else from precipitation."""
    if ctx.has("erosivity"):
        return ctx.raster("erosivity", dtype="float32", nodata=np.nan).data, "erosivity raster"
    from ..grid import align_to, inspect_source

    e = ctx.entry("precipitation")
    with rasterio.open(e.uri) as src:
        n = src.count
    if n == 12 or n >= 365:
        bands = [align_to(inspect_source(e.uri, band=b, crs=e.crs, nodata=e.nodata,
                                         field="services.soil_retention.inputs.precipitation"),
                          ctx.grid, "bilinear", dtype="float32", nodata=np.nan, chunk=ctx.chunk).data
                 for b in range(1, n + 1)]
        stack = da.stack(bands)
        if n == 12:
            r = stack.map_blocks(lambda s: soilk.r_monthly_wischmeier(s).astype(np.float32), drop_axis=0,
                                 dtype=np.float32)
            return r, "monthly precipitation, Wischmeier & Smith regression"
        years = max(1, round(n / 365.25))
        thr = float(ctx.param("r_daily_threshold_mm"))
        r = stack.rechunk({0: -1}).map_blocks(
            lambda s: soilk.r_daily_zhang(s, years, thr).astype(np.float32), drop_axis=0, dtype=np.float32)
        return r, f"daily precipitation ({n} days, {years} yr), 章文波 2002 half-month model"
    if n == 1:
        p = ctx.raster("precipitation", dtype="float32", nodata=np.nan).data
        alpha, beta = float(ctx.param("r_annual_alpha")), float(ctx.param("r_annual_beta"))
        return (map_blocks(lambda b: soilk.r_annual_power(b, alpha, beta).astype(np.float32), p),
                f"annual precipitation, R = {alpha:g}·P^{beta:g} (章文波 2002)")
    raise EcorasterError(f"{e.uri}: precipitation has {n} bands; use ≥ 365 (daily mm), 12 (monthly mm) or 1 "
                         "(annual mm/yr)")


def _k_factor(ctx: ServiceContext):
    if ctx.has("erodibility"):
        return ctx.raster("erodibility", dtype="float32", nodata=np.nan).data, "erodibility raster"
    codes, k = read_k_table(ctx.entry("soil_k_table").uri)
    units, _ = ctx.class_array("soil_units")
    kk = map_blocks(lambda b: _lookup(codes, k, b, np.nan).astype(np.float32), units)
    return kk, f"soil units × {Path(ctx.entry('soil_k_table').uri).name}"


def _rusle_cn_arrays(ctx, routed, cell, cls_in, eco_nd, notes):
    upper, m_vals = m_classes()
    lam_max = float(ctx.param("slope_length_max_m"))
    relief = float(ctx.param("flat_relief_m"))
    radius = int(ctx.param("flat_window_radius"))
    ndvi_soil, ndvi_veg = float(ctx.param("ndvi_soil")), float(ctx.param("ndvi_veg"))
    p_codes, p_vals, include = read_p_table(p_table_path(ctx))
    r_da, r_how = _r_factor(ctx)
    k_da, k_how = _k_factor(ctx)
    ndvi = ctx.raster("ndvi", dtype="float32", nodata=np.nan).data
    chunks = cls_in.chunks
    slope = map_overlap(_slope_kernel, _lazy(routed["dem"], chunks), depth=max(radius, 1), boundary=np.nan,
                        cell=cell, radius=radius, relief=relief)
    acc_da = _lazy(routed["acc"], chunks)

    def kernel(s_b, a_b, r_b, k_b, n_b, e_b, *, row_area_m2):
        out = np.full((6, *s_b.shape), NODATA, dtype=np.float32)
        ls = np.empty(s_b.shape, dtype=np.float64)
        soilk.ls_rusle_cn(s_b.astype(np.float64), a_b, cell, lam_max, upper, m_vals, ls)
        pv = _lookup(p_codes, p_vals, e_b, np.nan)
        inc = _lookup(p_codes, include.astype(np.float64), e_b, 0.0) == 1.0
        c = np.empty(n_b.shape, dtype=np.float64)
        soilk.c_from_ndvi(n_b, ndvi_soil, ndvi_veg, c)
        factors = ~np.isnan(r_b) & ~np.isnan(k_b) & ~np.isnan(c)
        valid = ~np.isnan(ls) & ~np.isnan(pv) & (e_b != eco_nd) & (~inc | factors)
        rkls = np.where(inc, ls * r_b * k_b, 0.0)
        usle = np.where(inc, rkls * c * pv, 0.0)
        _finish(out, rkls, usle, ls, valid, row_area_m2[:, None] / M2_PER_HA)
        cv = ~np.isnan(c)
        out[5][cv] = c[cv]
        return out

    layers = map_blocks(kernel, slope, acc_da, r_da, k_da, ndvi, cls_in, grid=ctx.grid, n_out=6)
    arrays = dict(zip(("rkls", "usle", "avoided_erosion", "soil_retention_t", "ls", "c_factor"), layers))
    notes.append(f"R from {r_how}; K from {k_how}; C from NDVI (FVC dimidiate {ndvi_soil:g}..{ndvi_veg:g}, Cai "
                 f"2000); P and soil/no-soil classes from {Path(p_table_path(ctx)).name}")
    notes.append(f"SRTM noise: slope set to 0 where the filled DEM's relief within a {2 * radius + 1}×"
                 f"{2 * radius + 1} window is ≤ {relief:g} m")
    return arrays, {"r_from": r_how, "k_from": k_how, "slope_length_max_m": lam_max, "flat_relief_m": relief}
