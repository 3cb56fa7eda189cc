"""Datasets derived from raw observations: scene composites and station grids on a run's grid.

A catalogue raster can declare where newer values come from::

    wuhan_ndvi_monthly:
      kind: raster
      uri: data/sample/wuhan/climate/ndvi_monthly.tif      # 12 bands, the values until scenes arrive
      derive: {index: ndvi, composite: max, period: month}

    wuhan_pm25:
      kind: raster
      uri: data/sample/wuhan/climate/pm25_ugm3.tif
      derive: {stations: PM2_5, method: kriging}          # optional: the flow also finds conc_* inputs

:func:`add_scene` turns a raw scene into the index on the run grid (kept per scene under
``folder/scenes``), re-composites the scene's period from every scene taken so far (so the same
scene twice changes nothing) and assembles the dataset: one band (``period: year``) or twelve
(``period: month``; months without a scene keep the catalogue file's values, as do pixels
no scene observed). :func:`station_grids` turns a station table into period-mean concentration
grids. Both write content-named files that are never overwritten, and return the facts an
overlay catalogue records (uri, checksum, provenance). Nothing here knows about workspaces or
flows: :mod:`ecoraster.pipeline` calls it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
import rasterio.windows
from pydantic import ValidationError

from ..datasets import DatasetEntry, SceneDerive, StationDerive, file_sha256
from ..errors import CatalogError, ConfigError, InputDataError
from ..grid import Grid, align_to
from . import composites as cp
from . import scenes as sc

#: ``conc_*`` inputs of air purification → station table pollutant columns (monitoring.POLLUTANTS).
CONC_INPUT_POLLUTANT = {"conc_pm25": "PM2_5", "conc_pm10": "PM10", "conc_so2": "SO2", "conc_no2": "NO2",
                        "conc_o3": "O3", "conc_co": "CO"}


def derive_spec(entry: DatasetEntry, kind: str) -> SceneDerive | StationDerive | None:
    """The entry's ``derive:`` as a :class:`SceneDerive` (``kind="scenes"``) or
    :class:`StationDerive` (``kind="stations"``); None when it declares none (or the other kind)."""
    raw = getattr(entry, "derive", None)
    if not raw:
        return None
    is_stations = "stations" in raw
    if (kind == "stations") != is_stations:
        return None
    model = StationDerive if is_stations else SceneDerive
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise CatalogError(f"datasets.{entry.id}.derive.{where} = {err.get('input')!r}: {err['msg']}") from None


def _band_count(entry: DatasetEntry) -> int:
    with rasterio.open(entry.uri) as src:
        return src.count


def check_scene_target(entry: DatasetEntry, spec: SceneDerive) -> None:
    """The catalogue file must have one band per period of the year (1 for year, 12 for month)."""
    need = 12 if spec.period == "month" else 1
    entry.check_exists()
    have = _band_count(entry)
    if spec.period == "month" and have != need:
        raise CatalogError(f"datasets.{entry.id}: derive.period = month needs a 12-band raster; {entry.uri} has {have}")


# ---------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------

def _content_name(stem: str, parts: Any) -> str:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{stem}-{digest}.tif"


def write_bands_cog(path: Path, bands: list, grid: Grid, *, nodata: float, units: str,
                    descriptions: list[str], tags: dict[str, str], chunk: int = 1024) -> Path:
    """Write lazy 2-D arrays as the bands of one float32 COG, row block by row block; the file
    appears only when complete (temporary name, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, cog = path.with_name(f".{path.name}.partial.tif"), path.with_name(f".{path.name}.cog.tif")
    profile = dict(driver="GTiff", width=grid.width, height=grid.height, count=len(bands), dtype="float32",
                   crs=grid.crs, transform=grid.transform, nodata=nodata, tiled=True, blockxsize=256,
                   blockysize=256)
    try:
        with rasterio.open(tmp, "w", **profile) as dst:
            for b, arr in enumerate(bands, start=1):
                for r0 in range(0, grid.height, chunk):
                    r1 = min(grid.height, r0 + chunk)
                    block = np.asarray(arr[r0:r1].compute() if hasattr(arr, "compute") else arr[r0:r1],
                                       dtype="float32")
                    if not np.isnan(nodata):
                        block = np.where(np.isnan(block), np.float32(nodata), block)
                    dst.write(block, b, window=rasterio.windows.Window(0, r0, grid.width, r1 - r0))
                dst.set_band_description(b, descriptions[b - 1])
                dst.set_band_unit(b, units)
            dst.update_tags(units=units, **tags)
        rasterio.shutil.copy(str(tmp), str(cog), driver="COG", COMPRESS="ZSTD", PREDICTOR="FLOATING_POINT",
                             BLOCKSIZE=512, OVERVIEWS="AUTO")
        cog.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
        cog.unlink(missing_ok=True)
    return path


@dataclass
class DerivedFile:
    """A derived dataset file and what the overlay catalogue records about it."""

    dataset: str
    uri: str
    checksum: str
    nodata: float
    provenance: dict[str, Any]
    changed: bool = True
    reports: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# scenes
# ---------------------------------------------------------------------------------------

def check_scene(entry: DatasetEntry, spec: SceneDerive, scene_path: str | Path, grid: Grid,
                year: int) -> tuple[sc.Scene, cp.Period]:
    """Recognise the scene and check it fits the dataset (period inside the run's ``year``,
    overlap with ``grid``) — every check that needs no pixel."""
    check_scene_target(entry, spec)
    scene = sc.recognise(scene_path)
    period = cp.period_of(scene.acquired, spec.period)
    cp.check_period_in_year(period, year, f"scene {scene.scene_id} acquired {scene.acquired.date()}: period")
    sc.read_scene(scene, grid)  # raises NoOverlapError, reads nothing
    return scene, period


def add_scene(entry: DatasetEntry, spec: SceneDerive, scene_path: str | Path, grid: Grid, year: int,
              folder: str | Path, previous: dict[str, Any] | None = None, *, chunk: int = 1024) -> DerivedFile:
    """Add one raw scene to the dataset ``entry`` (the catalogue's own entry, not an overlay's).

    ``previous`` is the provenance this function returned last time (``None`` the first time):
    its scenes are composited again with the new one. A scene already in it changes nothing
    (``changed`` False, same uri). Raises before writing when the scene is unusable.
    """
    folder = Path(folder)
    scene, period = check_scene(entry, spec, scene_path, grid, year)
    taken = {s["scene_id"]: s for s in (previous or {}).get("scenes", [])}
    if scene.scene_id in taken and previous and previous.get("uri") and Path(previous["uri"]).is_file():
        return DerivedFile(entry.id, previous["uri"], previous["checksum"], previous["nodata"], previous, changed=False)
    result = sc.scene_index(scene, spec.index, grid=grid, min_valid_share=spec.min_valid_share, chunk=chunk)
    index_file = folder / "scenes" / f"{scene.scene_id}_{spec.index}.tif"
    if not index_file.is_file():
        sc.write_scene_index(result, index_file)
    taken[scene.scene_id] = {**result.describe(), "period": period.label, "file": str(index_file)}
    by_period: dict[str, list[dict]] = {}
    for s in taken.values():
        by_period.setdefault(s["period"], []).append(s)
    return _assemble(entry, spec, grid, year, folder, by_period, chunk=chunk)


def _assemble(entry: DatasetEntry, spec: SceneDerive, grid: Grid, year: int, folder: Path,
              by_period: dict[str, list[dict]], *, chunk: int) -> DerivedFile:
    base_fp = f"{Path(entry.uri).stat().st_size}:{Path(entry.uri).stat().st_mtime_ns}"
    labels = [f"{year:04d}-{m:02d}" for m in range(1, 13)] if spec.period == "month" else [f"{year:04d}"]
    nodata = float(entry.nodata) if entry.nodata is not None else float("nan")
    bands, descriptions, reports = [], [], []
    for b, label in enumerate(labels, start=1):
        base_band = b if spec.period == "month" else entry.band
        base = align_to(entry.uri, grid, entry.effective_resampling, band=base_band, src_nodata=entry.nodata,
                        src_crs=entry.crs, dtype="float32", nodata=np.nan, chunk=chunk).data
        scenes = by_period.get(label)
        if not scenes:
            bands.append(base)
            descriptions.append(f"{entry.id} {label}: catalogue values ({Path(entry.uri).name})")
            continue
        result = cp.composite_scenes([s["file"] for s in scenes], spec.composite, label, grid=grid, chunk=chunk)
        comp = result.composite.data
        bands.append(_fill(comp, result.counts.data, base))
        descriptions.append(f"{entry.id} {label}: {spec.composite} composite of {result.report['used']} scene(s), "
                            "gaps from the catalogue values")
        reports.append(result.report)
    scenes_sorted = sorted((s for group in by_period.values() for s in group), key=lambda s: s["acquired"])
    name = _content_name(entry.id, {"scenes": [s["scene_id"] for s in scenes_sorted], "spec": spec.model_dump(),
                                    "base": base_fp, "grid": grid.to_dict(), "year": year})
    path = folder / name
    units = entry.units or sc.INDICES[spec.index]
    provenance = {"kind": "scenes", "derive": spec.model_dump(exclude_none=True), "base_uri": entry.uri,
                  "scenes": [{k: s[k] for k in ("scene_id", "sensor", "acquired", "valid_share", "period", "source",
                                                "file")} for s in scenes_sorted]}
    if not path.is_file():
        tags = {"dataset": entry.id, "derive": json.dumps(provenance["derive"]),
                "scenes": json.dumps([[s["scene_id"], s["acquired"], round(s["valid_share"], 4)] for s in scenes_sorted])}
        write_bands_cog(path, bands, grid, nodata=nodata, units=units, descriptions=descriptions, tags=tags)
    checksum = "sha256:" + file_sha256(path)
    provenance.update(uri=str(path), checksum=checksum, nodata=nodata)
    return DerivedFile(entry.id, str(path), checksum, nodata, provenance, reports=reports)


def _fill(comp, counts, base):
    import dask.array as da

    return da.where(counts > 0, comp, base)


# ---------------------------------------------------------------------------------------
# stations
# ---------------------------------------------------------------------------------------

def station_targets(plan) -> dict[str, StationDerive]:
    """Datasets a station table can replace: those declaring ``derive: {stations: …}``, and the
    ``conc_*`` inputs of the run's air purification (pollutant from the input id)."""
    catalog = plan.catalog
    out: dict[str, StationDerive] = {}
    for ds_id, entry in catalog.datasets.items():
        spec = derive_spec(entry, "stations")
        if isinstance(spec, StationDerive):
            out[ds_id] = spec
    air = plan.config.enabled_services().get("air_purification")
    for input_id, value in (air.inputs.items() if air else []):
        if input_id in CONC_INPUT_POLLUTANT and isinstance(value, str) and value not in out:
            out[value] = StationDerive(stations=CONC_INPUT_POLLUTANT[input_id])
    return out


def station_period(spec: StationDerive, year: int, override: str | None = None) -> cp.Period:
    """The averaging period of a concentration dataset: the run's year, or a month of it."""
    label = override or (str(year) if spec.period == "year" else spec.period)
    period = cp.parse_period(label)
    cp.check_period_in_year(period, year)
    return period


def station_grids(table, targets: dict[str, StationDerive], grid: Grid, year: int, folder: str | Path, *,
                  period: str | None = None, method: str | None = None, min_fraction: float | None = None,
                  entries: dict[str, DatasetEntry] | None = None, chunk: int = 1024) -> list[DerivedFile]:
    """One concentration grid (µg/m³, or the entry's units) per target dataset from the station
    ``table`` (a DataFrame from :func:`monitoring.read_station_table`): QC, daily means,
    period means, IDW or ordinary kriging with the leave-one-out RMSE in the report. Raises
    before writing when a pollutant is missing from the table or no station passes."""
    from . import monitoring as mon

    folder = Path(folder)
    missing = {ds: s.stations for ds, s in targets.items() if s.stations not in table.columns}
    if missing:
        raise InputDataError(f"{table.attrs.get('source')}: no column for {sorted(set(missing.values()))} "
                             f"(needed by {', '.join(sorted(missing))}); columns are {list(table.columns)}")
    prepared = []
    for ds_id, spec in sorted(targets.items()):
        per = station_period(spec, year, period)
        m = method or spec.method
        frac = spec.min_fraction if min_fraction is None else min_fraction
        means, qc = mon.period_station_means(table, spec.stations, per.start, per.end, min_fraction=frac)
        prepared.append((ds_id, spec, per, m, frac, means, qc))
    out = []
    for ds_id, spec, per, m, frac, means, qc in prepared:
        entry = (entries or {}).get(ds_id)
        units = entry.units if entry is not None and entry.units else "ug/m3"
        conc, report = mon.interpolate_stations(means, spec.stations, grid, method=m, units=units, chunk=chunk)
        stations = sorted(means["station_id"].astype(str).tolist())
        name = _content_name(ds_id, {"table": table.attrs.get("checksum"), "pollutant": spec.stations,
                                     "period": per.label, "method": m, "min_fraction": frac, "grid": grid.to_dict(),
                                     "stations": stations})
        path = folder / name
        provenance = {"kind": "stations", "source": table.attrs.get("source"), "table_checksum": table.attrs.get("checksum"),
                      "pollutant": spec.stations, "period": per.label, "method": m, "min_fraction": frac,
                      "n_stations": report["n_stations"], "loocv_rmse": report["loocv_rmse"],
                      "loocv_mae": report["loocv_mae"], "units": units, "stations": stations,
                      "qc": {k: qc[k] for k in ("rows_in", "rows_out", "stations_in", "stations_out")}}
        if not path.is_file():
            write_bands_cog(path, [conc.data], grid, nodata=float("nan"), units=units,
                            descriptions=[f"{spec.stations} mean {per.label} ({m}, {report['n_stations']} stations)"],
                            tags={"dataset": ds_id, "loocv_rmse": f"{report['loocv_rmse']:.4f}",
                                  "period": per.label, "method": m})
        checksum = "sha256:" + file_sha256(path)
        provenance.update(uri=str(path), checksum=checksum, nodata=float("nan"))
        out.append(DerivedFile(ds_id, str(path), checksum, float("nan"), provenance,
                               reports=[{"qc": qc, "interpolation": report}]))
    return out


def no_targets_error(config_path: str) -> ConfigError:
    return ConfigError(f"{config_path}: no dataset takes station tables: declare derive: {{stations: PM2_5}} on a "
                       "concentration dataset or give air_purification conc_* inputs")
