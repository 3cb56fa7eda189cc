"""Carbon storage and change (碳储量), the InVEST Carbon model's method.

Storage per pixel = (C_above + C_below + C_soil + C_dead)(class) [Mg C/ha] × pixel area [ha].
With an alternate land cover, change = storage_alt − storage_bas per pixel.

This is a *stock*, reported beside the GEP flows (annual sequestration is the
``carbon_sequestration`` service). Reference: Natural Capital Project, InVEST User's Guide,
"Carbon Storage and Sequestration" (pools per LULC class × area).
"""

from __future__ import annotations

import numpy as np

from ..context import ServiceContext
from ..engine import map_blocks, map_overlap
from ..errors import EcorasterError
from ..kernels.lookup import build_lut, difference, lookup_times_area
from ..spec import InputSpec, Issue, MethodSpec, OutputSpec, ParameterSpec, ServiceResult, ServiceSpec, When
from ..tables import check_codes, lookup_arrays, unique_counts

POOLS = ("C_above", "C_below", "C_soil", "C_dead")
NODATA = -9999.0
M2_PER_HA = 10_000.0

SPEC = ServiceSpec(
    id="carbon_storage",
    name="Carbon storage and change",
    name_zh="碳储量",
    about="Carbon stock in four pools per land-cover class × pixel area, and its change "
          "between a baseline and an alternate land cover.",
    category="存量",
    methods=(
        MethodSpec(id="invest_carbon", about="pools per class × pixel area (InVEST Carbon)",
                   required_inputs=("lulc_bas", "carbon_pools"), optional_inputs=("lulc_alt",),
                   parameters=("min_mapping_unit_px",),
                   outputs=("c_storage_bas", "c_storage_alt", "c_change"),
                   created_if={"c_storage_alt": When(inputs=("lulc_alt",)),
                               "c_change": When(inputs=("lulc_alt",))}),
    ),
    reference="InVEST User's Guide, Carbon Storage and Sequestration; pools in Mg C/ha per class",
    inputs=(
        InputSpec(id="lulc_bas", kind="raster", about="baseline land-use / land-cover classes",
                  units="class", categorical=True, resampling="mode", accounting_year=False),
        InputSpec(id="lulc_alt", kind="raster", about="alternate land-use / land-cover classes",
                  units="class", categorical=True, resampling="mode", required=False),
        InputSpec(id="carbon_pools", kind="table",
                  about="carbon pools per class: lucode, C_above, C_below, C_soil, C_dead",
                  columns={"lucode": "class", **{p: "Mg C/ha" for p in POOLS}}),
    ),
    parameters=(
        ParameterSpec(id="min_mapping_unit_px", units="pixel", default=0, type="integer", minimum=0,
                      about="minimum mapping unit of a change: a connected patch (8-neighbour) of pixels changing "
                            "to the same class with fewer pixels than this keeps its baseline class in the "
                            "alternate map, so classification noise does not count as change (0 = off)",
                      source="science-review.md §1.6 (class noise: ±0.5 Tg of spurious change in the demo)",
                      confidence="◐"),
    ),
    outputs=(
        OutputSpec(id="c_storage_bas", filename="c_storage_bas.tif", units="Mg C",
                   about="carbon storage, baseline, per pixel", per="pixel", nodata=NODATA, values="per_class"),
        OutputSpec(id="c_storage_alt", filename="c_storage_alt.tif", units="Mg C",
                   about="carbon storage, alternate, per pixel", per="pixel", nodata=NODATA,
                   values="per_class"),
        OutputSpec(id="c_change", filename="c_change_bas_alt.tif", units="Mg C",
                   about="carbon storage change, alternate − baseline, per pixel", per="pixel",
                   nodata=NODATA, values="per_class"),
    ),
)


def _pool_table(ctx: ServiceContext) -> tuple[np.ndarray, np.ndarray]:
    """(codes, total density Mg C/ha) from the pools table; pools summed in float64."""
    df = ctx.table("carbon_pools")
    codes, values = lookup_arrays(df, "lucode", POOLS, ctx.entry("carbon_pools").uri)
    return codes, values.sum(axis=1)


