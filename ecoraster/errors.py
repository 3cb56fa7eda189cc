"""One error hierarchy for ecoraster.

Every error the library raises on purpose derives from :class:`EcorasterError`.
Leaves also derive from the matching builtin (``ValueError``, ``OSError``,
``FileNotFoundError``) so callers can catch either, as rasterio does.

Messages are one line and name the file, the field and the value at fault.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class EcorasterError(Exception):
    """Root of every error raised by ecoraster."""


class CatalogError(EcorasterError, ValueError):
    """A data catalogue entry is malformed or an id is unknown."""


class ConfigError(EcorasterError, ValueError):
    """A run configuration is malformed or refers to something that does not exist."""


class MissingFileError(EcorasterError, FileNotFoundError):
    """An input file named by the catalogue or config does not exist."""

    def __init__(self, path: str, field: str | None = None):
        self.path = str(path)
        self.field = field
        where = f" (field {field!r})" if field else ""
        super().__init__(f"file not found{where}: {self.path}")


class MissingCRSError(EcorasterError, ValueError):
    """A raster or vector has no coordinate reference system."""

    def __init__(self, path: str, field: str | None = None):
        self.path = str(path)
        where = f" (field {field!r})" if field else ""
        super().__init__(
            f"{self.path}{where} has no CRS; declare `crs:` for it in data_catalog.yaml "
            "or fix the file (e.g. `gdal_edit.py -a_srs EPSG:4527`)"
        )


class NodataUndefinedError(EcorasterError, ValueError):
    """A raster has no nodata value and none is declared."""

    def __init__(self, path: str, field: str | None = None):
        self.path = str(path)
        where = f" (field {field!r})" if field else ""
        super().__init__(
            f"{self.path}{where} has no nodata value; declare `nodata:` for it in data_catalog.yaml"
        )


class NodataNotRepresentableError(EcorasterError, ValueError):
    """A nodata value cannot be stored in the raster's data type."""

    def __init__(self, nodata: float, dtype: str, where: str):
        super().__init__(f"{where}: nodata {nodata!r} is not representable as {dtype}")


class GridMismatchError(EcorasterError, ValueError):
    """Two rasters, or a raster and the target grid, do not line up or do not overlap."""


class NoOverlapError(GridMismatchError):
    """An input does not overlap the run's target grid at all."""

    def __init__(self, path: str, input_bounds: tuple, grid_bounds: tuple, crs: str):
        self.path = str(path)
        fmt = lambda b: "(" + ", ".join(f"{v:.1f}" for v in b) + ")"  # noqa: E731
        super().__init__(
            f"{self.path} does not overlap the target grid: its bounds {fmt(input_bounds)} "
            f"vs grid bounds {fmt(grid_bounds)} in {crs}"
        )


class MissingLookupValuesError(EcorasterError, ValueError):
    """Raster values (e.g. LULC codes) that have no row in a parameter table."""

    def __init__(
        self,
        missing: Mapping[int, int] | Iterable[int],
        raster: str,
        table: str,
        column: str = "lucode",
    ):
        counts = dict(missing) if isinstance(missing, Mapping) else {int(v): None for v in missing}
        self.missing = sorted(counts)
        self.pixel_counts = counts
        self.raster = str(raster)
        self.table = str(table)
        listed = ", ".join(
            f"{code} ({n} px)" if n is not None else str(code) for code, n in sorted(counts.items())
        )
        super().__init__(
            f"{self.raster} has codes missing from column {column!r} of {self.table}: {listed}"
        )


class TableError(EcorasterError, ValueError):
    """A parameter or price table is malformed (missing column, bad value)."""


class UnitError(EcorasterError, ValueError):
    """Units do not agree (e.g. m3 × CNY/t)."""


class ServiceError(EcorasterError, ValueError):
    """A service is unknown or its inputs do not satisfy its spec."""


class OutputExistsError(EcorasterError, FileExistsError):
    """An output would overwrite a result and overwriting was not allowed."""


class ValidationFailed(EcorasterError, ValueError):
    """Validation found problems; ``issues`` holds all of them."""

    def __init__(self, issues: list):
        self.issues = list(issues)
        lines = "; ".join(str(i) for i in self.issues[:10])
        more = f" (+{len(self.issues) - 10} more)" if len(self.issues) > 10 else ""
        super().__init__(f"{len(self.issues)} problem(s): {lines}{more}")


class InputDataError(EcorasterError, ValueError):
    """An input file's content is unusable (bad band metadata, unknown units, too few valid values)."""


class QueryError(EcorasterError, ValueError):
    """A parcel or site query cannot be answered (unknown workspace, bad bbox, …)."""


class ParcelNotFoundError(QueryError, LookupError):
    """No parcel has the requested id."""

    def __init__(self, parcel_id: str, table: str):
        self.parcel_id = str(parcel_id)
        self.table = str(table)
        super().__init__(f"{self.table}: no parcel with parcel_id {self.parcel_id!r}")


class FootprintError(QueryError):
    """A footprint (GeoJSON polygon) was refused; ``reason`` is a short machine-readable code:
    ``invalid_geometry``, ``unknown_crs``, ``outside_region``, ``too_large``, ``not_polygon``,
    ``bad_geojson``."""

    def __init__(self, reason: str, message: str, source: str = "footprint"):
        self.reason = reason
        self.source = str(source)
        super().__init__(f"{self.source}: {message}")
