"""Before a run computes: the files it reads are the ones its catalogue describes, of its year,
and whole.

For every catalogue dataset a run reads (service inputs, zone sets, the grid template, a
catalogued price table — :func:`used_datasets`):

- **checksum** — a local file whose entry declares ``checksum: sha256:…`` must have that
  sha256; a mismatch is an error naming the dataset, the file and both hashes.
- **valid_years** — an entry that declares ``valid_years`` must include the run's ``year``
  when a service reads it as an input of the accounting year (every input but those whose
  :class:`~ecoraster.spec.InputSpec` says ``accounting_year=False``, such as carbon storage's
  baseline land cover) or it is a zone set. Otherwise an error naming the dataset, its years
  and the run year — unless the run config lists the id in ``allow_outside_years``, when it
  is a warning (the convention of prices' ``outside_years``).
- **blocks** — every block of a local GeoTIFF (full resolution and overviews) lies inside the
  file (:func:`~ecoraster.io.integrity.layout_problem`, metadata only), and with ``decode``
  (``eco validate``, ``eco run``) every full-resolution block under the run grid decodes
  (:func:`~ecoraster.io.integrity.decode_problem`): a damaged tile that a sampled read from
  the overviews would miss is found before any computation.

Hashing and decoding cost a full read. Each is done once per file version: the result is
remembered in ``memo`` — ``<workspace>/.cache/verified.json`` for a run, ``{uri:
{"fingerprint", "sha256", "decoded": [windows]}}`` — keyed by the file's fingerprint (size,
mtime and its first and last MiB, :func:`~ecoraster.pipeline.cache.file_fingerprint`). A
changed file gets a new fingerprint and is hashed and decoded again. ``eco validate`` has no
workspace: it hashes (declared checksums) and decodes on every call.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from ..config import RunPlan
from ..datasets import DatasetEntry, file_sha256
from ..errors import EcorasterError
from ..io.integrity import Window, decode_problem, layout_problem
from ..spec import Issue
from .cache import file_fingerprint

log = logging.getLogger(__name__)

#: name of the memo under ``<workspace>/.cache``
MEMO = "verified.json"


def used_datasets(plan: RunPlan, services: list[str]) -> list[str]:
    """Catalogue ids a run reads: service inputs, zone sets, the grid template, a catalogued price table."""
    ids = {str(v) for sid in services for v in plan.config.services[sid].inputs.values() if isinstance(v, str)}
    ids |= {zs.dataset for zs in plan.config.zones.values()}
    if plan.config.grid.like:
        ids.add(plan.config.grid.like)
    if plan.config.prices and plan.config.prices in plan.catalog:
        ids.add(plan.config.prices)
    return sorted(i for i in ids if i in plan.catalog)


def _is_local_file(entry: DatasetEntry) -> bool:
    return "://" not in entry.uri and Path(entry.uri).is_file()


# -- valid_years ------------------------------------------------------------------------------

def _year_uses(plan: RunPlan, services: list[str]) -> list[tuple[tuple[str, ...], str]]:
    """(where, dataset id) of every use of a dataset as data of the accounting year."""
    from ..registry import get_service

    uses: list[tuple[tuple[str, ...], str]] = []
    for sid in services:
        try:
            spec = get_service(sid).SPEC
        except EcorasterError:
            continue  # an unknown service is reported by the service checks
        for iid, value in plan.config.services[sid].inputs.items():
            if not isinstance(value, str) or value not in plan.catalog:
                continue
            try:
                of_year = spec.input(iid).accounting_year
            except KeyError:
                continue  # an undeclared input is reported by the service checks
            if of_year:
                uses.append((("services", sid, "inputs", iid), value))
    uses += [(("zones", name, "dataset"), zs.dataset) for name, zs in plan.config.zones.items()
             if zs.dataset in plan.catalog]
    return uses


def year_issues(plan: RunPlan, services: list[str]) -> list[Issue]:
    """Datasets read as data of the run's year whose ``valid_years`` leave that year out."""
    year, allowed = plan.config.year, set(plan.config.allow_outside_years)
    issues = [Issue(("allow_outside_years",), f"unknown catalogue id {ds!r}")
              for ds in sorted(allowed) if ds not in plan.catalog]
    warned: set[str] = set()
    for keys, ds in _year_uses(plan, services):
        entry = plan.catalog.get(ds)
        if not entry.valid_years or year in entry.valid_years:
            continue
        what = f"datasets.{ds}.valid_years = {entry.valid_years} does not include the run year {year}"
        if ds in allowed:
            if ds not in warned:
                log.warning("%s: %s; used anyway (allow_outside_years)", ".".join(keys), what)
                warned.add(ds)
            continue
        issues.append(Issue(keys, f"{what} ({entry.uri}); use data of {year}, or list {ds!r} under "
                                  f"allow_outside_years in the run config to use it anyway"))
    return issues


# -- checksum ---------------------------------------------------------------------------------

