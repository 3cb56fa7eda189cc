"""Benchmark soil_retention (invest_sdr) side by side with InVEST 3.20 SDR, and its peak memory.

Generates an N × N grid (default 10,000² = 100 Mpx, 10 m, EPSG:4527) of inputs in a temp folder —
a hilly DEM (sums of sines, 0..~400 m, with small noise so flats and pits exist), land cover with
five codes, erosivity, erodibility and a biophysical table — then runs

1. ecoraster ``eco run`` (method invest_sdr: pit fill, MFD routing, streams, LS, 6 COG outputs,
   zonal sums over 16 watersheds), as a subprocess;
2. with ``--invest``: InVEST ``sdr.sdr.execute`` on the same files (MFD, threshold 1000, l_max 122,
   n_workers −1), in InVEST's own venv (``INVEST_PYTHON``, default ``.invest-venv/bin/python``);

and prints wall time, CPU time and the peak RSS of each process tree (psutil sampling every 0.2 s).
InVEST SDR computes more than avoided erosion (SDR, sediment export and deposition): its time is
the whole model's, as an InVEST user would run it. ``--record`` appends the table to bench/README.md.

Run by hand, never in tests (the machine is shared: at most a couple of runs at 100 Mpx)::

    .venv/bin/python bench/bench_soil_retention.py --size 10000 --record
    .venv/bin/python bench/bench_soil_retention.py --size 2000 --invest --record
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_water_conservation import (  # noqa: E402  (shared bench helpers)
    _field, _write_cog, eco_cmd, eco_env, invest_cmd, make_continuous, make_watershed, report, timed,
)

CODES = {1: (0.006, 1.0), 2: (0.04, 1.0), 3: (0.23, 0.5), 4: (0.01, 1.0), 5: (0.0, 1.0)}


def make_dem(path: Path, size: int, res: float, seed: int = 3) -> None:
    """Hills of several wavelengths (metres, float32, nodata −9999) plus 0.3 m noise."""
    def strip(r0, rows):
        f = 200 + 120 * _field(size, r0, rows, seed, 4) + 50 * _field(size, r0, rows, seed + 1, 25) \
            + 10 * _field(size, r0, rows, seed + 2, 120)
        rng = np.random.default_rng(seed * 31 + r0)
        return f + rng.normal(0, 0.3, f.shape)

    _write_cog(path, size, res, "float32", -9999.0, strip)


def make_lulc(path: Path, size: int, res: float, seed: int = 5) -> None:
    codes = np.array(sorted(CODES), dtype=np.uint8)

    def strip(r0, rows):
        f = (_field(size, r0, rows, seed, 40) + 1) / 2
        return codes[np.clip((f * len(codes)).astype(int), 0, len(codes) - 1)]

    _write_cog(path, size, res, "uint8", 255, strip)


def make_inputs(work: Path, size: int, res: float) -> dict[str, Path]:
    t0 = time.perf_counter()
    p = {n: work / f"{n}.tif" for n in ("dem", "lulc", "erosivity", "erodibility")}
    make_dem(p["dem"], size, res)
    make_lulc(p["lulc"], size, res)
    make_continuous(p["erosivity"], size, res, 3000.0, 6000.0, seed=11)
    make_continuous(p["erodibility"], size, res, 0.02, 0.05, seed=12)
    p["biophysical"] = work / "biophysical_table.csv"
    p["biophysical"].write_text("lucode,usle_c,usle_p\n" + "".join(f"{k},{c},{pp}\n" for k, (c, pp) in CODES.items()),
                                encoding="utf-8")
    p["watersheds"] = work / "watersheds.shp"
    make_watershed(p["watersheds"], size, res)
    print(f"inputs: {time.perf_counter() - t0:.0f} s in {work}", flush=True)
    return p


def eco_config(work: Path, p: dict[str, Path]) -> Path:
    cat = {"version": 1, "datasets": {
        "dem": {"kind": "raster", "uri": str(p["dem"]), "units": "m"},
        "lulc": {"kind": "raster", "uri": str(p["lulc"]), "categorical": True, "resampling": "mode"},
        "erosivity": {"kind": "raster", "uri": str(p["erosivity"])},
        "erodibility": {"kind": "raster", "uri": str(p["erodibility"])},
        "bio": {"kind": "table", "uri": str(p["biophysical"])},
        "ws": {"kind": "vector", "uri": str(p["watersheds"])}}}
    (work / "catalog.yaml").write_text(yaml.safe_dump(cat), encoding="utf-8")
    run = {"region": "bench", "year": 2020, "catalog": "catalog.yaml", "grid": {"like": "dem"}, "profile": "invest",
           "services": {"soil_retention": {"method": "invest_sdr", "inputs": {
               "dem": "dem", "lulc": "lulc", "erosivity": "erosivity", "erodibility": "erodibility",
               "biophysical_table": "bio", "watersheds": "ws"}}},
           "zones": {"watersheds": {"dataset": "ws", "id_field": "ws_id"}}}
    path = work / "run.yaml"
    path.write_text(yaml.safe_dump(run), encoding="utf-8")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=10_000)
    ap.add_argument("--res", type=float, default=10.0)
    ap.add_argument("--invest", action="store_true", help="also run InVEST SDR on the same inputs")
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--inputs", help="reuse the inputs of a --keep run (a folder with dem.tif, lulc.tif, ...)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="生态核算_soil_bench_"))
    try:
        if args.inputs:
            src = Path(args.inputs)
            p = {n: src / f"{n}.tif" for n in ("dem", "lulc", "erosivity", "erodibility")}
            p["biophysical"], p["watersheds"] = src / "biophysical_table.csv", src / "watersheds.shp"
        else:
            p = make_inputs(work, args.size, args.res)
        cfg = eco_config(work, p)
        rows = [{**timed(eco_cmd(cfg, work / "eco_ws"), "ecoraster soil_retention (invest_sdr)", env=eco_env()),
                 "model": "sdr"}]
        if args.invest:
            inv = {"workspace_dir": str(work / "invest_ws"), "dem_path": str(p["dem"]),
                   "erosivity_path": str(p["erosivity"]), "erodibility_path": str(p["erodibility"]),
                   "lulc_path": str(p["lulc"]), "biophysical_table_path": str(p["biophysical"]),
                   "watersheds_path": str(p["watersheds"]), "threshold_flow_accumulation": 1000,
                   "k_param": 2, "sdr_max": 0.8, "ic_0_param": 0.5, "l_max": 122, "flow_dir_algorithm": "MFD",
                   "n_workers": -1}
            rows.append({**timed(invest_cmd("sdr.sdr", inv), "InVEST 3.20 SDR (whole model)"), "model": "sdr"})
        cmd = f"python bench/bench_soil_retention.py --size {args.size}" + (" --invest" if args.invest else "")
        report(rows, args.size, "soil_retention (invest_sdr) vs InVEST SDR", cmd, args.record,
               notes=["peak RSS: whole process tree, sampled every 0.2 s",
                      "InVEST's time includes SDR, sediment export and deposition, which ecoraster does not compute"])
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
