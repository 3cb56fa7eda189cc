"""The data catalogue: ``data_catalog.yaml`` → validated entries with resolved URIs.

Run configs name datasets by catalogue id, never by path. A relative ``uri`` resolves
against the folder of the catalogue file, so a catalogue travels with its data.

Example entry::

    datasets:
      wuhan_lulc_2005:
        kind: raster
        uri: data/sample/wuhan/wh2005_refy.tif
        units: class
        nodata: -128
        categorical: true
        resampling: mode
        crs: EPSG:32649
        license: none stated (test data); cite Liu et al. 2019
        source: HPSCIL/mcPLUS Data/LULCs @ 4d0aaf8e
        checksum: sha256:…

A class raster in a product's own legend can name a reclassification table (``reclass:
wuhan_plus`` = ``configs/landcover/wuhan_plus.csv``, or a path to such a CSV); services then
see the GEP ecosystem classes of ``configs/classes/gep_ecosystem_classes.csv``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import yamlio
from .errors import CatalogError, MissingFileError

Resampling = Literal["nearest", "mode", "bilinear", "cubic", "average", "sum", "min", "max"]
Kind = Literal["raster", "vector", "table", "stac"]

#: Resampling used when an entry does not declare one, by kind of content.
DEFAULT_RESAMPLING: dict[bool, Resampling] = {True: "mode", False: "bilinear"}


class SceneDerive(BaseModel):
    """``derive:`` of a raster made from scenes: the index, the per-pixel composite rule and
    the period of one band (``year``: one band; ``month``: twelve)."""

    model_config = ConfigDict(extra="forbid")
    index: Literal["ndvi", "savi", "fvc", "lai"] = "ndvi"
    composite: Literal["max", "median"] = "max"
    period: Literal["year", "month"] = "year"
    min_valid_share: float | None = Field(default=None, ge=0, le=1)


class StationDerive(BaseModel):
    """``derive:`` of a concentration raster made from station tables: the pollutant column,
    the interpolation, the averaging period (``year`` or a month ``YYYY-MM`` of the run's year)
    and the share of days a station needs."""

    model_config = ConfigDict(extra="forbid")
    stations: str
    method: Literal["idw", "kriging"] = "idw"
    period: str = "year"
    min_fraction: float = Field(default=0.75, ge=0, le=1)


class DatasetEntry(BaseModel):
    """One dataset of the catalogue. ``uri`` is absolute after loading."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    kind: Kind
    uri: str
    layer: str | None = None
    units: str | None = None
    nodata: float | None = None
    crs: str | None = None
    categorical: bool = False
    resampling: Resampling | None = None
    band: int = 1
    license: str | None = None
    source: str | None = None
    checksum: str | None = None
    description: str | None = None
    valid_years: list[int] | None = None
    columns: dict[str, str] | None = None
    reclass: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    #: where newer values come from: scenes ``{index, composite, period}`` (:class:`SceneDerive`) or
    #: station tables ``{stations: PM2_5, method, period}`` (:class:`StationDerive`)
    derive: dict[str, Any] | None = None

    @field_validator("derive")
    @classmethod
    def _derive_form(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None:
            try:
                (StationDerive if "stations" in v else SceneDerive).model_validate(v)
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(x) for x in err["loc"])
                raise ValueError(f"{where} = {err.get('input')!r}: {err['msg']}") from None
        return v

    @field_validator("checksum")
    @classmethod
    def _checksum_form(cls, v: str | None) -> str | None:
        if v is None:
            return v
        algo, _, digest = v.partition(":")
        if algo != "sha256" or len(digest) != 64:
            raise ValueError("must look like 'sha256:<64 hex digits>'")
        return v

    @field_validator("crs")
    @classmethod
    def _crs_parses(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from pyproj import CRS

        try:
            CRS.from_user_input(v)
        except Exception as exc:  # pyproj raises CRSError
            raise ValueError(f"not a CRS pyproj understands: {v!r} ({exc})") from None
        return v

    @model_validator(mode="after")
    def _raster_fields(self) -> DatasetEntry:
        if self.kind != "raster" and (self.resampling or self.categorical or self.reclass):
            raise ValueError("resampling/categorical/reclass only apply to kind: raster")
        if self.reclass and self.resampling not in (None, "mode", "nearest"):
            raise ValueError(f"a reclassified (class) raster needs resampling mode or nearest, not {self.resampling!r}")
        return self

    @property
    def path(self) -> Path:
        """Local path of the dataset (only for local URIs)."""
        return Path(self.uri)

    @property
    def effective_resampling(self) -> Resampling:
        """The declared resampling, or the default for categorical/continuous content."""
        return self.resampling or DEFAULT_RESAMPLING[self.categorical]

    def check_exists(self) -> None:
        """Raise :class:`MissingFileError` if a local URI does not exist."""
        if "://" in self.uri:
            return
        if not Path(self.uri).exists():
            raise MissingFileError(self.uri, field=f"datasets.{self.id}.uri")

    def verify_checksum(self) -> None:
        """Raise :class:`CatalogError` if the file's sha256 differs from the declared one."""
        if not self.checksum or "://" in self.uri:
            return
        actual = "sha256:" + file_sha256(self.uri)
        if actual != self.checksum:
            raise CatalogError(
                f"datasets.{self.id}.checksum: {self.uri} has {actual}, catalogue says {self.checksum}"
            )


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


#: multihash code and length of a sha2-256 digest (STAC ``file:checksum``)
SHA256_MULTIHASH_PREFIX = "1220"


def multihash_sha256(path: str | os.PathLike) -> str:
    """STAC ``file:checksum`` value of a file: the sha2-256 multihash (``1220`` + hex digest)."""
    return SHA256_MULTIHASH_PREFIX + file_sha256(path)


class Catalog(BaseModel):
    """The whole catalogue: ``datasets`` keyed by id, with URIs resolved."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = 1
    defaults: dict[str, Any] = Field(default_factory=dict)
    datasets: dict[str, DatasetEntry]
    source_path: str | None = None

    def get(self, dataset_id: str, *, field: str | None = None) -> DatasetEntry:
        """Entry for ``dataset_id``; a clear :class:`CatalogError` if unknown."""
        try:
            return self.datasets[dataset_id]
        except KeyError:
            where = f"{field}: " if field else ""
            known = ", ".join(sorted(self.datasets)[:12])
            raise CatalogError(
                f"{where}unknown catalogue id {dataset_id!r} in {self.source_path} (known: {known}…)"
            ) from None

    def __contains__(self, dataset_id: str) -> bool:
        return dataset_id in self.datasets

    @classmethod
    def load(cls, path: str | os.PathLike, extra: list[str | os.PathLike] | None = None) -> Catalog:
        """Load and validate a catalogue file; ``extra`` catalogues are merged after it."""
        datasets: dict[str, DatasetEntry] = {}
        first = None
        for p in [path, *(extra or [])]:
            cat = _load_one(Path(p))
            first = first or cat
            datasets.update(cat.datasets)
        assert first is not None
        return cls(version=first.version, defaults=first.defaults, datasets=datasets,
                   source_path=first.source_path)


def _load_one(path: Path) -> Catalog:
    raw = yamlio.read_mapping(path, field="catalog", error=CatalogError)
    if "datasets" not in raw:
        raise CatalogError(f"{path}: expected a mapping with a 'datasets' key")
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict) or not isinstance(raw.get("datasets") or {}, dict):
        raise CatalogError(f"{path}: `defaults` and `datasets` must be mappings (id: entry)")
    base = path.resolve().parent
    entries: dict[str, DatasetEntry] = {}
    for ds_id, body in (raw.get("datasets") or {}).items():
        if not isinstance(body, dict):
            raise CatalogError(f"{path}: datasets.{ds_id}: expected a mapping, got {body!r}")
        merged = {k: v for k, v in defaults.items() if k in DatasetEntry.model_fields}
        merged.update(body)
        merged["id"] = ds_id
        uri = merged.get("uri")
        if isinstance(uri, str) and "://" not in uri and not os.path.isabs(uri):
            merged["uri"] = str((base / uri).resolve())
        reclass = merged.get("reclass")
        if isinstance(reclass, str) and reclass.endswith(".csv") and not os.path.isabs(reclass):
            merged["reclass"] = str((base / reclass).resolve())
        try:
            entries[ds_id] = DatasetEntry.model_validate(merged)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(x) for x in err["loc"]) or "(entry)"
            value = err.get("input")
            shown = value if not isinstance(value, dict) else "…"
            raise CatalogError(
                f"{path}: datasets.{ds_id}.{field} = {shown!r}: {err['msg']}"
            ) from None
    version = raw.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        raise CatalogError(f"{path}: version = {version!r}: expected an integer")
    return Catalog(version=version, defaults=defaults, datasets=entries,
                   source_path=str(path))
