"""Allocation of statistics tables to pixels (top-down dasymetric, gep-methods.md §8).

A table gives, per statistical unit (township / district / scenic spot) and product, a
physical quantity and a value (产值 or revenue). Each product is spread over the *eligible*
pixels of its unit (land classes per product, from the standard profile), in proportion to a
productivity proxy (NDVI or NPP for crops) or to area (ponds, tourism), so that

    Σ_{pixels p of unit u} allocated_p = table_total_u     (float64, exact up to rounding)

Each pixel belongs to exactly one unit: the unit whose polygon holds the pixel centre
(rasterised chunk by chunk, so memory stays bounded). Parcel sums (coverage-fraction zonal
sums) then add up to the table totals over any set of parcels that covers the units.

**A unit with no eligible pixel is a reported residual, not an error**: its total stays
unallocated and is listed in the report (``unallocated``), because a township table may list a
product that the land cover does not show there, and the annual run must not stop for it.
Pass ``strict=True`` to raise instead.

References: gep-methods.md §8 (allocation of material products and tourism) and §9 (region-
capped services: compute the regional total, then allocate by a capacity surface).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.array as da
import geopandas as gpd
import numpy as np
import pandas as pd

from .engine import map_blocks, reduce_blocks
from .errors import TableError
from .grid import Grid
from .kernels.classes import class_lut
from .kernels.valuation import spread, unit_weight_sums
from .tables import numeric_column, require_columns

log = logging.getLogger(__name__)

NODATA = -9999.0
TABLE_COLUMNS = ("unit_id", "product", "quantity", "quantity_unit")


@dataclass
class AllocationReport:
    """Per unit and product: table total, allocated, unallocated (residual), eligible weight."""

    rows: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def unallocated(self) -> pd.DataFrame:
        return self.rows[self.rows["quantity_unallocated"] != 0]

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows.to_dict(orient="records"), "notes": list(self.notes)}


def read_statistics(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check a statistics table: ``unit_id, product, quantity, quantity_unit`` and optional
    ``value`` (with ``value_unit`` CNY / 万元, ``price_year``), ``source``, ``confidence``.
    Negative numbers and duplicate (unit, product) rows are errors naming row and value."""
    require_columns(df, TABLE_COLUMNS, source)
    out = df.copy()
    out["unit_id"] = out["unit_id"].astype(str)
    out["quantity"] = numeric_column(out, "quantity", source)
    if "value" in out.columns:
        values = pd.to_numeric(out["value"], errors="coerce")
        bad = values.isna() & out["value"].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise TableError(f"{source}: column 'value' row {row + 2} = {out['value'].iloc[row]!r} is not a number")
        out["value"] = values.astype("float64")
    for col in ("quantity", "value"):
        if col in out.columns and (out[col] < 0).any():
            row = int(np.flatnonzero((out[col] < 0).to_numpy())[0])
            raise TableError(f"{source}: column {col!r} row {row + 2} = {float(out[col].iloc[row])!r} is negative")
    dup = out.duplicated(["unit_id", "product"])
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise TableError(f"{source}: row {row + 2}: unit {out['unit_id'].iloc[row]!r} × product "
                         f"{out['product'].iloc[row]!r} appears twice")
    return out


def _rasterize_block(geoms: np.ndarray, grid: Grid, row0: int, row1: int, col0: int, col1: int) -> np.ndarray:
    from rasterio import features
    import shapely

    shape = (row1 - row0, col1 - col0)
    transform = grid.window_transform(row0, col0)
    left, top = transform.c, transform.f
    right, bottom = left + transform.a * shape[1], top + transform.e * shape[0]
    window = shapely.box(min(left, right), min(top, bottom), max(left, right), max(top, bottom))
    hits = np.flatnonzero(shapely.intersects(geoms, window))
    if not len(hits):
        return np.full(shape, -1, dtype=np.int32)
    return features.rasterize(((geoms[i], int(i)) for i in hits), out_shape=shape, transform=transform,
                              fill=-1, dtype="int32", all_touched=False)


def unit_index(units: gpd.GeoDataFrame, grid: Grid, chunk: int) -> da.Array:
    """Lazy int32 raster: row number of the unit holding each pixel centre, −1 outside."""
    geoms = units.to_crs(grid.crs).geometry.to_numpy()
    rows, cols = grid.chunks(chunk)
    blocks = []
    r0 = 0
    for rh in rows:
        line, c0 = [], 0
        for cw in cols:
            d = dask.delayed(_rasterize_block)(geoms, grid, r0, r0 + rh, c0, c0 + cw)
            line.append(da.from_delayed(d, shape=(rh, cw), dtype=np.int32))
            c0 += cw
        blocks.append(line)
        r0 += rh
    return da.block(blocks)


def _eligible_lut(codes) -> np.ndarray:
    """``lut[code]`` is True for the eligible class codes (a mask addressed by the code)."""
    lut = class_lut([int(c) for c in codes], True, fill=False, offset=0, max_range=np.inf, dtype=np.bool_)
    assert lut is not None
    return lut.values


