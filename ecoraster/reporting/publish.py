"""Publication (定期核算与发布): a dated, versioned release folder of a finished run.

``publish(WORKSPACE)`` writes ``<releases>/<region>_<year>/v<NNN>_<YYYY-MM-DD>/`` with

- ``gep_report.html`` — the GEP report (offline; charts and a map as inline SVG);
- ``products/catalogue.{xlsx,csv,parquet}``, ``products/<zone set>.{parquet,gpkg}``,
  ``products/products.json`` — the catalogue and the GEP tables, in the workspace's layout so
  the STAC catalogue's relative links keep working;
- ``stac/`` — the STAC catalogue; ``run.json`` — the manifest;
- with ``rasters=True`` the per-pixel COGs too (``<service>/*.tif``), else their STAC links
  point at files left in the workspace (listed in ``release.json``);
- ``release.json`` (version, date, the run's identity, files) and ``SHA256SUMS`` (sha256 of
  every file, ``sha256sum -c`` format).

The run's identity is the sha256 of its ``run.json`` (which holds the run's creation time,
inputs and checksums). Publishing the same run again returns the existing release unchanged;
a new run (a new ``run.json``) gets the next version number.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from ..datasets import file_sha256
from ..query.workspace import RunWorkspace
from . import html as H
from . import workspace_io as wio

RELEASE_JSON = "release.json"
CHECKSUMS = "SHA256SUMS"


@dataclass
class Release:
    path: Path
    version: int
    date: str
    run_sha256: str
    created: bool  # False: the run was published before and that release is returned

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "version": self.version, "date": self.date, "run_sha256": self.run_sha256,
                "created": self.created}


def default_releases_dir(ws: RunWorkspace) -> Path:
    return ws.root.parent / "releases"


def _series_dir(root: Path, ws: RunWorkspace) -> Path:
    return root / f"{ws.region}_{ws.year}"


def _existing(series: Path) -> list[tuple[int, Path, dict[str, Any]]]:
    out = []
    if not series.is_dir():
        return out
    for d in sorted(series.iterdir()):
        f = d / RELEASE_JSON
        if d.is_dir() and f.is_file():
            info = json.loads(f.read_text(encoding="utf-8"))
            out.append((int(info["version"]), d, info))
    return out


def gep_report_html(ws: RunWorkspace) -> str:
    """The GEP report of one run: totals, first-level classes, every product, the zone sets
    (table and map of GEP per ha), the contested items and the run's notes."""
    from ..accounting.product_catalogue import gep_by_zone, summarise

    cat = wio.read_catalogue(ws)
    region = cat[cat["zone_set"] == "region"]
    gep = gep_by_zone(region)
    total = float(gep["gep_cny"].iloc[0]) if len(gep) else 0.0
    excl = float(gep["gep_excl_contested_cny"].iloc[0]) if len(gep) else 0.0
    sections: list[tuple[str, str]] = []
    by_level = summarise(region, 1)[["level1", "value_cny", "products"]]
    sections.append(("GEP 总值", f"<p>GEP：<b>{total / 1e8:,.2f} 亿元</b>（不含争议项 {excl / 1e8:,.2f} 亿元），"
                                f"{ws.price_year} 年价格。</p>" +
                     H.table(by_level, headers={"level1": "一级分类", "value_cny": "价值量 (元)",
                                                "products": "产品"})))
    prod = region[["code", "level1", "name_zh", "quantity", "quantity_unit", "value_cny", "price", "price_unit",
                   "price_year", "confidence", "counted", "contested"]].copy()
    prod["price_year"] = prod["price_year"].astype("float64")
    counted = region[region["counted"].astype(bool)].dropna(subset=["value_cny"]).sort_values("value_cny",
                                                                                              ascending=False)
    chart = H.bar_chart(counted["name_zh"].tolist(), (counted["value_cny"] / 1e8).tolist(),
                        title="各生态产品价值量", ylabel="亿元")
    sections.append(("生态产品目录清单（全区）", H.figure(chart, "各产品价值量（亿元）") + H.table(
        prod, headers={"code": "编码", "level1": "一级分类", "name_zh": "产品", "quantity": "实物量",
                       "quantity_unit": "单位", "value_cny": "价值量 (元)", "price": "价格", "price_unit": "价格单位",
                       "price_year": "价格年", "confidence": "可信度", "counted": "计入", "contested": "争议项"},
        digits={"price_year": 0})))
    for zs in wio.zone_sets(ws):
        if zs == "parcels" or not wio.zone_table_path(ws, zs).is_file():
            continue
        gdf = wio.read_zone_table(ws, zs)
        idc = wio.zone_id_column(zs)
        cols = [c for c in (idc, "name", "area_ha", "gep", "gep_excl_contested", "gep_per_ha") if c in gdf.columns]
        body = ""
        if len(gdf) > 1:
            body += H.figure(H.choropleth(gdf, "gep_per_ha", title=f"单位面积 GEP（{zs}）", legend="元/公顷",
                                          labels="name"), f"{zs}: GEP per ha")
        body += H.table(pd.DataFrame(gdf[cols]).sort_values("gep", ascending=False),
                        headers={idc: "编号", "name": "名称", "area_ha": "面积 (公顷)", "gep": "GEP (元)",
                                 "gep_excl_contested": "不含争议项 (元)", "gep_per_ha": "元/公顷"})
        sections.append((f"分区 GEP：{zs}", body))
    notes = [f"{n['service']}: {n['note']}" for n in wio.run_notes(ws)]
    meta = {"区域": ws.region_name or ws.region, "核算年": ws.year, "价格年": ws.price_year, "标准": ws.profile,
            "工作区": str(ws.root), "run.json 创建": ws.manifest.get("created")}
    return H.page(f"{ws.region_name or ws.region} {ws.year} 年生态产品总值（GEP）核算报告", sections, meta=meta,
                  notes=notes)


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def _checksums(folder: Path) -> str:
    lines = []
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != CHECKSUMS:
            lines.append(f"{file_sha256(p)}  {p.relative_to(folder).as_posix()}")
    return "\n".join(lines) + "\n"


