"""Benchmark of the valuation stage, the allocation of statistics and the products stage.

Run by hand from the repo root (never in tests):

    PYTHONPATH=$PWD python bench/bench_valuation.py [--size 4000] [--units 100] [--chunk 2048]

1. value_results: a physical float32 COG of size² pixels (5 % nodata) → value COG (CNY).
2. allocate: a township table (units × 2 products) over the same grid, NDVI-weighted, written as COGs.
3. build_products on the demo workspace, if ``/tmp/demo_ws`` holds a run of configs/wuhan_2013_gep.yaml.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".numba_cache"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=4000)
    ap.add_argument("--units", type=int, default=100)
    ap.add_argument("--chunk", type=int, default=2048)
    args = ap.parse_args()
    import geopandas as gpd
    import pandas as pd
    import rasterio
    from affine import Affine
    from shapely.geometry import box

    from ecoraster.allocation import allocate, read_statistics
    from ecoraster.io.raster import RasterOutput, write_rasters
    from ecoraster.config import load_plan
    from ecoraster.spec import OutputRecord, ServiceResult
    from ecoraster.accounting.valuation import value_results

    n = args.size
    tmp = Path(tempfile.mkdtemp(prefix="bench_valuation_"))
    x0, y0, res = 39_499_980.0, 4_350_000.0, 30.0
    rng = np.random.default_rng(0)
    prof = dict(driver="GTiff", width=n, height=n, count=1, crs="EPSG:4527", tiled=True, blockxsize=512,
                blockysize=512, transform=Affine(res, 0, x0, 0, -res, y0), compress="DEFLATE")
    with rasterio.open(tmp / "wc.tif", "w", dtype="float32", nodata=-9999.0, **prof) as dst, \
            rasterio.open(tmp / "classes.tif", "w", dtype="uint8", nodata=255, **prof) as dc, \
            rasterio.open(tmp / "ndvi.tif", "w", dtype="float32", nodata=-2.0, **prof) as dn:
        for r0 in range(0, n, 512):
            h = min(512, n - r0)
            a = rng.uniform(0, 500, (h, n)).astype(np.float32)
            a[rng.random((h, n)) < 0.05] = -9999.0
            w = rasterio.windows.Window(0, r0, n, h)
            dst.write(a, 1, window=w)
            dc.write(rng.choice(np.array([3, 4, 6], np.uint8), (h, n)), 1, window=w)
            dn.write(rng.uniform(-0.1, 0.9, (h, n)).astype(np.float32), 1, window=w)
    (tmp / "cat.yaml").write_text("datasets:\n  wc: {kind: raster, uri: wc.tif}\n", encoding="utf-8")
    (tmp / "run.yaml").write_text(textwrap.dedent(f"""
        region: bench
        year: 2013
        catalog: cat.yaml
        grid: {{like: wc}}
        chunk: {args.chunk}
        services: {{}}
    """), encoding="utf-8")
    plan = load_plan(tmp / "run.yaml")
    rec = OutputRecord(id="wc", path=str(tmp / "wc.tif"), units="m3", kind="physical", per="pixel",
                       nodata=-9999.0, total=0.0, valid_pixels=0, product="water_conservation")
    t = time.perf_counter()
    out = value_results(plan, {"bench": ServiceResult("bench", outputs={"wc": rec})}, tmp / "out")
    t_val = time.perf_counter() - t
    print(f"value_results {n}x{n} ({n * n / 1e6:.0f} Mpx), chunk {args.chunk}: {t_val:.1f} s "
          f"({n * n / t_val / 1e6:.1f} Mpx/s); total {out['bench'].outputs['wc_value'].total:.6g} CNY")

    k = int(np.sqrt(args.units))
    step = n * res / k
    units = gpd.GeoDataFrame({"code": [f"T{i}" for i in range(k * k)]},
                             geometry=[box(x0 + c * step, y0 - (r + 1) * step, x0 + (c + 1) * step, y0 - r * step)
                                       for r in range(k) for c in range(k)], crs="EPSG:4527")
    table = read_statistics(pd.DataFrame({
        "unit_id": [f"T{i}" for i in range(k * k)] * 2,
        "product": ["agricultural_products"] * (k * k) + ["fishery_products"] * (k * k),
        "quantity": rng.uniform(100, 1000, 2 * k * k), "quantity_unit": "t",
        "value": rng.uniform(1e5, 1e6, 2 * k * k)}), "bench")
    from ecoraster.grid import align_to

    classes = align_to(tmp / "classes.tif", plan.grid, "nearest", chunk=args.chunk).data
    ndvi = align_to(tmp / "ndvi.tif", plan.grid, "nearest", chunk=args.chunk).data
    t = time.perf_counter()
    qty, val, rep = allocate(table, units, "code", classes, 255, {"agricultural_products": [3],
                             "fishery_products": [6]}, plan.grid, weight=ndvi, weight_nodata=-2.0,
                             area_weighted=("fishery_products",), chunk=args.chunk)
    t_pass1 = time.perf_counter() - t
    outs = [RasterOutput(tmp / "out" / f"{p}_{kind}.tif", a, -9999.0, "x")
            for kind, d in (("qty", qty), ("value", val)) for p, a in d.items()]
    stats = write_rasters(outs, plan.grid)
    t_all = time.perf_counter() - t
    q_total = sum(s.total for p, s in stats.items() if "_qty" in p)
    print(f"allocate {k * k} units × 2 products, {n}x{n}: weights pass {t_pass1:.1f} s, with 4 COGs {t_all:.1f} s; "
          f"Σ qty {q_total:.6g} vs table {table['quantity'].sum():.6g}")

    ws = Path("/tmp/demo_ws")
    if (ws / "run.json").exists():
        import json

        from ecoraster.accounting.gep_tables import build_products

        m = json.loads((ws / "run.json").read_text(encoding="utf-8"))
        results = {k: ServiceResult.from_dict(v) for k, v in m["results"].items()}
        demo = load_plan("configs/wuhan_2013_gep.yaml")
        t = time.perf_counter()
        build_products(demo, results, {k: Path(v) for k, v in m["zonal_tables"].items()}, tmp / "products_out")
        print(f"build_products on the demo workspace (13 districts, 3000 parcels, 1 wetland unit, "
              f"{sum(len(r.outputs) for r in results.values())} rasters): {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
