"""The markdown summary of a committed run (the flows publish it as the Prefect artifact
``gep-run-<region>-<year>``; ``flows/artifacts.py``).

:func:`run_summary_markdown` reads only what the run committed — ``run.json`` (the
``products_report`` and ``valuation`` sections) and ``products/catalogue.csv`` (目录清单) — and
returns markdown: GEP by product (whole region), GEP by zone (each zone set, largest first),
the total of every output raster, which steps were recomputed or reused, and warnings
(products notes, zone sets that are not a partition, mass balances that do not close,
unpriced outputs, warnings the caller passes in).
No Prefect here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

#: Zones listed per zone set in the summary (the rest are counted, not listed).
MAX_ZONES = 15


def _cny(x: Any) -> str:
    """Yuan with thousands separators, and 亿元 (10⁸ CNY) for large sums."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "–"
    if math.isnan(v):
        return "–"
    text = f"{v:,.0f}"
    return f"{text} ({v / 1e8:,.2f} 亿元)" if abs(v) >= 1e8 else text


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows]
    return out


def run_warnings(manifest: dict[str, Any]) -> list[str]:
    """Warnings an operator should see, from a committed ``run.json``."""
    warnings: list[str] = []
    report = manifest.get("products_report") or {}
    warnings += [f"products: {n}" for n in report.get("notes") or []]
    for name, zs in (report.get("zone_sets") or {}).items():
        check = zs.get("partition_check") or {}
        if check and not check.get("ok", True):
            warnings.append(f"zone set `{name}` is not a partition: {check.get('n_gaps', 0)} gap(s) "
                            f"({check.get('gap_area_m2', 0):,.0f} m²), {check.get('n_overlaps', 0)} overlap(s) "
                            f"({check.get('overlap_area_m2', 0):,.0f} m²)")
        for output, mb in (zs.get("mass_balance") or {}).items():
            if not mb.get("ok", True):
                warnings.append(f"zone set `{name}`: zone sums of `{output}` differ from the raster total "
                                f"by {mb.get('relative', float('nan')):.2e} (relative)")
    valuation = manifest.get("valuation") or {}
    for output, why in (valuation.get("unpriced") or {}).items():
        warnings.append(f"unpriced: `{output}` ({why})")
    return warnings


def _catalogue(workspace: Path):
    """Counted rows of the run's ``products/catalogue.csv`` (None when the run has none)."""
    from ..accounting.product_catalogue import read_catalogue

    path = workspace / "products" / "catalogue.csv"
    if not path.is_file():
        return None
    table = read_catalogue(path)
    counted = table["counted"].astype(str).str.lower().isin(["true", "1"])
    return table[counted]


def run_summary_markdown(workspace: str | Path, summary: dict[str, Any], *,
                         warnings: list[str] | None = None, title: str | None = None) -> str:
    """Markdown summary of a committed run in ``workspace``; ``summary`` is what the commit
    step returned (``manifest``, ``changed``, ``computed``, ``cached``)."""
    ws = Path(workspace)
    manifest_path = Path(summary.get("manifest") or ws / "run.json")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    cfg = manifest.get("config") or {}
    region = cfg.get("region_name") or cfg.get("region") or "?"
    heading = title or f"GEP run: {region} {cfg.get('year', '')}".strip()
    lines = [f"# {heading}", "",
             f"- workspace: `{ws}`", f"- manifest: `{manifest_path}` (created {manifest.get('created', '?')})",
             f"- outputs {'updated' if summary.get('changed') else 'unchanged (every step reused)'}"]
    gep = (manifest.get("products_report") or {}).get("gep_region")
    if gep:
        lines.append(f"- **GEP {_cny(gep.get('gep'))} CNY** (price year {gep.get('price_year')}; "
                     f"without contested products {_cny(gep.get('gep_excl_contested'))} CNY)")
    lines.append("")

    cat = _catalogue(ws)
    if cat is not None and len(cat):
        region_rows = cat[cat["zone_set"] == "region"]
        if len(region_rows):
            lines += ["## GEP by product (whole region)", ""]
            rows = [[r.code, r.name_zh, f"{r.quantity:,.4g} {r.quantity_unit}", _cny(r.value_cny)]
                    for r in region_rows.sort_values("value_cny", ascending=False).itertuples()]
            lines += _table(["code", "product", "quantity", "value (CNY)"], rows) + [""]
        for zone_set, part in cat[cat["zone_set"] != "region"].groupby("zone_set", sort=False):
            by_zone = (part.groupby(["zone_id", "zone_name"], dropna=False)["value_cny"].sum()
                       .sort_values(ascending=False))
            lines += [f"## GEP by zone: `{zone_set}` ({len(by_zone)} zones)", ""]
            rows = [[uid, name, _cny(v)] for (uid, name), v in by_zone.head(MAX_ZONES).items()]
            lines += _table(["id", "name", "GEP (CNY)"], rows)
            if len(by_zone) > MAX_ZONES:
                lines.append(f"\n… {len(by_zone) - MAX_ZONES} more zones in `products/{zone_set}.parquet`")
            lines.append("")
    else:
        lines += ["No priced product in this run (GEP needs valued services); the physical totals follow.", ""]

    outputs = [[sid, oid, f"{rec.get('total'):,.6g}" if isinstance(rec.get("total"), (int, float)) else "–",
                rec.get("units") or "", rec.get("kind") or ""]
               for sid, res in (manifest.get("results") or {}).items()
               for oid, rec in (res.get("outputs") or {}).items()]
    if outputs:
        lines += ["## Totals per output", ""]
        lines += _table(["service", "output", "total", "units", "kind"], outputs) + [""]

    lines += ["## Steps", "",
              f"- recomputed ({len(summary.get('computed') or [])}): "
              + (", ".join(f"`{n}`" for n in summary.get("computed") or []) or "none"),
              f"- reused from cache ({len(summary.get('cached') or [])}): "
              + (", ".join(f"`{n}`" for n in summary.get("cached") or []) or "none"), ""]
    all_warnings = [*(warnings or []), *run_warnings(manifest)]
    lines += ["## Warnings", ""] + ([f"- {w}" for w in all_warnings] or ["none"])
    return "\n".join(lines) + "\n"


def artifact_key(region: str, year: int | str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes."""
    return "".join(c if c.isalnum() else "-" for c in f"gep-run-{region}-{year}".lower())
