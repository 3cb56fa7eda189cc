"""``eco flow …``: run the Prefect flows (or their steps without Prefect) and serve them.

    eco flow annual configs/wuhan_2013.yaml -w outputs/wuhan_2013
    eco flow new-imagery configs/wuhan_2013.yaml -w outputs/wuhan_2013 --dataset wuhan_lulc_2013 --scene new.tif
    eco flow new-imagery configs/wuhan_2013.yaml -w outputs/wuhan_2013 --folder incoming --pattern '*.tif=wuhan_lulc_2013'
    eco flow new-imagery configs/wuhan_2013.yaml -w outputs/wuhan_2013 --dataset wuhan_ndvi_monthly \
        --scene LC08_L2SP_123039_20130715_20200912_02_T1/        # raw scene for a dataset with derive:
    eco flow new-monitoring configs/wuhan_2013.yaml -w outputs/wuhan_2013 --stations cnemc_2013.csv
    eco flow serve --config configs/wuhan_2013.yaml --workspace outputs/wuhan_2013

Both ways run the one runner (:func:`ecoraster.pipeline.run`): ``--no-prefect`` in this
process, otherwise through the Prefect flows of this package, imported only inside these
commands. This group lives in ``flows/`` and joins the ``eco`` CLI through the entry point group
``ecoraster.cli`` (``pyproject.toml``), so the library itself never imports ``flows``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ecoraster.errors import EcorasterError

flow_app = typer.Typer(help="Prefect flows: the annual run, new imagery, serving the deployments.",
                       no_args_is_help=True)


def _settings(verbose: bool) -> None:
    from flows import _settings  # noqa: F401  (applies the offline defaults)

    if verbose:
        _settings.set_verbose()


def _report(summary: dict, as_json: bool) -> None:
    if as_json:
        slim = {k: v for k, v in summary.items() if k != "outcomes"}
        typer.echo(json.dumps({"ok": True, **slim}, ensure_ascii=False, default=str))
        return
    for sc_ in summary.get("scenes") or []:
        if "valid_share" in sc_:
            typer.echo(f"scene {sc_['scene_id']} ({sc_['acquired'][:10]}, {sc_['sensor']}) → {sc_['dataset']} "
                       f"{sc_['period']}: valid share {sc_['valid_share']:.1%}{'' if sc_['new'] else ' (already taken)'}")
    if "manifest" not in summary:
        typer.echo("no new scenes" if not summary.get("scenes") else "nothing changed: no run")
        return
    typer.echo(f"manifest: {summary['manifest']} ({'updated' if summary.get('changed') else 'unchanged'})")
    typer.echo(f"computed: {', '.join(summary.get('computed') or []) or '-'}")
    typer.echo(f"reused:   {', '.join(summary.get('cached') or []) or '-'}")


def _fail(exc: Exception, as_json: bool) -> None:
    from ecoraster.cli.main import _fail as fail

    fail(exc, as_json)


@flow_app.command("annual")
def annual(
    config: Optional[Path] = typer.Argument(None, help="run config (or --region/--year)"),
    workspace: Optional[Path] = typer.Option(None, "--workspace", "-w", help="output folder"),
    region: Optional[str] = typer.Option(None, help="region (config = $ECORASTER_CONFIG_DIR/<region>_<year>.yaml)"),
    year: Optional[int] = typer.Option(None, help="year (default: last year)"),
    service: Optional[list[str]] = typer.Option(None, "--service", "-s", help="only these services"),
    address: Optional[str] = typer.Option(None, "--dask-address", help="existing dask scheduler"),
    force: bool = typer.Option(False, "--force", help="recompute every step"),
    no_prefect: bool = typer.Option(False, "--no-prefect", help="run the steps without Prefect"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log what happens"),
) -> None:
    """The annual GEP run: services → valuation → zones → products → manifest (cached steps reused)."""
    try:
        if no_prefect:
            from ecoraster.pipeline import run
            from ecoraster.pipeline.runner import resolve_run

            cfg, ws = resolve_run(region, year, str(config) if config else None, str(workspace) if workspace else None)
            result = run(cfg, ws, services=service or None, cache=not force)
            summary = {**result.summary(), "outcomes": [o.summary() for o in result.outcomes]}
        else:
            _settings(verbose)
            from flows.annual import annual_gep

            summary = annual_gep(region=region, year=year, config=str(config) if config else None,
                                 workspace=str(workspace) if workspace else None, services=service or None,
                                 dask_address=address, force=force)
    except EcorasterError as exc:
        _fail(exc, as_json)
    _report(summary, as_json)


@flow_app.command("new-imagery")
def new_imagery(
    config: Path = typer.Argument(..., help="run config (configs/<region>_<year>.yaml)"),
    workspace: Path = typer.Option(..., "--workspace", "-w", help="workspace of an earlier run"),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="catalogue id the scene replaces"),
    scene: Optional[Path] = typer.Option(None, "--scene", help="raster or STAC Item JSON"),
    folder: Optional[Path] = typer.Option(None, "--folder", help="folder to scan for new scenes"),
    pattern: Optional[list[str]] = typer.Option(None, "--pattern", help="GLOB=DATASET (repeatable)"),
    address: Optional[str] = typer.Option(None, "--dask-address", help="existing dask scheduler"),
    no_prefect: bool = typer.Option(False, "--no-prefect", help="run the steps without Prefect"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log what happens"),
) -> None:
    """New imagery → only what depends on it recomputed. A raw scene (Landsat C2 L2 folder / MTL,
    Sentinel-2 L2A, MODIS SR, STAC Item) for a dataset that declares derive:, else a ready raster."""
    patterns = dict(p.split("=", 1) for p in pattern or [])
    if not ((scene and dataset) or (folder and (patterns or dataset))):
        _fail(EcorasterError("give --scene and --dataset, --folder and --dataset (raw products), "
                             "or --folder and --pattern GLOB=DATASET"), as_json)
    try:
        if no_prefect:
            from ecoraster.pipeline import observations

            summary = observations.new_imagery(config, workspace, scene=str(scene) if scene else None,
                                               dataset=dataset, folder=str(folder) if folder else None,
                                               patterns=patterns or None)
        else:
            _settings(verbose)
            from flows.new_imagery import on_new_imagery

            summary = on_new_imagery(str(config), str(workspace), scene=str(scene) if scene else None,
                                     dataset=dataset, folder=str(folder) if folder else None,
                                     patterns=patterns or None, dask_address=address)
    except EcorasterError as exc:
        _fail(exc, as_json)
    _report(summary, as_json)


@flow_app.command("new-monitoring")
def new_monitoring(
    config: Path = typer.Argument(..., help="run config the workspace was made with"),
    workspace: Path = typer.Option(..., "--workspace", "-w", help="workspace of an earlier run"),
    stations: Path = typer.Option(..., "--stations", help="station table: CNEMC .txt, or CSV / XLSX "
                                                          "(national stations, micro-stations, city series)"),
    dataset: Optional[list[str]] = typer.Option(None, "--dataset", help="only these concentration datasets"),
    period: Optional[str] = typer.Option(None, "--period", help="YYYY or YYYY-MM in the run's year "
                                                                "(default: the dataset's, the run's year)"),
    method: Optional[str] = typer.Option(None, "--method", help="idw | kriging (default: the dataset's, idw)"),
    min_fraction: Optional[float] = typer.Option(None, "--min-fraction", help="share of valid days a station needs"),
    column: Optional[list[str]] = typer.Option(None, "--column", help="NAME=ROLE for a column the reader does not "
                                                                      "know (ROLE: station_id, lon, lat, time, "
                                                                      "PM2_5 …, or ignore)"),
    address: Optional[str] = typer.Option(None, "--dask-address", help="existing dask scheduler"),
    no_prefect: bool = typer.Option(False, "--no-prefect", help="run the steps without Prefect"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log what happens"),
) -> None:
    """Grid monitoring (网格化监测): a station table → QC → period means → IDW / kriging (LOOCV RMSE)
    → the run's concentration datasets replaced → air purification recomputed."""
    columns = dict(c.split("=", 1) for c in column or [])
    kw = dict(datasets=dataset or None, period=period, method=method, min_fraction=min_fraction,
              columns=columns or None)
    try:
        if no_prefect:
            from ecoraster.pipeline import observations

            summary = observations.new_monitoring(config, workspace, str(stations), **kw)
        else:
            _settings(verbose)
            from flows.new_monitoring import on_new_monitoring

            summary = on_new_monitoring(str(config), workspace=str(workspace), stations=str(stations), dask_address=address, **kw)
    except EcorasterError as exc:
        _fail(exc, as_json)
    _report(summary, as_json)
    if not as_json:
        for d in summary.get("stations", {}).get("datasets", []):
            typer.echo(f"{d['dataset']}: {d['pollutant']} {d['period']} {d['method']} of {d['n_stations']} stations, "
                       f"LOOCV RMSE {d['loocv_rmse']:.2f} {d['units']}")


