"""Prices as data: price tables, the CPI, rebasing to a price year, a run's valuation set-up.

No rasters here (the raster stage is :mod:`ecoraster.accounting.valuation`); services may
import this module (e.g. the CPI for statistics tables).

value [CNY per pixel] = quantity [unit per pixel] × price [CNY per unit, price year p]
                        × CPI(run price year) / CPI(p) × unit conversion (pint-checked)

- Price tables: ``configs/prices/<id>.yaml`` (id, product, value, unit, price_year, source,
  confidence; derived prices with ``components``), chosen by the run config's ``prices:``
  (catalogue id or path), else by the standard profile's ``prices:``.
- CPI: ``configs/prices/cpi_china.csv`` (national CPI, previous year = 100; ✱ values).
- Kinds (science-review.md §1.8, §5): every price says what it is, and rebasing follows the kind —
  ``cost`` (construction, dredging, treatment) and ``shadow`` (a shadow price, e.g. afforestation
  cost of carbon) are rebased with the CPI; ``fee_tax`` (a regulated fee or tax rate) and
  ``market`` (a dated market price: carbon, tariffs) are never inflated: the entry whose
  ``valid_years`` hold the accounting year is used as it is. Outside those years the entry's
  ``outside_years`` decides: ``error`` (default), ``nearest`` (the nearest year's rate, warned) or
  ``cpi`` (CPI-rebased, warned).
- Options: a product may have several named ``option``s (carbon: ``market`` and ``shadow``); the
  table's ``default: true`` entry names the default option, a run picks another with
  ``price_options: {product: option}``; the sensitivity mode runs over every option.
- Units: :mod:`ecoraster.units` (CNY, t C ≠ t CO₂ except through × 44/12).

References: GEP = Σ quantity × price (gep-methods.md §2, after the 甘孜 2017 case study and the
MEE/CAEP 2020 guide); prices rebased to the accounting year (gep-methods.md, preamble).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from pydantic import BaseModel, ConfigDict, ValidationError

from .datasets import file_sha256
from . import yamlio
from .errors import ConfigError, EcorasterError, TableError, UnitError
from .resources import config_path
from .standards import Profile, load_products, load_profile
from .units import convert

log = logging.getLogger(__name__)


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


PriceKind = Literal["cost", "fee_tax", "market", "shadow"]
#: Kinds of price that belong to their own years and are never CPI-inflated (a fee / tax rate, a market price).
DATED_KINDS = ("fee_tax", "market")


class PriceEntry(BaseModel):
    """One price: ``value`` in ``unit`` (e.g. CNY/m3) of ``price_year``; its ``kind`` decides how
    it is rebased (module docstring)."""

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
    kind: PriceKind = "cost"
    option: str | None = None
    valid_years: tuple[int, int] | None = None
    outside_years: Literal["error", "nearest", "cpi"] = "error"
    # the province / municipality a price belongs to (a tariff, a fee or tax rate); ``applies_to``: the run
    # regions (config ``region``) that take this entry instead of the product's non-regional entries
    region: str | None = None
    applies_to: tuple[str, ...] = ()

    @property
    def years(self) -> tuple[int, int]:
        """First and last year the price holds (fee/tax in force, market year): ``valid_years``,
        else its ``price_year``."""
        return self.valid_years or (self.price_year, self.price_year)

    @property
    def dated(self) -> bool:
        """Fees, taxes and market prices are dated, never CPI-inflated."""
        return self.kind in DATED_KINDS


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
            if p.default and p.product != "_component":
                if p.product in defaults:
                    raise TableError(f"{where}.default: product {p.product!r} already has default "
                                     f"{defaults[p.product]!r}")
                defaults[p.product] = p.id
        # two regional prices of one product (and option) for one run region whose years overlap: ambiguous
        seen: dict[tuple[str, str | None, str], PriceEntry] = {}
        for p in self.prices:
            for region in p.applies_to:
                other = seen.get((p.product, p.option, region))
                if other is not None and other.years[0] <= p.years[1] and p.years[0] <= other.years[1]:
                    raise TableError(f"{path}: prices.{p.id}.applies_to: region {region!r} already has price "
                                     f"{other.id!r} for {p.product!r} in {max(other.years[0], p.years[0])}: keep one, "
                                     "or give them distinct valid_years")
                seen[(p.product, p.option, region)] = p

    def get(self, price_id: str) -> PriceEntry:
        for p in self.prices:
            if p.id == price_id:
                return p
        raise TableError(f"{self.source_path}: no price with id {price_id!r}")

    def for_product(self, product: str, option: str | None = None, year: int | None = None, *,
                    region: str | None = None) -> PriceEntry | None:
        """The price of ``product``: within ``option`` (default: the option of the ``default: true``
        entry), the entry that ``applies_to`` the run's ``region`` if there is one (a regional fee,
        tax or tariff; two for the same product, region and year are an error), else among the
        non-regional entries the one whose years hold ``year`` when the option is dated (fee, tax,
        market series), else the ``default: true`` entry, else the only entry."""
        entries = [p for p in self.prices if p.product == product]
        default = [p for p in entries if p.default]
        if option is None and default:
            option = default[0].option
        if option is not None:
            entries = [p for p in entries if p.option == option]
            if not entries:
                raise TableError(f"{self.source_path}: product {product!r} has no price option {option!r} "
                                 f"(options: {', '.join(self.options(product)) or 'none'})")
        if region is not None:
            regional = [p for p in entries if region in p.applies_to]
            if year is not None and len(regional) > 1:
                regional = [p for p in regional if p.years[0] <= year <= p.years[1]] or regional
            if len(regional) > 1:
                raise TableError(f"{self.source_path}: product {product!r} has {len(regional)} prices for region "
                                 f"{region!r}{f' in {year}' if year is not None else ''}: "
                                 f"{', '.join(p.id for p in regional)} (keep one, or give them distinct valid_years)")
            if regional:
                return regional[0]
        entries = [p for p in entries if not p.applies_to]
        if year is not None and entries and all(p.dated for p in entries):
            holding = [p for p in entries if p.years[0] <= year <= p.years[1]]
            if holding:
                return holding[0]
            # none holds the year: the entry nearest in time (rebase applies its outside_years rule)
            return min(entries, key=lambda p: min(abs(year - p.years[0]), abs(year - p.years[1])))
        chosen = [p for p in entries if p.default] or (entries if len(entries) == 1 else [])
        return chosen[0] if chosen else None

    def options(self, product: str) -> list[str]:
        """The named price options of ``product`` (empty if it has none)."""
        return sorted({p.option for p in self.prices if p.product == product and p.option})

    @property
    def cpi_path(self) -> Path:
        p = Path(self.cpi)
        if p.is_absolute():
            return p
        beside = Path(self.source_path).parent / p if self.source_path else None
        return beside if beside is not None and beside.exists() else config_path("prices", str(p))


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
    kind: str = "cost"
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rebase(table: PriceTable, entry: PriceEntry, cpi: CPI, price_year: int) -> RebasedPrice:
    """``entry`` in ``price_year`` prices: a cost or shadow price × CPI; a fee, tax or market price
    as it is, if its years hold ``price_year`` (else by its ``outside_years`` rule: an error, or the
    nearest year's rate / the CPI with a warning); a derived price sums its rebased components ×
    factors, each unit-checked with pint (e.g. m3/t × CNY/m3 → CNY/t)."""
    where = f"{table.source_path}: prices.{entry.id}"
    if not entry.components:
        note = ""
        if entry.dated:
            first, last = entry.years
            inside = first <= price_year <= last
            if not inside and entry.outside_years == "error":
                raise TableError(
                    f"{where}: {entry.kind} price {entry.id} holds for {first}–{last}, not for {price_year}: a "
                    f"{'fee or tax rate' if entry.kind == 'fee_tax' else 'market price'} is not CPI-rebased; add the "
                    f"rate of {price_year}, choose another option, or set outside_years: nearest | cpi")
            if inside or entry.outside_years == "nearest":
                f = 1.0
                if not inside:
                    note = (f"{entry.kind} price of {first}–{last} used for {price_year} as it is "
                            "(outside_years: nearest)")
            else:
                f = cpi.factor(entry.price_year, price_year, where=where)
                note = f"{entry.kind} price of {first}–{last} CPI-rebased to {price_year} (outside_years: cpi)"
            if note:
                log.warning("%s: %s", where, note)
        else:
            f = cpi.factor(entry.price_year, price_year, where=where)
        return RebasedPrice(entry.id, entry.product, float(entry.value) * f, entry.unit, price_year,
                            float(entry.value), entry.price_year, f, entry.source, entry.confidence,
                            kind=entry.kind, note=note)
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
                        None, entry.source, entry.confidence, parts, kind=entry.kind)


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
    options: dict[str, str] = field(default_factory=dict)
    region: str | None = None

    def price(self, product: str, option: str | None = None) -> RebasedPrice | None:
        """The rebased price of ``product``: ``option``, else the run's ``price_options``, else the
        table's default; the entry for the run's ``region`` first (:meth:`PriceTable.for_product`)."""
        entry = self.table.for_product(product, option or self.options.get(product), self.price_year,
                                       region=self.region)
        return None if entry is None else rebase(self.table, entry, self.cpi, self.price_year)

    def describe(self) -> dict[str, Any]:
        return {"price_table": self.table.id, "price_table_version": self.table.version,
                "price_table_path": self.table.source_path, "price_table_sha256": self.table.sha256,
                "cpi_path": str(self.cpi.path), "cpi_sha256": self.cpi.sha256, "price_year": self.price_year,
                "profile": self.profile.id, "profile_path": self.profile.source_path,
                "price_options": dict(self.options), "region": self.region}


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
    candidates.append(config_path("prices", f"{name}.yaml", must_exist=False))
    for c in candidates:
        if c.suffix in (".yaml", ".yml") and c.is_file():
            return c.resolve()
    raise ConfigError(f"{cfg.source_path}: prices = {name!r}: not a catalogue id, a file, or "
                      f"{config_path('prices', name + '.yaml', must_exist=False)}")


def load_setup(plan) -> ValuationSetup:
    """Price table, CPI, price year (config ``price_year``, else the run's year) and profile."""
    table = PriceTable.load(resolve_price_table(plan))
    return ValuationSetup(table, CPI(table.cpi_path), int(plan.config.price_year or plan.config.year),
                          load_profile(plan.config.profile), dict(plan.config.price_options),
                          plan.config.region)


def price_list(setup: ValuationSetup) -> pd.DataFrame:
    """Every price of the table rebased to the setup's price year (for ``eco prices``)."""
    rows = []
    for entry in setup.table.prices:
        try:
            r = rebase(setup.table, entry, setup.cpi, setup.price_year)
            rebased, err = r.value, ""
        except EcorasterError as exc:
            rebased, err = float("nan"), str(exc)
        rows.append({"id": entry.id, "product": entry.product, "kind": entry.kind, "option": entry.option,
                     "value": entry.value, "unit": entry.unit,
                     "price_year": entry.price_year, f"value_{setup.price_year}": rebased,
                     "default": entry.default, "region": entry.region or "",
                     "applies_to": ",".join(entry.applies_to), "confidence": entry.confidence,
                     "source": entry.source, "error": err})
    return pd.DataFrame(rows)
