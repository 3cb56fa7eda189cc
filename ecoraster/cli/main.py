"""``eco``: the command line of ecoraster (typer). Every command calls the library.

Progress goes to stderr, as a bar only when stderr is a terminal; ``--json`` prints
machine-readable results on stdout.
"""

from __future__ import annotations

import json
import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer

from ..errors import EcorasterError, ValidationFailed

app = typer.Typer(help="ecoraster: GEP (生态产品总值) accounting on rasters.", no_args_is_help=True,
                  pretty_exceptions_enable=False)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _fail(exc: Exception, as_json: bool) -> None:
    if as_json:
        payload = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
        if isinstance(exc, ValidationFailed):
            payload["issues"] = [i.to_dict() for i in exc.issues]
        typer.echo(json.dumps(payload, ensure_ascii=False))
    else:
        if isinstance(exc, ValidationFailed) and len(exc.issues) > 1:  # one line per problem, listed once
            typer.secho(f"error: {len(exc.issues)} problem(s):", fg=typer.colors.RED, err=True)
            for issue in exc.issues:
                typer.echo(f"  - {issue}", err=True)
        else:
            typer.secho(f"error: {exc.issues[0] if isinstance(exc, ValidationFailed) else exc}",
                        fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@contextmanager
def _progress_bar(enabled: bool) -> Iterator:
    """A rich progress bar on stderr if it is a terminal; otherwise a no-op callback."""
    if not (enabled and sys.stderr.isatty()):
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    tasks: dict[str, int] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=False) as bar:
        def update(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done, total=total)

        yield update


def _print_version(value: bool) -> None:
    if not value:
        return
    from .. import __version__
    from ..provenance import software_provenance

    prov = software_provenance()
    commit = prov.get("git_commit")
    dirty = " +changes" if prov.get("git_dirty") else ""
    typer.echo(f"ecoraster {__version__}" + (f" (git {commit[:12]}{dirty})" if commit else ""))
    raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", "-V", callback=_print_version, is_eager=True,
                                       help="print the version (and the git commit) and exit")) -> None:
    """ecoraster: GEP (生态产品总值) accounting on rasters."""


