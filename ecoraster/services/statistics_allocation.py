"""Material products and cultural services from statistics tables (物质产品 / 休闲旅游).

A township- or district-level table (output quantity and value by product) — or a table of
scenic spots (visitors and revenue, product ``tourism``) with the spots as units — is
allocated to the eligible land classes of each unit, weighted by a productivity proxy (NDVI or
NPP) or by area, with :func:`ecoraster.allocation.allocate`. Every product gets a quantity
raster (``<product>_qty.tif``, the table's unit per pixel) and, when the table has values, a
value raster (``<product>_value.tif``, CNY per pixel, in the run's price year); the pixels of
each unit sum to the table totals. Products without values are priced by the valuation stage.

Reference: gep-methods.md §8 (top-down dasymetric allocation; gross output value by default,
per the standard profile's ``material_value_rule``).
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from ..allocation import NODATA, allocate, read_statistics
from ..standards import load_products, load_profile
from ..context import ServiceContext
from ..errors import EcorasterError
from ..io.raster import RasterOutput, write_rasters
from ..spec import InputSpec, Issue, MethodSpec, OutputRecord, OutputSpec, ParameterSpec, ServiceResult, ServiceSpec
from ..units import convert, is_currency

SPEC = ServiceSpec(
    id="statistics_allocation",
    name="Material products and tourism from statistics tables",
    name_zh="统计数据空间化（物质产品、休闲旅游）",
    about="Township / district / scenic-spot tables of output quantity and value, spread over the eligible "
          "land classes of each unit by NDVI/NPP or area, so that each unit's pixels sum to its table totals.",
    category="物质产品",
    methods=(
        MethodSpec(id="dasymetric", about="table totals spread over eligible classes by NDVI/NPP or area",
                   required_inputs=("statistics", "units", "classes"),
                   optional_inputs=("weight", "spot_statistics", "spots"),
                   parameters=("unit_id_field", "eligible_classes", "area_weighted", "price_year",
                               "spot_id_field", "strict"),
                   outputs=("quantity", "value")),
    ),
    reference="gep-methods.md §8; value = gross output value (产值) per the profile's material_value_rule",
    inputs=(
        InputSpec(id="statistics", kind="table",
                  about="unit_id, product, quantity, quantity_unit[, value, value_unit, price_year, source, confidence]",
                  columns={"quantity": "quantity_unit", "value": "value_unit"}),
        InputSpec(id="units", kind="vector", about="statistical units (townships, districts or scenic spots)"),
        InputSpec(id="classes", kind="raster", about="land / ecosystem class per pixel", units="class",
                  categorical=True, resampling="mode"),
        InputSpec(id="weight", kind="raster", about="productivity proxy (NDVI or NPP); area when absent",
                  required=False, resampling="bilinear"),
        InputSpec(id="spot_statistics", kind="table", required=False,
                  about="scenic-spot table (same columns; unit_id = spot id), e.g. tourism visitors and revenue"),
        InputSpec(id="spots", kind="vector", required=False, about="scenic-spot polygons (A-grade spots, parks)"),
    ),
    parameters=(
        ParameterSpec(id="unit_id_field", about="field of `units` matching the table's unit_id", units="",
                      type="string", default="unit_id"),
        ParameterSpec(id="eligible_classes", about="product → class codes of the `classes` raster; default: the "
                      "profile's eligible_classes (GEP classes)", units="class", type="mapping", default=None),
        ParameterSpec(id="area_weighted", about="products weighted by area, not by the proxy", units="",
                      type="list", default=["fishery_products", "livestock_products", "tourism"],
                      source="gep-methods.md §8 (area only for ponds; tourism over ecological pixels)",
                      confidence="◐"),
        ParameterSpec(id="price_year", about="price year of the value rasters (default: the run year); the "
                      "table's values are rebased to it with the CPI", units="year", type="integer",
                      minimum=1900, maximum=2100, default=None),
        ParameterSpec(id="spot_id_field", about="field of `spots` matching the spot table's unit_id", units="",
                      type="string", default="unit_id"),
        ParameterSpec(id="strict", about="raise when a unit has no eligible pixel (default: report a residual)",
                      units="", type="bool", default=False),
    ),
    outputs=(
        # one raster per product of the table: ids <product> (quantity) and <product>_value
        OutputSpec(id="quantity", filename="<product>_qty.tif", units="table unit", id_pattern="{product}",
                   about="allocated physical quantity of each product per pixel (one raster per product)"),
        OutputSpec(id="value", filename="<product>_value.tif", units="CNY", kind="value",
                   id_pattern="{product}_value",
                   about="allocated value of each product per pixel, run price year (one raster per product)"),
    ),
)


def _table(ctx: ServiceContext):
    return read_statistics(ctx.table("statistics"), ctx.entry("statistics").uri)


def _eligible(ctx: ServiceContext) -> dict:
    given = ctx.param("eligible_classes")
    if given:
        return {str(k): list(v) for k, v in dict(given).items()}
    return {k: list(v) for k, v in load_profile(ctx.profile or "mee2020").eligible_classes.items()}


def validate(ctx: ServiceContext) -> list[Issue]:
    """Generic input checks, the table, unit ids against the units layer, units of values."""
    issues = ctx.validate_inputs()
    if issues:
        return issues
    keys = ("services", SPEC.id, "inputs", "statistics")
    try:
        table = _table(ctx)
        units = gpd.read_file(ctx.entry("units").uri, layer=ctx.entry("units").layer)
        field = ctx.param("unit_id_field")
        if field not in units.columns:
            return [Issue(("services", SPEC.id, "params", "unit_id_field"),
                          f"{ctx.entry('units').uri} has no field {field!r} (fields: {', '.join(units.columns)})")]
        unknown = sorted(set(table["unit_id"]) - set(units[field].astype(str)))
        if unknown:
            issues.append(Issue(keys, f"{ctx.entry('statistics').uri}: unit_id(s) {', '.join(unknown[:10])} "
                                      f"not in {ctx.entry('units').uri} field {field!r}"))
        eligible = _eligible(ctx)
        for p in sorted(set(table["product"]) - set(load_products())):
            issues.append(Issue(keys, f"product {p!r} is not a product code of configs/products.yaml"))
        for p in sorted(set(table["product"]) - set(eligible)):
            issues.append(Issue(keys, f"product {p!r} has no eligible classes (profile or eligible_classes)"))
        if "value" in table.columns and "value_unit" in table.columns:
            for vu in set(table.loc[table["value"].notna(), "value_unit"].fillna("CNY")):
                if not is_currency(str(vu)):
                    issues.append(Issue(keys, f"value_unit {vu!r} is not a currency"))
        if ctx.has("spot_statistics"):
            spot = read_statistics(ctx.table("spot_statistics"), ctx.entry("spot_statistics").uri)
            if not ctx.has("spots"):
                issues.append(Issue(("services", SPEC.id, "inputs", "spots"), "spot_statistics given without spots"))
            else:
                spots = gpd.read_file(ctx.entry("spots").uri, layer=ctx.entry("spots").layer)
                sfield = ctx.param("spot_id_field")
                if sfield not in spots.columns:
                    issues.append(Issue(("services", SPEC.id, "params", "spot_id_field"),
                                        f"{ctx.entry('spots').uri} has no field {sfield!r}"))
                else:
                    unknown = sorted(set(spot["unit_id"]) - set(spots[sfield].astype(str)))
                    if unknown:
                        issues.append(Issue(("services", SPEC.id, "inputs", "spot_statistics"),
                                            f"spot id(s) {', '.join(unknown[:10])} not in {ctx.entry('spots').uri}"))
    except EcorasterError as exc:
        issues.append(Issue(keys, str(exc)))
    return issues


def _prepared(ctx: ServiceContext, table_id: str, price_year: int):
    """A statistics table with values in CNY of ``price_year`` (万元 → CNY; CPI rebasing)."""
    from ..prices import CPI
    from ..resources import config_path

    src = ctx.entry(table_id).uri
    table = read_statistics(ctx.table(table_id), src)
    if "value" in table.columns:
        cpi = CPI(config_path("prices", "cpi_china.csv"))
        units_col = table["value_unit"] if "value_unit" in table.columns else "CNY"
        years = table["price_year"] if "price_year" in table.columns else ctx.year
        table["value"] = [v * convert(1.0, str(u) if isinstance(u, str) else "CNY", "CNY", where=src)
                          * cpi.factor(int(y) if np.isfinite(y) else int(ctx.year), price_year, where=src)
                          if np.isfinite(v) else v
                          for v, u, y in zip(table["value"], np.broadcast_to(units_col, len(table)),
                                             np.broadcast_to(years, len(table)))]
    return table, src


def _units(ctx: ServiceContext, input_id: str) -> gpd.GeoDataFrame:
    entry = ctx.entry(input_id)
    units = gpd.read_file(entry.uri, layer=entry.layer)
    if units.crs is None and entry.crs:
        units = units.set_crs(entry.crs)
    return units


def _product_sources(table: pd.DataFrame, path: str) -> dict[str, dict[str, str]]:
    """Per product of a statistics table: its file name, the file name with the table's own
    ``source`` note of that product's rows, and their ``confidence``."""
    out: dict[str, dict[str, str]] = {}
    for product, rows in table.groupby("product", sort=False):
        note = "; ".join(dict.fromkeys(str(v) for v in rows["source"].dropna())) if "source" in rows.columns else ""
        conf = str(rows["confidence"].dropna().iloc[0]) if "confidence" in rows.columns and \
            rows["confidence"].notna().any() else ""
        name = Path(path).name
        out[str(product)] = {"table": name, "source": f"{name} ({note})" if note else name, "confidence": conf}
    return out