def validate(ctx: ServiceContext) -> list[Issue]:
    """All problems at once: generic input checks, the pools table, and every LULC code
    without a table row (this reads each LULC raster once)."""
    issues = ctx.validate_inputs()
    if issues:
        return issues
    try:
        codes, _ = _pool_table(ctx)
    except EcorasterError as exc:
        return [Issue(("services", SPEC.id, "inputs", "carbon_pools"), str(exc))]
    for lulc_id in ("lulc_bas", "lulc_alt"):
        if not ctx.has(lulc_id):
            continue
        lulc = ctx.raster(lulc_id)
        try:
            check_codes(unique_counts(lulc.data, lulc.attrs["nodata"]), codes,
                        ctx.entry(lulc_id).uri, ctx.entry("carbon_pools").uri, "lucode")
        except EcorasterError as exc:
            issues.append(Issue(("services", SPEC.id, "inputs", lulc_id), str(exc)))
    return issues


def _storage_block(lulc: np.ndarray, *, row_area_m2: np.ndarray, lulc_nodata: int, lut) -> np.ndarray:
    offset, table, known, codes, density = lut
    out = np.empty(lulc.shape, dtype=np.float32)
    lookup_times_area(lulc, lulc_nodata, offset, table, known, codes, density,
                      row_area_m2 / M2_PER_HA, np.float32(NODATA), out)
    return out


def _difference_block(bas: np.ndarray, alt: np.ndarray) -> np.ndarray:
    out = np.empty(bas.shape, dtype=np.float32)
    difference(bas, alt, np.float32(NODATA), out)
    return out


def storage(ctx: ServiceContext, lulc_id: str, codes: np.ndarray, density: np.ndarray):
    """Lazy Mg C per pixel for one LULC input."""
    lulc = ctx.raster(lulc_id, dtype="int64")
    return _storage_of(lulc.data, ctx, codes, density, int(lulc.attrs["nodata"]))


def sieve_changes(bas: np.ndarray, alt: np.ndarray, min_px: int, bas_nodata: int, alt_nodata: int) -> np.ndarray:
    """``alt`` with every changed patch (8-connected valid pixels with bas ≠ alt and the same alt
    class) of fewer than ``min_px`` pixels set back to ``bas``."""
    from scipy import ndimage

    out = alt.copy()
    changed = (bas != alt) & (bas != bas_nodata) & (alt != alt_nodata)
    for cls in np.unique(alt[changed]):
        labels, n = ndimage.label(changed & (alt == cls), structure=np.ones((3, 3), bool))
        if n == 0:
            continue
        sizes = np.bincount(labels.ravel())
        small = sizes < min_px
        small[0] = False
        drop = small[labels]
        out[drop] = bas[drop]
    return out


def _storage_of(lulc, ctx: ServiceContext, codes, density, nodata: int):
    """Lazy Mg C per pixel of a lazy class array (int64, ``nodata``)."""
    offset, table, known = build_lut(codes, density)
    return map_blocks(_storage_block, lulc, grid=ctx.grid, dtype=np.float32,
                      lulc_nodata=nodata, lut=(offset, table, known, codes, density))


def compute(ctx: ServiceContext) -> ServiceResult:
    """Write storage (and change) rasters in Mg C per pixel; totals in float64."""
    codes, density = _pool_table(ctx)
    arrays = {"c_storage_bas": storage(ctx, "lulc_bas", codes, density)}
    mmu = int(ctx.param("min_mapping_unit_px") or 0)
    if ctx.has("lulc_alt") and mmu > 1:
        bas, alt = ctx.raster("lulc_bas", dtype="int64"), ctx.raster("lulc_alt", dtype="int64")
        # halo of mmu pixels: a patch smaller than mmu pixels lies wholly inside the window of each of
        # its pixels, and a patch of ≥ mmu pixels shows ≥ mmu of them there (a BFS from the pixel).
        # Beyond the raster edge both maps are −1 there: unchanged pixels, which join no patch.
        nd_b, nd_a = int(bas.attrs["nodata"]), int(alt.attrs["nodata"])
        sieved = map_overlap(sieve_changes, bas.data, alt.data, depth=mmu, boundary=-1, dtype=np.int64,
                             min_px=mmu, bas_nodata=nd_b, alt_nodata=nd_a)
        arrays["c_storage_alt"] = _storage_of(sieved, ctx, codes, density, nd_a)
    elif ctx.has("lulc_alt"):
        arrays["c_storage_alt"] = storage(ctx, "lulc_alt", codes, density)
    if ctx.has("lulc_alt"):
        arrays["c_change"] = map_blocks(_difference_block, arrays["c_storage_bas"], arrays["c_storage_alt"])
    records = ctx.write(arrays)
    result = ServiceResult(service=SPEC.id, outputs=records)
    for out_id, rec in records.items():
        result.totals[f"{out_id}_total"] = (rec.total, "Mg C")
    if mmu > 1:
        result.notes.append(f"minimum mapping unit {mmu} px: changed patches below it keep their baseline class")
    return ctx.checked(result)