@app.command("list")
def list_services(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List the registered services."""
    from ..registry import all_specs

    specs = all_specs()
    if as_json:
        typer.echo(json.dumps([{"id": s.id, "name": s.name, "name_zh": s.name_zh, "category": s.category,
                                "methods": list(s.method_ids)} for s in specs], ensure_ascii=False))
        return
    for s in specs:
        typer.echo(f"{s.id:24s} {s.name_zh}  {s.name}  [{s.category}]")


@app.command("getspec")
def getspec(
    service: Optional[str] = typer.Argument(None, help="service id (eco list); omit with --markdown / --glossary / "
                                                       "--methods"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    markdown: bool = typer.Option(False, "--markdown", help="print the configuration reference of every service "
                                                            "as Markdown (docs/configuration.md)"),
    glossary: bool = typer.Option(False, "--glossary", help="print the glossary of product codes (docs/glossary.md)"),
    methods: bool = typer.Option(False, "--methods", help="print the methods: formulas, parameter tables, prices "
                                                          "(docs/methods.md)"),
) -> None:
    """Show a service's declared inputs, parameters and outputs (or the reference documents)."""
    from ..registry import get_spec
    from ..services._constants import described_spec

    if markdown or glossary or methods:
        from .. import reference

        text = (reference.configuration_reference() if markdown else reference.product_glossary() if glossary
                else reference.methods_markdown())
        sys.stdout.write(text)
        return
    if service is None:
        _fail(EcorasterError("give a service id (eco list), or --markdown / --glossary / --methods"), as_json)
    try:
        spec = described_spec(get_spec(service))
    except EcorasterError as exc:
        _fail(exc, as_json)
    if as_json:
        typer.echo(spec.model_dump_json(indent=2))
        return
    typer.echo(f"{spec.id}: {spec.name_zh} {spec.name} [{spec.category}]\n  {spec.about}\n  ref: {spec.reference}")
    typer.echo("inputs:")
    for i in spec.inputs:
        typer.echo(f"  {i.id:18s} {i.kind:7s} {i.units or '':12s} {'' if i.required else '(optional) '}{i.about}")
    if spec.parameters:
        typer.echo("parameters:")
        for p in spec.parameters:
            typer.echo(f"  {p.id:18s} {p.default!s:>10} {p.units:12s} {p.confidence or ''} {p.about}")
    typer.echo("outputs:")
    for o in spec.outputs:
        typer.echo(f"  {o.id:18s} {o.units:10s} per {o.per:5s} nodata {o.nodata:g}  {o.filename}  {o.about}")


@app.command("validate")
def validate(
    config: Path = typer.Argument(..., help="run config (configs/<region>_<year>.yaml)"),
    service: Optional[list[str]] = typer.Option(None, "--service", "-s", help="only these services"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Check a run config and its inputs; print every problem; exit 1 if any."""
    from ..pipeline import validate_run

    issues = validate_run(config, service or None)
    if as_json:
        typer.echo(json.dumps({"ok": not issues, "issues": [i.to_dict() for i in issues]}, ensure_ascii=False))
    elif issues:
        typer.secho(f"{len(issues)} problem(s) in {config}:", fg=typer.colors.RED, err=True)
        for issue in issues:
            typer.echo(f"  - {issue}", err=True)
    else:
        typer.echo(f"{config}: ok")
    if issues:
        raise typer.Exit(1)


@app.command("run")
def run(
    config: Path = typer.Argument(..., help="run config (configs/<region>_<year>.yaml)"),
    workspace: Path = typer.Option(Path("workspace"), "--workspace", "-w", help="output folder"),
    service: Optional[list[str]] = typer.Option(None, "--service", "-s", help="only these services"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log what happens"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
    sensitivity: bool = typer.Option(False, "--sensitivity",
                                     help="also write products/sensitivity.csv (low / central / high per "
                                          "product and zone; same as `eco sensitivity WORKSPACE`)"),
    force: bool = typer.Option(False, "--force", help="recompute every step (default: reuse unchanged ones)"),
) -> None:
    """Run a config: validate, compute services, value, aggregate to zones, write the products and
    the manifest. Steps whose inputs, tables, prices and code are unchanged are reused."""
    from ..pipeline import run as run_pipeline

    _setup_logging(verbose)
    try:
        with _progress_bar(not quiet and not as_json) as progress:
            result = run_pipeline(config, workspace, services=service or None, progress=progress, cache=not force)
        if sensitivity and (result.workspace / "products" / "catalogue.parquet").is_file():
            from ..accounting.sensitivity import run_sensitivity

            run_sensitivity(result.workspace)
    except EcorasterError as exc:
        _fail(exc, as_json)
    if as_json:
        typer.echo(json.dumps({"ok": True, "workspace": str(result.workspace),
                               "manifest": str(result.manifest_path), "changed": result.changed,
                               "computed": result.computed, "cached": result.cached,
                               "services": {k: v.to_dict() for k, v in result.services.items()},
                               "zonal_tables": {k: str(v) for k, v in result.zonal_tables.items()}},
                              ensure_ascii=False))
        return
    _print_summary(result)


def _print_summary(result, max_rows: int = 15) -> None:
    typer.echo(f"outputs in {result.workspace}")
    for sid, res in result.services.items():
        typer.echo(f"{sid}:")
        for name, (value, units) in res.totals.items():
            typer.echo(f"  {name:32s} {value:>20,.3f} {units}")
        for rec in res.outputs.values():
            typer.echo(f"  -> {rec.path}")
        for note in res.notes:
            typer.echo(f"  note: {note}")
    for name, path in result.zonal_tables.items():
        import pandas as pd

        table = pd.read_csv(path, encoding="utf-8-sig")
        shown = f"first {max_rows} of {len(table)} rows" if len(table) > max_rows else f"{len(table)} rows"
        typer.echo(f"\nzones {name!r} ({path}, {shown}):")
        with pd.option_context("display.width", 160, "display.max_columns", 12,
                               "display.float_format", "{:,.1f}".format):
            typer.echo(table.head(max_rows).to_string(index=False))
    typer.echo(f"\nmanifest: {result.manifest_path} ({'updated' if result.changed else 'unchanged'}; "
               f"computed: {', '.join(result.computed) or '-'})")


@app.command("zonal")
def zonal(
    raster: list[Path] = typer.Argument(..., help="one or more rasters"),
    zones: Path = typer.Option(..., "--zones", "-z", help="polygons (GeoPackage, GeoJSON, GeoParquet, …)"),
    id_field: str = typer.Option(..., "--id", help="unique zone id field"),
    stat: list[str] = typer.Option(["sum"], "--stat", help="sum | mean | count (repeatable)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="FILE.csv or FILE.parquet"),
    engine: str = typer.Option("ecoraster", "--engine", help="ecoraster (fast, cached weights) | exactextract"),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="reuse zone weights across runs"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Coverage-weighted zonal statistics of rasters over polygons (float64, every zone kept)."""
    from ..zonal import zonal_stats

    try:
        table = zonal_stats({p.stem: p for p in raster}, zones, id_field, stats=tuple(stat), engine=engine,
                            cache_dir=cache_dir)
        for name, mb in table.attrs.pop("mass_balance", {}).items():
            typer.echo(f"mass balance {name}: zones {mb.zones_total:.6g} vs raster inside {mb.inside_total:.6g} "
                       f"(rel diff {mb.rel_diff:.1e}, overlap {mb.overlap_px:.1f} px)", err=True)
    except EcorasterError as exc:
        _fail(exc, as_json)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() == ".parquet":
            table.to_parquet(out)
        elif out.suffix.lower() == ".csv":
            table.to_csv(out, encoding="utf-8-sig")
        else:
            _fail(EcorasterError(f"--out {out}: use a .csv or .parquet file name"), as_json)
    if as_json:
        typer.echo(table.reset_index().to_json(orient="records", force_ascii=False))
    elif out is None:
        typer.echo(table.to_string())
    else:
        typer.echo(f"{len(table)} zones -> {out}")


#: entry-point group through which other packages add command groups (``flows`` adds ``eco flow``)
CLI_ENTRY_POINTS = "ecoraster.cli"


def _register_command_groups() -> None:
    from importlib.metadata import entry_points

    from . import ingest, products, query, reports

    for module in (ingest, products, query, reports):
        module.register(app)
    for ep in entry_points(group=CLI_ENTRY_POINTS):  # e.g. flows.cli:register → `eco flow …`
        try:
            register = ep.load()
        except ImportError:  # the contributing package is not importable here (e.g. a wheel without flows)
            continue
        register(app)


_register_command_groups()


#: exit codes of ``eco`` (README "Exit codes")
EXIT_INPUT, EXIT_USAGE, EXIT_OS, EXIT_TERMINATED = 1, 2, 3, 143


class Terminated(BaseException):
    """SIGTERM (what schedulers send) arrived: unwinds like Ctrl-C, so a run removes its staging."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def os_error_message(exc: OSError) -> str:
    """One line for a failure of the operating system: what went wrong and the path."""
    import errno

    path = exc.filename or getattr(exc, "path", None)
    what = {errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
            errno.EPERM: "operation not permitted", errno.ENOSPC: "no space left on device",
            errno.EDQUOT: "disk quota exceeded", errno.ENOENT: "no such file or directory",
            errno.EISDIR: "is a directory", errno.ENOTDIR: "not a directory"}.get(exc.errno or -1)
    what = what or (exc.strerror or str(exc)).strip().splitlines()[-1]
    target = f"{path}" + (f" -> {exc.filename2}" if exc.filename2 else "") if path else ""
    return f"{what}: {target}" if target else what


def _os_fail(exc: OSError) -> int:
    as_json = "--json" in sys.argv[1:]
    message = os_error_message(exc)
    if as_json:
        typer.echo(json.dumps({"ok": False, "error": type(exc).__name__, "message": message,
                               "path": str(exc.filename) if exc.filename else None}, ensure_ascii=False))
    else:
        typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return EXIT_OS


def main() -> None:  # console-script entry point
    import gc
    import signal

    from ..io.raster import limit_malloc_arenas

    limit_malloc_arenas()
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        app()
    except OSError as exc:  # a disk, permission or path problem: one line naming the path
        sys.exit(_os_fail(exc))
    except Terminated:
        typer.secho("terminated (SIGTERM): partial results removed; the workspace keeps its previous result",
                    fg=typer.colors.RED, err=True)
        sys.exit(EXIT_TERMINATED)
    finally:
        # The interpreter's last garbage collections at exit walk every object the command
        # created: 0.5–0.6 s after a 100 Mpx run, 0.08 s with them frozen (gc.freeze keeps
        # them out of those passes). Outputs are closed and committed by then.
        gc.freeze()


if __name__ == "__main__":
    main()
