"""Benchmark water_conservation side by side with InVEST 3.20.2 Annual Water Yield.

Generates an N × N grid (default 10,000², 10 m, EPSG:4527) of COG inputs in a temp folder —
land cover (GEP codes), precipitation, ET0, PAWC, depth to the root-restricting layer, AET —
then, in the same script run, runs

1. ecoraster ``eco run`` (method invest_awy: COG inputs → 3 COG outputs + zonal sum over one
   watershed), as a subprocess;
2. InVEST ``annual_water_yield.execute`` (n_workers = −1) on the same files and watershed,
   in InVEST's own venv, as a subprocess;
3. ecoraster method water_balance (no InVEST peer);

and prints wall time, Mpixel/s and the peak RSS of each process tree (psutil, a sampling
thread, every 0.2 s). ``--record`` appends the numbers to ``bench/README.md``.

Run by hand, never in tests::

    .venv/bin/python bench/bench_water_conservation.py --size 10000 --record

Helpers here are shared with ``bench_carbon_storage.py``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import rasterio
import rasterio.shutil
from affine import Affine

REPO = Path(__file__).resolve().parents[1]
README = REPO / "bench" / "README.md"
INVEST_PYTHON = os.environ.get("INVEST_PYTHON", str(REPO / ".invest-venv" / "bin" / "python"))
ECO_PYTHON = os.environ.get("ECO_PYTHON", sys.executable)
CRS = "EPSG:4527"
ORIGIN = (39_499_980.0, 4_350_000.0)
#: GEP classes used by the synthetic land cover, with bench-only AWY parameters (Kc, root mm, veg).
CLASSES = {11: (1.0, 5000, 1), 13: (1.0, 5000, 1), 15: (1.0, 5000, 1), 21: (0.9, 2000, 1), 31: (0.85, 1500, 1),
           33: (0.85, 1500, 1), 41: (1.1, 1000, 1), 42: (1.05, 1, 0), 51: (1.05, 700, 1), 52: (0.8, 1000, 1),
           62: (0.3, 1, 0)}
STRIP = 1000  # rows generated at a time


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------

def _write_cog(path: Path, size: int, res: float, dtype: str, nodata, make_strip) -> None:
    """Write a size × size raster strip by strip to a tiled GeoTIFF, then translate it to a COG
    (DEFLATE, 512 tiles, overviews: what a COG input normally carries)."""
    tmp = path.with_suffix(".tmp.tif")
    profile = dict(driver="GTiff", width=size, height=size, count=1, dtype=dtype, crs=CRS, nodata=nodata,
                   transform=Affine(res, 0, ORIGIN[0], 0, -res, ORIGIN[1]), tiled=True,
                   blockxsize=512, blockysize=512, compress="DEFLATE", BIGTIFF="IF_SAFER", NUM_THREADS="ALL_CPUS")
    with rasterio.open(tmp, "w", **profile) as dst:
        for r0 in range(0, size, STRIP):
            rows = min(STRIP, size - r0)
            dst.write(make_strip(r0, rows).astype(dtype), 1, window=rasterio.windows.Window(0, r0, size, rows))
    rasterio.shutil.copy(str(tmp), str(path), driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=512,
                         BIGTIFF="IF_SAFER", NUM_THREADS="ALL_CPUS", OVERVIEW_RESAMPLING="NEAREST")
    tmp.unlink()


def _field(size: int, r0: int, rows: int, seed: int, scale: float) -> np.ndarray:
    """A smooth field in [−1, 1] (sums of sines) for rows r0.. of an N × N grid."""
    y = (np.arange(r0, r0 + rows, dtype=np.float64)[:, None]) / size
    x = (np.arange(size, dtype=np.float64)[None, :]) / size
    rng = np.random.default_rng(seed)
    f = np.zeros((rows, size))
    for _ in range(4):
        kx, ky, ph = rng.uniform(1, scale, 3)
        f += np.sin(2 * np.pi * (kx * x + ph)) * np.cos(2 * np.pi * (ky * y + ph / 2))
    return f / 4


def make_lulc(path: Path, size: int, res: float, seed: int = 1) -> None:
    """Patchy land cover over the GEP codes of :data:`CLASSES` (uint8, nodata 255; a nodata
    border of 1 % of the rows)."""
    codes = np.array(sorted(CLASSES), dtype=np.uint8)

    def strip(r0, rows):
        f = (_field(size, r0, rows, seed, 40) + 1) / 2
        rng = np.random.default_rng(seed + r0)
        idx = np.clip((f * len(codes) + rng.normal(0, 0.6, f.shape)).astype(int), 0, len(codes) - 1)
        out = codes[idx]
        out[:, : size // 100] = 255
        return out

    _write_cog(path, size, res, "uint8", 255, strip)


def make_continuous(path: Path, size: int, res: float, lo: float, hi: float, seed: int) -> None:
    """A smooth float32 field between lo and hi plus 2 % noise (nodata −1)."""
    def strip(r0, rows):
        f = (_field(size, r0, rows, seed, 6) + 1) / 2
        rng = np.random.default_rng(seed * 7919 + r0)
        return lo + (hi - lo) * np.clip(f + rng.normal(0, 0.02, f.shape), 0, 1)

    _write_cog(path, size, res, "float32", -1.0, strip)


def make_watershed(path: Path, size: int, res: float, per_side: int = 4) -> None:
    """``per_side``² square watersheds (ws_id 1..) tiling the grid, as a Shapefile (InVEST
    needs watersheds; their union covers the grid, so InVEST keeps the whole grid)."""
    import geopandas as gpd
    from shapely.geometry import box

    x0, y1 = ORIGIN
    edge = size * res / per_side
    boxes = [box(x0 + j * edge, y1 - (i + 1) * edge, x0 + (j + 1) * edge, y1 - i * edge)
             for i in range(per_side) for j in range(per_side)]
    gdf = gpd.GeoDataFrame({"ws_id": np.arange(1, len(boxes) + 1)}, geometry=boxes, crs=CRS)
    gdf.to_file(path)


# ---------------------------------------------------------------------------------------------
# measuring
# ---------------------------------------------------------------------------------------------

class PeakRSS:
    """Peak resident memory of a process and all its descendants, sampled every ``interval`` s."""

    def __init__(self, pid: int, interval: float = 0.2):
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def timed(cmd: list[str], label: str, env: dict | None = None, cwd: Path | None = None) -> dict:
    """Run ``cmd`` as a subprocess; wall time and peak RSS of its process tree."""
    t0 = time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with PeakRSS(proc.pid) as mem:
        out, err = proc.communicate()
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{label} failed ({proc.returncode}):\n{err[-3000:]}")
    load = os.getloadavg()[0]
    print(f"{label}: wall {wall:.1f} s, CPU {cpu:.1f} s, peak RSS {mem.peak / 1e9:.2f} GB, load {load:.1f}", flush=True)
    return {"label": label, "wall_s": wall, "cpu_s": cpu, "peak_rss_gb": mem.peak / 1e9, "load": load,
            "stdout": out, "stderr": err}


def eco_cmd(config: Path, workspace: Path) -> list[str]:
    return [ECO_PYTHON, "-c", "from ecoraster.cli import main; main()", "run", str(config),
            "-w", str(workspace), "-q", "--json"]


def eco_env() -> dict:
    return {"PYTHONPATH": str(REPO), "NUMBA_CACHE_DIR": str(REPO / ".numba_cache")}


def invest_cmd(module: str, args: dict) -> list[str]:
    code = textwrap.dedent(f"""
        import json, logging, sys
        logging.basicConfig(level=logging.WARNING)
        from natcap.invest.{module} import execute
        execute(json.loads(sys.argv[1]))
    """)
    return [INVEST_PYTHON, "-c", code, json.dumps(args)]


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.node()}: {psutil.cpu_count()} cores ({cpu}), "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, {platform.system()} {platform.release()}")


def report(rows: list[dict], size: int, title: str, command: str, record: bool, notes: list[str] = ()) -> None:
    """Print a table of runs; with ``record`` append it to ``bench/README.md``."""
    mpx = size * size / 1e6
    lines = [f"### {title} — {size:,} × {size:,} ({mpx:,.0f} Mpx), {dt.date.today().isoformat()}", "",
             f"Machine: {machine()}  ", f"Command: `{command}`", "",
             "| run | wall s | Mpx/s (wall) | CPU s (user+sys) | peak RSS GB | load avg | vs InVEST wall / CPU |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    peer = {r["model"]: r for r in rows if r["label"].startswith("InVEST")}
    for r in rows:
        speedup = ""
        if not r["label"].startswith("InVEST") and r.get("model") in peer:
            p = peer[r["model"]]
            speedup = f"{p['wall_s'] / r['wall_s']:.1f}× / {p['cpu_s'] / r['cpu_s']:.1f}×"
        lines.append(f"| {r['label']} | {r['wall_s']:.1f} | {mpx / r['wall_s']:.2f} | {r['cpu_s']:.1f} | "
                     f"{r['peak_rss_gb']:.2f} | {r['load']:.1f} | {speedup} |")
    lines += [""] + [f"- {n}" for n in notes] + [""]
    text = "\n".join(lines)
    print(text)
    if record:
        if not README.exists():
            README.write_text("# Benchmarks: water conservation and carbon storage vs InVEST 3.20.2\n\n"
                              "Numbers appended by `bench/bench_water_conservation.py --record` and "
                              "`bench/bench_carbon_storage.py --record` (one section per run).\n\n",
                              encoding="utf-8")
        with README.open("a", encoding="utf-8") as f:
            f.write(text + "\n")


def eco_timings(stdout: str, workspace: Path) -> dict:
    """Stage timings from ecoraster's run.json."""
    manifest = json.loads((workspace / "run.json").read_text(encoding="utf-8"))
    return manifest.get("timings_s", {})


