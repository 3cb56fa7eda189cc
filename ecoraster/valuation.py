"""Valuation: physical quantity rasters × rebased prices → value rasters (CNY, price year).

Stage hook of a run (see ``ecoraster.run``): ``value_results`` receives the service results of
a run and returns them with value outputs added. This first version adds none.
"""

from __future__ import annotations

from pathlib import Path

from .spec import ServiceResult


def value_results(plan, results: dict[str, ServiceResult], out_dir: Path) -> dict[str, ServiceResult]:
    """Add value outputs (CNY) to ``results``; write rasters under ``out_dir/<service>/``."""
    return results