def compute(ctx: ServiceContext) -> ServiceResult:
    """Write ``<product>_qty.tif`` (and ``<product>_value.tif``) for every product of the table
    (and of the scenic-spot table, allocated to the spots' pixels)."""
    import pandas as pd

    price_year = int(ctx.param("price_year") or ctx.year)
    classes = ctx.raster("classes")
    weight = ctx.raster("weight", dtype="float32") if ctx.has("weight") else None
    common = dict(weight=None if weight is None else weight.data,
                  weight_nodata=float(weight.attrs["nodata"]) if weight is not None else NODATA,
                  area_weighted=tuple(ctx.param("area_weighted") or ()), chunk=ctx.chunk,
                  strict=bool(ctx.param("strict")))
    table, src = _prepared(ctx, "statistics", price_year)
    sources = _product_sources(table, src)
    qty, val, report = allocate(table, _units(ctx, "units"), ctx.param("unit_id_field"), classes.data,
                                classes.attrs["nodata"], _eligible(ctx), ctx.grid, source=src, **common)
    if ctx.has("spot_statistics") and ctx.has("spots"):
        spot_table, spot_src = _prepared(ctx, "spot_statistics", price_year)
        both = sorted(set(spot_table["product"]) & set(table["product"]))
        if both:
            raise EcorasterError(f"{spot_src}: product(s) {', '.join(both)} also in {src}; allocate each product "
                                 "from one table only")
        q2, v2, r2 = allocate(spot_table, _units(ctx, "spots"), ctx.param("spot_id_field"), classes.data,
                              classes.attrs["nodata"], _eligible(ctx), ctx.grid, source=spot_src, **common)
        sources.update(_product_sources(spot_table, spot_src))
        qty.update(q2)
        val.update(v2)
        report.rows = pd.concat([report.rows, r2.rows], ignore_index=True)
        report.notes.extend(r2.notes)
        table = pd.concat([table, spot_table], ignore_index=True)
    qty_units = table.groupby("product")["quantity_unit"].first()
    outs, ids = [], []
    for product, arr in qty.items():
        outs.append(RasterOutput(Path(ctx.out_dir) / f"{product}_qty.tif", arr, NODATA, str(qty_units[product]),
                                 f"{product} allocated from {sources[product]['table']} [{qty_units[product]}]",
                                 tags={"service": SPEC.id, "kind": "physical", "per": "pixel", "product": product,
                                       "year": str(ctx.year)}, per_class=True))
        ids.append((product, "physical", str(qty_units[product])))
    for product, arr in val.items():
        outs.append(RasterOutput(Path(ctx.out_dir) / f"{product}_value.tif", arr, NODATA, "CNY",
                                 f"value of {product} allocated from {sources[product]['table']} [CNY, {price_year} "
                                 "prices]",
                                 tags={"service": SPEC.id, "kind": "value", "per": "pixel", "product": product,
                                       "price_year": str(price_year), "year": str(ctx.year)}, per_class=True))
        ids.append((f"{product}_value", "value", "CNY"))
    stats = write_rasters(outs, ctx.grid, progress=ctx.progress)
    result = ServiceResult(service=SPEC.id)
    rows = report.rows
    for (oid, kind, unit), out in zip(ids, outs):
        st = stats[str(out.path)]
        product = oid.removesuffix("_value")
        meta_src = {"source": sources[product]["source"], "confidence": sources[product]["confidence"]}
        result.outputs[oid] = OutputRecord(id=oid, path=str(out.path), units=unit, kind=kind, per="pixel",
                                           nodata=NODATA, total=st.total, valid_pixels=st.valid_pixels,
                                           minimum=st.minimum, maximum=st.maximum, product=product,
                                           values="per_class")
        result.totals[f"{oid}_total"] = (st.total, unit)
        sub = rows[rows["product"] == product]
        table_total = float(sub["quantity_table" if kind == "physical" else "value_table_cny"].sum())
        unallocated = float(sub["quantity_unallocated" if kind == "physical" else "value_unallocated_cny"].sum())
        result.metadata.setdefault("allocation", {})[oid] = {
            "table_total": table_total, "unallocated": unallocated, "raster_total": st.total,
            "residual": st.total - (table_total - unallocated), "price_year": price_year if kind == "value" else None,
            "value_source": meta_src["source"], "confidence": meta_src["confidence"], "source": meta_src}
    result.metadata["allocation_units"] = rows.to_dict(orient="records")
    result.notes.extend(report.notes)
    return ctx.checked(result)
