"""Benchmark carbon_storage side by side with InVEST 3.20.2 Carbon.

Generates an N × N grid (default 10,000², 10 m, EPSG:4527) with a baseline and an alternate
land cover as COGs in a temp folder, then in the same script run executes

1. ecoraster ``eco run`` (carbon_storage: baseline, alternate and change COGs), as a subprocess;
2. InVEST ``carbon.execute`` (baseline + alternate, calc_sequestration, n_workers = −1) on
   the same files, in InVEST's own venv, as a subprocess;

and prints wall time, Mpixel/s and the peak RSS of each process tree. ``--record`` appends
the numbers to ``bench/README.md``. Run by hand, never in tests::

    .venv/bin/python bench/bench_carbon_storage.py --size 10000 --record
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_water_conservation import (  # noqa: E402  (shared helpers of the bench scripts)
    CLASSES,
    eco_cmd,
    eco_env,
    eco_timings,
    invest_cmd,
    make_lulc,
    report,
    timed,
)

#: Bench-only carbon pools (Mg C/ha) per GEP class of the synthetic land cover.
POOLS = {c: (10.0 + 3 * i, 2.0 + i, 40.0 + 5 * i, 1.0) for i, c in enumerate(sorted(CLASSES))}


def make_inputs(work: Path, size: int, res: float) -> None:
    t0 = time.perf_counter()
    make_lulc(work / "lulc_bas.tif", size, res, seed=1)
    make_lulc(work / "lulc_alt.tif", size, res, seed=11)
    rows = ["lucode,C_above,C_below,C_soil,C_dead"] + [f"{c},{a},{b},{s},{d}" for c, (a, b, s, d) in POOLS.items()]
    (work / "pools.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    print(f"inputs generated in {time.perf_counter() - t0:.0f} s: {work}")


def write_config(work: Path, chunk: int) -> Path:
    (work / "catalog.yaml").write_text(textwrap.dedent("""
        datasets:
          bas: {kind: raster, uri: lulc_bas.tif, categorical: true, resampling: nearest}
          alt: {kind: raster, uri: lulc_alt.tif, categorical: true, resampling: nearest}
          pools: {kind: table, uri: pools.csv}
    """), encoding="utf-8")
    cfg = work / "carbon.yaml"
    cfg.write_text(textwrap.dedent(f"""
        region: bench
        year: 2020
        catalog: catalog.yaml
        chunk: {chunk}
        grid: {{like: bas}}
        services:
          carbon_storage:
            inputs: {{lulc_bas: bas, lulc_alt: alt, carbon_pools: pools}}
    """), encoding="utf-8")
    return cfg


def _check_same_storage(work: Path) -> str:
    """ecoraster writes Mg C per pixel; InVEST 3.20.2 writes c_storage_bas in Mg C/ha."""
    ours = work / "ws_eco" / "carbon_storage" / "c_storage_bas.tif"
    theirs = work / "ws_invest" / "c_storage_bas.tif"
    worst = 0.0
    with rasterio.open(ours) as a, rasterio.open(theirs) as b:
        pixel_ha = abs(a.transform.a * a.transform.e) / 10_000.0
        for r0 in range(0, a.height, max(1, a.height // 5)):
            w = rasterio.windows.Window(0, r0, a.width, min(256, a.height - r0))
            x, y = a.read(1, window=w).astype(np.float64), b.read(1, window=w).astype(np.float64)
            valid = (x != a.nodata) & (y != b.nodata)
            if valid.any():
                worst = max(worst, float(np.abs(x[valid] / pixel_ha - y[valid]).max()))
    return f"per-pixel baseline storage density ecoraster vs InVEST on sampled strips: max |Δ| = {worst:.2e} Mg C/ha"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=10_000)
    ap.add_argument("--res", type=float, default=10.0)
    ap.add_argument("--chunk", type=int, default=2048)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--no-invest", action="store_true")
    ap.add_argument("--record", action="store_true")
    a = ap.parse_args()
    work = a.workdir or Path(tempfile.mkdtemp(prefix="bench_carbon_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if not (work / "lulc_bas.tif").exists():
            make_inputs(work, a.size, a.res)
        cfg = write_config(work, a.chunk)
        for ws in ("ws_eco", "ws_invest"):
            shutil.rmtree(work / ws, ignore_errors=True)
        rows = []
        r = timed(eco_cmd(cfg, work / "ws_eco"), "ecoraster carbon_storage (bas + alt + change)", eco_env())
        r["model"] = "carbon"
        rows.append(r)
        stages = eco_timings(r["stdout"], work / "ws_eco")
        notes = [f"ecoraster stages (s): {stages}",
                 "ecoraster: 3 COGs (ZSTD + overviews); InVEST: 8 pool rasters + 3 totals (GeoTIFF, no overviews) "
                 "+ report", f"inputs: {a.size}² {a.res:g} m uint8 COGs, chunk {a.chunk}"]
        if not a.no_invest:
            args = {"workspace_dir": str(work / "ws_invest"), "results_suffix": "",
                    "lulc_bas_path": str(work / "lulc_bas.tif"), "lulc_alt_path": str(work / "lulc_alt.tif"),
                    "calc_sequestration": True, "carbon_pools_path": str(work / "pools.csv"),
                    "do_valuation": False, "n_workers": -1}
            r = timed(invest_cmd("carbon.carbon", args), "InVEST 3.20.2 carbon (n_workers=-1)")
            r["model"] = "carbon"
            rows.append(r)
            notes.append(_check_same_storage(work))
        report(rows, a.size, "carbon_storage vs InVEST Carbon",
               ".venv/bin/python bench/bench_carbon_storage.py " + " ".join(sys.argv[1:]),
               a.record, notes)
    finally:
        if a.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
