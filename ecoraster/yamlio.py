"""YAML reading with libyaml's C parser when PyYAML was built with it (≈10× faster than the
pure-Python parser; a run reads ~20 YAML files: configs, catalogues, parameter and price
tables). Same safe subset and the same results as :func:`yaml.safe_load`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, EcorasterError, MissingFileError

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` through the C parser when available."""
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 (a safe loader)


def read_mapping(path: str | os.PathLike, *, field: str,
                 error: type[EcorasterError] = ConfigError) -> dict[str, Any]:
    """A YAML file whose top level is a mapping (an empty file gives ``{}``).

    Raises :class:`MissingFileError` naming ``field`` if the file is absent, and ``error``
    naming the file if it is not valid YAML or not a mapping at the top level."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(str(path), field=field)
    try:
        raw = safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r} at offset "
                    f"{exc.start}); save it as UTF-8") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{path}: not valid YAML{at}: {what}") from None
    if not isinstance(raw, dict):
        raise error(f"{path}: expected a mapping at the top level")
    return raw
