"""``eco`` commands that put GEP to use: change over time, assessment and audit reports,
eco-compensation, publication.

    eco compensation SECTIONS.csv --scheme jiangsu|henan|tianjin|xinanjiang --out OUT.csv
    eco transfer UNITS.csv --fund CNY --method gep_share|regulating_per_capita|gep_change --out OUT.csv
    eco change WORKSPACE_A WORKSPACE_B -o DIR [--counterfactual WORKSPACE_C] [--price-year Y]
    eco assess WORKSPACE_B --baseline WORKSPACE_A [--zone-set districts] [--gdp GDP.csv] -o DIR
    eco audit WORKSPACE_A WORKSPACE_B --unit ID [--zone-set districts] -o DIR
    eco publish WORKSPACE [--releases DIR]

Registered by ``ecoraster.cli.main`` through :func:`register`; the logic lives in
:mod:`ecoraster.compensation` and :mod:`ecoraster.reporting`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import EcorasterError


def _fail(exc: Exception, as_json: bool) -> None:
    from .main import _fail as cli_fail

    cli_fail(exc, as_json)


def _echo_json(payload) -> None:
    typer.echo(json.dumps(payload, ensure_ascii=False, default=str))


def register(app: typer.Typer) -> None:
    """Add the commands of this module to the ``eco`` app."""

    @app.command("compensation")
    def compensation(
        sections: Path = typer.Argument(..., help="section table: section,period,factor,measured_mg_l,target_mg_l,"
                                                  "flow_m3 (+ upstream,downstream,district,inflow_mg_l,…)"),
        scheme: str = typer.Option(..., "--scheme", help="jiangsu | henan | tianjin | xinanjiang (or a YAML table)"),
        out: Path = typer.Option(..., "--out", "-o", help="OUT.csv (also OUT_districts.csv, OUT_factors.csv)"),
        as_json: bool = typer.Option(False, "--json", help="print JSON"),
    ) -> None:
        """Cross-boundary section compensation (生态保护补偿) — separate from GEP."""
        from ..compensation import compute, write_result

        try:
            result = compute(sections, scheme)
            paths = write_result(result, out)
        except EcorasterError as exc:
            _fail(exc, as_json)
        if as_json:
            _echo_json({"ok": True, **result.scheme.describe(), "total_cny": result.total_cny,
                        "sections": result.sections.to_dict(orient="records"),
                        "districts": result.districts.to_dict(orient="records"), "notes": result.notes,
                        "files": {k: str(v) for k, v in paths.items()}})
            return
        import pandas as pd

        typer.echo(f"{result.scheme.name} ({result.scheme.id} {result.scheme.version})")
        with pd.option_context("display.width", 200, "display.max_columns", 20,
                               "display.float_format", "{:,.2f}".format):
            typer.echo(result.sections.to_string(index=False))
            typer.echo("\nper unit:")
            typer.echo(result.districts.to_string(index=False))
        for note in result.notes:
            typer.echo(f"note: {note}", err=True)
        typer.echo(f"\ntotal {result.total_cny:,.2f} CNY -> {paths['sections']}")

    @app.command("transfer")
    def transfer(
        units: Path = typer.Argument(..., help="table with a unit column and the method's columns, or an "
                                               "`eco change` output folder"),
        fund: float = typer.Option(..., "--fund", help="fund to split, CNY"),
        method: str = typer.Option("gep_share", "--method", help="gep_share | regulating_per_capita | gep_change"),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="OUT.csv"),
        zone_set: str = typer.Option("districts", "--zone-set", "-z", help="zone set of an `eco change` folder"),
        population: Optional[Path] = typer.Option(None, "--population", help="table unit,population (persons)"),
        as_json: bool = typer.Option(False, "--json", help="print JSON"),
    ) -> None:
        """Split a transfer-payment fund among units by GEP (share, regulating GEP per capita, change)."""
        from ..compensation import transfer_table

        try:
            table = units
            if units.is_dir():
                from ..reporting.change import transfer_units

                table = transfer_units(units, zone_set)
            if population is not None:
                from ..tables import read_table, require_columns

                pop = read_table(population, field="--population")
                require_columns(pop, ["unit", "population"], str(population))
                frame = table if not isinstance(table, Path) else read_table(table, field="units")
                table = frame.assign(population=frame["unit"].astype(str).map(
                    dict(zip(pop["unit"].astype(str), pop["population"]))))
            table = transfer_table(table, fund, method)
        except EcorasterError as exc:
            _fail(exc, as_json)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            table.to_csv(out, index=False, encoding="utf-8-sig")
        if as_json:
            typer.echo(table.to_json(orient="records", force_ascii=False))
        else:
            typer.echo(table.to_string(index=False))

    @app.command("change")
    def change(
        workspace_a: Path = typer.Argument(..., help="earlier (or baseline) run workspace"),
        workspace_b: Path = typer.Argument(..., help="later (or scenario) run workspace"),
        out: Path = typer.Option(..., "--out", "-o", help="output folder"),
        counterfactual: Optional[Path] = typer.Option(
            None, "--counterfactual", help="run C: B's drivers on A's land cover (splits the change)"),
        run_counterfactual: bool = typer.Option(
            False, "--run-counterfactual", help="make run C now (B's config with A's land cover) in OUT/counterfactual"),
        price_year: Optional[int] = typer.Option(None, "--price-year", help="constant prices of this year (default: B's)"),
        rasters: bool = typer.Option(True, "--rasters/--no-rasters", help="write the difference COGs"),
        as_json: bool = typer.Option(False, "--json", help="print JSON"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
    ) -> None:
        """Change between two runs: per product and zone, at constant prices; difference COGs."""
        from ..reporting import workspace_io as wio
        from ..reporting.change import compare_runs, run_counterfactual as make_c

        try:
            c = counterfactual
            if run_counterfactual and c is None:
                from .main import _progress_bar

                with _progress_bar(not quiet and not as_json) as progress:
                    c = make_c(wio.open_run(workspace_a), wio.open_run(workspace_b), out / "counterfactual",
                               progress=progress).root
            result = compare_runs(workspace_a, workspace_b, counterfactual=c, price_year=price_year, out_dir=out,
                                  rasters=rasters)
        except EcorasterError as exc:
            _fail(exc, as_json)
        region = result.gep[result.gep["zone_set"] == "region"]
        if as_json:
            _echo_json({"ok": True, **result.meta, "region": region.to_dict(orient="records"),
                        "files": {k: str(v) for k, v in result.files.items()}})
            return
        import pandas as pd

        m = result.meta
        typer.echo(f"{m['region']}: {m['year_a']} → {m['year_b']}, constant prices of {m['constant_price_year']}")
        cols = [c for c in ("zone_set", "zone_id", "zone_name", "gep_a_const", "gep_b_const", "gep_change_const",
                            "gep_growth_rate", "gep_change_nominal", "gep_change_landcover", "gep_change_other")
                if c in result.gep.columns]
        shown = result.gep[result.gep["zone_set"] != "parcels"][cols]
        with pd.option_context("display.width", 220, "display.max_columns", 20,
                               "display.float_format", "{:,.4g}".format):
            typer.echo(shown.to_string(index=False))
        typer.echo(f"-> {out}")

    @app.command("assess")
    def assess_cmd(
        workspace_b: Path = typer.Argument(..., help="run of the assessed year"),
        baseline: Path = typer.Option(..., "--baseline", help="run of the base year"),
        out: Path = typer.Option(..., "--out", "-o", help="output folder"),
        zone_set: str = typer.Option("districts", "--zone-set", "-z", help="zone set to report on (districts, townships …)"),
        gdp: Optional[Path] = typer.Option(None, "--gdp", help="GDP table: zone_id|name, gdp_cny|gdp_wan_yuan"),
        indicators: Optional[Path] = typer.Option(None, "--indicators", help="indicator / weight table (YAML)"),
        as_json: bool = typer.Option(False, "--json", help="print JSON"),
    ) -> None:
        """Assessment (考核): ranked indicators per zone, HTML report with maps and charts, XLSX."""
        from ..reporting.assessment import assess, write_assessment

        try:
            res = assess(baseline, workspace_b, zone_set=zone_set, gdp=gdp, indicators=indicators)
            files = write_assessment(res, out)
        except EcorasterError as exc:
            _fail(exc, as_json)
        cols = [c for c in ("rank", "zone_id", "name", "score", "gep_b_const", "gep_growth_rate",
                            "eco_land_change_ha", "gep_per_km2", "gep_to_gdp") if c in res.table.columns]
        if as_json:
            _echo_json({"ok": True, **res.meta, "ranking": res.table[cols].to_dict(orient="records"),
                        "files": {k: str(v) for k, v in files.items()}})
            return
        typer.echo(res.table[cols].to_string(index=False))
        typer.echo(f"-> {files['html']}")

    @app.command("audit")
    def audit_cmd(
        workspace_a: Path = typer.Argument(..., help="run at the start of the tenure"),
        workspace_b: Path = typer.Argument(..., help="run at the end of the tenure"),
        unit: str = typer.Option(..., "--unit", "-u", help="zone id of the audited unit"),
        out: Path = typer.Option(..., "--out", "-o", help="output folder"),
        zone_set: str = typer.Option("districts", "--zone-set", "-z", help="zone set to report on (districts, townships …)"),
        start_year: Optional[int] = typer.Option(None, "--start-year", help="checked against run A's year"),
        end_year: Optional[int] = typer.Option(None, "--end-year", help="checked against run B's year"),
        top: int = typer.Option(10, "--top", help="parcels with the largest losses"),
        as_json: bool = typer.Option(False, "--json", help="print JSON"),
    ) -> None:
        """Audit report (离任审计) of one unit over a tenure: printable HTML and XLSX."""
        from ..reporting.audit import audit, write_audit

        try:
            res = audit(workspace_a, workspace_b, unit, zone_set=zone_set, start_year=start_year,
                        end_year=end_year, top=top)
            files = write_audit(res, out)
        except EcorasterError as exc:
            _fail(exc, as_json)
        if as_json:
            _echo_json({"ok": True, **res.meta, "gep": res.gep, "files": {k: str(v) for k, v in files.items()}})
            return
        g = res.gep
        typer.echo(f"{res.zone_name} ({res.unit}) {res.start_year}–{res.end_year}: GEP {g.get('gep_a_const', 0):,.0f} → "
                   f"{g.get('gep_b_const', 0):,.0f} CNY ({res.meta['constant_price_year']} prices)")
        typer.echo(f"-> {files['html']}\n-> {files['xlsx']}")

    @app.command("publish")
    def publish_cmd(
        workspace: Path = typer.Argument(..., help="run workspace"),
        releases: Optional[Path] = typer.Option(None, "--releases", help="releases folder (default: beside the "
                                                                           "workspace, ./releases)"),
        rasters: bool = typer.Option(False, "--rasters", help="also copy the per-pixel COGs"),
        as_json: bool = typer.Option(False, "--json", help="print JSON"),
    ) -> None:
        """Publish a run: dated, versioned release folder with report, tables, STAC, run.json, checksums."""
        from ..reporting.publish import publish

        try:
            rel = publish(workspace, releases, rasters=rasters)
        except EcorasterError as exc:
            _fail(exc, as_json)
        if as_json:
            _echo_json({"ok": True, **rel.to_dict()})
            return
        state = "new release" if rel.created else "already published, unchanged"
        typer.echo(f"{state}: v{rel.version} ({rel.date}) -> {rel.path}")
