"""``eco parcel | parcels | site | compare | serve | parcels-to-postgis``: planners' queries
over a finished run (registered into ``eco`` by :func:`register`)."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from ..errors import EcorasterError

#: Workspace used when ``-w`` is not given: the demo's outputs (``make demo``).

_WS = typer.Option(None, "--workspace", "-w", help="run workspace (folder with run.json); default: the most recent "
                                                   "run under ./outputs")
_YEAR = typer.Option(None, "--year", help="pick the run of this year (among sibling run folders)")
_JSON = typer.Option(False, "--json", help="print JSON")


def _fail(exc: Exception, as_json: bool) -> None:
    from .main import _fail as fail

    fail(exc, as_json)


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def _echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False, default=str))


def _print_products(rows: list[dict[str, Any]], qty_title: str, value_title: str) -> None:
    """One line per product: quantity and value with units; contested products marked *."""
    typer.echo(f"  {'product':28s} {qty_title:>18s} {'':8s} {value_title:>18s}")
    for row in rows:
        mark = " *" if row["contested"] else ""
        typer.echo(f"  {row['product'] + mark:28s} {_fmt(row['qty'], 3):>18s} {row['qty_units'] or '':8s} "
                   f"{_fmt(row['value']):>18s} {row['value_units'] or ''}")


def _print_catalogue(card: dict[str, Any]) -> None:
    title = " ".join(str(v) for v in (card["parcel_id"], card.get("name") or "") if v)
    typer.echo(f"{title}   area {_fmt(card.get('area_ha'))} ha   ({card['region']} {card['year']}, "
               f"prices of {card['price_year']})")
    _print_products(card["products"], "quantity", "value")
    typer.echo(f"  {'GEP':28s} {'':27s} {_fmt(card['gep']):>18s} {card['value_units']}")
    typer.echo(f"  {'GEP excl. contested (*)':28s} {'':27s} {_fmt(card['gep_excl_contested']):>18s}")
    typer.echo(f"  {'GEP per ha':28s} {'':27s} {_fmt(card['gep_per_ha']):>18s} {card['value_units']}/ha")


def _print_site(res) -> None:
    d = res.to_dict()
    typer.echo(f"site {d['name']!r}: {_fmt(d['area_ha'])} ha ({_fmt(d['area_in_region_ha'])} ha with values in "
               f"{d['region']}, covered share {d['covered_share']:.1%}; coordinates in {d['input_crs']}); "
               f"prices of {d['price_year']}")
    if d["warning"]:
        typer.secho(f"  warning: {d['warning']}", fg=typer.colors.YELLOW)
    _print_products(d["products"], "quantity lost", "value lost")
    typer.echo(f"  {'GEP lost':28s} {'':27s} {_fmt(d['gep_lost']):>18s} CNY")
    typer.echo(f"  {'GEP lost excl. contested (*)':28s} {'':27s} {_fmt(d['gep_lost_excl_contested']):>18s} CNY")
    typer.echo(f"  {'GEP lost per ha':28s} {'':27s} {_fmt(d['gep_lost_per_ha']):>18s} CNY/ha")
    if d["parcels"]:
        typer.echo(f"  parcels cut: {d['parcels_total']}" + (" (largest overlaps listed)" if
                                                             d["parcels_total"] > len(d["parcels"]) else ""))
        for p in d["parcels"][:10]:
            share = p.get("share_of_parcel")
            typer.echo(f"    {p['parcel_id']:<16} {p.get('name') or '':12s} {_fmt(p['overlap_ha'], 3):>10s} ha"
                       + (f"  ({share:.1%} of the parcel)" if share is not None else ""))


_MIN_COVERAGE = typer.Option(0.0, "--min-coverage", min=0.0, max=1.0,
                             help="refuse a footprint with less than this share of its area over data (0..1); "
                                  "default 0: value the covered part and warn")
_REPORT = typer.Option(None, "--report", help="also write the printable site report (项目立项, HTML) to this file")


def _write_report(workspace: Optional[Path], year: Optional[int], results: list, path: Path) -> None:
    from ..query import RunWorkspace
    from ..query.layers import MapLayers
    from ..query.report import site_report_html

    path.write_text(site_report_html(MapLayers(RunWorkspace.open(workspace, year)), results), encoding="utf-8")
    typer.echo(f"report -> {path}", err=True)


def register(app: typer.Typer) -> None:
    """Add the query commands to ``eco``."""

    @app.command("parcel")
    def parcel(parcel_id: str = typer.Argument(..., help="parcel_id"), workspace: Optional[Path] = _WS,
               year: Optional[int] = _YEAR, as_json: bool = _JSON) -> None:
        """A parcel's catalogue: quantity and value of each product, GEP."""
        from ..query import ParcelStore, RunWorkspace

        try:
            ws = RunWorkspace.open(workspace, year)
            if ws.parcels_path is None:
                raise EcorasterError(f"{ws.root}: no products/parcels.parquet in this run")
            store = ParcelStore(ws.parcels_path, in_memory=False)
            feature = store.get(parcel_id)
        except EcorasterError as exc:
            _fail(exc, as_json)
        card = ws.parcel_catalogue(feature["properties"])
        if as_json:
            _echo_json({"ok": True, **card, "geometry": feature["geometry"], "crs": ws.describe()["crs"]})
        else:
            _print_catalogue(card)

    @app.command("parcels")
    def parcels(
        workspace: Optional[Path] = _WS,
        bbox: Optional[str] = typer.Option(None, "--bbox", help="minx,miny,maxx,maxy"),
        crs: Optional[str] = typer.Option(None, "--crs", help="CRS of --bbox / --within (EPSG:4326, EPSG:4490 or "
                                          "the grid CRS; default: grid CRS for --bbox)"),
        within: Optional[Path] = typer.Option(None, "--within", help="GeoJSON polygon: parcels overlapping it"),
        limit: int = typer.Option(100, "--limit", help="rows per page"),
        offset: int = typer.Option(0, "--offset", help="first row"),
        year: Optional[int] = _YEAR,
        as_json: bool = _JSON,
    ) -> None:
        """Parcels in a bbox or overlapping a polygon, with their GEP."""
        from ..query import ParcelStore, RunWorkspace, read_footprint
        from ..query.footprint import bbox_to_grid

        try:
            if (bbox is None) == (within is None):
                raise EcorasterError("give exactly one of --bbox minx,miny,maxx,maxy or --within FILE")
            ws = RunWorkspace.open(workspace, year)
            if ws.parcels_path is None:
                raise EcorasterError(f"{ws.root}: no products/parcels.parquet in this run")
            store = ParcelStore(ws.parcels_path, in_memory=False)
            if bbox is not None:
                try:
                    numbers = [float(v) for v in bbox.split(",")]
                except ValueError:
                    raise EcorasterError(f"--bbox {bbox!r}: expected four numbers minx,miny,maxx,maxy") from None
                page = store.in_bbox(bbox_to_grid(numbers, ws.grid.crs, crs), limit=limit, offset=offset)
                rows = [f["properties"] for f in page.features]
                total = page.number_matched
            else:
                fp = read_footprint(within, ws.grid.crs, crs=crs, max_area_ha=None)
                found = store.intersecting(fp.geometry)
                total = len(found)
                rows = []
                for r in found[offset:offset + limit]:
                    g = r.pop("_geometry")
                    r["overlap_ha"] = r.pop("overlap_m2") / 10_000.0
                    r["share_of_parcel"] = r["overlap_ha"] * 10_000.0 / g.area if g.area > 0 else None
                    rows.append(r)
        except EcorasterError as exc:
            _fail(exc, as_json)
        if as_json:
            _echo_json({"ok": True, "number_matched": total, "offset": offset, "limit": limit, "parcels": rows})
            return
        typer.echo(f"{total} parcel(s); showing {offset + 1 if rows else 0}–{offset + len(rows)}")
        extra = "overlap_ha" if within is not None else None
        for r in rows:
            typer.echo(f"  {r['parcel_id']:<16} {str(r.get('name') or ''):12s} {_fmt(r.get('area_ha')):>10s} ha "
                       f"GEP {_fmt(r.get('gep')):>16s} CNY"
                       + (f"   overlap {_fmt(r[extra], 3)} ha" if extra else ""))

    @app.command("site")
    def site(
        footprint: Path = typer.Argument(..., help="GeoJSON polygon of the project footprint"),
        workspace: Optional[Path] = _WS,
        year: Optional[int] = _YEAR,
        crs: Optional[str] = typer.Option(None, "--crs", help="CRS of the coordinates if the file has no 'crs'"),
        max_area_ha: float = typer.Option(10_000.0, "--max-area-ha", help="refuse larger footprints (ha)"),
        engine: str = typer.Option("window", "--engine", help="window (fast) | zonal (whole-raster zonal_stats)"),
        min_coverage: float = _MIN_COVERAGE,
        report: Optional[Path] = _REPORT,
        as_json: bool = _JSON,
    ) -> None:
        """Value lost if the footprint is built: every product's value and quantity inside it
        (a footprint partly outside the data: the covered part, its share and a warning)."""
        from ..query import value_site

        try:
            res = value_site(workspace, footprint, crs=crs, year=year, max_area_ha=max_area_ha, engine=engine,
                             min_coverage=min_coverage)
            if report is not None:
                _write_report(workspace, year, [res], report)
        except EcorasterError as exc:
            _fail(exc, as_json)
        if as_json:
            _echo_json({"ok": True, **res.to_dict()})
        else:
            _print_site(res)

    @app.command("compare")
    def compare(
        sites: list[Path] = typer.Argument(..., help="GeoJSON footprints of candidate sites"),
        workspace: Optional[Path] = _WS,
        year: Optional[int] = _YEAR,
        crs: Optional[str] = typer.Option(None, "--crs", help="CRS of the coordinates if a file has no 'crs'"),
        max_area_ha: float = typer.Option(10_000.0, "--max-area-ha", help="refuse larger footprints (ha)"),
        min_coverage: float = _MIN_COVERAGE,
        report: Optional[Path] = _REPORT,
        as_json: bool = _JSON,
    ) -> None:
        """Rank candidate sites by the GEP they would take away (least first)."""
        from ..query import compare_sites, ranking_table

        try:
            ranked = compare_sites(workspace, list(sites), crs=crs, year=year, max_area_ha=max_area_ha,
                                   min_coverage=min_coverage)
            if report is not None:
                _write_report(workspace, year, ranked, report)
        except EcorasterError as exc:
            _fail(exc, as_json)
        table = ranking_table(ranked)
        if as_json:
            _echo_json({"ok": True, "ranking": table, "sites": [r.to_dict() for r in ranked]})
            return
        typer.echo(f"{'rank':>4}  {'site':20s} {'area ha':>10s} {'covered':>8s} {'GEP lost CNY':>18s} "
                   f"{'CNY/ha':>14s} {'excl. contested':>18s}")
        for row in table:
            typer.echo(f"{row['rank']:>4}  {row['site'][:20]:20s} {_fmt(row['area_ha']):>10s} "
                       f"{row['covered_share']:>8.1%} {_fmt(row['gep_lost']):>18s} "
                       f"{_fmt(row['gep_lost_per_ha']):>14s} {_fmt(row['gep_lost_excl_contested']):>18s}")
        for r in ranked:
            if r.warning:
                typer.secho(f"warning: {r.name}: {r.warning}", fg=typer.colors.YELLOW)

    @app.command("serve")
    def serve(
        workspace: Optional[Path] = _WS,
        year: Optional[int] = _YEAR,
        host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
        port: int = typer.Option(8000, "--port", help="port"),
        max_area_ha: float = typer.Option(10_000.0, "--max-area-ha", help="refuse larger footprints (ha)"),
        workers: int = typer.Option(1, "--workers", min=1, max=64,
                                    help="server processes (each loads the parcel table; more than one "
                                         "uses more cores for parallel requests)"),
    ) -> None:
        """Serve the HTTP API (OpenAPI at /docs) and the map page (/) for a run."""
        import uvicorn

        from ..api.app import SERVE_ENV, create_app

        try:
            if workers == 1:
                api = create_app(workspace, year=year, max_area_ha=max_area_ha)
            else:  # each worker process builds its app from the environment (uvicorn needs an import string)
                from ..query import RunWorkspace

                root = RunWorkspace.open(workspace, year).root  # refuse a bad workspace here, once
                os.environ[SERVE_ENV] = json.dumps({"workspace": str(root), "max_area_ha": max_area_ha})
        except EcorasterError as exc:
            _fail(exc, False)
        typer.echo(f"map: http://{host}:{port}/   API docs: http://{host}:{port}/docs"
                   + (f"   ({workers} worker processes)" if workers > 1 else ""), err=True)
        # a server has no partial results: SIGTERM (systemd, docker stop) is a normal stop, exit 0 after
        # uvicorn's graceful shutdown (uvicorn handles the signal, then passes it on to this handler)
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
        if workers == 1:
            uvicorn.run(api, host=host, port=port, log_level="warning")
        else:
            uvicorn.run("ecoraster.api.app:app_from_env", factory=True, workers=workers, host=host, port=port,
                        log_level="warning")

    @app.command("parcels-to-postgis")
    def parcels_to_postgis(
        workspace: Optional[Path] = _WS,
        dsn: Optional[str] = typer.Option(None, "--dsn", help="postgresql://user:pass@host:5432/db"),
        table: str = typer.Option("parcels", "--table", help="table name"),
        schema: Optional[str] = typer.Option(None, "--schema", help="schema (default: the search path)"),
        if_exists: str = typer.Option("fail", "--if-exists", help="fail | replace | append"),
        sql_out: Optional[Path] = typer.Option(None, "--sql-out", help="write a SQL dump (psql -f) instead"),
        year: Optional[int] = _YEAR,
        as_json: bool = _JSON,
    ) -> None:
        """Load the run's parcel table into PostGIS (or write a SQL dump for psql)."""
        from ..query.postgis import dump_parcels_sql, load_parcels_postgis

        try:
            if sql_out is not None:
                out = dump_parcels_sql(workspace, sql_out, table=table, schema=schema, year=year)
                msg = {"ok": True, "sql": str(out)}
            elif dsn:
                n = load_parcels_postgis(workspace, dsn, table=table, schema=schema, if_exists=if_exists, year=year)
                msg = {"ok": True, "rows": n, "table": f"{schema + '.' if schema else ''}{table}"}
            else:
                raise EcorasterError("give --dsn postgresql://… or --sql-out FILE.sql")
        except EcorasterError as exc:
            _fail(exc, as_json)
        if as_json:
            _echo_json(msg)
        else:
            typer.echo(", ".join(f"{k}: {v}" for k, v in msg.items() if k != "ok"))
