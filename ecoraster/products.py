"""Products of a run: the catalogue (目录清单), parcel / township / wetland GEP tables, STAC.

Stage hook of a run (see ``ecoraster.run``): ``build_products`` receives the service results
and the zonal tables and returns the paths it wrote. This first version writes nothing.
"""

from __future__ import annotations

from pathlib import Path

from .spec import ServiceResult


def build_products(plan, results: dict[str, ServiceResult], zonal_tables: dict[str, Path],
                   out_dir: Path) -> dict[str, Path]:
    """Write the run's products under ``out_dir``; return them by name."""
    return {}
