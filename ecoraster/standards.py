"""Standards as data: the ecological product classes and the standard profiles.

- ``configs/products.yaml``: product code → code, name, first- and second-level class,
  physical unit and method, valuation method.
- ``configs/profiles/<id>.yaml``: which products count under a standard (``mee2020``,
  ``ndrc2022`` …), which are contested, which classes tables are allocated to.

Pure data below the services: no rasters, nothing read at import time. The catalogue table
of a run (目录清单) is :mod:`ecoraster.accounting.product_catalogue`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import yamlio
from .errors import ConfigError
from .resources import config_path

LEVEL1 = ("物质产品", "调节服务", "文化服务")


class Product(BaseModel):
    """One ecological product of ``configs/products.yaml``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    code: str
    name_zh: str
    name_en: str
    level1: str
    level2: str
    physical_unit: str
    physical_method: str = ""
    valuation_method: str = ""


class Indicator(BaseModel):
    """How a standard treats one product: its clause or annex, the methods it allows, and whether
    ecoraster computes it yet (``implemented: false`` → a run states it as missing, never fails)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    clause: str = ""
    methods: tuple[str, ...] = ()
    implemented: bool = True


class Profile(BaseModel):
    """A standard profile: the products that count, the contested ones, allocation classes;
    optionally each product's clause and methods (``indicators``) and the products counted net of
    what comes from outside the region (``net_of_external``, GB/T 46869-2025's GEP definition)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    prices: str | None = None
    material_value_rule: str | None = None
    products: tuple[str, ...]
    contested: tuple[str, ...] = ()
    eligible_classes: dict[str, tuple[int, ...]] = Field(default_factory=dict)
    indicators: dict[str, Indicator] = Field(default_factory=dict)
    net_of_external: dict[str, str] = Field(default_factory=dict)
    source_path: str | None = None

    def missing(self, computed: set[str] | frozenset[str]) -> list[str]:
        """Counted products a run did not compute, each with the reason (not implemented / not configured)."""
        out = []
        for pid in self.products:
            if pid in computed:
                continue
            ind = self.indicators.get(pid)
            why = "not implemented in ecoraster" if ind is not None and not ind.implemented else "not in this run"
            clause = f", {ind.clause}" if ind is not None and ind.clause else ""
            out.append(f"{pid} ({why}{clause})")
        return out

    def counts(self, product: str) -> bool:
        return product in self.products

    def is_contested(self, product: str) -> bool:
        return product in self.contested


@lru_cache(maxsize=8)
def _load_products_cached(path: str, mtime: float) -> dict[str, Product]:
    raw = yamlio.read_mapping(Path(path), field="products")
    out: dict[str, Product] = {}
    for pid, body in (raw.get("products") or {}).items():
        try:
            product = Product.model_validate({"id": pid, **(body or {})})
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ConfigError(f"{path}: products.{pid}.{'.'.join(map(str, err['loc']))} = "
                              f"{err.get('input')!r}: {err['msg']}") from None
        if product.level1 not in LEVEL1:
            raise ConfigError(f"{path}: products.{pid}.level1 = {product.level1!r}: use one of {', '.join(LEVEL1)}")
        out[pid] = product
    return out


def load_products(path: str | os.PathLike | None = None) -> dict[str, Product]:
    """Products by code from ``configs/products.yaml`` (or ``path``)."""
    p = Path(path) if path else config_path("products.yaml")
    return _load_products_cached(str(p.resolve()), p.stat().st_mtime if p.exists() else 0.0)


def products_version(path: str | os.PathLike | None = None) -> str:
    p = Path(path) if path else config_path("products.yaml")
    return str(yamlio.read_mapping(p, field="products").get("version", "unversioned"))


def load_profile(name_or_path: str | os.PathLike) -> Profile:
    """A standard profile by id (``configs/profiles/<id>.yaml``) or by path; every product it
    names must exist in ``configs/products.yaml``."""
    p = Path(name_or_path)
    if p.suffix.lower() not in (".yaml", ".yml"):
        p = config_path("profiles", f"{name_or_path}.yaml")
    raw = yamlio.read_mapping(p, field="profile")
    try:
        profile = Profile.model_validate({**raw, "source_path": str(p)})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"{p}: {'.'.join(map(str, err['loc']))} = {err.get('input')!r}: {err['msg']}") from None
    known = load_products()
    for field_name, codes in (("products", profile.products), ("contested", profile.contested),
                              ("eligible_classes", tuple(profile.eligible_classes)),
                              ("indicators", tuple(profile.indicators)),
                              ("net_of_external", tuple(profile.net_of_external))):
        unknown = [c for c in codes if c not in known]
        if unknown:
            raise ConfigError(f"{p}: {field_name}: unknown product code(s) {', '.join(unknown)} "
                              f"(not in {config_path('products.yaml')})")
    return profile
