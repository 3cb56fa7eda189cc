"""Parameter tables of the services (``configs/parameters/*.yaml``), read lazily.

A table is a ``parameters:`` mapping; each entry has ``value`` (the default for every
profile), ``unit``, ``about``, ``source``, ``confidence`` (✔ / ◐ / ✱ as in gep-methods) and
optional ``profiles:`` overrides keyed by the run's standard profile. A
:class:`~ecoraster.spec.ParameterSpec` with ``table=<file name>`` takes its default from here.

Nothing is read at import: a table is read on first use and cached on the file's path, size
and modification time (an edited table is read again). Tables are found through
:func:`ecoraster.resources.config_path` (so ``$ECORASTER_CONFIG_DIR`` can replace them).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from .. import yamlio
from ..errors import TableError
from ..resources import config_path
from ..spec import ParameterSpec, ServiceSpec


def table_path(name: str) -> Path:
    """Path of the parameter table ``configs/parameters/<name>``."""
    return config_path("parameters", name)


@lru_cache(maxsize=16)
def _read(path: str, _size: int, _mtime_ns: int) -> dict[str, dict[str, Any]]:
    raw = yamlio.read_mapping(path, field="parameters", error=TableError)
    params = raw.get("parameters")
    if not isinstance(params, dict):
        raise TableError(f"{path}: expected a 'parameters:' mapping")
    for name, body in params.items():
        if not isinstance(body, dict) or "value" not in body:
            raise TableError(f"{path}: parameters.{name} needs a 'value'")
    return params


def load_table(name: str) -> dict[str, dict[str, Any]]:
    """The ``parameters:`` mapping of a parameter table (cached on the file's identity)."""
    path = table_path(name)
    st = path.stat()
    return _read(str(path), st.st_size, st.st_mtime_ns)


def table_entry(spec: ParameterSpec) -> dict[str, Any]:
    """The table row of a table-backed parameter (TableError naming the file if absent)."""
    assert spec.table is not None
    body = load_table(spec.table).get(spec.id)
    if body is None:
        raise TableError(f"{table_path(spec.table)}: no parameter {spec.id!r}")
    return body


def default_value(spec: ParameterSpec, profile: str | None) -> Any:
    """A parameter's default for a standard profile: the table's (profile value, else value)
    for a table-backed parameter, else the spec's ``by_profile`` / ``default``."""
    if spec.table is not None:
        body = table_entry(spec)
        return (body.get("profiles") or {}).get(profile, body["value"])
    return spec.by_profile.get(profile, spec.default) if profile is not None else spec.default


def described(spec: ParameterSpec) -> ParameterSpec:
    """The spec with about, units, default, per-profile values, source and confidence filled
    from its table (for ``eco getspec`` and run metadata)."""
    if spec.table is None:
        return spec
    body = table_entry(spec)
    return spec.model_copy(update={
        "about": spec.about or str(body.get("about", "")), "units": spec.units or str(body.get("unit", "")),
        "default": body["value"], "by_profile": dict(body.get("profiles") or {}),
        "source": body.get("source"), "confidence": body.get("confidence")})


def described_spec(service: ServiceSpec) -> ServiceSpec:
    """The service spec with every table-backed parameter described (reads the tables)."""
    return service.model_copy(update={"parameters": tuple(described(p) for p in service.parameters)})
