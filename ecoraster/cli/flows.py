"""``eco flow …``: run the Prefect flows (or their steps without Prefect) and serve them.

    eco flow annual configs/wuhan_2013.yaml -w outputs/wuhan_2013
    eco flow new-imagery configs/wuhan_2013.yaml -w outputs/wuhan_2013 --dataset wuhan_lulc_2013 --scene new.tif
    eco flow new-imagery configs/wuhan_2013.yaml -w outputs/wuhan_2013 --folder incoming --pattern '*.tif=wuhan_lulc_2013'
    eco flow serve --config configs/wuhan_2013.yaml --workspace outputs/wuhan_2013

Both ways run the one runner (:func:`ecoraster.pipeline.run`): ``--no-prefect`` in this
process, otherwise through the Prefect flows of ``flows/``, imported only inside these
commands (after the offline settings); the library itself never imports ``flows``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import EcorasterError

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
    if "manifest" not in summary:
        typer.echo("no new scenes")
        return
    typer.echo(f"manifest: {summary['manifest']} ({'updated' if summary.get('changed') else 'unchanged'})")
    typer.echo(f"computed: {', '.join(summary.get('computed') or []) or '-'}")
    typer.echo(f"reused:   {', '.join(summary.get('cached') or []) or '-'}")


def _fail(exc: Exception, as_json: bool) -> None:
    from .main import _fail as fail

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
            from ..pipeline import run
            from ..pipeline.runner import resolve_run

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
    """Ingest a new scene (or scan a folder) and recompute only what depends on it."""
    patterns = dict(p.split("=", 1) for p in pattern or [])
    if not ((scene and dataset) or (folder and patterns)):
        _fail(EcorasterError("give --scene and --dataset, or --folder and --pattern GLOB=DATASET"), as_json)
    try:
        if no_prefect:
            from ..pipeline import incremental

            wanted = ([{"scene": str(scene), "dataset": dataset}] if scene
                      else incremental.scan_folder(folder, patterns, workspace))
            summary: dict = {"scenes": []}
            if wanted:
                result, facts, deps = incremental.update(config, workspace, wanted)
                summary = {**result.summary(), "scenes": facts, "dependents": deps}
        else:
            _settings(verbose)
            from flows.new_imagery import on_new_imagery

            summary = on_new_imagery(str(config), str(workspace), scene=str(scene) if scene else None,
                                     dataset=dataset, folder=str(folder) if folder else None,
                                     patterns=patterns or None, dask_address=address)
    except EcorasterError as exc:
        _fail(exc, as_json)
    _report(summary, as_json)


@flow_app.command("serve")
def serve(
    config: Path = typer.Option(..., "--config", help="run config (configs/<region>_<year>.yaml)"),
    workspace: Path = typer.Option(..., "--workspace", "-w", help="run workspace the deployments write to"),
    watch_folder: Optional[Path] = typer.Option(None, "--watch-folder", help="folder scanned for new imagery"),
    pattern: Optional[list[str]] = typer.Option(None, "--pattern", help="GLOB=DATASET (repeatable)"),
    interval: int = typer.Option(3600, "--interval", help="seconds between folder scans"),
) -> None:
    """Serve the annual (cron, Asia/Shanghai) and new-imagery (interval) deployments; runs until stopped."""
    _settings(True)
    from flows.serve import main

    args = ["--config", str(config), "--workspace", str(workspace), "--interval", str(interval)]
    if watch_folder:
        args += ["--watch-folder", str(watch_folder)]
    for p in pattern or []:
        args += ["--pattern", p]
    main(args)


def register(app: typer.Typer) -> None:
    """Add ``eco flow …`` to the ``eco`` CLI."""
    app.add_typer(flow_app, name="flow")
