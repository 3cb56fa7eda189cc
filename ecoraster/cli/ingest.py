"""``eco ingest …``: bring analysts' native data onto a grid (calls ``ecoraster.ingest``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import EcorasterError

ingest_app = typer.Typer(help="Ingest native data: land cover, stations, raw scenes, composites.",
                         no_args_is_help=True)


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


def _run_grid(config: Path):
    """The target grid of a run config (and the config, for its year)."""
    from ..config import RunConfig, build_grid

    cfg = RunConfig.load(config)
    return cfg, build_grid(cfg, cfg.load_catalog())


@ingest_app.command("scene")
def scene_cmd(
    path: Path = typer.Argument(..., help="Landsat C2 L2 folder / MTL.txt / MTL.json, Sentinel-2 L2A SAFE or band "
                                          "folder, MODIS SR GeoTIFF, or STAC Item JSON"),
    index: str = typer.Option("ndvi", "--index", "-i", help="ndvi | savi | fvc | lai"),
    out: Path = typer.Option(..., "--out", "-o", help="output COG"),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="write on this run's grid (default: the scene's)"),
    min_valid_share: Optional[float] = typer.Option(None, "--min-valid-share",
                                                    help="refuse the scene under this share of valid pixels "
                                                         "(default: scene.min_valid_share of optical.yaml)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """A raw scene → sensor from its metadata → scaled, QA/SCL-masked index as a COG (valid share,
    scene id, acquisition date and mask in its tags)."""
    from ..ingest.scenes import scene_index, write_scene_index

    try:
        grid = _run_grid(config)[1] if config else None
        result = scene_index(path, index, grid=grid, min_valid_share=min_valid_share)
        write_scene_index(result, out)
    except EcorasterError as exc:
        _fail(exc)
    facts = {**result.describe(), "out": str(out)}
    if as_json:
        typer.echo(json.dumps(facts, ensure_ascii=False, default=str))
    else:
        typer.echo(f"{facts['sensor']} {facts['scene_id']} ({facts['acquired'][:10]}): {index} -> {out} "
                   f"(valid share {result.valid_share:.1%})")


@ingest_app.command("composite")
def composite_cmd(
    scenes: list[Path] = typer.Argument(..., help="index COGs from `eco ingest scene`, or one dated multi-band series"),
    rule: str = typer.Option("max", "--rule", help="max | median"),
    period: Optional[str] = typer.Option(None, "--period", help="YYYY or YYYY-MM (default: the scenes' year)"),
    out: Path = typer.Option(..., "--out", "-o", help="output COG; counts go to <stem>_count.tif beside it"),
    mask: Optional[Path] = typer.Option(None, "--mask", help="cloud mask of a multi-band series (1 = cloud)"),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="composite on this run's grid; the period "
                                                                        "(default: the run's year) must be in it"),
    min_valid_share: float = typer.Option(0.0, "--min-valid-share", help="drop scenes under this valid share"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Per-pixel max / median composite of the scenes of a period, with valid-observation counts."""
    from ..ingest.composites import check_period_in_year, composite_scenes, parse_period, write_composite

    try:
        grid = None
        chosen = parse_period(period) if period else None
        if config:
            cfg, grid = _run_grid(config)
            chosen = chosen or parse_period(cfg.year)
            check_period_in_year(chosen, cfg.year, "--period")
        result = composite_scenes(scenes, rule, chosen, grid=grid, mask=mask, min_valid_share=min_valid_share)
        comp, counts = write_composite(result, out)
    except EcorasterError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps({**result.report, "out": str(comp), "counts": str(counts)}, ensure_ascii=False))
    else:
        rep = result.report
        typer.echo(f"{rule} composite {rep['period']} of {rep['used']} scene(s) -> {comp}; counts -> {counts}"
                   + (f"; {len(rep['outside_period'])} outside the period" if rep["outside_period"] else ""))


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
