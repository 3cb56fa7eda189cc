"""Benchmark: ecoraster's zonal engine vs exactextract, side by side in one run.

Generates (in a temp dir with a Chinese name) a 10,000 × 10,000 float32 COG, 10 m
pixels, EPSG:4527, with nodata, a second raster on the same grid, and ~100,000 Voronoi
parcels of all sizes (a third in tight clusters, so many are smaller than a pixel;
the outer ones cross the raster edge). Then, each in its own fresh process so that
peak memory (ru_maxrss) belongs to that step alone:

1. ``ecoraster``: ``ZoneWeights.build`` + ``apply`` on raster A, then ``apply`` alone on
   raster B (weights reused);
2. ``exactextract``: ``exact_extract(A, parcels, ["sum", "count"])``, default strategy;

and checks that the sums agree (1e-9 relative; see the report for zones beyond it).

Usage::

    .venv/bin/python bench/bench_zonal.py [--size 10000] [--parcels 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
EPSG = 4527
RES = 10.0
X0, Y0 = 39_450_000.0, 3_400_000.0  # CGCS2000 3-degree GK zone 39 (with zone prefix)


def cpu_s() -> float:
    """CPU seconds (user + system, all threads) of this process so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def generate(work: Path, size: int, n_parcels: int) -> dict:
    import rasterio
    import rasterio.shutil
    from affine import Affine
    from rasterio.windows import Window

    from ecoraster.zonal.synthetic import voronoi_parcels

    t0 = time.perf_counter()
    transform = Affine(RES, 0, X0, 0, -RES, Y0)
    rng = np.random.default_rng(42)
    for name, seed in (("a", 1), ("b", 2)):
        tmp = work / f"{name}_tiled.tif"
        profile = dict(driver="GTiff", width=size, height=size, count=1, dtype="float32", crs=f"EPSG:{EPSG}",
                       transform=transform, nodata=-9999.0, tiled=True, blockxsize=512, blockysize=512)
        r = np.random.default_rng(seed)
        cols = np.arange(size)
        with rasterio.open(tmp, "w", **profile) as dst:
            for r0 in range(0, size, 512):
                h = min(512, size - r0)
                rows = np.arange(r0, r0 + h)[:, None]
                # smooth field (a carbon density, Mg/ha) + noise, a few nodata holes
                field = 80 + 40 * np.sin(rows / 700.0 + seed) * np.cos(cols[None, :] / 900.0)
                block = (field + r.normal(0, 5, (h, size))).astype(np.float32)
                block = np.round(block, 2)
                block[r.random((h, size)) < 0.01] = -9999.0
                dst.write(block, 1, window=Window(0, r0, size, h))
        rasterio.shutil.copy(tmp, work / f"{name}.tif", driver="COG", COMPRESS="DEFLATE",
                             PREDICTOR="3", BLOCKSIZE=512, NUM_THREADS="ALL_CPUS")
        tmp.unlink()
    extent = (X0 - 50, Y0 - size * RES - 50, X0 + size * RES + 50, Y0 + 50)
    parcels = voronoi_parcels(extent, n_parcels, EPSG, seed=int(rng.integers(1 << 30)))
    parcels.to_parquet(work / "parcels.parquet")
    area = parcels.area
    return {"seconds": time.perf_counter() - t0, "n_parcels": len(parcels),
            "parcels_under_1px": int((area < RES * RES).sum()), "median_area_m2": float(area.median()),
            "peak_rss_mb": peak_rss_mb()}


def run_ecoraster(work: Path) -> dict:
    import geopandas as gpd
    import shapely

    from ecoraster.grid import Grid
    from ecoraster.zonal import ZoneWeights

    # numba kernels are compiled once and cached on disk (cache=True); load or compile
    # them on a tiny case first so the timings below are of the work itself
    tw = time.perf_counter()
    tiny = Grid.from_bounds(f"EPSG:{EPSG}", (0, 0, 30, 30), 10)
    tiny_zone = gpd.GeoDataFrame({"id": [1]}, geometry=[shapely.box(1, 1, 17, 23)], crs=f"EPSG:{EPSG}")
    ZoneWeights.build(tiny_zone, tiny, "id").apply({"x": np.ones(tiny.shape, dtype=np.float32)})
    t_warm = time.perf_counter() - tw
    t0 = time.perf_counter()
    parcels = gpd.read_parquet(work / "parcels.parquet")
    t_read = time.perf_counter() - t0
    grid = Grid.from_raster(work / "a.tif")
    c1 = cpu_s()
    t1 = time.perf_counter()
    weights = ZoneWeights.build(parcels, grid, "parcel_id")
    t_build = time.perf_counter() - t1
    t2 = time.perf_counter()
    res_a = weights.apply({"a": work / "a.tif"}, stats=("sum", "count"))
    t_apply_a = time.perf_counter() - t2
    cpu_build_apply = cpu_s() - c1
    t3 = time.perf_counter()
    res_b = weights.apply({"b": work / "b.tif"}, stats=("sum", "count"))
    t_apply_b = time.perf_counter() - t3
    res_a.join(res_b).to_parquet(work / "ecoraster.parquet")
    mb = res_a.attrs["mass_balance"]["a"]
    return {"jit_warmup_s": t_warm, "read_parcels_s": t_read, "build_s": t_build, "apply_a_s": t_apply_a, "apply_b_s": t_apply_b,
            "build_apply_s": t_build + t_apply_a, "build_apply_cpu_s": cpu_build_apply, "weights_mb": weights.nbytes / 1e6,
            "partial_px": int(len(weights.p_zone)), "runs": int(len(weights.r_zone)),
            "mass_balance": {"rel_diff": mb.rel_diff, "abs_diff": mb.abs_diff, "overlap_px": mb.overlap_px,
                             "ok": mb.ok},
            "peak_rss_mb": peak_rss_mb()}


