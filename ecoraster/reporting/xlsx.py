"""Workbook helpers shared by the reports."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd


def about_sheet(meta: dict[str, Any]) -> pd.DataFrame:
    """A ``key | value`` sheet (说明) of a report's metadata; dicts and lists as JSON."""
    return pd.DataFrame({"key": list(meta), "value": [json.dumps(v, ensure_ascii=False, default=str)
                                                      if isinstance(v, (dict, list)) else v for v in meta.values()]})
