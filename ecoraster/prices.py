"""Prices as data: price tables, the CPI, rebasing to a price year, a run's valuation set-up.

No rasters here (the raster stage is :mod:`ecoraster.accounting.valuation`); services may
import this module (e.g. the CPI for statistics tables).

value [CNY per pixel] = quantity [unit per pixel] × price [CNY per unit, price year p]
                        × CPI(run price year) / CPI(p) × unit conversion (pint-checked)

- Price tables: ``configs/prices/<id>.yaml`` (id, product, value, unit, price_year, source,
  confidence; derived prices with ``components``), chosen by the run config's ``prices:``
  (catalogue id or path), else by the standard profile's ``prices:``.
- CPI: ``configs/prices/cpi_china.csv`` (national CPI, previous year = 100; ✱ values).
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
from typing import Any

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

    def get(self, price_id: str) -> PriceEntry:
        for p in self.prices:
            if p.id == price_id:
                return p
        raise TableError(f"{self.source_path}: no price with id {price_id!r}")

    def for_product(self, product: str) -> PriceEntry | None:
        """The price of ``product``: its ``default: true`` entry, else its only entry."""
        entries = [p for p in self.prices if p.product == product]
        chosen = [p for p in entries if p.default] or (entries if len(entries) == 1 else [])
        return chosen[0] if chosen else None

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

    def price(self, product: str) -> RebasedPrice | None:
        entry = self.table.for_product(product)
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
                          load_profile(plan.config.profile))


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
                     "default": entry.default, "confidence": entry.confidence, "source": entry.source,
                     "error": err})
    return pd.DataFrame(rows)