def run_exactextract(work: Path) -> dict:
    import geopandas as gpd
    from exactextract import exact_extract

    t0 = time.perf_counter()
    parcels = gpd.read_parquet(work / "parcels.parquet")
    t_read = time.perf_counter() - t0
    c1 = cpu_s()
    t1 = time.perf_counter()
    df = exact_extract(str(work / "a.tif"), parcels, ["sum", "count"], include_cols=["parcel_id"], output="pandas")
    t_run = time.perf_counter() - t1
    cpu_run = cpu_s() - c1
    df.set_index("parcel_id").to_parquet(work / "exactextract.parquet")
    return {"read_parcels_s": t_read, "run_s": t_run, "run_cpu_s": cpu_run, "peak_rss_mb": peak_rss_mb()}


def compare(work: Path) -> dict:
    import pandas as pd

    ours = pd.read_parquet(work / "ecoraster.parquet")
    theirs = pd.read_parquet(work / "exactextract.parquet").reindex(ours.index)
    a = ours["a_sum"].to_numpy()
    b = theirs["sum"].fillna(0.0).to_numpy()
    rel = np.abs(a - b) / np.maximum(np.abs(b), 1e-300)
    rel[(a == 0) & (b == 0)] = 0.0
    beyond = rel > 1e-9
    return {"zones": len(a), "max_rel_diff": float(rel.max()), "zones_beyond_1e-9": int(beyond.sum()),
            "share_beyond_1e-9": float(beyond.mean()),
            "count_max_rel_diff": float(np.nanmax(np.abs(ours["a_count"].to_numpy() - theirs["count"].fillna(0).to_numpy())
                                                  / np.maximum(theirs["count"].fillna(0).to_numpy(), 1e-300))),
            "total_rel_diff": float(abs(a.sum() - b.sum()) / abs(b.sum()))}


def _child(step: str, work: Path, args: argparse.Namespace) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, __file__, "--step", step, "--work", str(work),
                          "--size", str(args.size), "--parcels", str(args.parcels)],
                         env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=10_000)
    ap.add_argument("--parcels", type=int, default=100_000)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--work", help="reuse the data of an earlier --keep run in this dir")
    args = ap.parse_args()
    if args.step:
        work = Path(args.work)
        if args.step == "generate":
            print(json.dumps(generate(work, args.size, args.parcels)))
        elif args.step == "ecoraster":
            print(json.dumps(run_ecoraster(work)))
        elif args.step == "exactextract":
            print(json.dumps(run_exactextract(work)))
        return
    if args.work:  # reuse generated data (kept with --keep)
        work = Path(args.work)
        gen = json.loads((work / "generate.json").read_text())
    else:
        work = Path(tempfile.mkdtemp(prefix="生态核算_zonal_bench_"))
        gen = _child("generate", work, args)
        (work / "generate.json").write_text(json.dumps(gen))
    load0 = os.getloadavg()
    try:
        print(f"generated {gen['n_parcels']} parcels ({gen['parcels_under_1px']} under 1 px, median "
              f"{gen['median_area_m2']:.0f} m2) and 2 × {args.size}² COGs in {gen['seconds']:.1f} s", flush=True)
        eco = _child("ecoraster", work, args)
        ee = _child("exactextract", work, args)
        cmp_ = compare(work)
        mpx = args.size * args.size / 1e6
        print(f"ecoraster   build {eco['build_s']:.2f} s + apply {eco['apply_a_s']:.2f} s = {eco['build_apply_s']:.2f} s "
              f"({mpx / eco['build_apply_s']:.1f} Mpx/s); apply alone on raster B {eco['apply_b_s']:.2f} s "
              f"({mpx / eco['apply_b_s']:.1f} Mpx/s); weights {eco['weights_mb']:.0f} MB "
              f"({eco['partial_px']} partial px, {eco['runs']} runs); peak RSS {eco['peak_rss_mb']:.0f} MB")
        print(f"exactextract default strategy {ee['run_s']:.2f} s ({mpx / ee['run_s']:.1f} Mpx/s); "
              f"peak RSS {ee['peak_rss_mb']:.0f} MB")
        print(f"speed-up (build+apply vs exactextract): {ee['run_s'] / eco['build_apply_s']:.1f}x; "
              f"apply alone: {ee['run_s'] / eco['apply_b_s']:.1f}x")
        print(f"CPU seconds (user+sys, all threads): ecoraster build+apply {eco['build_apply_cpu_s']:.1f}, "
              f"exactextract {ee['run_cpu_s']:.1f} ({ee['run_cpu_s'] / eco['build_apply_cpu_s']:.1f}x)")
        print(f"load average before/after: {load0} / {os.getloadavg()}")
        print(f"not in the times above: parcels read {eco['read_parcels_s']:.2f} s (ecoraster) / "
              f"{ee['read_parcels_s']:.2f} s (exactextract); numba kernels loaded/compiled {eco['jit_warmup_s']:.2f} s")
        print(f"agreement: max rel diff {cmp_['max_rel_diff']:.3g}, zones beyond 1e-9: {cmp_['zones_beyond_1e-9']} "
              f"of {cmp_['zones']} ({100 * cmp_['share_beyond_1e-9']:.3f} %), count max rel diff "
              f"{cmp_['count_max_rel_diff']:.3g}, total rel diff {cmp_['total_rel_diff']:.3g}")
        print(f"mass balance: {eco['mass_balance']}")
        print(json.dumps({"generate": gen, "ecoraster": eco, "exactextract": ee, "compare": cmp_}))
    finally:
        if args.keep or args.work:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
