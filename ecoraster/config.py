"""Run configuration: ``configs/<region>_<year>.yaml`` → a validated :class:`RunConfig`.

A run config names datasets by catalogue id only. Example::

    region: wuhan
    year: 2013
    catalog: ../data_catalog.yaml          # relative to this file
    grid: {like: wuhan_lulc_2013}          # or {crs: EPSG:4526, resolution: 30, bounds: [...]}
    services:
      carbon_storage:
        inputs: {lulc_bas: wuhan_lulc_2005, lulc_alt: wuhan_lulc_2013, carbon_pools: carbon_pools_wuhan}
    zones:
      districts: {dataset: wuhan_districts, id_field: name}
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .datasets import Catalog
from . import yamlio
from .errors import ConfigError
from .grid import DEFAULT_CHUNK, Grid

if TYPE_CHECKING:
    from .prices import ValuationSetup
    from .standards import Profile


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GridConfig(_Strict):
    """The target grid: copy a catalogue raster's grid (``like``), optionally at another
    ``resolution``; or give ``crs`` + ``resolution`` + ``bounds`` (or ``bounds_from`` a
    vector dataset's extent)."""

    like: str | None = None
    crs: str | None = None
    resolution: float | None = Field(default=None, gt=0)
    bounds: tuple[float, float, float, float] | None = None
    bounds_from: str | None = None

    @model_validator(mode="after")
    def _one_way(self) -> GridConfig:
        if self.like is None and not (self.crs and self.resolution and (self.bounds or self.bounds_from)):
            raise ValueError("give `like: <raster id>` or `crs`, `resolution` and `bounds`/`bounds_from`")
        return self


class ServiceRun(_Strict):
    """One service in a run: catalogue ids (or numbers) for its inputs, parameter overrides."""

    inputs: dict[str, str | float | int] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    method: str | None = None
    enabled: bool = True


class ZoneSet(_Strict):
    """A set of zones to aggregate to (parcels, townships, wetland units, districts)."""

    dataset: str
    id_field: str
    name_field: str | None = None
    partition: bool = False
    # what the coordinates really are: gcj02 (Chinese web-map lon/lat) is converted to WGS 84 on read
    datum: Literal["wgs84", "gcj02", "cgcs2000"] | None = None


class DaskConfig(_Strict):
    """Where dask runs: local threads (default), local processes, or a scheduler address."""

    scheduler: Literal["threads", "processes", "synchronous", "distributed"] = "threads"
    address: str | None = None
    n_workers: int | None = None


class RunConfig(_Strict):
    """A whole run: region, year, grid, services, zones; paths resolved on load."""

    region: str
    region_name: str | None = None
    year: int
    catalog: str = "data_catalog.yaml"
    extra_catalogs: list[str] = Field(default_factory=list)
    grid: GridConfig
    chunk: int = Field(default=DEFAULT_CHUNK, ge=64)
    services: dict[str, ServiceRun]
    zones: dict[str, ZoneSet] = Field(default_factory=dict)
    profile: str = "mee2020"
    price_year: int | None = None
    prices: str | None = None
    # named price option per product (e.g. {carbon_sequestration: shadow}); default: the price table's
    price_options: dict[str, str] = Field(default_factory=dict)
    # catalogue ids this run reads outside their `valid_years` on purpose (warned, not refused)
    allow_outside_years: list[str] = Field(default_factory=list)
    dask: DaskConfig = Field(default_factory=DaskConfig)
    source_path: str | None = None

    @classmethod
    def load(cls, path: str | os.PathLike) -> RunConfig:
        """Read and validate a run config; errors name the file, the field and the value."""
        path = Path(path)
        raw = yamlio.read_mapping(path, field="config")
        base = path.resolve().parent
        raw["catalog"] = _resolve_catalog(raw.get("catalog"), base, path)
        extra = raw.get("extra_catalogs") or []
        if not isinstance(extra, list) or not all(isinstance(c, str) for c in extra):
            raise ConfigError(f"{path}: extra_catalogs = {extra!r}: expected a list of catalogue paths")
        raw["extra_catalogs"] = [str((base / c).resolve()) for c in extra]
        raw["source_path"] = str(path.resolve())
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(x) for x in err["loc"]) or "(top level)"
            value = err.get("input")
            shown = "…" if isinstance(value, dict) else repr(value)
            raise ConfigError(f"{path}: {field} = {shown}: {err['msg']}") from None

    def load_catalog(self) -> Catalog:
        return Catalog.load(self.catalog, extra=self.extra_catalogs)

    def enabled_services(self) -> dict[str, ServiceRun]:
        return {k: v for k, v in self.services.items() if v.enabled}


