"""Parameter tables: read, check columns, turn class → value tables into lookup arrays,
and check that every raster code has a row (all missing codes listed with pixel counts)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd

from .errors import MissingFileError, MissingLookupValuesError, TableError


def read_table(path: str | os.PathLike, *, field: str | None = None) -> pd.DataFrame:
    """Read a CSV (UTF-8, with or without BOM; ``#`` comment lines skipped), Excel or
    Parquet table."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(str(path), field=field)
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".txt"):
            return pd.read_csv(path, encoding="utf-8-sig", comment="#", skipinitialspace=True)
        if suffix in (".xlsx", ".xls"):
            return pd.read_excel(path)
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise TableError(f"{path}: cannot read table: {exc}") from None
    raise TableError(f"{path}: unsupported table format {suffix!r} (use .csv, .xlsx or .parquet)")


def require_columns(df: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    """Raise :class:`TableError` naming every missing column."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise TableError(
            f"{source}: missing column(s) {', '.join(missing)} (has: {', '.join(map(str, df.columns))})"
        )


def numeric_column(df: pd.DataFrame, column: str, source: str) -> np.ndarray:
    """A column as float64; a non-numeric cell is an error naming row and value."""
    values = pd.to_numeric(df[column], errors="coerce")
    bad = values.isna() & df[column].notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise TableError(f"{source}: column {column!r} row {row + 2} = {df[column].iloc[row]!r} is not a number")
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise TableError(f"{source}: column {column!r} row {row + 2} is empty")
    return values.to_numpy(dtype=np.float64)


def class_codes(df: pd.DataFrame, column: str, source: str) -> np.ndarray:
    """A column of class codes as int64: whole numbers, no duplicates (errors name them)."""
    codes = numeric_column(df, column, source)
    if not np.all(codes == np.round(codes)):
        raise TableError(f"{source}: column {column!r} must hold whole-number codes")
    codes = codes.astype(np.int64)
    dup = pd.Series(codes)[pd.Series(codes).duplicated()].unique()
    if len(dup):
        raise TableError(f"{source}: column {column!r} has duplicate codes: {', '.join(map(str, dup))}")
    return codes


def lookup_arrays(
    df: pd.DataFrame, key: str, value_columns: Sequence[str], source: str
) -> tuple[np.ndarray, np.ndarray]:
    """(codes int64 sorted, values float64 of shape (n_codes, n_columns)) for a class table."""
    require_columns(df, [key, *value_columns], source)
    codes = class_codes(df, key, source)
    values = np.column_stack([numeric_column(df, c, source) for c in value_columns])
    order = np.argsort(codes)
    return codes[order], values[order]


def _unique_block(block: np.ndarray, nodata: float) -> np.ndarray:
    if block.dtype.kind in "iu" and block.dtype.itemsize <= 2:
        # small integer codes (LULC): one counting pass, ~10× faster than np.unique's sort
        from .kernels.lookup import count_small_codes

        offset = int(np.iinfo(block.dtype).min)
        counts = np.zeros(1 << (8 * block.dtype.itemsize), dtype=np.int64)
        count_small_codes(np.ascontiguousarray(block), offset, counts)
        vals = np.flatnonzero(counts) + offset
        counts = counts[counts > 0]
    else:
        vals, counts = np.unique(block, return_counts=True)
    keep = vals != nodata
    if vals.dtype.kind == "f":
        keep &= ~np.isnan(vals)
    return np.stack([vals[keep].astype(np.int64), counts[keep].astype(np.int64)], axis=1)


def unique_counts(array: da.Array, nodata: float) -> dict[int, int]:
    """Pixel count of each value of a (categorical) dask array, nodata excluded.

    Reads the array once, block by block (bounded memory).
    """
    parts = [dask.delayed(_unique_block)(blk, nodata) for blk in array.to_delayed().ravel()]
    counts: dict[int, int] = {}
    for part in dask.compute(*parts):
        for v, c in part:
            counts[int(v)] = counts.get(int(v), 0) + int(c)
    return counts


def check_codes(counts: dict[int, int], table_codes: np.ndarray, raster: str, table: str, column: str) -> None:
    """Raise :class:`MissingLookupValuesError` if any raster code has no table row."""
    known = set(int(c) for c in table_codes)
    missing = {code: n for code, n in counts.items() if code not in known}
    if missing:
        raise MissingLookupValuesError(missing, raster, table, column)
