"""A run's workspace: every path in it, the staging folder, the commit, the one path rebase,
the lock and the clean-up of staging folders left by dead runs.

Layout (the run contract; readers such as :mod:`ecoraster.query` rely on it)::

    <workspace>/run.json                       manifest (written last)
    <workspace>/valuation.json                 the run's price set-up and every price used
    <workspace>/<service>/result.json          physical outputs of a service (service stage)
    <workspace>/<service>/valued.json          value records of that service (valuation stage)
    <workspace>/<service>/*.tif                COGs (physical and ``*_value.tif``)
    <workspace>/zonal/<zone set>.{csv,parquet,mass_balance.json}
    <workspace>/products/…  <workspace>/products/stac/…
    <workspace>/catalog.overlay.yaml           catalogue entries replaced by newer scenes
    <workspace>/.cache/                        records of completed steps (:mod:`.cache`)
    <workspace>/.staging-<time>-<pid>-<n>/     a run in progress (same tree, moved into place)
    <workspace>/.flow.lock                     held while a run writes
    <workspace>/.commit-in-progress            names the staging folder being moved into place

Every stage writes into the staging folder only; :meth:`Workspace.commit` moves the files
into place (each move atomic on one filesystem), the manifest last. A JSON file written in
staging already holds the final workspace paths (:meth:`Workspace.final`), so nothing is
rewritten on commit.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import EcorasterError

RUN_JSON = "run.json"
VALUATION_JSON = "valuation.json"
RESULT_JSON = "result.json"
VALUED_JSON = "valued.json"
ZONAL_DIR = "zonal"
PRODUCTS_DIR = "products"
OVERLAY_NAME = "catalog.overlay.yaml"
CACHE_DIR = ".cache"
LOCK_NAME = ".flow.lock"
STAGING_PREFIX = ".staging-"
#: present while a commit moves files into place; names the staging folder being committed
COMMIT_MARKER = ".commit-in-progress"

_held: dict[str, int] = {}
_held_guard = threading.Lock()


class Workspace:
    """The output folder of a run (created on first use)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    # -- paths (relative to the workspace or to a staging folder: pass ``base``) --------------

    def _base(self, base: Path | None) -> Path:
        return self.root if base is None else Path(base)

    def run_json(self, base: Path | None = None) -> Path:
        return self._base(base) / RUN_JSON

    def valuation_json(self, base: Path | None = None) -> Path:
        return self._base(base) / VALUATION_JSON

    def service_dir(self, service_id: str, base: Path | None = None) -> Path:
        return self._base(base) / service_id

    def result_json(self, service_id: str, base: Path | None = None) -> Path:
        return self.service_dir(service_id, base) / RESULT_JSON

    def valued_json(self, service_id: str, base: Path | None = None) -> Path:
        return self.service_dir(service_id, base) / VALUED_JSON

    def zonal_dir(self, base: Path | None = None) -> Path:
        return self._base(base) / ZONAL_DIR

    def zonal_csv(self, zone_set: str, base: Path | None = None) -> Path:
        return self.zonal_dir(base) / f"{zone_set}.csv"

    def products_dir(self, base: Path | None = None) -> Path:
        return self._base(base) / PRODUCTS_DIR

    def overlay(self, base: Path | None = None) -> Path:
        return self._base(base) / OVERLAY_NAME

    def existing_overlay(self) -> Path | None:
        """``<workspace>/catalog.overlay.yaml`` if a scene was ingested into this workspace."""
        path = self.overlay()
        return path if path.is_file() else None

    @property
    def cache_dir(self) -> Path:
        return self.root / CACHE_DIR

    # -- the one path rebase ------------------------------------------------------------------

    def final(self, path: str | os.PathLike, staging: Path | None) -> Path:
        """Where ``path`` (a file in ``staging``) will be after the commit; other paths unchanged."""
        p = Path(path)
        if staging is None:
            return p
        try:
            return self.root / p.resolve().relative_to(Path(staging).resolve())
        except ValueError:
            return p

    def relative(self, path: str | os.PathLike, staging: Path | None = None) -> str:
        """``path`` (in the workspace or in ``staging``) relative to the workspace."""
        return self.final(path, staging).resolve().relative_to(self.root).as_posix()

    def write_json(self, path: Path, data: Any) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
        return path

    # -- staging and commit ---------------------------------------------------------------------

    def new_staging(self) -> Path:
        """A fresh staging folder inside the workspace (same filesystem: moves are atomic)."""
        self.root.mkdir(parents=True, exist_ok=True)
        name = (f"{STAGING_PREFIX}{datetime.now().strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-"
                f"{time.monotonic_ns() % 10**6}")
        staging = self.root / name
        staging.mkdir()
        return staging

    @staticmethod
    def discard(staging: str | os.PathLike) -> None:
        """Remove a staging folder (a failed or empty run) — unless a commit from it was under
        way when the run stopped: the next writer finishes that commit (:meth:`recover`)."""
        marker = Path(staging).parent / COMMIT_MARKER
        with contextlib.suppress(OSError):
            if marker.read_text(encoding="utf-8").strip() == Path(staging).name:
                return
        shutil.rmtree(staging, ignore_errors=True)

    def commit(self, staging: Path) -> list[Path]:
        """Move every staged file into place, ``run.json`` last; remove the staging folder.
        Returns the committed paths.

        A marker (:data:`COMMIT_MARKER`, naming the staging folder) is written first and removed
        after ``run.json``: while it exists readers refuse the workspace (:func:`check_complete`),
        and the next writer finishes the interrupted commit (:meth:`recover`). So a kill at any
        point leaves the old result, the new one, or a marked workspace that the next run
        completes — never a mix that a reader takes for a result."""
        marker = self.root / COMMIT_MARKER
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(Path(staging).name, encoding="utf-8")
        os.replace(tmp, marker)
        done = self._move_all(Path(staging))
        marker.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        return done

    def _move_all(self, staging: Path) -> list[Path]:
        files = sorted(p for p in staging.rglob("*") if p.is_file())
        manifest = self.run_json(staging)
        order = [f for f in files if f != manifest] + ([manifest] if manifest.exists() else [])
        done = []
        for src in order:
            dst = self.root / src.relative_to(staging)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            done.append(dst)
        return done

    def recover(self) -> Path | None:
        """Finish a commit that a killed run left half done (call with the lock held, before
        :meth:`remove_dead_staging`): move the rest of its staged files into place, manifest
        last. Returns the staging folder it completed, or None."""
        marker = self.root / COMMIT_MARKER
        if not marker.is_file():
            return None
        staging = self.root / marker.read_text(encoding="utf-8").strip()
        if staging.is_dir() and staging.name.startswith(STAGING_PREFIX):
            self._move_all(staging)
        marker.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        return staging

    def remove_dead_staging(self) -> list[Path]:
        """Delete ``.staging-*`` folders left by processes that no longer exist (a killed run)."""
        removed = []
        for folder in self.root.glob(f"{STAGING_PREFIX}*"):
            parts = folder.name.split("-")
            try:
                pid = int(parts[2])
            except (IndexError, ValueError):
                continue
            if pid == os.getpid():
                continue
            try:
                os.kill(pid, 0)
                continue  # still running
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        return removed

    # -- the lock -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[Workspace]:
        """Hold an exclusive lock on ``<workspace>/.flow.lock`` (released by the OS if the process
        dies): a second run on the same workspace fails at once instead of mixing outputs.
        Re-entrant within one process (an update holds it around the run it starts)."""
        key = str(self.root)
        with _held_guard:
            if _held.get(key):
                _held[key] += 1
                nested = True
            else:
                nested = False
        if nested:
            try:
                yield self
            finally:
                with _held_guard:
                    _held[key] -= 1
            return
        created = not self.root.exists()
        lock_path = self.root / LOCK_NAME
        with self._locked_file(lock_path) as fh:
            with _held_guard:
                _held[key] = 1
            try:
                yield self
            finally:
                with _held_guard:
                    _held.pop(key, None)
                if created and [p.name for p in self.root.iterdir()] == [LOCK_NAME]:
                    lock_path.unlink(missing_ok=True)  # a run refused before writing leaves no folder
                    with contextlib.suppress(OSError):  # unless another run has put something in it since
                        self.root.rmdir()
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _locked_file(self, lock_path: Path):
        """``lock_path`` opened and flock-ed (exclusive, non-blocking). A run refused before writing
        removes the lock file of the folder it created; a file locked just after that removal is
        no lock at all, so the lock is taken again on the file now at ``lock_path``."""
        for _ in range(5):
            self.root.mkdir(parents=True, exist_ok=True)
            try:
                fh = open(lock_path, "a+")
            except FileNotFoundError:
                continue  # the folder went with a refused run's clean-up: make it again
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                raise EcorasterError(f"{lock_path}: another run is writing this workspace") from None
            try:
                if os.fstat(fh.fileno()).st_ino == os.stat(lock_path).st_ino:
                    return fh
            except FileNotFoundError:
                pass
            fh.close()
        raise EcorasterError(f"{lock_path}: the lock file keeps being removed; is another run starting here?")

    # -- small JSON memos under .cache ------------------------------------------------------------

    def read_memo(self, name: str) -> dict[str, Any]:
        try:
            return json.loads((self.cache_dir / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def write_memo(self, name: str, data: dict[str, Any]) -> None:
        path = self.cache_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)


def check_complete(root: str | os.PathLike) -> None:
    """Raise :class:`EcorasterError` if a commit into ``root`` was interrupted (readers:
    ``eco catalogue``, ``eco serve``, the query commands)."""
    marker = Path(root) / COMMIT_MARKER
    if marker.exists():
        raise EcorasterError(f"{root}: incomplete workspace — a run was stopped while publishing its results "
                             f"({COMMIT_MARKER}); run the same `eco run … -w {root}` again to finish it")
