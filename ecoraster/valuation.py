"""Valuation: physical quantity rasters × rebased prices → value rasters (CNY, price year).

value [CNY per pixel] = quantity [unit per pixel] × price [CNY per unit, price year p]
                        × CPI(run price year) / CPI(p) × unit conversion (pint-checked)

- Price tables: ``configs/prices/<id>.yaml`` (id, product, value, unit, price_year, source,
  confidence; derived prices with ``components``), chosen by the run config's ``prices:``
  (catalogue id or path), else by the standard profile's ``prices:``.
- CPI: ``configs/prices/cpi_china.csv`` (national CPI, previous year = 100; ✱ values).
- Units: :mod:`ecoraster.units` (CNY, t C ≠ t CO₂ except through × 44/12).

Stage hook of a run (see ``ecoraster.run``): :func:`value_results` receives the service
results and returns them with a ``<output>_value`` record (``kind="value"``) added for every
per-pixel physical output whose ``product`` has a price; :func:`check_valuation` finds every
valuation problem before anything is computed.

References: GEP = Σ quantity × price (gep-methods.md §2, after the 甘孜 2017 case study and the
MEE/CAEP 2020 guide); prices rebased to the accounting year (gep-methods.md, preamble).
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from .catalog import file_sha256
from .catalogue import CONFIGS, Profile, load_products, load_profile
from . import yamlio
from .errors import ConfigError, EcorasterError, TableError, UnitError
from .spec import Issue, OutputRecord, ServiceResult
from .units import convert, value_factor

log = logging.getLogger(__name__)

VALUE_NODATA = -9999.0
VALUE_UNITS = "CNY"


# ---------------------------------------------------------------------------------------
# price tables and CPI
# ---------------------------------------------------------------------------------------

class PriceComponent(BaseModel):
    """One part of a derived price: ``factor`` [factor_unit] × the price ``price``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    price: str
    factor: float
    factor_unit: str
    about: str = ""


