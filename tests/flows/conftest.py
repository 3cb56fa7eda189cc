"""Fixtures of the flow tests: ONE Prefect test server for the whole session (only for tests in
tests/flows), the small Wuhan config copied next to a temp catalogue, and a second, test-only
service that reads a different input than carbon_storage (to see what is *not* recomputed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

import flows  # noqa: F401  (offline, quiet Prefect settings before Prefect is imported)

from ..conftest import REPO


@pytest.fixture(scope="session", autouse=True)
def prefect_server():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture
def pixel_area_service(monkeypatch):
    """Register ``tests/flows/pixel_area_service.py`` as the service ``test_pixel_area``."""
    from ecoraster import registry

    from . import pixel_area_service

    monkeypatch.setitem(registry._discover(), pixel_area_service.SPEC.id, pixel_area_service)
    return pixel_area_service


def small_config(folder: Path, *, extra_services: dict | None = None, dask: dict | None = None,
                 catalog_extra: dict | None = None) -> Path:
    """``configs/examples/wuhan_small.yaml`` written into ``folder`` with an absolute catalogue
    path, plus optional services, ``dask:`` block and a second catalogue of extra datasets."""
    cfg = yaml.safe_load((REPO / "configs" / "examples" / "wuhan_small.yaml").read_text(encoding="utf-8"))
    cfg["catalog"] = str(REPO / "data_catalog.yaml")
    cfg["services"].update(extra_services or {})
    if dask is not None:
        cfg["dask"] = dask
    if catalog_extra:
        extra = folder / "extra_catalog.yaml"
        extra.write_text(yaml.safe_dump({"datasets": catalog_extra}, allow_unicode=True), encoding="utf-8")
        cfg["extra_catalogs"] = [str(extra)]
    path = folder / "wuhan_small.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def valued_result(workspace: Path, service: str) -> dict:
    """A service's result with its value outputs, as the manifest (``run.json``) records it; the
    manifest's paths are relative to the workspace, and are returned here resolved against it."""
    import json

    res = json.loads((workspace / "run.json").read_text(encoding="utf-8"))["results"][service]
    for rec in res.get("outputs", {}).values():
        rec["path"] = str(workspace / rec["path"])
    return res


def copy_tree_state(workspace: Path) -> dict[str, tuple[int, bytes]]:
    """{relative path: (mtime_ns, bytes)} of every committed output (not the cache records)."""
    return {p.relative_to(workspace).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(workspace.rglob("*")) if p.is_file() and ".cache" not in p.parts
            and p.name != ".flow.lock"}


@pytest.fixture
def clean_copy():
    return shutil.copytree
