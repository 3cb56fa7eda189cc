"""Valuation stage: physical quantity rasters × rebased prices → value rasters (CNY, price year).

value [CNY per pixel] = quantity [unit per pixel] × price [CNY per unit, price year p]
                        × CPI(run price year) / CPI(p) × unit conversion (pint-checked)

The prices themselves (tables, CPI, rebasing) are data in :mod:`ecoraster.prices`.
:func:`value_results` receives the service results and returns them with a
``<output>_value`` record (``kind="value"``) added for every per-pixel physical output whose
``product`` has a price; :func:`check_valuation` finds every valuation problem before
anything is computed.

References: GEP = Σ quantity × price (gep-methods.md §2, after the 甘孜 2017 case study and the
MEE/CAEP 2020 guide); prices rebased to the accounting year (gep-methods.md, preamble).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EcorasterError
from ..prices import RebasedPrice, load_setup
from ..spec import Issue, OutputRecord, ServiceResult
from ..units import value_factor

log = logging.getLogger(__name__)

VALUE_NODATA = -9999.0
VALUE_UNITS = "CNY"


def check_valuation(plan, services: list[str] | None = None) -> list[Issue]:
    """Every valuation problem of a run before computing: price table, CPI years, and the
    units of every priced output declared by the chosen services. Never raises."""
    from ..registry import get_spec

    try:
        setup = load_setup(plan)
    except EcorasterError as exc:
        return [Issue(("prices",), str(exc))]
    issues: list[Issue] = []
    for sid in services or list(plan.config.enabled_services()):
        try:
            spec = get_spec(sid)
        except EcorasterError:
            continue  # reported by validate_run
        for ospec in spec.outputs:
            if not ospec.product or ospec.kind != "physical" or not setup.profile.counts(ospec.product):
                continue
            try:
                price = setup.price(ospec.product)
                if price is not None:
                    value_factor(ospec.units, price.unit, where=f"{sid}.{ospec.id} ({price.price_id})")
            except EcorasterError as exc:
                issues.append(Issue(("services", sid, "outputs", ospec.id), str(exc)))
    return issues


def _value_block(values: np.ndarray, *, nodata: float, factor: float) -> np.ndarray:
    from ..kernels.valuation import scale_valid

    out = np.empty(values.shape, dtype=np.float32)
    scale_valid(values, nodata, factor, np.float32(VALUE_NODATA), out)
    return out


def value_results(plan, results: dict[str, ServiceResult], out_dir: Path, *,
                  progress=None) -> dict[str, ServiceResult]:
    """Add value outputs (CNY per pixel) to ``results``; write them under ``out_dir/<service>/``.

    For every output with ``kind="physical"``, ``per="pixel"`` and a ``product`` counted by the
    run's profile and priced in its price table: ``<file>_value.tif`` = physical × factor,
    streamed chunk by chunk from the physical COG (``align_to`` + ``write_rasters``), tagged
    with ``price_year``, ``price_id``, ``price_table`` and ``price_table_version``. Products
    without a price, or not counted, are listed in ``valuation.json`` and the service notes.
    Also writes ``out_dir/valuation.json`` (setup and every price used) for the manifest.
    """
    from ..engine import map_blocks_pixelwise
    from ..grid import align_to
    from ..io.raster import RasterOutput, write_rasters

    setup = load_setup(plan)
    report: dict[str, Any] = {**setup.describe(), "valued": {}, "unpriced": {}, "not_counted": {}}
    pending: list[tuple[str, str, OutputRecord, RasterOutput, RebasedPrice, float, str]] = []
    for sid, res in results.items():
        for oid, rec in list(res.outputs.items()):
            if rec.kind != "physical" or not rec.product or f"{oid}_value" in res.outputs:
                continue
            key = f"{sid}.{oid}"
            if not setup.profile.counts(rec.product):
                report["not_counted"][key] = rec.product
                res.notes.append(f"{oid}: product {rec.product} is not counted by profile {setup.profile.id}")
                continue
            price = setup.price(rec.product)
            if price is None:
                report["unpriced"][key] = rec.product
                res.notes.append(f"{oid}: no price for product {rec.product} in {setup.table.source_path}")
                continue
            if rec.per != "pixel":
                report["unpriced"][key] = f"{rec.product} (per {rec.per}: only per-pixel totals are valued)"
                continue
            unit_scale, note = value_factor(rec.units, price.unit, where=f"{key} ({price.price_id})")
            factor = price.value * unit_scale
            src = align_to(rec.path, plan.grid, "nearest", dtype="float64", chunk=plan.config.chunk)
            data = map_blocks_pixelwise(_value_block, src.data, dtype=np.float32,
                                        nodata=float(src.attrs["nodata"]), factor=factor)
            path = Path(out_dir) / sid / f"{Path(rec.path).stem}_value.tif"
            tags = {"service": sid, "kind": "value", "per": "pixel", "product": rec.product,
                    "price_year": str(price.price_year), "price_id": price.price_id,
                    "price_table": setup.table.id, "price_table_version": setup.table.version,
                    "price": repr(price.value), "price_unit": price.unit, "physical": Path(rec.path).name,
                    "nodata": str(VALUE_NODATA)}
            if plan.config.year is not None:
                tags["year"] = str(plan.config.year)
            out = RasterOutput(path=path, data=data, nodata=VALUE_NODATA, units=VALUE_UNITS,
                               description=f"value of {rec.product} [CNY, {price.price_year} prices]",
                               dtype="float32", tags=tags, per_class=rec.values == "per_class")
            pending.append((sid, oid, rec, out, price, factor, note))
    if pending:
        stats = write_rasters([p[3] for p in pending], plan.grid,
                              progress=(lambda d, t: progress("valuation", d, t)) if progress else None)
        for sid, oid, rec, out, price, factor, note in pending:
            st = stats[str(out.path)]
            vid = f"{oid}_value"
            res = results[sid]
            res.outputs[vid] = OutputRecord(
                id=vid, path=str(out.path), units=VALUE_UNITS, kind="value", per="pixel", nodata=VALUE_NODATA,
                total=st.total, valid_pixels=st.valid_pixels, minimum=st.minimum, maximum=st.maximum,
                product=rec.product, values=rec.values)
            res.totals[f"{vid}_total"] = (st.total, VALUE_UNITS)
            info = {**price.to_dict(), "factor_cny_per_unit": factor, "physical_units": rec.units,
                    "unit_conversion": note, "physical_total": rec.total, "value_total": st.total}
            res.metadata.setdefault("valuation", {})[oid] = info
            report["valued"][f"{sid}.{oid}"] = info
            if note:
                res.notes.append(f"{vid}: {note}")
    for sid, res in results.items():
        folder = Path(out_dir) / sid
        if folder.is_dir():
            (folder / "result.json").write_text(json.dumps(res.to_dict(), ensure_ascii=False, indent=2),
                                                encoding="utf-8")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    report_path = Path(out_dir) / "valuation.json"
    if report_path.exists():  # flows value one service at a time: keep the others' entries
        earlier = json.loads(report_path.read_text(encoding="utf-8"))
        for key in ("valued", "unpriced", "not_counted"):
            report[key] = {**earlier.get(key, {}), **report[key]}
    report_path.write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    return results
