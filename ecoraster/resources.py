"""The one locator of the reference tables under ``configs/``.

Reference tables (GEP classes, land-cover reclass tables, parameter tables, price tables,
the CPI, standard profiles, ``products.yaml``) ship with the package, so ``pip install .``
runs from any folder. They are found in this order:

1. ``$ECORASTER_CONFIG_DIR`` — an organisation's own copy of the tables (the whole
   ``configs/`` tree, or only the files it changes: a file missing there is taken from the
   shipped tables);
2. the tables shipped inside the package (``ecoraster/_configs``, a link to the checkout's
   ``configs/`` in a source tree, real files in a wheel).

Nothing here reads a file at import time.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import MissingFileError

#: Environment variable naming an organisation's own ``configs/`` folder.
CONFIG_DIR_ENV = "ECORASTER_CONFIG_DIR"

_SHIPPED = Path(__file__).resolve().parent / "_configs"


def shipped_config_dir() -> Path:
    """The ``configs/`` tree that ships with the package."""
    return _SHIPPED


def config_dirs() -> list[Path]:
    """Folders searched for reference tables, first match wins."""
    dirs: list[Path] = []
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        dirs.append(Path(override).expanduser().resolve())
    dirs.append(_SHIPPED)
    return dirs


def config_path(*parts: str, must_exist: bool = True) -> Path:
    """Path of a reference table, e.g. ``config_path("profiles", "mee2020.yaml")``.

    Raises :class:`~ecoraster.errors.MissingFileError` naming every folder searched when
    ``must_exist`` and no folder has it; otherwise returns the shipped path.
    """
    rel = Path(*parts)
    for folder in config_dirs():
        candidate = folder / rel
        if candidate.exists():
            return candidate
    if must_exist:
        searched = " or ".join(str(d / rel) for d in config_dirs())
        raise MissingFileError(searched, field=f"reference table {rel}; ${CONFIG_DIR_ENV} adds a folder")
    return _SHIPPED / rel


def reference_files(*folders: str) -> dict[str, Path]:
    """Every reference table under ``folders`` (e.g. ``"parameters"``), as the run would find it:
    ``{"parameters/casa_emax.csv": path}``, an organisation's copy winning over the shipped one."""
    found: dict[str, Path] = {}
    for base in config_dirs():
        for folder in folders:
            root = base / folder
            if not root.is_dir():
                continue
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    found.setdefault(path.relative_to(base).as_posix(), path)
    return dict(sorted(found.items()))