class PriceEntry(BaseModel):
    """One price: ``value`` in ``unit`` (e.g. CNY/m3) of ``price_year``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    product: str
    value: float | None = None
    unit: str
    price_year: int
    source: str
    confidence: str
    default: bool = False
    components: tuple[PriceComponent, ...] = ()
    # kind of price (cost | fee_tax | market | shadow): read by the price-kinds rework for its rebase rule; recorded only
    kind: str | None = None
    # a regional price: its province / municipality, and the run regions (config `region`) that take it instead of
    # the product's default (a fee, tax or tariff in force in that region)
    region: str | None = None
    applies_to: tuple[str, ...] = ()


class PriceTable(BaseModel):
    """A versioned price table (``configs/prices/<id>.yaml``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    version: str
    currency: str = "CNY"
    cpi: str = "cpi_china.csv"
    about: str = ""
    prices: tuple[PriceEntry, ...]
    source_path: str | None = None
    sha256: str | None = None

    @classmethod
    def load(cls, path: str | os.PathLike) -> PriceTable:
        """Read and check a price table; errors name the file, the field and the value."""
        path = Path(path)
        raw = yamlio.read_mapping(path, field="prices", error=TableError)
        try:
            table = cls.model_validate({**raw, "source_path": str(path.resolve()), "sha256": file_sha256(path)})
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = list(err["loc"])
            if len(loc) >= 2 and loc[0] == "prices" and isinstance(loc[1], int):
                entry = (raw.get("prices") or [])[loc[1]]
                loc[1] = entry.get("id", loc[1]) if isinstance(entry, dict) else loc[1]
            raise TableError(f"{path}: {'.'.join(map(str, loc))} = {err.get('input')!r}: {err['msg']}") from None
        table._check(path)
        return table

    def _check(self, path: Path) -> None:
        ids = [p.id for p in self.prices]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise TableError(f"{path}: prices: duplicate id(s) {', '.join(dup)}")
        known = load_products()
        by_id = {p.id: p for p in self.prices}
        defaults: dict[str, str] = {}
        for p in self.prices:
            where = f"{path}: prices.{p.id}"
            if p.product != "_component" and p.product not in known:
                raise TableError(f"{where}.product = {p.product!r}: not a product code of configs/products.yaml")
            if p.value is None and not p.components:
                raise TableError(f"{where}.value: missing (give a value or components)")
            if p.value is not None and (not math.isfinite(p.value) or p.value < 0):
                raise TableError(f"{where}.value = {p.value!r}: must be a finite number ≥ 0")
            for comp in p.components:
                if comp.price not in by_id:
                    raise TableError(f"{where}.components.price = {comp.price!r}: no price with that id")
            if p.applies_to:
                clash = [q.id for q in self.prices if q.id != p.id and q.product == p.product
                         and set(q.applies_to) & set(p.applies_to)]
                if clash:
                    raise TableError(f"{where}.applies_to = {list(p.applies_to)}: {clash[0]!r} prices {p.product!r} "
                                     "for the same region")
                continue
            if p.default and p.product != "_component":
                if p.product in defaults:
                    raise TableError(f"{where}.default: product {p.product!r} already has default "
                                     f"{defaults[p.product]!r}")
                defaults[p.product] = p.id

    def get(self, price_id: str) -> PriceEntry:
        for p in self.prices:
            if p.id == price_id:
                return p
        raise TableError(f"{self.source_path}: no price with id {price_id!r}")

    def for_product(self, product: str, region: str | None = None) -> PriceEntry | None:
        """The price of ``product``: the entry that ``applies_to`` the run's ``region``, else its
        ``default: true`` entry, else its only non-regional entry."""
        regional = [p for p in self.prices if p.product == product and region is not None and region in p.applies_to]
        if regional:
            return regional[0]
        entries = [p for p in self.prices if p.product == product and not p.applies_to]
        chosen = [p for p in entries if p.default] or (entries if len(entries) == 1 else [])
        return chosen[0] if chosen else None

    @property
    def cpi_path(self) -> Path:
        p = Path(self.cpi)
        return p if p.is_absolute() else Path(self.source_path or CONFIGS / "prices").parent / p


class CPI:
    """A national CPI series (previous year = 100) for rebasing prices between years."""

    def __init__(self, path: str | os.PathLike):
        from .tables import numeric_column, read_table, require_columns

        self.path = Path(path)
        df = read_table(self.path, field="cpi")
        require_columns(df, ["year", "index_prev_year_100"], str(self.path))
        years = numeric_column(df, "year", str(self.path)).astype(int)
        index = numeric_column(df, "index_prev_year_100", str(self.path))
        if (index <= 0).any():
            row = int(np.flatnonzero(index <= 0)[0])
            raise TableError(f"{self.path}: column 'index_prev_year_100' row {row + 2} = {index[row]!r} must be > 0")
        self.index = dict(zip(years.tolist(), index.tolist()))
        self.sha256 = file_sha256(self.path)

    def factor(self, from_year: int, to_year: int, *, where: str = "") -> float:
        """Multiply a price of ``from_year`` by this to express it in ``to_year`` prices."""
        lo, hi = sorted((int(from_year), int(to_year)))
        missing = [y for y in range(lo + 1, hi + 1) if y not in self.index]
        if missing:
            prefix = f"{where}: " if where else ""
            raise TableError(f"{prefix}{self.path} has no CPI for year(s) {', '.join(map(str, missing))} "
                             f"(needed to rebase {from_year} → {to_year})")
        f = 1.0
        for y in range(lo + 1, hi + 1):
            f *= self.index[y] / 100.0
        return f if to_year >= from_year else 1.0 / f


@dataclass
class RebasedPrice:
    """A price expressed in the run's price year, with how it got there."""

    price_id: str
    product: str
    value: float            # in `unit`, price year `price_year`
    unit: str
    price_year: int
    base_value: float | None
    base_year: int
    cpi_factor: float | None
    source: str
    confidence: str
    components: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rebase(table: PriceTable, entry: PriceEntry, cpi: CPI, price_year: int) -> RebasedPrice:
    """``entry`` in ``price_year`` prices (CPI); a derived price sums its rebased components
    × factors, each unit-checked with pint (e.g. m3/t × CNY/m3 → CNY/t)."""
    where = f"{table.source_path}: prices.{entry.id}"
    if not entry.components:
        f = cpi.factor(entry.price_year, price_year, where=where)
        return RebasedPrice(entry.id, entry.product, float(entry.value) * f, entry.unit, price_year,
                            float(entry.value), entry.price_year, f, entry.source, entry.confidence)
    total = 0.0
    parts = []
    for comp in entry.components:
        sub = rebase(table, table.get(comp.price), cpi, price_year)
        # factor_unit × sub.unit must be entry.unit: convert 1 (factor_unit·sub.unit) to entry.unit
        try:
            scale = convert(1.0, f"({comp.factor_unit})*({sub.unit})", entry.unit, where=f"{where}.components")
        except UnitError:
            raise UnitError(f"{where}.components.{comp.price}: {comp.factor_unit} × {sub.unit} "
                            f"is not {entry.unit}") from None
        part = comp.factor * sub.value * scale
        total += part
        parts.append({"price": comp.price, "factor": comp.factor, "factor_unit": comp.factor_unit,
                      "rebased_value": sub.value, "unit": sub.unit, "contribution": part, "about": comp.about})
    return RebasedPrice(entry.id, entry.product, total, entry.unit, price_year, None, entry.price_year,
                        None, entry.source, entry.confidence, parts)


# ---------------------------------------------------------------------------------------
# the run's valuation setup
# ---------------------------------------------------------------------------------------

@dataclass
class ValuationSetup:
    """Everything a run values with: price table, CPI, price year, profile."""

    table: PriceTable
    cpi: CPI
    price_year: int
    profile: Profile
    region: str | None = None

    def price(self, product: str) -> RebasedPrice | None:
        entry = self.table.for_product(product, self.region)
        return None if entry is None else rebase(self.table, entry, self.cpi, self.price_year)

    def describe(self) -> dict[str, Any]:
        return {"price_table": self.table.id, "price_table_version": self.table.version,
                "price_table_path": self.table.source_path, "price_table_sha256": self.table.sha256,
                "cpi_path": str(self.cpi.path), "cpi_sha256": self.cpi.sha256, "price_year": self.price_year,
                "profile": self.profile.id, "profile_path": self.profile.source_path}


def resolve_price_table(plan) -> Path:
    """Path of the run's price table: config ``prices:`` as a catalogue id, a path (relative
    to the config file), or a name in ``configs/prices/``; else the profile's ``prices:``."""
    cfg = plan.config
    name = cfg.prices or load_profile(cfg.profile).prices
    if not name:
        raise ConfigError(f"{cfg.source_path}: prices: not given and profile {cfg.profile!r} names none")
    if name in plan.catalog:
        return Path(plan.catalog.get(name, field="prices").uri)
    candidates = [Path(name)]
    if cfg.source_path:
        candidates.append(Path(cfg.source_path).parent / name)
    candidates.append(CONFIGS / "prices" / f"{name}.yaml")
    for c in candidates:
        if c.suffix in (".yaml", ".yml") and c.is_file():
            return c.resolve()
    raise ConfigError(f"{cfg.source_path}: prices = {name!r}: not a catalogue id, a file, or "
                      f"{CONFIGS / 'prices' / (name + '.yaml')}")


def load_setup(plan) -> ValuationSetup:
    """Price table, CPI, price year (config ``price_year``, else the run's year) and profile."""
    table = PriceTable.load(resolve_price_table(plan))
    return ValuationSetup(table, CPI(table.cpi_path), int(plan.config.price_year or plan.config.year),
                          load_profile(plan.config.profile), plan.config.region)


def check_valuation(plan, services: list[str] | None = None) -> list[Issue]:
    """Every valuation problem of a run before computing: price table, CPI years, and the
    units of every priced output declared by the chosen services. Never raises."""
    from .registry import get_spec

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


# ---------------------------------------------------------------------------------------
# the stage hook
# ---------------------------------------------------------------------------------------

def _value_block(values: np.ndarray, *, nodata: float, factor: float) -> np.ndarray:
    from .kernels.valuation import scale_valid

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
    from .engine import map_blocks_pixelwise
    from .grid import align_to
    from .io.raster import RasterOutput, write_rasters

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


def price_list(setup: ValuationSetup) -> pd.DataFrame:
    """Every price of the table rebased to the setup's price year (for ``eco prices``)."""
    rows = []
    for entry in setup.table.prices:
        try:
            r = rebase(setup.table, entry, setup.cpi, setup.price_year)
            rebased, err = r.value, ""
        except EcorasterError as exc:
            rebased, err = float("nan"), str(exc)
        rows.append({"id": entry.id, "product": entry.product, "value": entry.value, "unit": entry.unit,
                     "price_year": entry.price_year, f"value_{setup.price_year}": rebased,
                     "default": entry.default, "kind": entry.kind or "", "applies_to": ",".join(entry.applies_to),
                     "confidence": entry.confidence, "source": entry.source, "error": err})
    return pd.DataFrame(rows)