def _resolve_catalog(value: Any, base: Path, config_path: Path) -> str:
    if value:
        return str((base / str(value)).resolve())
    for folder in [base, *base.parents]:
        candidate = folder / "data_catalog.yaml"
        if candidate.exists():
            return str(candidate)
    raise ConfigError(f"{config_path}: catalog: no `catalog:` given and no data_catalog.yaml above it")


def build_grid(config: RunConfig, catalog: Catalog) -> Grid:
    """The run's target :class:`Grid` from ``config.grid``."""
    g = config.grid
    if g.like:
        entry = catalog.get(g.like, field="grid.like")
        if entry.kind != "raster":
            raise ConfigError(f"{config.source_path}: grid.like = {g.like!r} is a {entry.kind}, not a raster")
        entry.check_exists()
        base = Grid.from_raster(entry.uri) if entry.crs is None else _grid_with_crs(entry.uri, entry.crs)
        if g.resolution is None or (g.crs and g.crs != str(base.crs)):
            if g.crs is None:
                return base
        from rasterio.warp import transform_bounds

        crs = g.crs or base.crs
        bounds = transform_bounds(base.crs, crs, *base.bounds, densify_pts=21)
        return Grid.from_bounds(crs, bounds, g.resolution or base.res[0])
    if g.bounds:
        return Grid.from_bounds(g.crs, g.bounds, g.resolution)
    import geopandas as gpd

    entry = catalog.get(g.bounds_from, field="grid.bounds_from")
    entry.check_exists()
    gdf = gpd.read_file(entry.uri, layer=entry.layer)
    if gdf.crs is None and entry.crs:
        gdf = gdf.set_crs(entry.crs)
    return Grid.from_bounds(g.crs, tuple(gdf.to_crs(g.crs).total_bounds), g.resolution)


def _grid_with_crs(path: str, crs: str) -> Grid:
    import rasterio
    from rasterio.crs import CRS

    with rasterio.open(path) as src:
        return Grid(CRS.from_user_input(crs), src.transform, (src.height, src.width))


#: Folders of reference tables every run may read (through :mod:`ecoraster.resources`).
REFERENCE_FOLDERS = ("parameters", "classes", "landcover")


@dataclass
class RunPlan:
    """A run resolved once: the config, its catalogue, the target grid, the standard profile,
    the valuation set-up (price table, CPI, price year) and every reference table it may
    read. Stages receive this object; nothing below re-reads the config."""

    config: RunConfig
    catalog: Catalog
    grid: Grid
    profile: Profile | None = None
    valuation: ValuationSetup | None = None
    #: Why the valuation set-up could not be resolved (reported by validation), else None.
    valuation_error: str | None = None
    #: name → path of every reference table resolved (products, profile, prices, CPI, tables).
    reference_files: dict[str, Path] = field(default_factory=dict)

    def chosen(self, services: list[str] | None = None) -> list[str]:
        """The services a run computes: ``services``, else every enabled one."""
        return list(services or self.config.enabled_services())

    def require_valuation(self) -> ValuationSetup:
        from .errors import ConfigError

        if self.valuation is None:
            raise ConfigError(self.valuation_error or "no valuation set-up")
        return self.valuation


def with_overlay(config: RunConfig, overlay: str | os.PathLike | None) -> RunConfig:
    """``config`` with ``overlay`` (a workspace's overlay catalogue, if it exists) appended to
    its ``extra_catalogs``."""
    if overlay and Path(overlay).is_file():
        return config.model_copy(update={"extra_catalogs": [*config.extra_catalogs, str(Path(overlay).resolve())]})
    return config


def load_plan(config: str | os.PathLike | RunConfig, overlay: str | os.PathLike | None = None) -> RunPlan:
    """Load and check everything a run depends on, once (raises on a config, catalogue, grid
    or profile error; a price problem is kept in ``valuation_error`` for validation)."""
    from .errors import EcorasterError
    from .prices import load_setup
    from .resources import config_path, reference_files
    from .standards import load_profile

    cfg = config if isinstance(config, RunConfig) else RunConfig.load(config)
    cfg = with_overlay(cfg, overlay)
    catalog = cfg.load_catalog()
    plan = RunPlan(cfg, catalog, build_grid(cfg, catalog))
    plan.profile = load_profile(cfg.profile)
    files: dict[str, Path] = {"products": config_path("products.yaml"),
                              "profile": Path(plan.profile.source_path or "")}
    try:
        plan.valuation = load_setup(plan)
        files["price_table"] = Path(plan.valuation.table.source_path or "")
        files["cpi"] = plan.valuation.cpi.path
    except EcorasterError as exc:
        plan.valuation_error = str(exc)
    files.update(reference_files(*REFERENCE_FOLDERS))
    files.setdefault("prices/cpi_china.csv", config_path("prices", "cpi_china.csv", must_exist=False))
    plan.reference_files = {k: Path(v).resolve() for k, v in files.items()}
    return plan
