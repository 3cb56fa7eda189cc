"""Zone × pixel coverage weights: built once per (zones, grid), applied to many rasters.

:class:`ZoneWeights` holds, for every grid row, the partial pixels of each zone
(zone, column, covered fraction) and the runs of fully covered pixels (zone, first
column, end column), CSR-style by row. 100 k parcels on a 100 Mpx grid take ~0.2 GB.
Applying the weights streams a raster in row slabs (windowed reads, the next slab read
in a background thread) and accumulates float64 per-zone sums and covered fractions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from rasterio.windows import Window

from ..errors import GridMismatchError, MissingFileError, TableError
from ..grid import Grid
from ..kernels import coverage as K
from .geometry import RingArrays, ring_arrays

log = logging.getLogger(__name__)

#: Statistics :meth:`ZoneWeights.apply` computes.
STATS = ("sum", "mean", "count")
#: Bump when the weights format or the kernel's results change (invalidates caches).
FORMAT_VERSION = 1
#: Pixels per row slab read from a raster (≈ 16 MB of float32).
SLAB_PIXELS = 1 << 22
#: GDAL block cache while streaming a raster (MB).
READ_CACHE_MB = 64

_ARRAYS = ("p_ptr", "p_zone", "p_col", "p_frac", "r_ptr", "r_zone", "r_c0", "r_c1")


@dataclass
class MassBalance:
    """Mass balance of one raster over a set of zones.

    Attributes
    ----------
    zones_total : float
        Σ of the zones' sums (raster units × pixels).
    inside_total : float
        Raster total inside the zones' union: Σ value × min(coverage, 1) over valid
        pixels, where coverage = Σ of the zones' fractions of the pixel.
    abs_diff, rel_diff : float
        ``zones_total − inside_total`` and that over ``|inside_total|``; ≈ 0 for a
        partition, the double-counted amount where zones overlap.
    overlap_px : float
        Pixels covered more than once (Σ (coverage − 1) where coverage > 1).
    covered_px : float
        Pixels inside the union (Σ min(coverage, 1)), valid or not.
    raster_total : float
        Σ of all valid pixels of the raster (inside the zones or not).
    """

    raster: str
    zones_total: float
    inside_total: float
    abs_diff: float
    rel_diff: float
    overlap_px: float
    covered_px: float
    raster_total: float
    tolerance: float = 1e-9

    @property
    def ok(self) -> bool:
        return abs(self.rel_diff) <= self.tolerance or abs(self.abs_diff) <= self.tolerance

    def __str__(self) -> str:
        state = "ok" if self.ok else "MISMATCH"
        return (f"mass balance {self.raster}: {state}; zones Σ {self.zones_total:.12g}, inside union "
                f"{self.inside_total:.12g}, diff {self.abs_diff:.3g} ({self.rel_diff:.3g} rel), "
                f"overlap {self.overlap_px:.6g} px, covered {self.covered_px:.6g} px, "
                f"raster total {self.raster_total:.12g}")


@dataclass
class ZoneWeights:
    """Coverage fractions of zones on a grid (see module docstring).

    Build with :meth:`build`, use with :meth:`apply`. ``ids`` gives the zones in input
    order; zone index ``i`` in the arrays is ``ids[i]``.
    """

    grid: Grid
    ids: pd.Index
    p_ptr: np.ndarray
    p_zone: np.ndarray
    p_col: np.ndarray
    p_frac: np.ndarray
    r_ptr: np.ndarray
    r_zone: np.ndarray
    r_c0: np.ndarray
    r_c1: np.ndarray
    key: str = ""

    # -- construction -------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        zones: gpd.GeoDataFrame | str | os.PathLike,
        grid: Grid,
        id_field: str,
        cache_dir: str | os.PathLike | None = None,
        *,
        exact64: bool = False,
        chunk: int = 8192,
    ) -> ZoneWeights:
        """Coverage fractions of every zone on ``grid``.

        Parameters
        ----------
        zones : GeoDataFrame or path
            Polygons or multipolygons (holes allowed); reprojected to ``grid.crs``,
            invalid ones repaired with ``make_valid``.
        grid : Grid
            The grid of the rasters the weights will be applied to.
        id_field : str
            Unique zone id field (the index of results).
        cache_dir : path, optional
            Directory for a cache file ``zonal-<key>.npz``; the key hashes the zones'
            coordinates and ids (after reprojection), the grid and the options.
        exact64 : bool
            Keep fractions in float64. Default float32, computed and added per ring
            the way exactextract does, so sums match it to ~1e-12.
        chunk : int
            Zones per kernel call (bounds the build's working memory).
        """
        from .exact import read_zones_for

        t0 = time.perf_counter()
        zs = read_zones_for(zones, id_field, grid.crs)
        ids = pd.Index(zs[id_field].to_numpy(), name=id_field)
        geoms = np.asarray(zs.geometry.values, dtype=object)
        del zs
        # zones top to bottom: the output then arrives nearly sorted by row (fast CSR)
        order = np.argsort(-shapely.bounds(geoms)[:, 3], kind="stable").astype(np.int32)  # NaN (empty) last
        rings = ring_arrays(geoms[order])
        del geoms
        key = _cache_key(rings, order, ids, grid, exact64)
        path = Path(cache_dir) / f"zonal-{key}.npz" if cache_dir is not None else None
        if path is not None and path.exists():
            try:
                weights = cls.load(path, ids=ids)
                log.info("zonal weights from cache %s (%.2f s)", path, time.perf_counter() - t0)
                return weights
            except Exception as exc:  # a broken cache file is rebuilt, not fatal
                log.warning("ignoring unreadable zonal cache %s: %s", path, exc)
        arrays = _build_arrays(rings, order, grid, exact64, chunk)
        weights = cls(grid, ids, *arrays, key=key)
        log.info("zonal weights: %d zones, %d partial px, %d runs, %.1f MB, %.2f s",
                 len(ids), len(weights.p_zone), len(weights.r_zone), weights.nbytes / 1e6,
                 time.perf_counter() - t0)
        if path is not None:
            weights.save(path)
        _release_free_memory()
        return weights

    # -- persistence --------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the weights to an uncompressed ``.npz`` (written atomically)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"version": FORMAT_VERSION, "grid": self.grid.to_dict(), "key": self.key,
                "n_zones": len(self.ids)}
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
        np.savez(tmp, meta=np.array(json.dumps(meta)), **{k: getattr(self, k) for k in _ARRAYS})
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, ids: pd.Index | Sequence | None = None) -> ZoneWeights:
        """Read weights written by :meth:`save`; ``ids`` names the zones (default 0..n-1)."""
        path = Path(path)
        if not path.exists():
            raise MissingFileError(str(path), field="zonal weights")
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            if meta.get("version") != FORMAT_VERSION:
                raise TableError(f"{path}: zonal weights format {meta.get('version')}, expected {FORMAT_VERSION}")
            arrays = [npz[k] for k in _ARRAYS]
        n = int(meta["n_zones"])
        ids = pd.RangeIndex(n) if ids is None else pd.Index(ids)
        if len(ids) != n:
            raise TableError(f"{path}: weights for {n} zones, but {len(ids)} ids given")
        return cls(Grid.from_dict(meta["grid"]), ids, *arrays, key=meta.get("key", ""))

    # -- facts --------------------------------------------------------------------------
    @property
    def n_zones(self) -> int:
        return len(self.ids)

    @property
    def nbytes(self) -> int:
        """Memory held by the weight arrays (bytes)."""
        return int(sum(getattr(self, k).nbytes for k in _ARRAYS))

    def coverage(self) -> pd.Series:
        """Covered pixels per zone (Σ fractions, no raster involved), float64."""
        cov = np.zeros(self.n_zones, dtype=np.float64)
        np.add.at(cov, self.p_zone, self.p_frac.astype(np.float64))
        np.add.at(cov, self.r_zone, (self.r_c1 - self.r_c0).astype(np.float64))
        return pd.Series(cov, index=self.ids, name="coverage_px")

    # -- use ----------------------------------------------------------------------------
    def apply(
        self,
        rasters: Mapping[str, Any] | str | os.PathLike,
        stats: Sequence[str] = STATS,
        *,
        mass_balance: bool = True,
        balance_tolerance: float = 1e-9,
    ) -> pd.DataFrame:
        """Coverage-weighted statistics of each raster over every zone.

        Parameters
        ----------
        rasters : mapping name → raster, or one path
            A raster is a path (band 1), a ``(path, band)`` pair, an xarray
            DataArray (its ``attrs['nodata']`` is used), a dask or numpy 2-D array
            (NaN = nodata). All must be on the weights' grid.
        stats : sequence of ``sum`` | ``mean`` | ``count``
            ``sum`` = Σ value × covered fraction (raster units × pixels); ``count`` = Σ
            covered fraction of valid pixels (pixels); ``mean`` = sum / count (NaN if
            count is 0). Nodata pixels are left out of all three.
        mass_balance : bool
            Also compute a :class:`MassBalance` per raster (logged and stored in
            ``result.attrs['mass_balance'][name]``).
        balance_tolerance : float
            Relative (or absolute) difference accepted by the mass balance.

        Returns
        -------
        pandas.DataFrame
            One row per zone (all zones, in input order), columns ``<name>_<stat>``,
            float64.
        """
        unknown = [s for s in stats if s not in STATS]
        if unknown:
            raise TableError(f"unknown zonal stat(s) {unknown}; use {', '.join(STATS)}")
        if not isinstance(rasters, Mapping):
            rasters = {Path(str(rasters)).stem: rasters}
        columns: dict[str, np.ndarray] = {}
        balances: dict[str, MassBalance] = {}
        for name, raster in rasters.items():
            sums, covs, balance = self._apply_one(str(name), raster, mass_balance, balance_tolerance)
            for stat in STATS:
                if stat not in stats:
                    continue
                if stat == "sum":
                    columns[f"{name}_sum"] = sums
                elif stat == "count":
                    columns[f"{name}_count"] = covs
                else:
                    with np.errstate(invalid="ignore", divide="ignore"):
                        columns[f"{name}_mean"] = np.where(covs > 0, sums / np.where(covs > 0, covs, 1.0), np.nan)
            if balance is not None:
                balances[str(name)] = balance
                (log.info if balance.ok else log.warning)("%s", balance)
        out = pd.DataFrame(columns, index=self.ids.copy())
        if mass_balance:
            out.attrs["mass_balance"] = balances
        return out

    def mass_balance(self, raster: Any, name: str = "raster", tolerance: float = 1e-9) -> MassBalance:
        """:class:`MassBalance` of one raster (see :meth:`apply` for raster forms)."""
        _, _, balance = self._apply_one(name, raster, True, tolerance)
        assert balance is not None
        return balance

    # -- internals ----------------------------------------------------------------------
    def _apply_one(self, name: str, raster: Any, balance: bool, tol: float):
        sums = np.zeros(self.n_zones, dtype=np.float64)
        covs = np.zeros(self.n_zones, dtype=np.float64)
        acc = np.zeros(4, dtype=np.float64)  # inside, overlap, covered, total
        t0 = time.perf_counter()
        label = _label(raster, name)
        rows = None
        if not balance:  # only the rows that hold weights are needed
            used = np.flatnonzero(np.diff(self.p_ptr) + np.diff(self.r_ptr))
            rows = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 0)
        for row0, data, nodata in _slabs(raster, self.grid, name, rows):
            use_nd = nodata is not None and not np.isnan(nodata)
            nd = float(nodata) if use_nd else 0.0
            pixcov = np.zeros(data.shape, dtype=np.float64) if balance else np.zeros((0, 0))
            K.apply_rows(data, row0, nd, use_nd, self.p_ptr, self.p_zone, self.p_col, self.p_frac,
                         self.r_ptr, self.r_zone, self.r_c0, self.r_c1, sums, covs, pixcov)
            if balance:
                acc += np.array(K.balance_rows(data, nd, use_nd, pixcov, 1e-6))
        log.debug("zonal apply %s: %.2f s", label, time.perf_counter() - t0)
        mb = None
        if balance:
            zt = float(sums.sum())
            inside, overlap, covered, total = map(float, acc)
            diff = zt - inside
            rel = diff / abs(inside) if inside != 0 else (0.0 if diff == 0 else np.inf)
            mb = MassBalance(label, zt, inside, diff, rel, overlap, covered, total, tol)
        return sums, covs, mb


def _release_free_memory() -> None:
    """Give freed heap memory back to the OS (glibc ``malloc_trim``; no-op elsewhere).

    The kernels' many mid-sized temporary arrays leave ~0.3 GB of free but unreturned
    heap after building weights for 100 k zones; trimming keeps the apply phase lean.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _cache_key(rings: RingArrays, order: np.ndarray, ids: pd.Index, grid: Grid, exact64: bool) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(order.tobytes())
    h.update(json.dumps({"v": FORMAT_VERSION, "grid": grid.to_dict(), "exact64": exact64,
                         "n": len(ids)}, sort_keys=True).encode())
    h.update(rings.digest().encode())
    h.update(pd.util.hash_pandas_object(pd.Series(ids), index=False).to_numpy().tobytes())
    return h.hexdigest()


def _build_arrays(rings: RingArrays, order: np.ndarray, grid: Grid, exact64: bool,
                  chunk: int) -> tuple[np.ndarray, ...]:
    """Weights arrays; ``rings`` holds the zones in ``order`` (zone order[i] is ring-zone i)."""
    t = grid.transform
    tc, ta, tf, te = float(t.c), float(t.a), float(t.f), float(t.e)
    height, width = grid.shape
    parts: list[tuple[np.ndarray, ...]] = []
    runs: list[tuple[np.ndarray, ...]] = []
    for g0 in range(0, rings.n_zones, chunk):
        g1 = min(g0 + chunk, rings.n_zones)
        sub = rings.subset(g0, g1)
        p_cap, r_cap = K.capacity(sub.xs, sub.ys, sub.ring_off, sub.geom_ring_off, tc, ta, tf, te, height, width)
        p_off = np.zeros(len(p_cap) + 1, dtype=np.int64)
        r_off = np.zeros(len(r_cap) + 1, dtype=np.int64)
        np.cumsum(p_cap, out=p_off[1:])
        np.cumsum(r_cap, out=r_off[1:])
        prow, pcol, pfrac, p_n, rrow, rc0, rc1, r_n = K.coverage_chunk(
            sub.xs, sub.ys, sub.ring_off, sub.ring_hole, sub.geom_ring_off, tc, ta, tf, te, height, width,
            p_off, r_off, exact64, K.MAX_WINDOW_CELLS)
        if (p_n < 0).any():
            bad = int(order[g0 + np.flatnonzero(p_n < 0)[0]])
            raise GridMismatchError(f"zone #{bad}: coverage buffer overflow (self-overlapping geometry?)")
        zone_of_slot = order[g0:g1]
        zone, row, col, frac = K.gather_slots(p_off, p_n, zone_of_slot, prow, pcol, pfrac)
        parts.append((zone, row, col, frac if exact64 else frac.astype(np.float32)))
        runs.append(K.gather_slots(r_off, r_n, zone_of_slot, rrow, rc0, rc1))
        del prow, pcol, pfrac, rrow, rc0, rc1
    frac_dtype = np.float64 if exact64 else np.float32
    p = _csr(parts, height, (np.int32, frac_dtype))
    r = _csr(runs, height, (np.int32, np.int32))
    return (*p, *r)


def _csr(pieces: list, height: int, dtypes: tuple) -> tuple[np.ndarray, ...]:
    """CSR-by-row arrays from COO pieces (zone, row, a, b), freeing pieces as it goes."""
    ptr = np.zeros(height + 1, dtype=np.int64)
    for _, row, _, _ in pieces:
        ptr[1:] += np.bincount(row, minlength=height)
    np.cumsum(ptr, out=ptr)
    n = int(ptr[-1])
    zone = np.empty(n, dtype=np.int32)
    a = np.empty(n, dtype=dtypes[0])
    b = np.empty(n, dtype=dtypes[1])
    pos = ptr[:-1].copy()
    while pieces:
        pz, pr, pa, pb = pieces.pop(0)
        K.csr_scatter(pos, pz, pr, pa.astype(dtypes[0], copy=False), pb.astype(dtypes[1], copy=False), zone, a, b)
        del pz, pr, pa, pb
    return ptr, zone, a, b


def _label(raster: Any, name: str) -> str:
    if isinstance(raster, (str, os.PathLike)):
        return str(raster)
    if isinstance(raster, tuple):
        return f"{raster[0]} band {raster[1]}"
    return name


def _slabs(raster: Any, grid: Grid, name: str, rows: tuple[int, int] | None = None):
    """Yield (row0, 2-D array of full-width rows, nodata or None) covering ``grid`` (a file:
    only ``rows`` = (first, end) when given)."""
    if isinstance(raster, (str, os.PathLike)) or (isinstance(raster, tuple) and len(raster) == 2):
        path, band = (raster if isinstance(raster, tuple) else (raster, 1))
        yield from _file_slabs(str(path), int(band), grid, name, rows)
        return
    nodata = None
    if hasattr(raster, "dims") and hasattr(raster, "attrs"):  # xarray.DataArray
        nodata = raster.attrs.get("nodata", raster.attrs.get("_FillValue"))
        raster = raster.data
    if tuple(raster.shape) != tuple(grid.shape):
        raise GridMismatchError(f"raster {name!r}: shape {tuple(raster.shape)} differs from the weights' grid {grid.shape}")
    nodata = None if nodata is None else float(nodata)
    if isinstance(raster, np.ndarray):
        step = max(1, SLAB_PIXELS // grid.width)
        for r0 in range(0, grid.height, step):
            yield r0, np.ascontiguousarray(raster[r0:r0 + step]), nodata
        return
    chunks = getattr(raster, "chunks", None)  # dask: whole row chunks, one at a time
    if chunks is None:
        raise TableError(f"raster {name!r}: unsupported type {type(raster).__name__}")
    r0 = 0
    for h in chunks[0]:
        yield r0, np.ascontiguousarray(raster[r0:r0 + h].compute()), nodata
        r0 += h


def _file_slabs(path: str, band: int, grid: Grid, name: str, rows: tuple[int, int] | None = None):
    if "://" not in path and not Path(path).exists():
        raise MissingFileError(path, field=f"rasters.{name}")
    src_grid = Grid.from_raster(path)
    if not src_grid.same_as(grid):
        raise GridMismatchError(f"{path}: grid {src_grid} differs from the zonal weights' grid {grid}; "
                                "align it first (ecoraster.grid.align_to)")
    # each block is read once: GDAL's block cache (5 % of RAM by default) only costs memory
    with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS", GDAL_CACHEMAX=READ_CACHE_MB), rasterio.open(path) as src:
        if not 1 <= band <= src.count:
            raise TableError(f"{path}: no band {band} (it has {src.count})")
        nodata = src.nodatavals[band - 1]
        block_h = src.block_shapes[band - 1][0]
        step = max(block_h, (SLAB_PIXELS // grid.width) // block_h * block_h)

        first, end = rows if rows is not None else (0, grid.height)

        def read(r0: int) -> np.ndarray:
            return src.read(band, window=Window(0, r0, grid.width, min(step, end - r0)))

        starts = list(range(first, end, step))
        if not starts:
            return
        with ThreadPoolExecutor(max_workers=1) as pool:  # read the next slab while this one is used
            pending = pool.submit(read, starts[0])
            for i, r0 in enumerate(starts):
                data = pending.result()
                if i + 1 < len(starts):
                    pending = pool.submit(read, starts[i + 1])
                yield r0, data, (None if nodata is None else float(nodata))

