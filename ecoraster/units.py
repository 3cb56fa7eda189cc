"""Units of value and physical quantity for valuation (pint): CNY, carbon and CO₂ masses.

Valuation multiplies a physical raster (``m3``, ``t C``, ``kg``, ``kWh`` … per pixel) by a
price (``CNY/m3``, ``CNY/t CO2``, ``CNY/kg`` …) and must land on ``CNY``. This module
checks that with pint and returns the one number that does it.

Carbon and CO₂ are *different dimensions* here (``[carbon_mass]`` and ``[co2_mass]``), so a
price per t CO₂ on a raster in t C converts only through the explicit ``carbon`` context
(× 44/12, the molar-mass ratio CO₂ : C); every other mixture fails with :class:`UnitError`.
Other species (O₂, SO₂, NOx, N, P, COD, dust, soil …) are plain masses: the product code,
not the unit, says what was weighed.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

from .errors import UnitError

if TYPE_CHECKING:
    import pint

#: Molar-mass ratio CO₂ : C (44.01 / 12.011 ≈ 3.664; the guides use 44/12).
CO2_PER_C = 44.0 / 12.0


@lru_cache(maxsize=1)
def registry():
    """The project's one pint ``UnitRegistry`` (CNY, carbon and CO₂ masses, visits, the
    ``carbon`` context), built on first use: building it takes ~0.15 s, which runs that
    value nothing (e.g. carbon storage alone) should not pay. Also reachable as ``UREG``."""
    import pint

    ureg = pint.UnitRegistry()
    ureg.define("CNY = [currency] = yuan = RMB")
    ureg.define("wan_CNY = 10000 * CNY")
    ureg.define("yi_CNY = 100000000 * CNY")
    ureg.define("gC = [carbon_mass]")
    ureg.define("kgC = 1e3 * gC")
    ureg.define("tC = 1e6 * gC = MgC")
    ureg.define("gCO2 = [co2_mass]")
    ureg.define("kgCO2 = 1e3 * gCO2")
    ureg.define("tCO2 = 1e6 * gCO2 = MgCO2")
    ureg.define("person_visit = [visit] = visit")
    carbon = pint.Context("carbon")
    carbon.add_transformation("[carbon_mass]", "[co2_mass]",
                              lambda ureg, x: x * CO2_PER_C * ureg.gCO2 / ureg.gC)
    carbon.add_transformation("[co2_mass]", "[carbon_mass]",
                              lambda ureg, x: x / CO2_PER_C * ureg.gC / ureg.gCO2)
    ureg.add_context(carbon)
    return ureg


def __getattr__(name: str):
    if name == "UREG":  # the registry under its old constant name, still built lazily
        return registry()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Species written after a mass unit that stay plain masses ("t O2", "kg SO2", "t soil").
_PLAIN_SPECIES = ("O2", "O₂", "SO2", "SO₂", "NOx", "NO2", "NO₂", "PM2.5", "PM10", "dust", "N", "P",
                  "COD", "NH3-N", "TN", "TP", "soil", "sediment", "dry matter", "DM")
_MASS = r"(g|kg|t|Mg|万t)"


def normalise(text: str) -> str:
    """A unit string as written in specs and price tables → a pint expression.

    ``t C`` / ``Mg C`` → ``tC``; ``t CO2`` / ``t CO₂`` → ``tCO2``; ``kg SO2`` → ``kg``;
    ``m3`` → ``m**3``; ``元`` → ``CNY``; ``万元`` → ``wan_CNY``; ``hm2`` → ``hectare``.
    """
    s = text.strip()
    if not s:
        raise UnitError("empty unit string")
    s = s.replace("元", "CNY").replace("万CNY", "wan_CNY").replace("亿CNY", "yi_CNY")
    s = s.replace("₂", "2").replace("·", "*").replace("^", "**")
    s = re.sub(rf"\b{_MASS}\s*CO2\b", lambda m: f"{m.group(1)}CO2", s)
    s = re.sub(rf"\b{_MASS}\s*C\b(?!O)", lambda m: f"{m.group(1)}C", s)
    for species in sorted(_PLAIN_SPECIES, key=len, reverse=True):
        s = re.sub(rf"\b{_MASS}\s+{re.escape(species)}(?![\w.])", lambda m: m.group(1), s)
    s = s.replace("MgC", "tC").replace("MgCO2", "tCO2")
    s = re.sub(r"\bhm2\b|\bhm\*\*2\b", "hectare", s)
    s = re.sub(r"\b(m|km|cm|mm)([23])\b", r"\1**\2", s)
    s = re.sub(r"\bt\b", "metric_ton", s)
    return s


@lru_cache(maxsize=512)
def parse(text: str) -> "pint.Unit":
    """A pint unit of this registry; :class:`UnitError` naming the string if unknown."""
    try:
        return registry().Unit(normalise(text))
    except UnitError:
        raise
    except Exception as exc:  # pint raises several error types
        raise UnitError(f"unit {text!r} is not understood ({exc})") from None


def value_factor(physical_units: str, price_units: str, *, where: str = "") -> tuple[float, str]:
    """The factor that turns one physical unit times one price unit into CNY.

    ``value [CNY] = quantity [physical_units] × price [price_units] × factor``.

    Parameters
    ----------
    physical_units : str
        Units of the physical raster per pixel, e.g. ``m3``, ``t C``, ``kg``.
    price_units : str
        Units of the price, e.g. ``CNY/m3``, ``CNY/t CO2``, ``万元/t``.
    where : str
        Named in the error (file, field, value).

    Returns
    -------
    (factor, note)
        ``note`` says which conversion was applied (e.g. ``"t C → t CO2 × 44/12"``), or ``""``.

    Raises
    ------
    UnitError
        If the product does not reduce to CNY (e.g. ``m3 × CNY/t``), naming both units.
    """
    from pint.errors import DimensionalityError

    prefix = f"{where}: " if where else ""
    phys = parse(physical_units)
    price = parse(price_units)
    cny = registry().Unit("CNY")
    # the unit the price is "per": CNY / (CNY/x) = x (with the price's scale, e.g. 万元)
    if price.dimensionality.get("[currency]") != 1:
        raise UnitError(f"{prefix}price unit {price_units!r} is not a currency per quantity")
    per = cny / price
    currency_scale = registry().Quantity(1.0, price * per).to(cny).magnitude
    period_note = ""
    if phys.dimensionality.get("[time]", 0) == -1 and per.dimensionality.get("[time]", 0) == 0:
        # an annual flow (e.g. t CO2/yr) over the accounting period of one year → a quantity
        phys = phys * registry().year
        period_note = "annual flow × 1-year accounting period"
    try:
        q = registry().Quantity(1.0, phys).to(per)
        note = period_note
    except DimensionalityError:
        try:
            q = registry().Quantity(1.0, phys).to(per, "carbon")
        except DimensionalityError:
            raise UnitError(
                f"{prefix}physical unit {physical_units!r} × price unit {price_units!r} does not give CNY "
                f"({phys.dimensionality} vs per-{per.dimensionality})") from None
        note = f"{physical_units} → {price_units.split('/', 1)[-1].strip()} via molar mass 44/12"
        note = f"{period_note}; {note}" if period_note else note
    return float(q.magnitude * currency_scale), note


def convert(value: float, from_units: str, to_units: str, *, where: str = "") -> float:
    """``value`` in ``from_units`` expressed in ``to_units`` (carbon context allowed)."""
    from pint.errors import DimensionalityError

    try:
        return float(registry().Quantity(value, parse(from_units)).to(parse(to_units), "carbon").magnitude)
    except DimensionalityError:
        prefix = f"{where}: " if where else ""
        raise UnitError(f"{prefix}cannot convert {from_units!r} to {to_units!r}") from None


def is_currency(units: str) -> bool:
    """True if ``units`` is a currency amount (CNY, 万元 …)."""
    try:
        return parse(units).dimensionality == registry().Unit("CNY").dimensionality
    except UnitError:
        return False
