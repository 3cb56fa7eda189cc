"""Optional PostGIS path: the run's parcel table loaded into PostgreSQL/PostGIS for
organisations that already run one (pg_featureserv, QGIS, BI tools read it from there).

Two ways, same table (``parcel_id`` unique, geometry ``geom`` as MultiPolygon in the grid's
SRID, every product column, a table comment with the units / price year JSON):

- :func:`load_parcels_postgis` straight into a database with ``GeoDataFrame.to_postgis``;
  needs the optional packages ``psycopg[binary]`` and ``geoalchemy2`` (SQLAlchemy is
  already a dependency of Prefect);
- :func:`dump_parcels_sql` writes a plain SQL file (GDAL's PGDUMP driver, bundled with
  pyogrio; no database driver needed) to load with ``psql -f parcels.sql``. Numbers in the
  dump carry 15 significant digits.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..errors import QueryError
from .workspace import RunWorkspace

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _check_ident(name: str, what: str) -> str:
    if not _IDENT.match(name):
        raise QueryError(f"--{what} {name!r}: use letters, digits and _ (a PostgreSQL identifier)")
    return name


def _parcels(workspace: str | os.PathLike | RunWorkspace, year: int | None):
    import geopandas as gpd

    ws = workspace if isinstance(workspace, RunWorkspace) else RunWorkspace.open(workspace, year)
    if ws.parcels_path is None:
        raise QueryError(f"{ws.root}: no products/parcels.parquet in this run")
    gdf = gpd.read_parquet(ws.parcels_path)
    gdf = gdf.drop(columns=[c for c in ("bbox",) if c in gdf.columns])
    epsg = gdf.crs.to_epsg() if gdf.crs is not None else None
    if epsg is None:
        raise QueryError(f"{ws.parcels_path}: the geometry has no EPSG code; PostGIS needs an SRID")
    meta = {k: v for k, v in ws.parcel_meta.items() if k != "columns"}
    return ws, gdf, epsg, meta


def load_parcels_postgis(workspace: str | os.PathLike | RunWorkspace, dsn: str, *, table: str = "parcels",
                         schema: str | None = None, if_exists: str = "fail", year: int | None = None) -> int:
    """Write the parcel table into PostGIS at ``dsn``; return the number of rows.

    ``if_exists``: ``fail`` | ``replace`` | ``append``. Adds a unique index on
    ``parcel_id`` and a table comment holding the units / price year JSON.
    """
    _check_ident(table, "table")
    if schema:
        _check_ident(schema, "schema")
    if if_exists not in ("fail", "replace", "append"):
        raise QueryError(f"--if-exists {if_exists!r}: use fail, replace or append")
    missing = [m for m in ("sqlalchemy", "geoalchemy2", "psycopg") if not _importable(m)]
    if missing:
        raise QueryError(f"loading into PostGIS needs the optional package(s) {', '.join(missing)} "
                         "(pip install 'psycopg[binary]' geoalchemy2), or write a SQL file with --sql-out "
                         "and load it with psql -f")
    from sqlalchemy import create_engine, text

    ws, gdf, epsg, meta = _parcels(workspace, year)
    gdf = gdf.rename_geometry("geom")
    url = dsn.replace("postgresql://", "postgresql+psycopg://", 1) if dsn.startswith("postgresql://") else dsn
    engine = create_engine(url)
    qualified = f'"{schema}"."{table}"' if schema else f'"{table}"'
    try:
        gdf.to_postgis(table, engine, schema=schema, if_exists=if_exists, index=False)
        with engine.begin() as con:
            con.execute(text(f'CREATE UNIQUE INDEX IF NOT EXISTS "{table}_parcel_id_key" ON {qualified} (parcel_id)'))
            con.execute(text(f"COMMENT ON TABLE {qualified} IS :c").bindparams(
                c=json.dumps(meta, ensure_ascii=False)))
    except Exception as exc:  # database errors come in many classes; report one line
        raise QueryError(f"{dsn.split('@')[-1]}: loading {qualified} failed: {str(exc).splitlines()[0]}") from exc
    finally:
        engine.dispose()
    return len(gdf)


def dump_parcels_sql(workspace: str | os.PathLike | RunWorkspace, out: str | os.PathLike, *, table: str = "parcels",
                     schema: str | None = None, year: int | None = None) -> Path:
    """Write the parcel table as a SQL file for ``psql -f`` (drops and recreates the table)."""
    import pyogrio

    _check_ident(table, "table")
    if schema:
        _check_ident(schema, "schema")
    ws, gdf, epsg, meta = _parcels(workspace, year)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    options = {"GEOMETRY_NAME": "geom", "LAUNDER": "NO", "SRID": str(epsg), "FID": "ogc_fid",
               "CREATE_SCHEMA": "OFF", "SCHEMA": schema or "public"}
    pyogrio.write_dataframe(gdf, tmp, driver="PGDUMP", layer=table, layer_options=options, promote_to_multi=True)
    qualified = f'"{schema or "public"}"."{table}"'
    comment = json.dumps(meta, ensure_ascii=False).replace("'", "''")
    body = tmp.read_text(encoding="utf-8")
    head = "CREATE EXTENSION IF NOT EXISTS postgis;\n" + (f'CREATE SCHEMA IF NOT EXISTS "{schema}";\n' if schema else "")
    tail = (f'CREATE UNIQUE INDEX "{table}_parcel_id_key" ON {qualified} (parcel_id);\n'
            f"COMMENT ON TABLE {qualified} IS '{comment}';\n")
    out.write_text(head + body + tail, encoding="utf-8")
    tmp.unlink()
    return out


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
