"""Period composites of scene indices: per-pixel max or median, with valid-observation counts.

::

    result = composite_scenes(["ndvi_0801.tif", "ndvi_0817.tif"], rule="max", period="2020-08")
    write_composite(result, "ndvi_2020-08_max.tif")      # + ndvi_2020-08_max_count.tif

Inputs are index GeoTIFFs written by :func:`ecoraster.ingest.scenes.write_scene_index` (their
``acquired`` and ``scene_id`` tags date and name them) or dated multi-band series (one band per
date, band description = ISO date, as the eo-learn Sentinel-2 NDVI patch) with an optional
cloud mask of the same band layout. The same scene given twice counts once. The per-pixel
reduction and the per-scene valid shares are :func:`ecoraster.ingest.optical.composite`.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import rasterio
import xarray as xr

from ..errors import ConfigError, InputDataError, MissingFileError
from ..grid import DEFAULT_CHUNK, Grid, align_to
from . import optical as op
from ._common import georef

#: Value written where no count applies (never: every pixel has a count, 0 included).
COUNT_NODATA = 65535


@dataclass(frozen=True)
class Period:
    """A calendar year or month, both ends inclusive."""

    label: str
    start: dt.date
    end: dt.date

    @property
    def year(self) -> int:
        return self.start.year

    def contains(self, when: dt.date | dt.datetime) -> bool:
        day = when.date() if isinstance(when, dt.datetime) else when
        return self.start <= day <= self.end


def parse_period(text: str | int) -> Period:
    """``"2020"`` → the year 2020, ``"2020-07"`` → July 2020; anything else is a :class:`ConfigError`."""
    value = str(text).strip()
    m = re.fullmatch(r"(\d{4})(?:-(\d{1,2}))?", value)
    if not m or (m.group(2) and not 1 <= int(m.group(2)) <= 12):
        raise ConfigError(f"period = {value!r}: use YYYY or YYYY-MM")
    year = int(m.group(1))
    if m.group(2) is None:
        return Period(f"{year:04d}", dt.date(year, 1, 1), dt.date(year, 12, 31))
    month = int(m.group(2))
    return Period(f"{year:04d}-{month:02d}", dt.date(year, month, 1),
                  dt.date(year, month, calendar.monthrange(year, month)[1]))


def period_of(when: dt.date | dt.datetime, unit: str) -> Period:
    """The ``unit`` (``year`` / ``month``) period that holds ``when``."""
    if unit == "year":
        return parse_period(f"{when.year:04d}")
    if unit == "month":
        return parse_period(f"{when.year:04d}-{when.month:02d}")
    raise ConfigError(f"period unit = {unit!r}; use year or month")


def check_period_in_year(period: Period, year: int, where: str = "period") -> None:
    """A :class:`ConfigError` when ``period`` is not inside calendar ``year`` (the run's year)."""
    if period.start.year != year or period.end.year != year:
        raise ConfigError(f"{where} = {period.label!r} is outside the run's year {year}")


@dataclass(frozen=True)
class Layer:
    """One dated observation: a band of a file (and optionally of a cloud mask)."""

    path: Path
    band: int
    acquired: dt.datetime
    scene_id: str
    mask: Path | None = None


def _as_utc(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def scene_layers(path: str | Path, *, mask: str | Path | None = None) -> tuple[list[Layer], list[int]]:
    """The dated layers of one input and the band numbers left out for want of a date.

    A single-band index needs an ``acquired`` tag (or ``TIFFTAG_DATETIME``); a multi-band series
    needs ISO dates as band descriptions (undated bands are left out and returned)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(str(path), field="composite scene")
    with rasterio.open(path) as src:
        tags, descs, count = src.tags(), src.descriptions, src.count
    if count == 1:
        when = tags.get("acquired")
        if not when and tags.get("TIFFTAG_DATETIME"):
            when = dt.datetime.strptime(tags["TIFFTAG_DATETIME"], "%Y:%m:%d %H:%M:%S").isoformat()
        if not when:
            raise InputDataError(f"{path}: no acquisition date (tag 'acquired' or TIFFTAG_DATETIME); write scene "
                                 "indices with `eco ingest scene`")
        return [Layer(path, 1, _as_utc(dt.datetime.fromisoformat(when)), tags.get("scene_id", path.stem), mask)], []
    if mask is not None:
        with rasterio.open(mask) as m:
            if m.count != count:
                raise InputDataError(f"{mask}: {m.count} bands; the series {path.name} has {count}")
    layers, undated = [], []
    for band, desc in enumerate(descs, start=1):
        try:
            when = dt.datetime.fromisoformat(desc) if desc else None
        except ValueError:
            when = None
        if when is None:
            undated.append(band)
            continue
        layers.append(Layer(path, band, _as_utc(when), f"{path.stem}#{when.isoformat()}", Path(mask) if mask else None))
    if not layers:
        raise InputDataError(f"{path}: none of its {count} bands has an ISO date as its description")
    return layers, undated


def _read_layer(layer: Layer, grid: Grid, chunk: int, mask_values) -> da.Array:
    with rasterio.open(layer.path) as src:
        nodata = src.nodatavals[layer.band - 1]
    arr = align_to(layer.path, grid, "nearest", band=layer.band, src_nodata=np.nan if nodata is None else nodata,
                   dtype="float32", nodata=np.nan, chunk=chunk).data
    if layer.mask is not None:
        m = align_to(layer.mask, grid, "nearest", band=layer.band, src_nodata=255, dtype="uint8", nodata=255,
                     chunk=chunk).data
        arr = da.where(da.isin(m, list(mask_values)), np.float32(np.nan), arr)
    return arr


@dataclass
class CompositeResult:
    """A period composite, its per-pixel valid-observation counts and the report."""

    composite: xr.DataArray
    counts: xr.DataArray
    grid: Grid
    period: Period
    rule: str
    report: dict[str, Any]

    def tags(self) -> dict[str, str]:
        used = [s for s in self.report["scenes"] if s["used"]]
        return {"rule": self.rule, "period": self.period.label, "n_scenes": str(len(used)),
                "scenes": json.dumps([{k: s[k] for k in ("scene_id", "acquired", "valid_share")} for s in used]),
                "index": self.report.get("index") or ""}


def composite_scenes(
    paths,
    rule: str = "max",
    period: str | Period | None = None,
    *,
    grid: Grid | None = None,
    mask: str | Path | None = None,
    mask_values=(1,),
    min_valid_share: float = 0.0,
    chunk: int = DEFAULT_CHUNK,
) -> CompositeResult:
    """Per-pixel ``rule`` (``max`` / ``median``) of the scenes of ``period`` on ``grid``.

    Parameters
    ----------
    paths : index GeoTIFFs and / or dated multi-band series.
    period : ``YYYY`` / ``YYYY-MM`` (or a :class:`Period`); scenes outside it are left out
        and listed. ``None``: every scene (the period is then the scenes' year, which must be one).
    grid : target grid; default the first input's grid (others are aligned nearest).
    mask : a cloud mask for a single series input (``mask_values`` mark clouds).
    min_valid_share : scenes under this share of valid pixels on ``grid`` are dropped
        (:func:`optical.composite`; a scene with no valid pixel is always dropped).

    Returns a :class:`CompositeResult`; the composite is float32 NaN-nodata, the counts uint16.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ConfigError("composite: no scenes given")
    if mask is not None and len(paths) != 1:
        raise ConfigError("composite: --mask goes with exactly one multi-band series")
    layers: list[Layer] = []
    undated: dict[str, list[int]] = {}
    for p in paths:
        found, skipped = scene_layers(p, mask=mask)
        layers += found
        if skipped:
            undated[str(p)] = skipped
    unique: dict[str, Layer] = {}
    for layer in layers:  # the same scene twice counts once
        unique.setdefault(layer.scene_id, layer)
    layers = sorted(unique.values(), key=lambda lay: (lay.acquired, lay.scene_id))
    if period is None:
        years = sorted({lay.acquired.year for lay in layers})
        if len(years) != 1:
            raise ConfigError(f"composite: scenes span the years {years}; give --period")
        period = parse_period(years[0])
    period = period if isinstance(period, Period) else parse_period(period)
    inside = [lay for lay in layers if period.contains(lay.acquired)]
    outside = [{"scene_id": lay.scene_id, "acquired": lay.acquired.isoformat()} for lay in layers if lay not in inside]
    if not inside:
        raise InputDataError(f"composite: none of the {len(layers)} scene(s) falls in period {period.label} "
                             f"(first: {layers[0].acquired.date()})")
    target = grid or Grid.from_raster(inside[0].path)
    arrays = [_read_layer(lay, target, chunk, mask_values) for lay in inside]  # raises NoOverlapError up front
    stack = georef(xr.DataArray(da.stack(arrays, axis=0), dims=("time", "y", "x"), name="index",
                                coords={"time": np.array([lay.acquired.replace(tzinfo=None) for lay in inside],
                                                         dtype="datetime64[ns]")}), target)
    stack.attrs = {"units": "1", "source": ", ".join(str(p) for p in paths)}
    comp, rep = op.composite(stack, rule, min_valid_share=min_valid_share)
    keep = [s["time"] not in rep["dropped"] for s in rep["scenes"]]
    used = stack.data[np.flatnonzero(keep)]
    counts = georef(xr.DataArray(da.isfinite(used).sum(axis=0).astype(np.uint16), dims=("y", "x"), name="count"),
                    target)
    counts.attrs = {"units": "count", "nodata": COUNT_NODATA}
    index_tag, units = None, "1"
    scenes = []
    for lay, s, k in zip(inside, rep["scenes"], keep):
        scenes.append({"scene_id": lay.scene_id, "acquired": lay.acquired.isoformat(), "file": str(lay.path),
                       "band": lay.band, "valid_share": round(s["valid_share"], 6), "used": bool(k)})
        if lay.band == 1 and index_tag is None:
            with rasterio.open(lay.path) as src:
                index_tag, units = src.tags().get("index"), src.units[0] or units
    comp.attrs["units"] = units
    report = {"rule": rule, "period": period.label, "scenes": scenes, "used": rep["used"],
              "outside_period": outside, "undated_bands": undated, "index": index_tag,
              "min_valid_share": min_valid_share}
    return CompositeResult(comp, counts, target, period, rule, report)


def counts_path(out: str | Path) -> Path:
    """Where the counts of a composite at ``out`` go: ``<stem>_count.tif`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}_count{out.suffix or '.tif'}")


def write_composite(result: CompositeResult, out: str | Path) -> tuple[Path, Path]:
    """Write the composite (float32, NaN nodata) and its counts (uint16) as COGs, and the
    report as ``<stem>.report.json``; returns (composite, counts)."""
    from ..io.raster import RasterOutput, write_rasters

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cpath = counts_path(out)
    tags = result.tags()
    units = result.composite.attrs.get("units", "1")
    write_rasters([
        RasterOutput(out, result.composite.data, float("nan"), units,
                     f"{result.rule} composite {result.period.label} ({tags['n_scenes']} scenes)", tags=tags),
        RasterOutput(cpath, result.counts.data, COUNT_NODATA, "count",
                     f"valid observations per pixel, {result.period.label}", dtype="uint16", tags=tags),
    ], result.grid)
    out.with_suffix(".report.json").write_text(json.dumps(result.report, ensure_ascii=False, indent=1),
                                               encoding="utf-8")
    return out, cpath
