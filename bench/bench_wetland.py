"""Benchmark the wetland and lake services (flood regulation, water purification, climate regulation) in one run.

Run by hand (never in tests; the machine is shared — once is enough)::

    PYTHONPATH=. python bench/bench_wetland.py --size 10000

Inputs are generated in a temp folder as single-band COGs (10 m pixels, EPSG:4527): GEP classes in 250-px blocks
(marsh 41, lake 42 among them) with 5 % of the water and marsh pixels punched out at random (holes and ragged
shores: many patches, polygons with many rings), and an annual AET field. Flood regulation labels every water body
on the whole class array (the memory-heavy step), spreads the storage by area and polygonises the bodies; water
purification runs its two passes with a regional load cap; climate regulation takes the AET with a scalar hot-day
count. The run executes in a child process; its wall time, Mpixel/s, stage timings and peak RSS are printed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import child_report, print_report, run_child
from bench_carbon_sequestration import classes, field, write_cog


def ragged_classes(size: int):
    """The CASA bench's class blocks with 5 % of the wetland / water pixels turned into paddy (51)."""
    base = classes(size)

    def rows(r0, h):
        block = base(r0, h).copy()
        rng = np.random.default_rng(r0)
        holes = (rng.random(block.shape) < 0.05) & np.isin(block, (41, 42))
        block[holes] = 51
        return block
    return rows


def generate(work: Path, size: int) -> dict[str, str]:
    t0 = time.monotonic()
    write_cog(work / "eco.tif", size, "uint8", 255, ragged_classes(size))
    write_cog(work / "aet.tif", size, "float32", -9999.0, field(size, 400.0, 1000.0))
    print(f"generated inputs in {time.monotonic() - t0:.1f} s", flush=True)
    return {"eco": "eco.tif", "aet": "aet.tif"}


def write_config(work: Path, uris: dict[str, str], chunk: int) -> Path:
    datasets = {k: {"kind": "raster", "uri": v} for k, v in uris.items()}
    datasets["eco"]["categorical"] = True
    (work / "catalog.yaml").write_text(yaml.safe_dump({"datasets": datasets}))
    run = {"region": "bench", "year": 2021, "catalog": "catalog.yaml", "grid": {"like": "eco"}, "chunk": chunk,
           "services": {
               "flood_regulation": {"inputs": {"ecosystem": "eco"}},
               "water_purification": {"inputs": {"ecosystem": "eco", "load_cod": 1000.0, "load_nh3n": 1e6,
                                                 "load_tp": 10.0}},
               "climate_regulation": {"inputs": {"ecosystem": "eco", "et": "aet", "hot_days_scalar": 80}}}}
    (work / "run.yaml").write_text(yaml.safe_dump(run))
    return work / "run.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=10_000)
    ap.add_argument("--chunk", type=int, default=2048)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--child", nargs=2, metavar=("CONFIG", "WORKSPACE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_report(*args.child, service="flood_regulation")
        return
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="bench_wetland_") as tmp:
        work = Path(tmp)
        config = write_config(work, generate(work, args.size), args.chunk)
        report, peak_gb = run_child(__file__, config, work / "ws")
        print_report(f"wetland services (flood, water purification, climate), chunk {args.chunk},", report,
                     args.size, peak_gb)


if __name__ == "__main__":
    main()
