"""Water bodies (水体): the units flood regulation (and the type lookup of water purification)
is accounted on.

A body is a connected patch (8-neighbour) of ONE water or wetland class of the land cover whose
area is at least ``min_area_km2``; its type (lake / reservoir / marsh / river / pond) comes from
``class_types`` (class code → type). An analyst may supply named bodies that override or merge
the derived ones:

- a **vector** (polygons; fields ``name``, ``type`` and optional ``capacity_m3`` — total storage
  capacity, for reservoirs — and ``area_km2`` — normal water-level area): every water / wetland
  pixel whose centre lies in a polygon belongs to that named body, whatever patch it was part of
  (patches are merged, and cut at the polygon's edge);
- a **table** (``name, type, x, y`` in the grid's CRS, or with a ``crs`` column, plus the optional
  columns): the derived body holding the point is renamed, retyped and given the capacity / area.

For 七里海: the reed marsh (class 41) is a ``marsh``; the open water (class 42 or 43) is a ``lake``
or a ``reservoir`` (embanked and managed) — set by ``class_types`` or by an analyst row, and written
in each body's ``type`` and ``method`` fields.

Labelling is done on the whole class array in memory by a two-pass union-find kernel
(``kernels.wetland.label_patches``) writing int32 labels in place: 5 bytes per pixel with a uint8 class
array (100 Mpx ≈ 0.5 GB), no other full-size array; the area sums run block by block in float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import TableError
from .kernels.wetland import index_area_sums, label_patches

BODY_TYPES = ("lake", "reservoir", "marsh", "river", "pond")


@dataclass
class WaterBodies:
    """Per-pixel body index and one row per body.

    ``index``: int32, body row 0..n−1 per pixel, −1 for none. ``table`` columns: ``body_id``
    (1..n), ``name``, ``type``, ``origin`` (derived | analyst polygon | analyst point),
    ``class_code`` (the land-cover class of a derived patch; −1 for a merged analyst body),
    ``area_m2`` (pixel area, float64), ``n_pixels``, ``capacity_m3`` and ``area_km2_given``
    (NaN unless an analyst gave them).
    """

    index: np.ndarray
    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def _area_sums(index: np.ndarray, row_area_m2: np.ndarray, n: int, block_rows: int = 1024) -> np.ndarray:
    sums = np.zeros(n, dtype=np.float64)
    for r0 in range(0, index.shape[0], block_rows):
        sums += index_area_sums(index[r0:r0 + block_rows], row_area_m2[r0:r0 + block_rows], n)
    return sums


def _pixel_counts(index: np.ndarray, n: int, block_rows: int = 1024) -> np.ndarray:
    counts = np.zeros(n, dtype=np.int64)
    for r0 in range(0, index.shape[0], block_rows):
        blk = index[r0:r0 + block_rows]
        counts += np.bincount(blk[blk >= 0], minlength=n)[:n]
    return counts


def derive_bodies(classes: np.ndarray, class_nodata: int, class_types: dict[int, str], row_area_m2: np.ndarray,
                  *, min_area_km2: float = 0.01, analyst_index: np.ndarray | None = None,
                  analyst: pd.DataFrame | None = None) -> WaterBodies:
    """Label the water bodies of a class array.

    Parameters
    ----------
    classes : 2-D int array
        Land-cover (GEP ecosystem) class per pixel.
    class_types : dict class code → body type
        Which classes form bodies and the type a patch of that class gets.
    row_area_m2 : 1-D float64
        Pixel area of each row.
    min_area_km2 : float
        Smaller derived patches are not bodies (their pixels get index −1).
    analyst_index : 2-D int32, optional
        Row of ``analyst`` (polygons) holding each pixel centre, −1 outside every polygon.
    analyst : DataFrame, optional
        The analyst polygons' attributes (``name``, ``type``, ``capacity_m3``, ``area_km2``).
    """
    for code, kind in class_types.items():
        if kind not in BODY_TYPES:
            raise TableError(f"class_types: class {code} → {kind!r}; use one of {', '.join(BODY_TYPES)}")
    classes = np.asarray(classes)
    is_body = np.zeros(max(max(class_types), 0) + 1, dtype=np.bool_)
    is_body[[int(k) for k in class_types if int(k) >= 0]] = True
    index = np.empty(classes.shape, dtype=np.int32)
    rows: list[dict] = []
    use_poly = analyst_index is not None and analyst is not None and len(analyst) > 0
    exclude = np.zeros((1, 1), dtype=np.bool_)
    if use_poly and analyst_index is not None:
        exclude = analyst_index >= 0
    _n, code_of = label_patches(classes, int(class_nodata), is_body, exclude, use_poly, index)
    del exclude
    if use_poly:
        n_poly = len(analyst)
        for rec in analyst.itertuples(index=False):
            rows.append({"name": str(rec.name), "type": str(rec.type), "origin": "analyst polygon",
                         "class_code": -1, "capacity_m3": _num(getattr(rec, "capacity_m3", np.nan)),
                         "area_km2_given": _num(getattr(rec, "area_km2", np.nan))})
        codes = np.array(sorted(class_types), dtype=np.int64)
        for r0 in range(0, index.shape[0], 1024):  # analyst polygons first, derived patches after them
            ib, ab, cb = index[r0:r0 + 1024], analyst_index[r0:r0 + 1024], classes[r0:r0 + 1024]
            ib[ib >= 0] += n_poly
            poly = (ab >= 0) & np.isin(cb, codes) & (cb != class_nodata)
            ib[poly] = ab[poly]
    rows.extend({"name": "", "type": class_types[int(code)], "origin": "derived", "class_code": int(code),
                 "capacity_m3": np.nan, "area_km2_given": np.nan} for code in code_of)
    table = pd.DataFrame(rows, columns=["name", "type", "origin", "class_code", "capacity_m3", "area_km2_given"])
    n = len(table)
    table["area_m2"] = _area_sums(index, row_area_m2, n) if n else np.zeros(0)
    # drop derived patches below the minimum area; analyst bodies always stay
    keep = (table["origin"] != "derived").to_numpy() | (table["area_m2"].to_numpy() >= min_area_km2 * 1e6)
    dropped = int((~keep).sum())
    remap = np.full(n + 1, -1, dtype=np.int32)  # slot n maps −1 → −1
    remap[np.flatnonzero(keep)] = np.arange(int(keep.sum()), dtype=np.int32)
    for r0 in range(0, index.shape[0], 1024):
        blk = index[r0:r0 + 1024]
        blk[...] = remap[np.where(blk < 0, n, blk)]
    table = table[keep].reset_index(drop=True)
    table["n_pixels"] = _pixel_counts(index, len(table))
    table.insert(0, "body_id", np.arange(1, len(table) + 1, dtype=np.int64))
    unnamed = table["name"] == ""
    table.loc[unnamed, "name"] = [f"{t}_{i}" for t, i in zip(table.loc[unnamed, "type"], table.loc[unnamed, "body_id"])]
    notes = [f"{dropped} derived patch(es) below {min_area_km2} km² are not water bodies"] if dropped else []
    return WaterBodies(index, table, notes)


def _num(value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return v


def apply_points(bodies: WaterBodies, points: pd.DataFrame, rows: np.ndarray, cols: np.ndarray,
                 source: str) -> WaterBodies:
    """Rename / retype the bodies holding each analyst point (``rows``, ``cols`` on the grid).

    A point outside the run grid names a body this run does not cover and is passed over. A point
    on no body is snapped to a body pixel of its 3 × 3 neighbourhood (a shore point, or a coarse
    grid); with none there it is an error naming the row (a named body the land cover does not show
    must not vanish silently); two points on one body merge nothing and are an error too.
    """
    t = bodies.table
    seen: dict[int, str] = {}
    for i, (rec, r, c) in enumerate(zip(points.itertuples(index=False), rows, cols)):
        nrow, ncol = bodies.index.shape
        if not (0 <= r < nrow and 0 <= c < ncol):
            continue
        k = int(bodies.index[r, c])
        if k < 0:  # snap to a body pixel next to the point
            near = bodies.index[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2]
            k = int(near[near >= 0].min()) if (near >= 0).any() else -1
        if k < 0:
            raise TableError(f"{source}: row {i + 2} ({rec.name}): point ({rec.x}, {rec.y}) is on no water body "
                             "of the land cover (check the coordinates and crs)")
        if k in seen:
            raise TableError(f"{source}: row {i + 2} ({rec.name}) names the same water body as {seen[k]!r}")
        seen[k] = str(rec.name)
        t.loc[k, "name"] = str(rec.name)
        t.loc[k, "type"] = str(rec.type)
        t.loc[k, "origin"] = "analyst point"
        t.loc[k, "capacity_m3"] = _num(getattr(rec, "capacity_m3", np.nan))
        t.loc[k, "area_km2_given"] = _num(getattr(rec, "area_km2", np.nan))
    return bodies


def check_analyst(df: pd.DataFrame, source: str, *, points: bool) -> pd.DataFrame:
    """Check an analyst's bodies: ``name``, ``type`` (one of BODY_TYPES), optional
    ``capacity_m3`` and ``area_km2`` ≥ 0; ``x``, ``y`` for a table. Errors name row and value."""
    from .tables import require_columns

    require_columns(df, ["name", "type", *(["x", "y"] if points else [])], source)
    out = df.copy()
    out["type"] = out["type"].astype(str).str.strip().str.lower()
    for i, kind in enumerate(out["type"]):
        if kind not in BODY_TYPES:
            raise TableError(f"{source}: row {i + 2}: type = {kind!r}; use one of {', '.join(BODY_TYPES)}")
    for col in ("capacity_m3", "area_km2", *(["x", "y"] if points else [])):
        if col not in out.columns:
            out[col] = np.nan
            continue
        values = pd.to_numeric(out[col], errors="coerce")
        bad = (values.isna() & out[col].notna()) | (values < 0 if col not in ("x", "y") else False)
        if np.any(bad):
            row = int(np.flatnonzero(np.asarray(bad))[0])
            raise TableError(f"{source}: row {row + 2}: {col} = {out[col].iloc[row]!r} is not a number ≥ 0")
        out[col] = values.astype("float64")
    if points and out[["x", "y"]].isna().any().any():
        row = int(np.flatnonzero(out[["x", "y"]].isna().any(axis=1).to_numpy())[0])
        raise TableError(f"{source}: row {row + 2}: x and y are needed")
    return out


def polygons(bodies: WaterBodies, transform, crs, min_hole_m2: float = 0.0):
    """Body outlines as a GeoDataFrame (one (Multi)Polygon per body, dissolved from the pixels).

    Holes smaller than ``min_hole_m2`` (single unclassified pixels, islets) are left out of the
    outline — the storage raster is per pixel and keeps them; the outline is for maps and joins.
    """
    import geopandas as gpd
    import shapely
    from rasterio import features

    def _polygon(geom):
        shell, *holes = geom["coordinates"]
        keep = [h for h in holes if min_hole_m2 <= 0 or abs(shapely.Polygon(h).area) >= min_hole_m2]
        return shapely.Polygon(shell, keep)

    geoms: dict[int, list] = {}
    step = 2048
    for r0 in range(0, bodies.index.shape[0], step):
        blk = bodies.index[r0:r0 + step]
        if not (blk >= 0).any():
            continue
        t = transform @ transform.translation(0, r0)
        for geom, value in features.shapes(blk, mask=blk >= 0, transform=t, connectivity=4):
            geoms.setdefault(int(value), []).append(_polygon(geom))
    shapes = [(shapely.union_all(geoms[k]) if len(geoms[k]) > 1 else geoms[k][0]) if k in geoms else shapely.Polygon()
              for k in range(len(bodies.table))]
    return gpd.GeoDataFrame(bodies.table.copy(), geometry=shapes, crs=crs)


def write_bodies(gdf, folder: Path, stem: str = "water_bodies") -> dict[str, str]:
    """GeoParquet and GeoPackage of the bodies (layer ``water_bodies``)."""
    folder.mkdir(parents=True, exist_ok=True)
    pq, gpkg = folder / f"{stem}.parquet", folder / f"{stem}.gpkg"
    gdf.to_parquet(pq)
    if gpkg.exists():
        gpkg.unlink()
    gdf.to_file(gpkg, layer=stem, driver="GPKG")
    return {"parquet": str(pq), "gpkg": str(gpkg)}
