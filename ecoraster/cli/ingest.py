"""``eco ingest …``: bring analysts' native data onto a grid (calls ``ecoraster.ingest``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import EcorasterError

ingest_app = typer.Typer(help="Ingest native data: land cover, stations, new scenes.", no_args_is_help=True)


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _grid_from(like: Optional[Path], source: Path):
    from ..grid import Grid

    return Grid.from_raster(like or source)


@ingest_app.command("check-codes")
def check_codes_cmd(source: Path = typer.Argument(..., help="land-cover raster to check"), table: str = typer.Option(..., "--table", "-t", help="e.g. esa_worldcover, clcd, sandiao_level2, wuhan_plus, or a CSV")) -> None:
    """Check that every code of a land-cover raster has a row in a reclassification table."""
    from ..ingest.landcover import check_codes

    try:
        counts = check_codes(source, table)
    except EcorasterError as exc:
        _fail(exc)
    typer.echo(json.dumps({str(k): v for k, v in counts.items()}))


@ingest_app.command("landcover")
def landcover_cmd(
    source: Path = typer.Argument(..., help="land-cover raster in its own legend"),
    table: str = typer.Option(..., "--table", "-t", help="reclassification table name or CSV"),
    out: Path = typer.Option(..., "--out", "-o", help="output COG of GEP classes"),
    like: Optional[Path] = typer.Option(None, "--like", help="align to this raster's grid (default: the source's)"),
) -> None:
    """Reclassify a land-cover raster to the GEP ecosystem classes and write a COG."""
    from ..ingest.landcover import reclassify
    from ..io.raster import RasterOutput, write_rasters

    try:
        grid = _grid_from(like, source)
        classes = reclassify(source, table, grid)
        write_rasters([RasterOutput(out, classes.data, 0, "class", f"GEP ecosystem class ({table})",
                                    dtype="uint8", categorical=True)], grid)
    except EcorasterError as exc:
        _fail(exc)
    typer.echo(f"-> {out}")


@ingest_app.command("stations")
def stations_cmd(
    source: Path = typer.Argument(..., help="station table: CNEMC daily text (.txt) or CSV"),
    pollutant: str = typer.Option(..., "--pollutant", "-p", help="column, e.g. PM2.5, NO2, SO2, O3"),
    like: Path = typer.Option(..., "--like", help="raster whose grid the concentration grid takes"),
    out: Path = typer.Option(..., "--out", "-o", help="output COG (µg/m³)"),
    method: str = typer.Option("idw", "--method", help="idw | kriging"),
    start: Optional[str] = typer.Option(None, help="first day of the averaging period (default: all days)"),
    end: Optional[str] = typer.Option(None, help="last day of the averaging period"),
    min_fraction: float = typer.Option(0.75, help="share of valid days a station needs"),
) -> None:
    """Station table (CNEMC text or CSV) → QC → period mean → IDW / kriging grid (COG) + report."""
    from ..grid import Grid
    from ..ingest import monitoring as mon
    from ..io.raster import RasterOutput, write_rasters

    try:
        grid = Grid.from_raster(like)
        raw = mon.read_cnemc(source) if source.suffix.lower() == ".txt" else mon.read_station_csv(source, [pollutant])
        clean, qc = mon.qc_observations(raw, [pollutant])
        daily = mon.daily_means(clean, pollutant)
        first, last = start or str(daily["date"].min().date()), end or str(daily["date"].max().date())
        means = mon.period_means(daily, pollutant, start=first, end=last, min_fraction=min_fraction)
        conc, report = mon.interpolate_stations(means, pollutant, grid, method=method)
        write_rasters([RasterOutput(out, conc.data, float("nan"), conc.attrs.get("units", "µg/m3"),
                                    f"{pollutant} mean {first}..{last} ({method})")], grid)
    except EcorasterError as exc:
        _fail(exc)
    report_path = out.with_suffix(".report.json")
    report_path.write_text(json.dumps({"qc": qc, "interpolation": report}, ensure_ascii=False, indent=2, default=str),
                           encoding="utf-8")
    typer.echo(f"-> {out} (LOOCV RMSE {report.get('loocv_rmse')}), report {report_path}")


@ingest_app.command("scan")
def scan_cmd(
    folder: Path = typer.Argument(..., help="folder of new scenes to scan"),
    catalog: Path = typer.Option(..., "--catalog", help="STAC catalog.json of ingested scenes"),
    add: bool = typer.Option(False, "--add", help="add the new scenes to the catalogue"),
) -> None:
    """List scenes in FOLDER not yet in the STAC catalogue (by checksum); --add records them."""
    from ..ingest.stac import add_scenes, scan_new_scenes

    try:
        new = scan_new_scenes(folder, catalog)
        if add and new:
            add_scenes(new, catalog)
    except EcorasterError as exc:
        _fail(exc)
    for p in new:
        typer.echo(str(p))


def register(app: typer.Typer) -> None:
    app.add_typer(ingest_app, name="ingest")
