"""``eco`` commands that put GEP to use: change over time, assessment and audit reports,
eco-compensation, publication.

    eco compensation SECTIONS.csv --scheme jiangsu|henan|tianjin|xinanjiang --out OUT.csv
    eco transfer UNITS.csv --fund CNY --method gep_share|regulating_per_capita|gep_change --out OUT.csv
    eco change WORKSPACE_A WORKSPACE_B -o DIR [--counterfactual WORKSPACE_C] [--price-year Y]
    eco assess WORKSPACE_B --baseline WORKSPACE_A [--zone-set districts] [--gdp GDP.csv] -o DIR
    eco audit WORKSPACE_A WORKSPACE_B --unit ID [--zone-set districts] -o DIR
    eco publish WORKSPACE [--releases DIR]

Registered by ``ecoraster.cli`` through :func:`register`; the logic lives in
:mod:`ecoraster.compensation` and :mod:`ecoraster.reporting`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .errors import EcorasterError


def _fail(exc: Exception, as_json: bool) -> None:
    from .cli import _fail as cli_fail

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
        from .compensation import compute, write_result

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
        units: Path = typer.Argument(..., help="table with a unit column and the method's columns"),
        fund: float = typer.Option(..., "--fund", help="fund to split, CNY"),
        method: str = typer.Option("gep_share", "--method", help="gep_share | regulating_per_capita | gep_change"),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="OUT.csv"),
        as_json: bool = typer.Option(False, "--json", help="print JSON"),
    ) -> None:
        """Split a transfer-payment fund among units by GEP (share, regulating GEP per capita, change)."""
        from .compensation import transfer_table

        try:
            table = transfer_table(units, fund, method)
        except EcorasterError as exc:
            _fail(exc, as_json)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            table.to_csv(out, index=False, encoding="utf-8-sig")
        if as_json:
            typer.echo(table.to_json(orient="records", force_ascii=False))
        else:
            typer.echo(table.to_string(index=False))
