"""Declared specs of services: inputs with units, parameters with type, range, source and
confidence, methods, outputs with units and nodata. The registry, CLI, flows and catalogue
read these, and :func:`check_request` / :func:`expected_outputs` enforce them.

A service module under ``ecoraster.services`` exports

- ``SPEC: ServiceSpec``
- ``validate(ctx: ServiceContext) -> list[Issue]`` (cheap; returns every problem; never raises;
  starts with ``ctx.validate_inputs()``, which applies every check of the spec)
- ``compute(ctx: ServiceContext) -> ServiceResult`` (ends with ``ctx.checked(result)``: each
  expected output written, nothing undeclared)

A method is declared once, with what it needs and makes::

    MethodSpec(id="water_balance", profiles=("mee2020",),
               required_inputs=("ecosystem", "precipitation", "aet"),
               optional_inputs=("runoff_coefficients",),
               outputs=("water_conservation_m3", "water_balance_clipped_m3"))

and a conditional output carries a structured predicate, e.g.
``created_if={"c_storage_alt": When(inputs=("lulc_alt",))}``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

InputKind = Literal["raster", "vector", "table", "scalar"]
Confidence = Literal["✔", "◐", "✱"]
ParamType = Literal["number", "integer", "bool", "string", "mapping", "list", "any"]
Resampling = Literal["nearest", "mode", "bilinear", "cubic", "average", "sum", "min", "max"]
#: The method id of a service that declares no methods (one implicit method).
DEFAULT_METHOD = "default"


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
    resampling: Resampling | None = None
    columns: dict[str, str] | None = None  # table: column -> units
    #: the input describes the accounting year: its catalogue ``valid_years``, if declared, must
    #: include the run's year. False for an input of another year by design (a baseline).
    accounting_year: bool = True


class ParameterSpec(_Frozen):
    """A parameter: its type and allowed values, its default (per standard profile), where
    the default comes from and how sure we are.

    ``table`` names a parameter table under ``configs/parameters`` (e.g.
    ``casa_constants.yaml``) that holds the value, per-profile values, unit, source and
    confidence; it is read lazily (:mod:`ecoraster.services._constants`), never at import.
    Otherwise ``default`` / ``by_profile`` are the values. ``None`` means "not set" and is
    always accepted unless ``required`` (a method can also require it).
    """

    id: str
    about: str = ""
    units: str = ""
    type: ParamType = "any"
    default: Any = None
    by_profile: dict[str, Any] = {}
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    choices: tuple[Any, ...] | None = None
    table: str | None = None
    source: str | None = None
    confidence: Confidence | None = None

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed for this parameter, or None if it is."""
        if value is None:
            return None
        t = self.type
        if t in ("number", "integer"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"must be a number, got {value!r}"
            if t == "integer" and float(value) != int(value):
                return f"must be a whole number, got {value!r}"
            if self.minimum is not None:
                if self.exclusive_minimum and not value > self.minimum:
                    return f"= {value!r} must be > {self.minimum:g}"
                if not self.exclusive_minimum and not value >= self.minimum:
                    return f"= {value!r} must be ≥ {self.minimum:g}"
            if self.maximum is not None and not value <= self.maximum:
                return f"= {value!r} must be ≤ {self.maximum:g}"
        elif t == "bool" and not isinstance(value, bool):
            return f"must be true or false, got {value!r}"
        elif t == "string" and not isinstance(value, str):
            return f"must be a text, got {value!r}"
        elif t == "mapping" and not isinstance(value, Mapping):
            return f"must be a mapping, got {value!r}"
        elif t == "list" and not isinstance(value, (list, tuple)):
            return f"must be a list, got {value!r}"
        if self.choices is not None and value not in self.choices:
            return f"= {value!r}; use one of {', '.join(map(str, self.choices))}"
        return None


class When(_Frozen):
    """A structured ``created_if``: true when every input of ``inputs`` is given and every
    parameter of ``params`` has the stated value, and every list parameter of ``contains``
    holds the stated item (InVEST's ``created_if``, without strings to parse). ``When()`` is
    always true."""

    inputs: tuple[str, ...] = ()
    params: dict[str, Any] = {}
    contains: dict[str, Any] = {}

    def holds(self, given: Callable[[str], bool], param: Callable[[str], Any]) -> bool:
        return (all(given(i) for i in self.inputs) and all(param(k) == v for k, v in self.params.items())
                and all(v in (param(k) or ()) for k, v in self.contains.items()))


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
    values: Literal["continuous", "per_class"] = "continuous"
    #: Deprecated prose condition of the services written before :class:`MethodSpec`; an output
    #: with one is allowed but never *expected* by :func:`expected_outputs`. Declare a
    #: structured ``MethodSpec.created_if`` instead.
    created_if: str | None = None
    #: For outputs written once per item of the data (e.g. per product of a statistics
    #: table): the template of the written ids, ``{name}`` standing for any text, e.g.
    #: ``"{product}_value"``. Such outputs are never *expected*, only allowed.
    id_pattern: str | None = None

    def matches(self, written_id: str) -> bool:
        """Whether ``written_id`` is this output (its id, or an id of its pattern)."""
        if self.id_pattern is None:
            return written_id == self.id
        regex = re.sub(r"\\\{\w+\\\}", ".+", re.escape(self.id_pattern))
        return re.fullmatch(regex, written_id) is not None


class MethodSpec(_Frozen):
    """One method of a service: the inputs it needs and may use, its parameters, the
    outputs it writes and when (``created_if``), and the standard profiles for which it is
    the default method.

    ``one_of_inputs`` lists groups of which at least one input must be given (e.g.
    ``("lai", "ndvi")``). ``required_parameters`` must resolve to a value (not None).
    Outputs without a ``created_if`` entry are always written by the method.
    """

    id: str
    about: str = ""
    profiles: tuple[str, ...] = ()
    required_inputs: tuple[str, ...] = ()
    optional_inputs: tuple[str, ...] = ()
    one_of_inputs: tuple[tuple[str, ...], ...] = ()
    parameters: tuple[str, ...] = ()
    required_parameters: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    created_if: dict[str, When] = {}

    @property
    def inputs(self) -> tuple[str, ...]:
        grouped = tuple(i for group in self.one_of_inputs for i in group)
        return tuple(dict.fromkeys(self.required_inputs + self.optional_inputs + grouped))


class ServiceSpec(_Frozen):
    """Everything a service declares about itself."""

    id: str
    name: str
    name_zh: str
    about: str
    category: Literal["物质产品", "调节服务", "文化服务", "存量"]
    methods: tuple[MethodSpec, ...] = ()
    reference: str = ""
    inputs: tuple[InputSpec, ...] = ()
    parameters: tuple[ParameterSpec, ...] = ()
    outputs: tuple[OutputSpec, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _methods_given_as_names(cls, data: Any) -> Any:
        """Services written before :class:`MethodSpec` name their methods only
        (``methods=("a", "b")``): each becomes a method needing the required inputs and
        writing every output (the service then checks its own per-method inputs)."""
        if not isinstance(data, dict) or not any(isinstance(m, str) for m in data.get("methods", ())):
            return data

        def field(obj: Any, name: str, default: Any = None) -> Any:
            return obj.get(name, default) if isinstance(obj, dict) else getattr(obj, name, default)

        inputs = data.get("inputs", ())
        required = tuple(field(i, "id") for i in inputs if field(i, "required", True))
        optional = tuple(field(i, "id") for i in inputs if not field(i, "required", True))
        params = tuple(field(p, "id") for p in data.get("parameters", ()))
        outputs = tuple(field(o, "id") for o in data.get("outputs", ()))
        data = dict(data)
        data["methods"] = tuple(
            MethodSpec(id=m, required_inputs=required, optional_inputs=optional, parameters=params, outputs=outputs)
            if isinstance(m, str) else m for m in data["methods"])
        return data

    @model_validator(mode="after")
    def _references_known(self) -> ServiceSpec:
        """A method may only name declared inputs, parameters and outputs (a typo in a spec
        fails at import, not in a user's run)."""
        inputs, params = {i.id for i in self.inputs}, {p.id for p in self.parameters}
        outputs = {o.id for o in self.outputs}
        for m in self.methods:
            for kind, names, known in (("input", m.inputs, inputs), ("parameter", m.parameters, params),
                                       ("parameter", m.required_parameters, params),
                                       ("output", m.outputs, outputs),
                                       ("output", tuple(m.created_if), set(m.outputs))):
                for name in names:
                    if name not in known:
                        raise ValueError(f"service {self.id}, method {m.id}: unknown {kind} {name!r}")
            for when in m.created_if.values():
                for name in when.inputs:
                    if name not in inputs:
                        raise ValueError(f"service {self.id}, method {m.id}: created_if names unknown input {name!r}")
                for name in (*when.params, *when.contains):
                    if name not in params:
                        raise ValueError(f"service {self.id}, method {m.id}: created_if names unknown parameter {name!r}")
        if len({m.id for m in self.methods}) != len(self.methods):
            raise ValueError(f"service {self.id}: two methods share an id")
        return self

    @property
    def all_methods(self) -> tuple[MethodSpec, ...]:
        """The declared methods, or one implicit method (id ``default``) that needs the
        required inputs and writes every output, for a service that declares none."""
        if self.methods:
            return self.methods
        return (MethodSpec(
            id=DEFAULT_METHOD,
            required_inputs=tuple(i.id for i in self.inputs if i.required),
            optional_inputs=tuple(i.id for i in self.inputs if not i.required),
            parameters=tuple(p.id for p in self.parameters),
            outputs=tuple(o.id for o in self.outputs)),)

    @property
    def method_ids(self) -> tuple[str, ...]:
        return tuple(m.id for m in self.all_methods)

    def method(self, method_id: str | None, profile: str | None = None) -> MethodSpec:
        """The named method; without a name, the method whose ``profiles`` list the standard
        profile, else the first method. KeyError for an unknown name."""
        methods = self.all_methods
        if method_id is None:
            for m in methods:
                if profile is not None and profile in m.profiles:
                    return m
            return methods[0]
        for m in methods:
            if m.id == method_id:
                return m
        raise KeyError(method_id)

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


def closest(name: str, known: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or ''."""
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


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


# ------------------------------------------------------------------------------------------
# enforcement: the checks every service gets from its spec
# ------------------------------------------------------------------------------------------

def check_request(spec: ServiceSpec, method: str | None, profile: str | None, given: Callable[[str], bool],
                  params: Mapping[str, Any], resolve: Callable[[str], Any]) -> list[Issue]:
    """Every problem of a service request against its spec; never raises.

    Checks: a known method; no unknown (misspelt) parameter, with the closest name
    suggested; each parameter's type, range and choices (the run's values and the resolved
    defaults); the method's required inputs and parameters; its one-of input groups.
    Input kinds and files are checked by ``ServiceContext.validate_inputs``.
    ``given(input_id)`` says whether an input is given; ``resolve(param_id)`` returns a
    parameter's value for this run (may raise for a broken parameter table).
    """
    base = ("services", spec.id)
    try:
        m = spec.method(method, profile)
    except KeyError:
        return [Issue((*base, "method"), f"unknown method {method!r}{closest(str(method), spec.method_ids)}; "
                                         f"use one of {', '.join(spec.method_ids)}")]
    issues: list[Issue] = []
    known = [p.id for p in spec.parameters]
    for name in sorted(set(params) - set(known)):
        hint = closest(str(name), known)
        listed = f"known: {', '.join(known)}" if known else f"{spec.id} takes no parameters"
        issues.append(Issue((*base, "params", str(name)), f"unknown parameter{hint}; {listed}"))
    for p in spec.parameters:
        try:
            value = resolve(p.id)
        except Exception as exc:  # a broken parameter table: report, do not crash
            issues.append(Issue((*base, "params", p.id), str(exc)))
            continue
        problem = p.problem(value)
        if problem:
            origin = "" if p.id in params else " (default)"
            issues.append(Issue((*base, "params", p.id), f"{problem}{origin}"))
        elif value is None and p.id in m.required_parameters:
            issues.append(Issue((*base, "params", p.id),
                                f"required by method {m.id} ({p.about or p.units})"))
    for input_id in m.required_inputs:
        if not given(input_id):
            about = spec.input(input_id).about
            issues.append(Issue((*base, "inputs", input_id), f"required input of method {m.id} missing ({about})"))
    for group in m.one_of_inputs:
        if not any(given(i) for i in group):
            issues.append(Issue((*base, "inputs", group[0]),
                                f"method {m.id} needs {' or '.join(group)}"))
    return issues


def expected_outputs(spec: ServiceSpec, method: MethodSpec, given: Callable[[str], bool],
                     param: Callable[[str], Any]) -> set[str]:
    """Ids of the outputs the method must write for this request (``created_if`` applied;
    an output with only a deprecated prose ``OutputSpec.created_if`` is never expected)."""
    out = set()
    for out_id in method.outputs:
        when = method.created_if.get(out_id)
        if when is None and spec.output(out_id).created_if is not None:
            continue
        if when is None or when.holds(given, param):
            out.add(out_id)
    return out


def output_problems(spec: ServiceSpec, method: MethodSpec, expected: set[str], written: list[str]) -> list[str]:
    """InVEST's ``check_outputs``: each expected output written, nothing undeclared."""
    declared = [spec.output(o) for o in method.outputs]
    problems = []
    for out_id in sorted(expected):
        if spec.output(out_id).id_pattern is None and out_id not in written:
            problems.append(f"expected output {out_id!r} was not written")
    for w in written:
        if not any(o.matches(w) for o in declared):
            problems.append(f"output {w!r} is not declared by method {method.id}")
    return problems
