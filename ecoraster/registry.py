"""The service registry, discovered from the modules of ``ecoraster.services``.

A module is a service if it exports ``SPEC`` (a :class:`~ecoraster.spec.ServiceSpec`),
``validate`` and ``compute``. Flows, the CLI and the catalogue read this registry; there is
no hand-kept list. :func:`register` adds a service defined elsewhere (a test service, a
plugin); :func:`unregister` removes it again.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache
from types import ModuleType
from typing import Any

from . import services as _services_pkg
from .errors import ServiceError
from .spec import ServiceSpec


def _check_contract(module: Any) -> None:
    if not isinstance(getattr(module, "SPEC", None), ServiceSpec):
        raise ServiceError(f"service {getattr(module, '__name__', module)!r} has no SPEC (a ServiceSpec)")
    for name in ("validate", "compute"):
        if not callable(getattr(module, name, None)):
            raise ServiceError(f"service module {module.__name__} has SPEC but no {name}()")


@lru_cache(maxsize=1)
def _discover() -> dict[str, ModuleType]:
    found: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules(_services_pkg.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{_services_pkg.__name__}.{info.name}")
        spec = getattr(module, "SPEC", None)
        if not isinstance(spec, ServiceSpec):
            continue
        _check_contract(module)
        if spec.id in found:
            raise ServiceError(f"two services share the id {spec.id!r}: {found[spec.id].__name__}, {module.__name__}")
        found[spec.id] = module
    return found


def service_ids() -> list[str]:
    """Ids of every registered service, sorted."""
    return sorted(_discover())


def get_service(service_id: str) -> ModuleType:
    """The service module for ``service_id``; a clear error listing the known ids."""
    services = _discover()
    try:
        return services[service_id]
    except KeyError:
        raise ServiceError(f"unknown service {service_id!r}; known: {', '.join(sorted(services))}") from None


def get_spec(service_id: str) -> ServiceSpec:
    return get_service(service_id).SPEC


def all_specs() -> list[ServiceSpec]:
    return [m.SPEC for _, m in sorted(_discover().items())]


def register(module: Any, *, replace: bool = False) -> None:
    """Add a service (a module or object with ``SPEC``, ``validate`` and ``compute``) to the
    registry, e.g. a test service. Its id must be new unless ``replace``."""
    _check_contract(module)
    services = _discover()
    sid = module.SPEC.id
    if sid in services and services[sid] is not module and not replace:
        raise ServiceError(f"a service with id {sid!r} is already registered ({services[sid].__name__})")
    services[sid] = module


def unregister(service_id: str) -> None:
    """Remove a service added by :func:`register` (no error if absent)."""
    _discover().pop(service_id, None)
