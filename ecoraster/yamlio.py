"""YAML reading with libyaml's C parser when PyYAML was built with it (≈10× faster than the
pure-Python parser; a run reads ~20 YAML files: configs, catalogues, parameter and price
tables). Same safe subset and the same results as :func:`yaml.safe_load`."""

from __future__ import annotations

from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` through the C parser when available."""
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 (a safe loader)
