"""Where a run's software came from and where its files are, for ``run.json``:

- :func:`software_provenance` — the package version and the git commit of the source it runs
  from (a checkout: ``git rev-parse HEAD`` and whether the tree had changes; an installed
  wheel built from a VCS URL: the commit pip recorded in ``direct_url.json``; else ``None``);
- :func:`relative_to_workspace` — every path inside the manifest that lies in the workspace
  (or its staging folder) written relative to the workspace, so a workspace can be moved or
  shared; inputs outside it keep their absolute paths.
"""

from __future__ import annotations

import json
import os
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import __version__

_PACKAGE_DIR = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def software_provenance() -> dict[str, Any]:
    """``{"package", "version", "git_commit", "git_dirty", "source"}`` of this ecoraster."""
    out: dict[str, Any] = {"package": "ecoraster", "version": __version__, "git_commit": None, "git_dirty": None,
                           "source": str(_PACKAGE_DIR)}
    try:
        top = subprocess.run(["git", "-C", str(_PACKAGE_DIR), "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True, timeout=5)
        if top.returncode == 0 and (Path(top.stdout.strip()) / "pyproject.toml").is_file():
            head = subprocess.run(["git", "-C", str(_PACKAGE_DIR), "rev-parse", "HEAD"],
                                  capture_output=True, text=True, timeout=5)
            dirty = subprocess.run(["git", "-C", str(_PACKAGE_DIR), "status", "--porcelain", "--untracked-files=no",
                                    "--", "."], capture_output=True, text=True, timeout=10)
            if head.returncode == 0:
                out["git_commit"] = head.stdout.strip()
                out["git_dirty"] = bool(dirty.stdout.strip()) if dirty.returncode == 0 else None
                return out
    except (OSError, subprocess.SubprocessError):
        pass
    try:  # installed from a VCS URL: pip records the commit
        import importlib.metadata as md

        text = md.distribution("ecoraster").read_text("direct_url.json")
        vcs = (json.loads(text) or {}).get("vcs_info", {}) if text else {}
        out["git_commit"] = vcs.get("commit_id")
    except Exception:  # not installed as a distribution, or no record: no commit to tell
        pass
    return out


def relative_to_workspace(obj: Any, *roots: str | os.PathLike) -> Any:
    """``obj`` (JSON-like) with every string path under one of ``roots`` made relative to
    it (POSIX separators). ``roots`` are the workspace and its staging folder."""
    prefixes = [str(Path(r)).rstrip("/") + "/" for r in roots if r]

    def fix(v: Any) -> Any:
        if isinstance(v, str):
            for p in prefixes:
                if v.startswith(p):
                    return Path(v[len(p):]).as_posix()
            return v
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v

    return fix(obj)