@flow_app.command("serve")
def serve(
    config: Path = typer.Option(..., "--config", help="run config (configs/<region>_<year>.yaml)"),
    workspace: Path = typer.Option(..., "--workspace", "-w", help="run workspace the deployments write to"),
    watch_folder: Optional[Path] = typer.Option(None, "--watch-folder", help="folder scanned for new imagery"),
    pattern: Optional[list[str]] = typer.Option(None, "--pattern", help="GLOB=DATASET (repeatable)"),
    interval: int = typer.Option(3600, "--interval", help="seconds between folder scans"),
    server_port: int = typer.Option(4200, "--server-port", help="local Prefect server: used, or started"),
    no_server: bool = typer.Option(False, "--no-server", help="never start a server (need PREFECT_API_URL)"),
) -> None:
    """Serve the annual (cron, Asia/Shanghai) and new-imagery (interval) deployments with a real Prefect
    server (PREFECT_API_URL, one on --server-port, or started here); runs until stopped (SIGTERM)."""
    _settings(True)
    from flows.serve import main

    args = ["--config", str(config), "--workspace", str(workspace), "--interval", str(interval),
            "--server-port", str(server_port)]
    if watch_folder:
        args += ["--watch-folder", str(watch_folder)]
    for p in pattern or []:
        args += ["--pattern", p]
    if no_server:
        args.append("--no-server")
    main(args)


@flow_app.command("worker")
def worker(
    pool: str = typer.Option("gep-process", "--pool", help="work pool (type process)"),
    name: Optional[str] = typer.Option(None, "--name", help="worker name shown in the Prefect UI (default: Prefect's)"),
    limit: Optional[int] = typer.Option(None, "--limit", help="flow runs at a time"),
) -> None:
    """A worker of a Process work pool (PREFECT_API_URL) that stops on the first SIGTERM."""
    _settings(True)
    from flows.worker import main

    main(["--pool", pool, *(["--name", name] if name else []), *(["--limit", str(limit)] if limit else [])])


def register(app: typer.Typer) -> None:
    """Add ``eco flow …`` to the ``eco`` CLI."""
    app.add_typer(flow_app, name="flow")