def _memo_entry(memo: dict[str, Any], uri: str) -> dict[str, Any]:
    """The memo of ``uri`` for the file as it is now (a fresh one if the file changed)."""
    fp = file_fingerprint(uri)
    rec = memo.get(uri)
    if not isinstance(rec, dict) or rec.get("fingerprint") != fp:
        rec = memo[uri] = {"fingerprint": fp}
    return rec


def sha256_of(uri: str, memo: dict[str, Any]) -> str:
    """``sha256:<hex>`` of a local file, from ``memo`` when the file is unchanged (then remembered)."""
    rec = _memo_entry(memo, uri)
    if not rec.get("sha256"):
        rec["sha256"] = "sha256:" + file_sha256(uri)
    return str(rec["sha256"])


def checksum_issue(ds: str, entry: DatasetEntry, memo: dict[str, Any]) -> Issue | None:
    """The declared ``checksum`` of a local file against its sha256 (None if equal or none declared)."""
    if not entry.checksum or not _is_local_file(entry):
        return None
    actual = sha256_of(entry.uri, memo)
    if actual == entry.checksum:
        return None
    return Issue(("datasets", ds, "checksum"),
                 f"{entry.uri} has {actual}, the catalogue says {entry.checksum}: the file is not the one "
                 f"catalogued (changed, damaged or replaced) — restore it, or update the entry's checksum")


# -- blocks -----------------------------------------------------------------------------------

def grid_window(entry: DatasetEntry, plan: RunPlan) -> Window | None:
    """The source pixels under the run grid, ``(row_off, col_off, height, width)`` padded by two
    pixels for resampling; None (the whole file) when it cannot be worked out."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.warp import transform_bounds
    from rasterio.windows import from_bounds

    try:
        with rasterio.open(entry.uri) as src:
            crs = src.crs or (CRS.from_user_input(entry.crs) if entry.crs else None)
            if crs is None or not src.transform.is_rectilinear:
                return None
            grid = plan.grid
            left, bottom, right, top = transform_bounds(grid.crs, crs, *grid.bounds, densify_pts=21)
            win = from_bounds(left, bottom, right, top, transform=src.transform)
            rows = sorted((win.row_off, win.row_off + win.height))
            cols = sorted((win.col_off, win.col_off + win.width))
            r0, c0 = max(0, math.floor(rows[0]) - 2), max(0, math.floor(cols[0]) - 2)
            r1, c1 = min(src.height, math.ceil(rows[1]) + 2), min(src.width, math.ceil(cols[1]) + 2)
    except Exception:  # an odd georeference: check the whole file
        return None
    return (r0, c0, max(0, r1 - r0), max(0, c1 - c0))


def block_issue(ds: str, entry: DatasetEntry, plan: RunPlan, memo: dict[str, Any] | None,
                decode: bool) -> Issue | None:
    """A raster whose blocks lie outside the file or (``decode``) do not decode."""
    if entry.kind != "raster" or not _is_local_file(entry):
        return None
    keys = ("datasets", ds)
    try:
        window = grid_window(entry, plan)
        if (problem := layout_problem(entry.uri, window)) is not None:
            return Issue(keys, problem)
        if not decode or (window is not None and window[2] * window[3] == 0):
            return None
        rec = _memo_entry(memo, entry.uri) if memo is not None else {}
        done = rec.get("decoded", [])
        key = "all" if window is None else ",".join(map(str, window))
        if key in done or "all" in done:
            return None
        if (problem := decode_problem(entry.uri, window)) is not None:
            return Issue(keys, problem)
        rec["decoded"] = [*done, key]
    except EcorasterError as exc:
        return Issue(keys, str(exc))
    except Exception as exc:  # GDAL cannot open it at all
        return Issue(keys, f"{entry.uri} cannot be read as a raster: {str(exc).splitlines()[0] if str(exc) else exc!r}")
    return None


# -- all of them ------------------------------------------------------------------------------

def dataset_issues(plan: RunPlan, services: list[str], memo: dict[str, Any] | None = None, *,
                   decode: bool = False, hash_all: bool = False, years: bool = True) -> list[Issue]:
    """Every checksum, valid-years (``years``) and block problem of the datasets a run reads.
    Never raises.

    ``memo`` (updated in place) remembers hashes and decoded windows per file version;
    ``hash_all`` also hashes local files without a declared checksum (for the manifest)."""
    memo = {} if memo is None else memo
    issues = year_issues(plan, services) if years else []
    for ds in used_datasets(plan, services):
        entry = plan.catalog.get(ds)
        if "://" not in entry.uri and not Path(entry.uri).exists():
            continue  # reported by the service and zone checks, which know the field
        try:
            found = checksum_issue(ds, entry, memo)
            if found is None and hash_all and _is_local_file(entry):
                sha256_of(entry.uri, memo)
        except OSError as exc:
            found = Issue(("datasets", ds), f"{entry.uri} cannot be read: {exc.strerror or exc}")
        issues += [i for i in (found, block_issue(ds, entry, plan, memo, decode)) if i is not None]
    return issues