# ---------------------------------------------------------------------------------------------
# the water benchmark
# ---------------------------------------------------------------------------------------------

def make_inputs(work: Path, size: int, res: float, watersheds: int = 4) -> dict[str, Path]:
    paths = {n: work / f"{n}.tif" for n in ("lulc", "precip", "eto", "pawc", "depth", "aet")}
    t0 = time.perf_counter()
    make_lulc(paths["lulc"], size, res)
    make_continuous(paths["precip"], size, res, 500, 1800, seed=2)
    make_continuous(paths["eto"], size, res, 700, 1300, seed=3)
    make_continuous(paths["pawc"], size, res, 0.05, 0.35, seed=4)
    make_continuous(paths["depth"], size, res, 300, 3000, seed=5)
    make_continuous(paths["aet"], size, res, 350, 950, seed=6)
    make_watershed(work / "watershed.shp", size, res, watersheds)
    bio = ["lucode,Kc,root_depth,LULC_veg"] + [f"{c},{k},{r},{v}" for c, (k, r, v) in sorted(CLASSES.items())]
    (work / "biophysical.csv").write_text("\n".join(bio) + "\n", encoding="utf-8")
    print(f"inputs generated in {time.perf_counter() - t0:.0f} s: {work}")
    return paths


def write_configs(work: Path, chunk: int) -> tuple[Path, Path]:
    (work / "catalog.yaml").write_text(textwrap.dedent("""
        datasets:
          lulc: {kind: raster, uri: lulc.tif, categorical: true, resampling: nearest}
          precip: {kind: raster, uri: precip.tif, units: mm/yr}
          eto: {kind: raster, uri: eto.tif, units: mm/yr}
          pawc: {kind: raster, uri: pawc.tif}
          depth: {kind: raster, uri: depth.tif, units: mm}
          aet: {kind: raster, uri: aet.tif, units: mm/yr}
          bio: {kind: table, uri: biophysical.csv}
          watershed: {kind: vector, uri: watershed.shp}
    """), encoding="utf-8")
    awy = work / "awy.yaml"
    awy.write_text(textwrap.dedent(f"""
        region: bench
        year: 2020
        catalog: catalog.yaml
        chunk: {chunk}
        grid: {{like: lulc}}
        services:
          water_conservation:
            method: invest_awy
            inputs: {{lulc: lulc, precipitation: precip, et0: eto, root_restricting_depth: depth,
                      pawc: pawc, biophysical_table: bio}}
            params: {{seasonality_z: 5}}
        zones:
          watersheds: {{dataset: watershed, id_field: ws_id}}
    """), encoding="utf-8")
    balance = work / "balance.yaml"
    balance.write_text(textwrap.dedent(f"""
        region: bench
        year: 2020
        catalog: catalog.yaml
        chunk: {chunk}
        grid: {{like: lulc}}
        services:
          water_conservation:
            inputs: {{ecosystem: lulc, precipitation: precip, aet: aet}}
    """), encoding="utf-8")
    return awy, balance


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=10_000, help="grid edge in pixels (default 10000)")
    ap.add_argument("--res", type=float, default=10.0, help="pixel size in m (default 10)")
    ap.add_argument("--chunk", type=int, default=2048, help="ecoraster chunk edge in pixels")
    ap.add_argument("--workdir", type=Path, default=None, help="keep inputs here (default: a temp folder)")
    ap.add_argument("--watersheds", type=int, default=4, help="N: N × N square watersheds (default 4)")
    ap.add_argument("--no-invest", action="store_true", help="skip the InVEST run")
    ap.add_argument("--record", action="store_true", help=f"append the results to {README.name}")
    a = ap.parse_args()
    work = a.workdir or Path(tempfile.mkdtemp(prefix="bench_water_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if not (work / "lulc.tif").exists():
            make_inputs(work, a.size, a.res, a.watersheds)
        awy_cfg, balance_cfg = write_configs(work, a.chunk)
        rows = []
        for ws in ("ws_eco_awy", "ws_eco_balance", "ws_invest_awy"):
            shutil.rmtree(work / ws, ignore_errors=True)
        r = timed(eco_cmd(awy_cfg, work / "ws_eco_awy"), "ecoraster water_conservation invest_awy", eco_env())
        r["model"] = "awy"
        rows.append(r)
        stages = eco_timings(r["stdout"], work / "ws_eco_awy")
        print("ecoraster invest_awy stages (s):", stages)
        if not a.no_invest:
            args = {"workspace_dir": str(work / "ws_invest_awy"), "results_suffix": "",
                    "lulc_path": str(work / "lulc.tif"), "precipitation_path": str(work / "precip.tif"),
                    "eto_path": str(work / "eto.tif"), "pawc_path": str(work / "pawc.tif"),
                    "depth_to_root_rest_layer_path": str(work / "depth.tif"),
                    "watersheds_path": str(work / "watershed.shp"), "sub_watersheds_path": "",
                    "biophysical_table_path": str(work / "biophysical.csv"), "seasonality_constant": 5,
                    "demand_table_path": "", "valuation_table_path": "", "n_workers": -1}
            r = timed(invest_cmd("annual_water_yield.annual_water_yield", args),
                      "InVEST 3.20.2 annual_water_yield (n_workers=-1)")
            r["model"] = "awy"
            rows.append(r)
        if not a.no_invest:  # ecoraster again after InVEST: the machine's load drifts
            shutil.rmtree(work / "ws_eco_awy", ignore_errors=True)
            r = timed(eco_cmd(awy_cfg, work / "ws_eco_awy"), "ecoraster water_conservation invest_awy (again)",
                      eco_env())
            r["model"] = "awy"
            rows.append(r)
        r = timed(eco_cmd(balance_cfg, work / "ws_eco_balance"), "ecoraster water_conservation water_balance",
                  eco_env())
        r["model"] = "balance"
        rows.append(r)
        notes = [f"ecoraster invest_awy stages (s): {stages}",
                 "ecoraster: 3 COGs (yield mm, yield m³, AET; ZSTD + overviews) + zonal sums over the watersheds; "
                 "InVEST: its usual intermediates and outputs (GeoTIFF, no overviews) + watershed table",
                 f"inputs: {a.size}² {a.res:g} m COGs (DEFLATE, 512 tiles, overviews; noise makes them nearly "
                 "incompressible), "
                 f"{a.watersheds}² watersheds, chunk {a.chunk}"]
        if not a.no_invest:
            notes.append(_check_same_yield(work))
        report(rows, a.size, "water_conservation vs InVEST Annual Water Yield",
               ".venv/bin/python bench/bench_water_conservation.py "
               + " ".join(sys.argv[1:]), a.record, notes)
    finally:
        if a.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def _check_same_yield(work: Path) -> str:
    """Compare ecoraster's and InVEST's per-pixel yield on a sample of windows (a sanity check)."""
    ours = work / "ws_eco_awy" / "water_conservation" / "water_yield_mm.tif"
    theirs = work / "ws_invest_awy" / "output" / "per_pixel" / "wyield.tif"
    worst = 0.0
    with rasterio.open(ours) as a, rasterio.open(theirs) as b:
        for r0 in range(0, a.height, max(1, a.height // 5)):
            w = rasterio.windows.Window(0, r0, a.width, min(256, a.height - r0))
            x, y = a.read(1, window=w).astype(np.float64), b.read(1, window=w).astype(np.float64)
            valid = (x != a.nodata) & (y != b.nodata)
            if valid.any():
                worst = max(worst, float(np.abs(x[valid] - y[valid]).max()))
    return f"per-pixel yield ecoraster vs InVEST on sampled strips: max |Δ| = {worst:.2e} mm"


if __name__ == "__main__":
    main()
