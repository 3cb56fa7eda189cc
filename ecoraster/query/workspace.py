"""A finished run's workspace as the query side sees it: the manifest (``run.json``), the
run grid, the per-pixel value and physical rasters by product, and the parcel table.

The layout is the run contract: ``run.json`` with ``config``, ``grid`` and ``results``
(``{service: {outputs: {output_id: {path, units, kind, per, nodata, total, product}}}}``),
value rasters (``kind="value"``, CNY per pixel) and physical rasters (``kind="physical"``,
a ``product`` code), and ``products/parcels.parquet`` (GeoParquet, geometry in the grid
CRS, schema metadata key ``ecoraster``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from ..errors import MissingFileError, QueryError
from ..grid import Grid

#: Where the parcel table lives inside a workspace (run contract).
PARCELS_PARQUET = Path("products") / "parcels.parquet"
PARCELS_GPKG = Path("products") / "parcels.gpkg"

#: Schema-metadata key of the parcel GeoParquet that holds units, price year, region …
PARQUET_META_KEY = b"ecoraster"


@lru_cache(maxsize=1)
def product_names() -> dict[str, dict[str, str]]:
    """``{product: {"code", "name_zh", "name_en"}}`` from ``configs/products.yaml``."""
    from ..standards import load_products

    return {pid: {"code": p.code, "name_zh": p.name_zh, "name_en": p.name_en}
            for pid, p in load_products().items()}


def names_of(product: str) -> dict[str, str | None]:
    """The catalogue code and the Chinese and English names of ``product`` (None if unknown)."""
    n = product_names().get(product) or {}
    return {"code": n.get("code"), "name_zh": n.get("name_zh"), "name_en": n.get("name_en")}


@dataclass(frozen=True)
class RasterLayer:
    """One per-pixel raster of a product: its value (CNY) or its physical quantity."""

    product: str
    kind: str  # "value" | "physical"
    service: str
    output_id: str
    path: Path
    units: str
    nodata: float | None


@dataclass
class RunWorkspace:
    """The outputs of one run (one region, one year) opened for queries.

    Use :meth:`open`; the attributes are read from ``run.json`` and the parcel table's
    GeoParquet metadata.
    """

    root: Path
    manifest: dict[str, Any]
    grid: Grid
    layers: list[RasterLayer] = field(default_factory=list)
    parcel_meta: dict[str, Any] = field(default_factory=dict)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike | None, year: int | None = None) -> RunWorkspace:
        """Open the run workspace at ``path`` (a folder with ``run.json``, or that file).

        With ``year``, ``path`` may also be a folder of runs (or one run among siblings):
        the run whose ``config.year`` equals ``year`` is chosen.
        """
        root = resolve_workspace(path, year)
        manifest_path = root / "run.json"
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise QueryError(f"{manifest_path}: not valid JSON ({exc})") from exc
        if "grid" not in manifest:
            raise QueryError(f"{manifest_path}: field 'grid' is missing")
        grid = Grid.from_dict(manifest["grid"])
        ws = cls(root=root, manifest=manifest, grid=grid)
        ws.layers = ws._find_layers()
        if ws.parcels_path is not None:
            ws.parcel_meta = read_parcel_metadata(ws.parcels_path)
        return ws

    def _resolve(self, path: str, service: str) -> Path:
        """A result path from the manifest; if the workspace moved, look for the file under
        ``root/<service>/`` by name."""
        p = Path(path)
        if not p.is_absolute():
            p = self.root / p
        if p.exists():
            return p
        moved = self.root / service / p.name
        return moved if moved.exists() else p

    def _find_layers(self) -> list[RasterLayer]:
        layers = []
        for service, res in (self.manifest.get("results") or {}).items():
            for output_id, out in (res.get("outputs") or {}).items():
                kind = out.get("kind")
                if kind not in ("value", "physical") or out.get("per", "pixel") != "pixel":
                    continue
                product = out.get("product") or (service if kind == "value" else None)
                if not product:
                    continue  # a physical raster that is no product (e.g. a stock beside GEP)
                path = self._resolve(out["path"], service)
                if not path.exists():
                    raise MissingFileError(str(path), field=f"results.{service}.outputs.{output_id}.path")
                layers.append(RasterLayer(product=product, kind=kind, service=service, output_id=output_id,
                                          path=path, units=out.get("units", ""), nodata=out.get("nodata")))
        return layers

    # -- what the run holds ---------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        return self.manifest.get("config") or {}

    @property
    def region(self) -> str:
        return str(self.parcel_meta.get("region") or self.config.get("region") or self.root.name)

    @property
    def region_name(self) -> str | None:
        return self.config.get("region_name")

    @property
    def year(self) -> int | None:
        y = self.parcel_meta.get("year", self.config.get("year"))
        return int(y) if y is not None else None

    @property
    def price_year(self) -> int | None:
        y = self.parcel_meta.get("price_year", self.config.get("price_year"))
        return int(y) if y is not None else None

    @property
    def profile(self) -> str | None:
        return self.parcel_meta.get("profile", self.config.get("profile"))

    @property
    def parcels_path(self) -> Path | None:
        p = self.root / PARCELS_PARQUET
        return p if p.exists() else None

    @property
    def units(self) -> dict[str, str]:
        """Units of the parcel table's columns (from its GeoParquet metadata)."""
        return dict(self.parcel_meta.get("units") or {})

    @property
    def contested(self) -> set[str]:
        """Product codes left out of ``gep_excl_contested``: the parcel table's metadata key
        ``contested``, else the run's standard profile (``configs/profiles/<id>.yaml``)."""
        if "contested" in self.parcel_meta:
            return set(self.parcel_meta.get("contested") or [])
        if self.profile:
            from ..errors import EcorasterError
            from ..standards import load_profile

            try:
                return set(load_profile(self.profile).contested)
            except EcorasterError:  # a profile of another installation: no contested marks
                return set()
        return set()

    @cached_property
    def products(self) -> list[str]:
        """Product codes in a stable order: the parcel table's column order, then the
        rasters' order for products the table lacks."""
        order: list[str] = []
        for col in self.parcel_meta.get("columns", []):
            for suffix in ("_value", "_qty"):
                if col.endswith(suffix) and col[: -len(suffix)] not in order:
                    order.append(col[: -len(suffix)])
        for layer in self.layers:
            if layer.product not in order:
                order.append(layer.product)
        return order

    def layer(self, product: str, kind: str) -> RasterLayer | None:
        for layer in self.layers:
            if layer.product == product and layer.kind == kind:
                return layer
        return None

    def parcel_catalogue(self, properties: dict[str, Any]) -> dict[str, Any]:
        """A parcel's catalogue (目录清单): per product its quantity and value with units, and
        the GEP totals, from one row of the parcel table."""
        units = self.units
        rows = []
        for code in self.products:
            qty, value = properties.get(f"{code}_qty"), properties.get(f"{code}_value")
            if qty is None and value is None:
                continue
            qty_layer, value_layer = self.layer(code, "physical"), self.layer(code, "value")
            rows.append({
                "product": code, **names_of(code),
                "qty": qty, "qty_units": units.get(f"{code}_qty") or (qty_layer.units if qty_layer else None),
                "value": value,
                "value_units": units.get(f"{code}_value") or (value_layer.units if value_layer else "CNY"),
                "contested": code in self.contested,
            })
        return {
            "parcel_id": properties.get("parcel_id"), "name": properties.get("name"),
            "area_ha": properties.get("area_ha"), "region": self.region, "year": self.year,
            "price_year": self.price_year, "products": rows,
            "gep": properties.get("gep"), "gep_excl_contested": properties.get("gep_excl_contested"),
            "gep_per_ha": properties.get("gep_per_ha"), "value_units": units.get("gep", "CNY"),
        }

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary (for ``/api/info`` and ``eco … --json``)."""
        products = []
        for code in self.products:
            value, qty = self.layer(code, "value"), self.layer(code, "physical")
            products.append({
                "product": code, **names_of(code),
                "value_units": value.units if value else self.units.get(f"{code}_value", "CNY"),
                "qty_units": qty.units if qty else self.units.get(f"{code}_qty"),
                "contested": code in self.contested,
                "has_rasters": bool(value or qty),
            })
        return {
            "workspace": str(self.root),
            "region": self.region,
            "region_name": self.region_name,
            "year": self.year,
            "price_year": self.price_year,
            "profile": self.profile,
            "crs": self.grid.to_dict()["crs"],
            "bounds": list(self.grid.bounds),
            "resolution": list(self.grid.res),
            "shape": list(self.grid.shape),
            "products": products,
            "parcels": str(self.parcels_path) if self.parcels_path else None,
        }


def read_parcel_metadata(path: Path) -> dict[str, Any]:
    """The ``ecoraster`` schema metadata of the parcel GeoParquet, plus its column names."""
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    meta: dict[str, Any] = {}
    raw = (schema.metadata or {}).get(PARQUET_META_KEY)
    if raw:
        try:
            meta = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise QueryError(f"{path}: schema metadata 'ecoraster' is not JSON ({exc})") from exc
    meta["columns"] = list(schema.names)
    if "parcel_id" not in schema.names:
        raise QueryError(f"{path}: no column 'parcel_id' (columns: {', '.join(schema.names)})")
    return meta


def _run_year(path: Path) -> int | None:
    try:
        y = json.loads((path / "run.json").read_text(encoding="utf-8")).get("config", {}).get("year")
        return int(y) if y is not None else None
    except (OSError, ValueError):
        return None


#: Folders searched (below the current directory) for the most recent run when no workspace is given.
RUN_SEARCH_DIRS = ("outputs", ".")


def latest_workspace(start: str | os.PathLike | None = None, max_depth: int = 3) -> Path:
    """The most recent run (newest ``run.json``) under ``./outputs`` (or the current folder),
    at most ``max_depth`` levels down. Raises :class:`QueryError` saying what to pass if none."""
    base = Path(start or Path.cwd())
    found: list[Path] = []
    for sub in RUN_SEARCH_DIRS:
        root = (base / sub).resolve()
        if not root.is_dir():
            continue
        for depth in range(max_depth + 1):
            found += [p for p in root.glob("/".join(["*"] * depth + ["run.json"])) if ".staging" not in str(p)]
        if found:
            break
    if not found:
        raise QueryError(f"no run workspace given and no run.json under {base / 'outputs'}: pass -w DIR, the folder "
                         "of a finished run (e.g. -w outputs/demo/wuhan_2013 after `make demo`, or the -w of "
                         "your `eco run`)")
    return max(found, key=lambda p: p.stat().st_mtime).parent


def resolve_workspace(path: str | os.PathLike | None, year: int | None = None) -> Path:
    """The run folder for ``path`` and, if given, ``year``.

    ``path`` is a run folder (holds ``run.json``) or ``run.json`` itself. With ``year``,
    a run folder of another year makes us look at its siblings, and a folder without
    ``run.json`` is searched one level down, for the run whose ``config.year`` matches.
    ``path=None``: the most recent run under ``./outputs`` (:func:`latest_workspace`).
    """
    if path is None:
        path = latest_workspace()
    p = Path(path).expanduser()
    if p.name == "run.json" and p.is_file():
        p = p.parent
    if not p.exists():
        raise MissingFileError(str(p), field="workspace")
    p = p.resolve()
    from ..pipeline.workspace import check_complete

    check_complete(p)
    if (p / "run.json").is_file() and (year is None or _run_year(p) == year):
        return p
    if year is None:
        raise QueryError(f"{p}: no run.json here; give a run workspace (e.g. outputs/demo/wuhan_2013)")
    candidates = [c for base in (p, p.parent) if base.is_dir()
                  for c in sorted(base.iterdir()) if c.is_dir() and (c / "run.json").is_file()]
    for c in candidates:
        if _run_year(c) == year:
            check_complete(c)
            return c
    years = sorted({y for c in candidates if (y := _run_year(c)) is not None} | (
        {_run_year(p)} if (p / "run.json").is_file() and _run_year(p) is not None else set()))
    raise QueryError(f"{p}: no run for year {year} (runs found for: {', '.join(map(str, years)) or 'none'})")
