"""``eco`` commands of the products: the catalogue (目录清单), zone GEP tables and price tables.

    eco catalogue -w WORKSPACE [--level 0|1|2] [--zone-set S] [--zone ID] [--json]
    eco gep-table -w WORKSPACE [--zone-set parcels] [--top N] [--json]
    eco prices list [--table mee2020] [--price-year 2020] [--product P] [--json]
    eco prices show PRICE_ID [--table mee2020] [--price-year 2020]

Registered by ``ecoraster.cli`` through :func:`register`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import EcorasterError, MissingFileError


def _fail(exc: Exception, as_json: bool) -> None:
    from .main import _fail as cli_fail

    cli_fail(exc, as_json)


def _show(df, as_json: bool) -> None:
    import pandas as pd

    if as_json:
        typer.echo(df.to_json(orient="records", force_ascii=False))
        return
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 40,
                           "display.float_format", "{:,.2f}".format):
        typer.echo(df.to_string(index=False))


def _setup(table: str, price_year: int, profile: str):
    from ..prices import CPI, PriceTable, ValuationSetup
    from ..resources import config_path
    from ..standards import load_profile

    path = Path(table)
    if path.suffix not in (".yaml", ".yml"):
        path = config_path("prices", f"{table}.yaml")
    pt = PriceTable.load(path)
    return ValuationSetup(pt, CPI(pt.cpi_path), price_year, load_profile(profile))


_WS = typer.Option(None, "--workspace", "-w", help="run workspace (folder with run.json); default: the most recent "
                                                   "run under ./outputs")


def _workspace(workspace: Optional[Path]) -> Path:
    """The run folder: ``-w`` (a folder with run.json) or the most recent run under ./outputs."""
    from ..query.workspace import resolve_workspace

    return resolve_workspace(workspace)


def register(app: typer.Typer) -> None:
    """Add the product commands to the ``eco`` app."""

    @app.command("catalogue")
    def catalogue(
        workspace: Optional[Path] = _WS,
        level: int = typer.Option(0, "--level", "-l", help="0 = every product, 1 / 2 = first / second-level sums"),
        zone_set: Optional[str] = typer.Option(None, "--zone-set", "--unit-set", "-z",
                                               help="region, districts, parcels, … (--unit-set: old name)"),
        zone: Optional[list[str]] = typer.Option(None, "--zone", "--unit", help="zone id(s)"),
        gep: bool = typer.Option(False, "--gep", help="GEP per zone (with and without contested items)"),
        as_json: bool = typer.Option(False, "--json", help="print JSON"),
    ) -> None:
        """Print a run's catalogue (生态产品目录清单) or its GEP per zone."""
        from ..accounting.product_catalogue import gep_by_zone, read_catalogue, summarise

        try:
            path = _workspace(workspace) / "products" / "catalogue.parquet"
            if not path.exists():
                raise MissingFileError(str(path), field="workspace")
            cat = read_catalogue(path)
        except EcorasterError as exc:
            _fail(exc, as_json)
        if zone_set:
            cat = cat[cat["zone_set"] == zone_set]
        if zone:
            cat = cat[cat["zone_id"].isin(zone)]
        if gep:
            table = gep_by_zone(cat)
            sens = path.parent / "sensitivity.csv"
            if sens.is_file():  # the range of `eco sensitivity` / `eco run --sensitivity`
                import pandas as pd

                from ..accounting.sensitivity import gep_range_by_zone

                ranges = gep_range_by_zone(pd.read_csv(sens, encoding="utf-8-sig", dtype={"zone_id": str}))
                table = table.astype({"zone_id": str}).merge(ranges, on=["zone_set", "zone_id"], how="left")
            _show(table, as_json)
        elif level in (1, 2):
            _show(summarise(cat, level), as_json)
        else:
            cols = ["code", "level1", "level2", "name_zh", "zone_set", "zone_id", "zone_name", "quantity",
                    "quantity_unit", "value_cny", "price", "price_unit", "price_year", "confidence", "contested"]
            _show(cat[cols], as_json)

    @app.command("sensitivity")
    def sensitivity(
        workspace: Optional[Path] = _WS,
        as_json: bool = typer.Option(False, "--json", help="print JSON"),
    ) -> None:
        """Low / central / high value per product and zone of a finished run (price options and the
        ✱ parameter ranges of configs/parameters/sensitivity_ranges.yaml): products/sensitivity.csv."""
        from ..accounting.sensitivity import run_sensitivity

        try:
            workspace = _workspace(workspace)
            table = run_sensitivity(workspace)
        except EcorasterError as exc:
            _fail(exc, as_json)
        _show_sensitivity(workspace, table, as_json)

    @app.command("gep-table")
    def gep_table(
        workspace: Optional[Path] = _WS,
        zone_set: str = typer.Option("parcels", "--zone-set", "-z", help="zone set name"),
        top: int = typer.Option(15, "--top", help="rows with the highest GEP (0 = all)"),
        as_json: bool = typer.Option(False, "--json", help="print JSON"),
    ) -> None:
        """Print a zone set's GEP table (products/<zone set>.parquet), highest GEP first."""
        import geopandas as gpd

        try:
            path = _workspace(workspace) / "products" / f"{zone_set}.parquet"
        except EcorasterError as exc:
            _fail(exc, as_json)
        if not path.exists():
            _fail(MissingFileError(str(path), field="--zone-set"), as_json)
        df = gpd.read_parquet(path).drop(columns=["geometry", "bbox"], errors="ignore")
        df = df.sort_values("gep", ascending=False)
        if top:
            df = df.head(top)
        keep = [c for c in df.columns if not c.endswith("_qty")]
        _show(df[keep], as_json)

    prices = typer.Typer(help="Price tables (configs/prices/*.yaml) rebased with the CPI.", no_args_is_help=True)
    app.add_typer(prices, name="prices")

    @prices.command("list")
    def prices_list(
        table: str = typer.Option("mee2020", "--table", "-t", help="price table id or path"),
        price_year: int = typer.Option(2020, "--price-year", "-y", help="rebase to this year"),
        product: Optional[str] = typer.Option(None, "--product", "-p", help="only this product code (see docs/glossary.md)"),
        profile: str = typer.Option("mee2020", "--profile", help="standard profile (configs/profiles/<id>.yaml)"),
        as_json: bool = typer.Option(False, "--json", help="print JSON"),
    ) -> None:
        """Every price of a table, with its value rebased to --price-year."""
        from ..prices import price_list

        try:
            df = price_list(_setup(table, price_year, profile))
        except EcorasterError as exc:
            _fail(exc, as_json)
        if product:
            df = df[df["product"] == product]
        _show(df.drop(columns=["source"]) if not as_json else df, as_json)

    @prices.command("show")
    def prices_show(
        price_id: str = typer.Argument(..., help="price id (eco prices list)"),
        table: str = typer.Option("mee2020", "--table", "-t", help="price table id or path"),
        price_year: int = typer.Option(2020, "--price-year", "-y", help="rebase to this year"),
        profile: str = typer.Option("mee2020", "--profile", help="standard profile (configs/profiles/<id>.yaml)"),
    ) -> None:
        """One price with its source, confidence and rebasing (components of derived prices)."""
        from ..prices import rebase

        try:
            setup = _setup(table, price_year, profile)
            r = rebase(setup.table, setup.table.get(price_id), setup.cpi, price_year)
        except EcorasterError as exc:
            _fail(exc, False)
        typer.echo(json.dumps(r.to_dict(), ensure_ascii=False, indent=2))


def _show_sensitivity(workspace: Path, table, as_json: bool) -> None:
    """The region's rows and GEP range (with and without the contested items)."""
    report = json.loads((Path(workspace) / "products" / "products.json").read_text(encoding="utf-8"))["gep_region"]
    region = table[table["zone_set"] == "region"][["product", "counted", "contested", "low", "central", "high",
                                                   "price_range"]]
    if as_json:
        typer.echo(json.dumps({"gep_region": report, "products": region.to_dict(orient="records")},
                              ensure_ascii=False, default=str))
        return
    _show(region, False)
    typer.echo(f"GEP                    {report.get('gep_low', float('nan')):>20,.0f} … "
               f"{report.get('gep', float('nan')):,.0f} … {report.get('gep_high', float('nan')):,.0f} CNY")
    typer.echo(f"GEP excl. contested    {report.get('gep_excl_contested_low', float('nan')):>20,.0f} … "
               f"{report.get('gep_excl_contested', float('nan')):,.0f} … "
               f"{report.get('gep_excl_contested_high', float('nan')):,.0f} CNY")
    typer.echo(f"-> {Path(workspace) / 'products' / 'sensitivity.csv'}")
