"""Benchmark carbon_sequestration (CASA) from COG inputs to COG outputs on a generated grid.

Run by hand (never in tests)::

    PYTHONPATH=. python bench/bench_carbon_sequestration.py --size 10000 --periods 12

Inputs are generated in a temp folder as single-band COGs (10 m pixels, EPSG:4527): GEP classes,
NDVI, SOL, T, P, PET, AET (smooth fields). With ``--periods 12`` every period input is a 12-band VRT
whose band m reads the same COG with a month-specific scale / offset — so each block really decodes
12 × 6 windows of COG tiles, as a run on 12 monthly COGs per variable does, without writing 72
full-size rasters first. The run itself (validation + NDVI percentile pass + CASA pass + 5 COG outputs)
executes in a child process; its wall time, Mpixel/s and peak RSS are printed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
import yaml
from affine import Affine
from rasterio.windows import Window

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import child_report, print_report, run_child  # noqa: E402

CRS = "EPSG:4527"
ORIGIN = (39_400_000.0, 4_400_000.0)
CLASSES = np.array([12, 13, 15, 31, 41, 42, 51, 52, 61, 62], dtype=np.uint8)


def write_cog(path: Path, size: int, dtype: str, nodata, make_rows) -> None:
    """Write a size × size single-band COG, 512 rows at a time (bounded memory)."""
    tmp = path.with_suffix(".tmp.tif")
    profile = dict(driver="GTiff", width=size, height=size, count=1, dtype=dtype, crs=CRS, nodata=nodata,
                   transform=Affine(10.0, 0, ORIGIN[0], 0, -10.0, ORIGIN[1]), tiled=True,
                   blockxsize=512, blockysize=512, compress="DEFLATE", predictor=3 if dtype.startswith("float") else 2,
                   BIGTIFF="IF_SAFER")
    with rasterio.open(tmp, "w", **profile) as dst:
        for r0 in range(0, size, 512):
            h = min(512, size - r0)
            dst.write(make_rows(r0, h).astype(dtype), 1, window=Window(0, r0, size, h))
    rasterio.shutil.copy(str(tmp), str(path), driver="COG", COMPRESS="DEFLATE",
                         PREDICTOR="FLOATING_POINT" if dtype.startswith("float") else "YES",
                         BLOCKSIZE=512, BIGTIFF="IF_SAFER", NUM_THREADS="ALL_CPUS")
    tmp.unlink()


def field(size: int, lo: float, hi: float):
    """Smooth field between lo and hi (sum of a column and a row gradient with a ripple)."""
    x = np.linspace(0, 1, size, dtype=np.float32)

    def rows(r0, h):
        y = np.linspace(r0 / size, (r0 + h) / size, h, endpoint=False, dtype=np.float32)[:, None]
        f = 0.5 * (x[None, :] + y) + 0.05 * np.sin(40 * x[None, :]) * np.cos(30 * y)
        return lo + (hi - lo) * np.clip(f, 0, 1)
    return rows


def classes(size: int):
    def rows(r0, h):
        r = np.arange(r0, r0 + h)[:, None] // 250
        c = np.arange(size)[None, :] // 250
        return CLASSES[(r * 7 + c * 3) % CLASSES.size]
    return rows


def monthly_vrt(src: Path, vrt: Path, size: int, scales: list[float], offsets: list[float]) -> None:
    """12-band VRT: band m = scales[m] × src + offsets[m]."""
    with rasterio.open(src) as s:
        nodata, wkt, gt = s.nodata, s.crs.to_wkt(), s.transform.to_gdal()
    bands = "".join(
        f'<VRTRasterBand dataType="Float32" band="{m + 1}"><NoDataValue>{nodata}</NoDataValue><ComplexSource>'
        f'<SourceFilename relativeToVRT="1">{src.name}</SourceFilename><SourceBand>1</SourceBand>'
        f"<ScaleOffset>{offsets[m]}</ScaleOffset><ScaleRatio>{scales[m]}</ScaleRatio>"
        f"<NODATA>{nodata}</NODATA></ComplexSource></VRTRasterBand>\n" for m in range(12))
    vrt.write_text(f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}"><SRS>{wkt}</SRS>'
                   f"<GeoTransform>{', '.join(map(str, gt))}</GeoTransform>\n{bands}</VRTDataset>\n")


def generate(work: Path, size: int, periods: int) -> dict[str, str]:
    t0 = time.monotonic()
    write_cog(work / "eco.tif", size, "uint8", 255, classes(size))
    specs = {"ndvi": (0.05, 0.85), "sol": (250, 650), "t": (4, 26), "p": (20, 180), "pet": (30, 150), "aet": (20, 120)}
    if periods == 1:  # annual surrogates: annual totals
        specs.update(sol=(3000, 7000), p=(300, 1600), pet=(600, 1400), aet=(300, 900), t=(5, 20))
    uris = {"eco": "eco.tif"}
    for name, (lo, hi) in specs.items():
        write_cog(work / f"{name}.tif", size, "float32", -9999.0, field(size, lo, hi))
        uris[name] = f"{name}.tif"
        if periods == 12:
            season = np.sin((np.arange(12) - 3) / 12 * 2 * np.pi)
            if name == "t":
                scales, offsets = [1.0] * 12, list(12 * season - 2)
            elif name == "ndvi":
                scales, offsets = list(0.75 + 0.25 * season), [0.0] * 12
            else:
                scales, offsets = list(0.6 + 0.4 * season), [0.0] * 12
            monthly_vrt(work / f"{name}.tif", work / f"{name}.vrt", size, scales, offsets)
            uris[name] = f"{name}.vrt"
    print(f"generated inputs in {time.monotonic() - t0:.1f} s", flush=True)
    return uris


def write_config(work: Path, uris: dict[str, str], chunk: int) -> Path:
    datasets = {k: {"kind": "raster", "uri": v} for k, v in uris.items()}
    datasets["eco"]["categorical"] = True
    (work / "catalog.yaml").write_text(yaml.safe_dump({"datasets": datasets}))
    run = {"region": "bench", "year": 2021, "catalog": "catalog.yaml", "grid": {"like": "eco"}, "chunk": chunk,
           "services": {"carbon_sequestration": {"inputs": {
               "ecosystem": "eco", "ndvi": "ndvi", "sol": "sol", "temperature": "t", "precipitation": "p",
               "pet": "pet", "aet": "aet"}}}}
    (work / "run.yaml").write_text(yaml.safe_dump(run))
    return work / "run.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=10_000)
    ap.add_argument("--periods", type=int, default=12, choices=(1, 12))
    ap.add_argument("--chunk", type=int, default=2048)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--child", nargs=2, metavar=("CONFIG", "WORKSPACE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_report(*args.child, service="carbon_sequestration")
        return
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="bench_casa_") as tmp:
        work = Path(tmp)
        config = write_config(work, generate(work, args.size, args.periods), args.chunk)
        report, peak_gb = run_child(__file__, config, work / "ws")
        print_report(f"carbon_sequestration, {args.periods} period(s), block chunk {report['chunk']},",
                     report, args.size, peak_gb)


if __name__ == "__main__":
    main()
