"""A test-only service: the area of every valid pixel of one land-cover raster (m² per pixel).
Its only input is ``lulc``, so a new scene for another dataset must not recompute it."""

from __future__ import annotations

import numpy as np

from ecoraster.context import ServiceContext
from ecoraster.engine import map_blocks_with_area
from ecoraster.spec import InputSpec, Issue, OutputSpec, ServiceResult, ServiceSpec

NODATA = -9999.0

SPEC = ServiceSpec(
    id="test_pixel_area", name="Pixel area (test)", name_zh="像元面积（测试）", about="area of valid pixels",
    category="存量",
    inputs=(InputSpec(id="lulc", kind="raster", about="land cover (of any year)", units="class", categorical=True,
                      resampling="mode", accounting_year=False),),
    outputs=(OutputSpec(id="area", filename="area.tif", units="m2", about="pixel area", per="pixel",
                        nodata=NODATA),),
)


def validate(ctx: ServiceContext) -> list[Issue]:
    return ctx.validate_inputs()


def _area_block(lulc: np.ndarray, *, row_area_m2: np.ndarray, nodata: int) -> np.ndarray:
    out = np.broadcast_to(row_area_m2[:, None], lulc.shape).astype(np.float32)
    return np.where(lulc == nodata, np.float32(NODATA), out)


def compute(ctx: ServiceContext) -> ServiceResult:
    lulc = ctx.raster("lulc", dtype="int64")
    area = map_blocks_with_area(_area_block, lulc.data, grid=ctx.grid, nodata=int(lulc.attrs["nodata"]))
    records = ctx.write({"area": area})
    return ServiceResult(service=SPEC.id, outputs=records, totals={"area_total": (records["area"].total, "m2")})
