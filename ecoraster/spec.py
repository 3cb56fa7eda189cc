"""Declared specs of services: inputs with units, parameters with source and confidence,
outputs with units and nodata. The registry, CLI, flows and catalogue read these.

A service module under ``ecoraster.services`` exports

- ``SPEC: ServiceSpec``
- ``validate(ctx: ServiceContext) -> list[Issue]`` (cheap; returns every problem; never raises)
- ``compute(ctx: ServiceContext) -> ServiceResult``
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

InputKind = Literal["raster", "vector", "table", "scalar"]
Confidence = Literal["✔", "◐", "✱"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InputSpec(_Frozen):
    """An input a service reads. Rasters are aligned to the run grid with ``resampling``
    (or the catalogue entry's resampling when None)."""

    id: str
    kind: InputKind
    about: str
    units: str | None = None
    required: bool = True
    categorical: bool = False
    resampling: str | None = None
    columns: dict[str, str] | None = None  # table: column -> units


class ParameterSpec(_Frozen):
    """A scalar parameter, with where its default comes from and how sure we are."""

    id: str
    about: str
    units: str
    default: Any = None
    source: str | None = None
    confidence: Confidence | None = None


class OutputSpec(_Frozen):
    """A raster a service writes. ``per`` says what one pixel's value refers to:
    ``pixel`` (a total for the pixel, sums over zones are totals) or ``ha`` (a density).

    ``values`` says how the values vary in space, which picks the COG's TIFF predictor:
    ``continuous`` fields (NPP, water yield) → floating-point predictor (3); ``per_class``
    rasters, piecewise constant by land-cover class (pool lookups and their differences) →
    horizontal differencing (2), which compresses them to about half the size of predictor
    3 and faster (measured on the Wuhan carbon storage outputs, ``bench/README.md``)."""

    id: str
    filename: str
    about: str
    units: str
    kind: Literal["physical", "value", "intermediate"] = "physical"
    per: Literal["pixel", "ha", "m2", "state"] = "pixel"
    dtype: str = "float32"
    nodata: float = -9999.0
    product: str | None = None
    created_if: str | None = None
    values: Literal["continuous", "per_class"] = "continuous"


class ServiceSpec(_Frozen):
    """Everything a service declares about itself."""

    id: str
    name: str
    name_zh: str
    about: str
    category: Literal["物质产品", "调节服务", "文化服务", "存量"]
    methods: tuple[str, ...] = ()
    reference: str = ""
    inputs: tuple[InputSpec, ...] = ()
    parameters: tuple[ParameterSpec, ...] = ()
    outputs: tuple[OutputSpec, ...] = ()

    def input(self, input_id: str) -> InputSpec:
        for spec in self.inputs:
            if spec.id == input_id:
                return spec
        raise KeyError(input_id)

    def output(self, output_id: str) -> OutputSpec:
        for spec in self.outputs:
            if spec.id == output_id:
                return spec
        raise KeyError(output_id)

    def parameter(self, param_id: str) -> ParameterSpec:
        for spec in self.parameters:
            if spec.id == param_id:
                return spec
        raise KeyError(param_id)


@dataclass(frozen=True)
class Issue:
    """One validation problem: where (keys) and what (message)."""

    keys: tuple[str, ...]
    message: str

    def __str__(self) -> str:
        return f"{'.'.join(self.keys)}: {self.message}" if self.keys else self.message

    def to_dict(self) -> dict[str, Any]:
        return {"keys": list(self.keys), "message": self.message}


@dataclass
class OutputRecord:
    """A written output raster and its float64 statistics."""

    id: str
    path: str
    units: str
    kind: str
    per: str
    nodata: float
    total: float
    valid_pixels: int
    minimum: float | None = None
    maximum: float | None = None
    product: str | None = None
    values: str = "continuous"  # or "per_class" (see OutputSpec)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ServiceResult:
    """What ``compute`` returns: outputs by id, headline totals, notes."""

    service: str
    outputs: dict[str, OutputRecord] = field(default_factory=dict)
    totals: dict[str, tuple[float, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ServiceResult:
        """Inverse of :meth:`to_dict` (results travel between flow tasks as JSON files)."""
        return cls(
            service=d["service"],
            outputs={k: OutputRecord(**v) for k, v in d.get("outputs", {}).items()},
            totals={k: (v["value"], v["units"]) for k, v in d.get("totals", {}).items()},
            notes=list(d.get("notes", [])),
            metadata=dict(d.get("metadata", {})),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "outputs": {k: v.to_dict() for k, v in self.outputs.items()},
            "totals": {k: {"value": v, "units": u} for k, (v, u) in self.totals.items()},
            "notes": list(self.notes),
            "metadata": self.metadata,
        }
