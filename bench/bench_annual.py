"""The whole annual run on a generated region: every service of the demo config
(configs/wuhan_2013_gep.yaml), valuation, zone tables (districts, wetland units and
``--parcels`` Voronoi parcels), products (catalogue, GEP tables, STAC) — wall time per stage
and peak memory.

The region is the demo's: its inputs are read through ``align_to`` onto a finer grid over the
same extent, sized to ``--mpx`` megapixels (100 by default, ≈ 2.6 m pixels over central Wuhan's
8.6 Mpx at 30 m), so every service runs on real-shaped data without writing 100 Mpx inputs
first. The parcels (100,000 by default) tile the grid's extent exactly.

    .venv/bin/python bench/bench_annual.py                  # 100 Mpx, 100,000 parcels
    .venv/bin/python bench/bench_annual.py --mpx 4 --parcels 10000 --keep

The run goes through ``ecoraster.pipeline.run`` (``cache=False``: everything computed) in a
child process, so the peak RSS is the run's own (``getrusage(RUSAGE_CHILDREN)``).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import REPO, run_child  # noqa: E402

DEMO = REPO / "configs" / "wuhan_2013_gep.yaml"


def child(config: str, workspace: str) -> None:
    from ecoraster import pipeline

    t0 = time.monotonic()
    result = pipeline.run(config, workspace, checksums=False, cache=False)
    wall = time.monotonic() - t0
    totals = {f"{sid}.{k}": v[0] for sid, res in result.services.items() for k, v in res.totals.items()
              if k.endswith("_value_total")}
    print(json.dumps({"wall_s": wall, "timings": result.timings, "totals": totals}))


def make_inputs(work: Path, mpx: float, n_parcels: int) -> Path:
    """The bench config (demo config on a grid of ``mpx`` Mpx) and its parcels."""
    from ecoraster.config import load_plan
    from ecoraster.zonal.synthetic import voronoi_parcels

    demo = load_plan(DEMO)
    rows, cols = demo.grid.shape
    res = abs(demo.grid.transform.a) * math.sqrt(rows * cols / (mpx * 1e6))
    cfg = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    cfg["catalog"] = str((DEMO.parent / cfg["catalog"]).resolve())
    cfg["extra_catalogs"] = [str((DEMO.parent / c).resolve()) for c in cfg.get("extra_catalogs", [])]
    cfg["grid"] = {**cfg["grid"], "resolution": res}
    parcels = voronoi_parcels(demo.grid.bounds, n_parcels, demo.grid.crs, seed=1)
    parcels["name"] = parcels["parcel_id"].astype(str)
    parcels.to_file(work / "parcels.gpkg")
    extra = work / "bench_catalog.yaml"
    extra.write_text(yaml.safe_dump({"datasets": {"bench_parcels": {
        "kind": "vector", "uri": str(work / "parcels.gpkg"), "crs": str(demo.grid.crs)}}}), encoding="utf-8")
    cfg["extra_catalogs"].append(str(extra))
    cfg["zones"]["parcels"] = {"dataset": "bench_parcels", "id_field": "parcel_id", "name_field": "name",
                               "partition": True}
    path = work / "bench_annual.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    grid = load_plan(path).grid
    print(f"grid {grid.shape[0]} × {grid.shape[1]} = {grid.shape[0] * grid.shape[1] / 1e6:.1f} Mpx at "
          f"{res:.2f} m; {len(parcels):,} parcels")
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mpx", type=float, default=100.0, help="grid size in megapixels")
    p.add_argument("--parcels", type=int, default=100_000)
    p.add_argument("--keep", action="store_true", help="keep the inputs and outputs")
    p.add_argument("--child", nargs=2, metavar=("CONFIG", "WORKSPACE"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(*a.child)
        return
    work = Path(tempfile.mkdtemp(prefix="生态核算_annual_bench_"))
    try:
        config = make_inputs(work, a.mpx, a.parcels)
        report, peak_gb = run_child(__file__, config, work / "ws")
        print(f"annual run: wall {report['wall_s']:.1f} s, peak RSS {peak_gb:.2f} GB")
        for stage, seconds in report["timings"].items():
            print(f"  {stage:32s} {seconds:9.1f} s")
        print("value totals (CNY):", {k: f"{v:.6g}" for k, v in report["totals"].items()})
    finally:
        if a.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