def publish(workspace: str | os.PathLike | RunWorkspace, releases: str | os.PathLike | None = None, *,
            rasters: bool = False, today: date | None = None) -> Release:
    """Publish a run (see the module doc); return the release (new or the existing one)."""
    ws = workspace if isinstance(workspace, RunWorkspace) else wio.open_run(workspace)
    root = Path(releases) if releases else default_releases_dir(ws)
    series = _series_dir(root, ws)
    run_sha = file_sha256(wio.manifest_path(ws))
    existing = _existing(series)
    for version, path, info in existing:
        if info.get("run_sha256") == run_sha:
            return Release(path, version, info["date"], run_sha, created=False)
    version = max((v for v, _, _ in existing), default=0) + 1
    day = (today or date.today()).isoformat()
    final = series / f"v{version:03d}_{day}"
    staging = series / f".staging_v{version:03d}_{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    try:
        files: list[str] = []
        _copy(wio.manifest_path(ws), staging / "run.json")
        for p in sorted(wio.products_dir(ws).iterdir()):
            if p.is_file():
                _copy(p, staging / "products" / p.name)
        if wio.stac_dir(ws).is_dir():
            shutil.copytree(wio.stac_dir(ws), staging / "stac")
        left_out = []
        for layer in ws.layers:
            rel = layer.path.relative_to(ws.root) if layer.path.is_relative_to(ws.root) else Path(layer.path.name)
            if rasters:
                _copy(layer.path, staging / rel)
            else:
                left_out.append(str(layer.path))
        (staging / "gep_report.html").write_text(gep_report_html(ws), encoding="utf-8")
        files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
        info = {"version": version, "release": final.name, "date": day, "run_sha256": run_sha,
                "workspace": str(ws.root), "region": ws.region, "region_name": ws.region_name, "year": ws.year,
                "price_year": ws.price_year, "profile": ws.profile, "run_created": ws.manifest.get("created"),
                "files": files, "rasters_included": rasters, "rasters_left_in_workspace": left_out}
        (staging / RELEASE_JSON).write_text(json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8")
        (staging / CHECKSUMS).write_text(_checksums(staging), encoding="utf-8")
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Release(final, version, day, run_sha, created=True)


def verify(release: str | os.PathLike) -> list[str]:
    """Files of a release whose sha256 differs from ``SHA256SUMS`` (or that are missing)."""
    folder = Path(release)
    bad = []
    for line in (folder / CHECKSUMS).read_text(encoding="utf-8").splitlines():
        digest, rel = line.split("  ", 1)
        p = folder / rel
        if not p.is_file() or file_sha256(p) != digest:
            bad.append(rel)
    return bad