def allocate(
    table: pd.DataFrame,
    units: gpd.GeoDataFrame,
    id_field: str,
    classes: da.Array,
    class_nodata: float,
    eligible: dict[str, Any],
    grid: Grid,
    *,
    weight: da.Array | None = None,
    weight_nodata: float = NODATA,
    area_weighted: tuple[str, ...] = (),
    chunk: int = 2048,
    value_factor: float = 1.0,
    strict: bool = False,
    source: str = "statistics",
) -> tuple[dict[str, da.Array], dict[str, da.Array], AllocationReport]:
    """Spread each product of ``table`` over its eligible pixels.

    Parameters
    ----------
    table : DataFrame
        From :func:`read_statistics`; quantities in ``quantity_unit``, values in CNY (already
        rebased; × ``value_factor`` on the way, e.g. 10⁴ for 万元).
    units : GeoDataFrame
        Statistical units, ``id_field`` matching ``table.unit_id``.
    classes : dask array on ``grid``
        Ecosystem / land-cover class per pixel (int).
    eligible : dict product → class codes
        The classes a product may be allocated to.
    weight : dask array on ``grid``, optional
        Productivity proxy (NDVI, NPP …; ≤ 0 or nodata weighs nothing). Products in
        ``area_weighted`` (and all products when ``weight`` is None) use pixel area.

    Returns
    -------
    (quantities, values, report)
        Lazy float32 rasters per product (quantity in the table's unit per pixel; value in CNY
        per pixel, only for products with values), and the per-unit report.
    """
    units = units.reset_index(drop=True)
    ids = units[id_field].astype(str).to_numpy()
    position = {u: i for i, u in enumerate(ids)}
    unknown = sorted(set(table["unit_id"]) - set(position))
    if unknown:
        raise TableError(f"{source}: unit_id(s) {', '.join(unknown[:10])} not in the units' field {id_field!r}")
    missing = sorted(set(table["product"]) - set(eligible))
    if missing:
        raise TableError(f"{source}: no eligible classes for product(s) {', '.join(missing)} "
                         "(profile eligible_classes or the service parameter)")
    n = len(ids)
    uidx = unit_index(units, grid, chunk)
    if classes.chunks != uidx.chunks:
        classes = classes.rechunk(uidx.chunks)
    use_weight = {p: weight is not None and p not in area_weighted for p in table["product"].unique()}
    if weight is not None and weight.chunks != uidx.chunks:
        weight = weight.rechunk(uidx.chunks)
    dummy = da.zeros(grid.shape, dtype=np.float32, chunks=uidx.chunks)
    w = weight if weight is not None else dummy
    luts = {p: _eligible_lut(eligible[p]) for p in use_weight}
    cnd = int(class_nodata) if np.isfinite(class_nodata) else -(2**62)

    # pass 1: Σ eligible weight × area per unit, for every product (each block read once;
    # per-block partials (n_products, n_units) summed in float64 by the engine's tree reduction)
    products = list(luts)

    def block_sums(u_blk, c_blk, w_blk, *, row_area_m2):
        c64 = c_blk.astype(np.int64)
        return np.stack([unit_weight_sums(u_blk, c64, cnd, luts[p], w_blk, weight_nodata, use_weight[p],
                                          row_area_m2, n) for p in products]) if products else np.zeros((0, n))

    totals = reduce_blocks(block_sums, uidx, classes, w, grid=grid, shape=(len(products), n)).compute()
    sums = {p: totals[k] for k, p in enumerate(products)}

    rows = []
    quantities: dict[str, da.Array] = {}
    values: dict[str, da.Array] = {}
    notes: list[str] = []
    for product, group in table.groupby("product", sort=False):
        qty_total = np.zeros(n, dtype=np.float64)
        val_total = np.zeros(n, dtype=np.float64)
        qty_total[[position[u] for u in group["unit_id"]]] = group["quantity"].to_numpy(dtype=np.float64)
        has_value = "value" in group.columns and group["value"].notna().any()
        if has_value:
            val_total[[position[u] for u in group["unit_id"]]] = group["value"].fillna(0.0).to_numpy() * value_factor
        W = sums[product]
        empty = (W <= 0) & ((qty_total > 0) | (val_total > 0))
        if empty.any():
            listed = ", ".join(ids[empty][:10])
            msg = (f"{source}: product {product!r}: unit(s) {listed} have no eligible pixel "
                   f"(classes {list(eligible[product])}); their totals stay unallocated")
            if strict:
                raise TableError(msg)
            notes.append(msg)
            log.warning(msg)
        safe_w = np.where(W > 0, W, 1.0)
        per_qty = np.where(W > 0, qty_total / safe_w, 0.0)
        per_val = np.where(W > 0, val_total / safe_w, 0.0)
        for u in group["unit_id"]:
            k = position[u]
            rows.append({"unit_id": u, "product": product, "quantity_table": qty_total[k],
                         "quantity_allocated": qty_total[k] if W[k] > 0 else 0.0,
                         "quantity_unallocated": 0.0 if W[k] > 0 else qty_total[k],
                         "value_table_cny": val_total[k] if has_value else np.nan,
                         "value_unallocated_cny": (0.0 if W[k] > 0 else val_total[k]) if has_value else np.nan,
                         "eligible_weight": W[k], "weighted_by": "proxy" if use_weight[product] else "area"})
        lut = luts[product]
        quantities[product] = _spread_lazy(uidx, classes, w, lut, cnd, weight_nodata, use_weight[product],
                                           grid, per_qty)
        if has_value:
            values[product] = _spread_lazy(uidx, classes, w, lut, cnd, weight_nodata, use_weight[product],
                                           grid, per_val)
    return quantities, values, AllocationReport(pd.DataFrame(rows), notes)


def _spread_lazy(uidx, classes, w, lut, cnd, weight_nodata, use_weight, grid, per_weight) -> da.Array:
    def block(u_blk, c_blk, w_blk, *, row_area_m2):
        out = np.empty(u_blk.shape, dtype=np.float32)
        spread(u_blk, c_blk.astype(np.int64), cnd, lut, w_blk, weight_nodata, use_weight, row_area_m2,
               per_weight, np.float32(NODATA), out)
        return out

    return map_blocks(block, uidx, classes, w, grid=grid)
