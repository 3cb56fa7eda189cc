"""Fixtures for the zonal tests (temp dirs with Chinese names)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def work(tmp_path: Path) -> Path:
    d = tmp_path / "生态产品总值_核算区"
    d.mkdir()
    return d
