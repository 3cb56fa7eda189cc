"""Valuation stage: physical quantity rasters × rebased prices → value rasters (CNY, price year).

value [CNY per pixel] = quantity [unit per pixel] × price [CNY per unit, price year p]
                        × CPI(run price year) / CPI(p) × unit conversion (pint-checked)

The prices themselves (tables, CPI, rebasing) are data in :mod:`ecoraster.prices`.
:func:`value_results` receives the service results and returns them with a
``<output>_value`` record (``kind="value"``) added for every per-pixel physical output whose
```product`` has a price; :func:`check_valuation` finds every valuation problem before
anything is computed. :func:`value_service` never changes the service's result: it returns
the new records (:class:`Valued`), which :meth:`Valued.apply` adds to a copy of the result.

References: GEP = Σ quantity × price (gep-methods.md §2, after the 甘孜 2017 case study and the
MEE/CAEP 2020 guide); prices rebased to the accounting year (gep-methods.md, preamble).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EcorasterError
from ..prices import RebasedPrice, ValuationSetup
from ..spec import Issue, OutputRecord, ServiceResult
from ..units import value_factor

log = logging.getLogger(__name__)

VALUE_NODATA = -9999.0
VALUE_UNITS = "CNY"


def check_valuation(plan, services: list[str] | None = None) -> list[Issue]:
    """Every valuation problem of a run before computing: price table, CPI years, and the
    units of every priced output declared by the chosen services. Never raises."""
    from ..registry import get_spec

    if plan.valuation is None:
        return [Issue(("prices",), plan.valuation_error or "no valuation set-up")]
    setup: ValuationSetup = plan.valuation
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


@dataclass
class Valued:
    """What valuing one service's results adds: value records, their totals and notes, the
    price used per physical output, and which outputs had no price or do not count."""

    service: str
    records: dict[str, OutputRecord] = field(default_factory=dict)
    totals: dict[str, tuple[float, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    prices: dict[str, dict[str, Any]] = field(default_factory=dict)
    unpriced: dict[str, str] = field(default_factory=dict)
    not_counted: dict[str, str] = field(default_factory=dict)

    def apply(self, result: ServiceResult) -> ServiceResult:
        """A copy of ``result`` with the value records, totals, notes and prices added."""
        out = copy.deepcopy(result)
        out.outputs.update(copy.deepcopy(self.records))
        out.totals.update(self.totals)
        out.notes.extend(self.notes)
        if self.prices:
            out.metadata.setdefault("valuation", {}).update(copy.deepcopy(self.prices))
        return out

    def with_paths(self, move) -> Valued:
        """A copy with every record path mapped by ``move`` (staging → workspace)."""
        out = copy.deepcopy(self)
        for rec in out.records.values():
            rec.path = str(move(rec.path))
        return out

    def report(self) -> dict[str, dict[str, Any]]:
        """This service's part of ``valuation.json`` (keys ``service.output``)."""
        return {"valued": {f"{self.service}.{k}": v for k, v in self.prices.items()},
                "unpriced": {f"{self.service}.{k}": v for k, v in self.unpriced.items()},
                "not_counted": {f"{self.service}.{k}": v for k, v in self.not_counted.items()}}

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "outputs": {k: v.to_dict() for k, v in self.records.items()},
                "totals": {k: {"value": v, "units": u} for k, (v, u) in self.totals.items()},
                "notes": list(self.notes), "prices": self.prices, "unpriced": self.unpriced,
                "not_counted": self.not_counted}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Valued:
        return cls(service=d["service"], records={k: OutputRecord(**v) for k, v in d.get("outputs", {}).items()},
                   totals={k: (v["value"], v["units"]) for k, v in d.get("totals", {}).items()},
                   notes=list(d.get("notes", [])), prices=dict(d.get("prices", {})),
                   unpriced=dict(d.get("unpriced", {})), not_counted=dict(d.get("not_counted", {})))


def _value_block(values: np.ndarray, *, nodata: float, factor: float) -> np.ndarray:
    from ..kernels.valuation import scale_valid

    out = np.empty(values.shape, dtype=np.float32)
    scale_valid(values, nodata, factor, np.float32(VALUE_NODATA), out)
    return out


def value_service(plan, result: ServiceResult, out_dir: Path, *, progress=None) -> Valued:
    """Value one service's per-pixel physical outputs into ``out_dir/<service>/<file>_value.tif``.

    For every output with ``kind="physical"``, ``per="pixel"`` and a ``product`` counted by the
    run's profile and priced in its price table: value = physical × factor, streamed chunk by
    chunk from the physical COG (``align_to`` + ``write_rasters``), tagged with ``price_year``,
    ``price_id``, ``price_table`` and ``price_table_version``. Products without a price, or not
    counted, are listed in the returned :class:`Valued`. ``result`` is not changed.
    """
    from ..engine import map_blocks_pixelwise
    from ..grid import align_to
    from ..io.raster import RasterOutput, write_rasters

    setup: ValuationSetup = plan.require_valuation()
    sid = result.service
    valued = Valued(service=sid)
    pending: list[tuple[str, OutputRecord, RasterOutput, RebasedPrice, float, str]] = []
    for oid, rec in result.outputs.items():
        if rec.kind != "physical" or not rec.product:
            continue
        if not setup.profile.counts(rec.product):
            valued.not_counted[oid] = rec.product
            valued.notes.append(f"{oid}: product {rec.product} is not counted by profile {setup.profile.id}")
            continue
        price = setup.price(rec.product)
        if price is None:
            valued.unpriced[oid] = rec.product
            valued.notes.append(f"{oid}: no price for product {rec.product} in {setup.table.source_path}")
            continue
        if rec.per != "pixel":
            valued.unpriced[oid] = f"{rec.product} (per {rec.per}: only per-pixel totals are valued)"
            continue
        key = f"{sid}.{oid}"
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
        pending.append((oid, rec, out, price, factor, note))
    if not pending:
        return valued
    stats = write_rasters([p[2] for p in pending], plan.grid,
                          progress=(lambda d, t: progress("valuation", d, t)) if progress else None)
    for oid, rec, out, price, factor, note in pending:
        st = stats[str(out.path)]
        vid = f"{oid}_value"
        valued.records[vid] = OutputRecord(
            id=vid, path=str(out.path), units=VALUE_UNITS, kind="value", per="pixel", nodata=VALUE_NODATA,
            total=st.total, valid_pixels=st.valid_pixels, minimum=st.minimum, maximum=st.maximum,
            product=rec.product, values=rec.values)
        valued.totals[f"{vid}_total"] = (st.total, VALUE_UNITS)
        valued.prices[oid] = {**price.to_dict(), "factor_cny_per_unit": factor, "physical_units": rec.units,
                              "unit_conversion": note, "physical_total": rec.total, "value_total": st.total}
        if note:
            valued.notes.append(f"{vid}: {note}")
    return valued


def valuation_report(setup: ValuationSetup, valued: list[Valued]) -> dict[str, Any]:
    """``valuation.json``: the set-up (price table, CPI, price year, profile) and every price used."""
    report: dict[str, Any] = {**setup.describe(), "valued": {}, "unpriced": {}, "not_counted": {}}
    for v in valued:
        for key, part in v.report().items():
            report[key].update(part)
    return report


def value_results(plan, results: dict[str, ServiceResult], out_dir: Path, *,
                  progress=None) -> dict[str, ServiceResult]:
    """Value every service of ``results`` (:func:`value_service`); return valued copies."""
    return {sid: value_service(plan, res, out_dir, progress=progress).apply(res) for sid, res in results.items()}
