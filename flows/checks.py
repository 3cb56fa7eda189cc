"""Checks the flows run before any work, so an operator sees a failed run with a message instead
of a run that silently does nothing. No Prefect here (``flows/serve.py`` uses them at start-up).
"""

from __future__ import annotations

from pathlib import Path

from ecoraster.errors import ConfigError, MissingFileError


def check_watch_folder(folder: str, patterns: dict[str, str] | None) -> None:
    """Fail loudly instead of finding "0 new scenes" forever: no patterns or an empty glob /
    catalogue id → ``ConfigError`` (fails at once); a missing folder → ``MissingFileError``
    (an ``OSError``: the scan task retries, a mount may come back, then the run fails)."""
    if not patterns:
        raise ConfigError(f"watch folder {folder}: no patterns; give {{glob: catalogue id}}, "
                          "e.g. {'wh2013_*.tif': 'wuhan_lulc_2013'} (--pattern 'wh2013_*.tif=wuhan_lulc_2013')")
    for glob, dataset in patterns.items():
        if not str(glob).strip() or not str(dataset or "").strip():
            raise ConfigError(f"watch folder {folder}: empty pattern {glob!r}: {dataset!r}; "
                              "each needs a glob and a catalogue id")
    path = Path(folder)
    if not path.exists():
        raise MissingFileError(str(path.resolve()), field="watch folder")
    if not path.is_dir():
        raise NotADirectoryError(f"watch folder is not a folder: {path.resolve()}")
