"""Benchmark air_purification from COG inputs to COG outputs on a generated grid.

Run by hand (never in tests)::

    PYTHONPATH=. python bench/bench_air_purification.py --size 10000 --method deposition
    PYTHONPATH=. python bench/bench_air_purification.py --size 10000 --method capacity

Inputs are generated in a temp folder as single-band COGs (10 m pixels, EPSG:4527): GEP classes, and
for the deposition method NDVI (→ LAI by the documented relation), a wind-speed raster and the six
concentration rasters. The run (validation + computation + COG outputs: 6 pollutants for deposition;
3 purified + 3 capacity rasters and the regional first pass for capacity) executes in a child process;
its wall time, Mpixel/s and peak RSS are printed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import child_report, print_report, run_child  # noqa: E402
from bench_carbon_sequestration import classes, field, write_cog  # noqa: E402  (generators shared with CASA)

CONC = {"pm25": (30, 80), "pm10": (60, 140), "so2": (5, 30), "no2": (20, 60), "o3": (60, 120), "co": (0.5, 1.5)}


def generate(work: Path, size: int, method: str) -> dict[str, str]:
    t0 = time.monotonic()
    write_cog(work / "eco.tif", size, "uint8", 255, classes(size))
    uris = {"eco": "eco.tif"}
    if method == "deposition":
        layers = {"ndvi": (0.05, 0.85), "wind": (0.5, 6.0), **CONC}
        for name, (lo, hi) in layers.items():
            write_cog(work / f"{name}.tif", size, "float32", -9999.0, field(size, lo, hi))
            uris[name] = f"{name}.tif"
    print(f"generated inputs in {time.monotonic() - t0:.1f} s", flush=True)
    return uris


def write_config(work: Path, uris: dict[str, str], method: str, chunk: int) -> Path:
    datasets = {k: {"kind": "raster", "uri": v} for k, v in uris.items()}
    datasets["eco"]["categorical"] = True
    (work / "catalog.yaml").write_text(yaml.safe_dump({"datasets": datasets}))
    inputs: dict = {"ecosystem": "eco"}
    if method == "deposition":
        inputs.update(ndvi="ndvi", wind_speed="wind", **{f"conc_{p}": p for p in CONC})
        inputs["conc_no2"] = "no2"
    else:
        inputs.update(emission_so2=500.0, emission_nox=50.0, emission_dust=1e9)
    run = {"region": "bench", "year": 2021, "catalog": "catalog.yaml", "grid": {"like": "eco"}, "chunk": chunk,
           "services": {"air_purification": {"method": method, "inputs": inputs}}}
    (work / "run.yaml").write_text(yaml.safe_dump(run))
    return work / "run.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=10_000)
    ap.add_argument("--method", default="deposition", choices=("deposition", "capacity"))
    ap.add_argument("--chunk", type=int, default=2048)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--child", nargs=2, metavar=("CONFIG", "WORKSPACE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_report(*args.child, service="air_purification")
        return
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="bench_air_") as tmp:
        work = Path(tmp)
        config = write_config(work, generate(work, args.size, args.method), args.method, args.chunk)
        report, peak_gb = run_child(__file__, config, work / "ws")
        print_report(f"air_purification ({args.method}), chunk {args.chunk},", report, args.size, peak_gb)


if __name__ == "__main__":
    main()
