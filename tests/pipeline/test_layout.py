"""Layering of the package: nothing in ``ecoraster`` imports ``flows`` (only the Prefect commands of
``eco flow`` do, inside their functions); services never import the accounting stages or the runner."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ecoraster.pipeline import cache

pytestmark = pytest.mark.unit

PACKAGE = cache.PACKAGE_DIR


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
    return out


def test_no_library_module_imports_flows():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "_configs" in path.parts:
            continue
        lazy_ok = path == PACKAGE / "cli" / "flows.py"   # `eco flow` imports Prefect flows inside the commands
        names = _imports(path, top_level_only=lazy_ok)
        if any(n == "flows" or n.startswith("flows.") for n in names):
            offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []


def test_services_stay_below_the_accounting_stages_and_the_runner():
    for service in sorted((PACKAGE / "services").glob("*.py")):
        closure = {p.relative_to(PACKAGE).as_posix() for p in cache.import_closure(
            f"ecoraster.services.{service.stem}")}
        assert not {p for p in closure if p.startswith(("accounting/", "pipeline/", "cli/"))}, service.name
