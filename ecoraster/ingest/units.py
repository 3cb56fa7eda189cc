"""Unit parsing and conversion for ingested data (pint), tolerant of the spellings found
in file metadata: CF (``K``, ``m``, ``J m**-2``, ``kg m-2 s-1``), GDAL GRIB (``[C]``,
``[K]``, ``[J/(m^2)]``) and common text (``µg/m3``, ``mm/day``, ``W/m2``).

It shares the project's one pint registry (:func:`ecoraster.units.registry`, which also knows
CNY and carbon masses); only the spelling rules for file metadata are specific to ingestion.
"""

from __future__ import annotations

import re
from functools import lru_cache

import pint

from ..errors import UnitError
from ..units import registry

_ALIASES = {
    "c": "degC", "°c": "degC", "celsius": "degC", "degc": "degC", "deg_c": "degC", "degrees_c": "degC",
    "k": "kelvin", "kelvin": "kelvin", "degk": "kelvin",
    "1": "dimensionless", "": "dimensionless", "reflectance": "dimensionless", "fraction": "dimensionless",
}


def normalise_units(text: str) -> str:
    """Rewrite a metadata unit string into something pint parses.

    ``[C]`` → ``degC``; ``µg/m3`` → ``ug/m**3``; ``J m**-2`` → ``J * m**-2``;
    ``J/(m^2)`` → ``J/(m**2)``; ``kg m-2 s-1`` → ``kg * m**-2 * s**-1``.
    """
    s = text.strip().strip("[]").strip()
    if s.lower() in _ALIASES:
        return _ALIASES[s.lower()]
    s = s.replace("µ", "u").replace("μ", "u").replace("^", "**")
    # exponents written without an operator: m3, m-2, s-1 (not after "*")
    s = re.sub(r"(?<![\w*])([A-Za-z]+)(-?\d+)\b", r"\1**\2", s)
    # juxtaposition "J m**-2" -> "J * m**-2"
    s = re.sub(r"(?<=[\w)])\s+(?=[A-Za-z(])", " * ", s)
    return s


@lru_cache(maxsize=256)
def parse_units(text: str) -> pint.Unit:
    """A pint unit from a metadata string; :class:`UnitError` naming the string if unknown."""
    try:
        return registry().Unit(normalise_units(text))
    except (pint.errors.UndefinedUnitError, pint.errors.DefinitionSyntaxError, AttributeError,
            TypeError, ValueError, AssertionError) as exc:
        raise UnitError(f"unit {text!r} is not understood ({exc})") from None


def linear_conversion(from_units: str, to_units: str) -> tuple[float, float]:
    """``(scale, offset)`` with ``to = scale × from + offset`` (offset only for temperatures).

    Raises :class:`UnitError` if the dimensions differ (e.g. K → mm).
    """
    src, dst = parse_units(from_units), parse_units(to_units)
    try:
        y0 = registry().Quantity(0.0, src).to(dst).magnitude
        y1 = registry().Quantity(1.0, src).to(dst).magnitude
    except pint.errors.DimensionalityError:
        raise UnitError(f"cannot convert {from_units!r} to {to_units!r}: different dimensions") from None
    return float(y1 - y0), float(y0)
