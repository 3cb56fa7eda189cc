"""Benchmark of planners' queries (run by hand, never in tests).

Generates a synthetic run workspace (default 10,000 × 10,000 px at 10 m, 3 products → 6
value/physical COGs, ~100,000 Voronoi parcels) and measures:

- parcel lookup by id: DuckDB in memory (indexed), DuckDB scanning the GeoParquet, and
  through the HTTP API (httpx → uvicorn on loopback);
- a bbox page of parcels (1 km², HTTP);
- valuation of a 1 km² footprint (rotated square, random position inside the region):
  library window engine, library zonal engine, HTTP POST /api/site.

    PYTHONPATH=. python bench/bench_query.py [--size 10000] [--parcels 100000] [--out DIR] [--reuse]

Prints a JSON summary (ms) and writes it next to the workspace.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import statistics
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": round(pct(values, 50), 2), "p95_ms": round(pct(values, 95), 2),
            "max_ms": round(max(values), 2), "mean_ms": round(statistics.fmean(values), 2)}


def timed(fn, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=10_000)
    ap.add_argument("--parcels", type=int, default=100_000)
    ap.add_argument("--products", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("/tmp/eco_bench_query"))
    ap.add_argument("--reuse", action="store_true", help="reuse a workspace generated earlier")
    ap.add_argument("--lookups", type=int, default=1000)
    ap.add_argument("--sites", type=int, default=50)
    args = ap.parse_args()

    import shapely
    import shapely.affinity

    from ecoraster.query import ParcelStore, RunWorkspace, SiteValuer
    from ecoraster.query.synthetic import SYNTHETIC_PRODUCTS, synthetic_workspace

    res: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
                            f"{__import__('os').cpu_count()} cores", "size": args.size, "parcels_asked": args.parcels}
    ws_dir = args.out / f"ws_{args.size}_{args.parcels}"
    if not (args.reuse and (ws_dir / "run.json").exists()):
        t0 = time.perf_counter()
        synthetic_workspace(ws_dir, shape=(args.size, args.size), res=10.0, n_parcels=args.parcels,
                            products=SYNTHETIC_PRODUCTS[:args.products], parcel_sums=False, chunk=2048)
        res["generate_s"] = round(time.perf_counter() - t0, 1)
        print(f"generated {ws_dir} in {res['generate_s']} s", flush=True)

    ws = RunWorkspace.open(ws_dir)
    t0 = time.perf_counter()
    store = ParcelStore(ws.parcels_path)
    res["store_open_in_memory_s"] = round(time.perf_counter() - t0, 2)
    res["parcels"] = store.count
    ids = [r[0] for r in store.cursor().execute("SELECT parcel_id FROM parcels").fetchall()]
    rng = np.random.default_rng(1)
    pick = [ids[i] for i in rng.integers(0, len(ids), args.lookups)]
    res["lookup_duckdb_in_memory"] = summary(timed(lambda i: store.get(pick[i]), args.lookups))
    scan = ParcelStore(ws.parcels_path, in_memory=False)
    res["lookup_duckdb_parquet_scan"] = summary(timed(lambda i: scan.get(pick[i]), min(200, args.lookups)))

    # footprints: 1 km² squares rotated by a random angle, centred inside the region ellipse
    left, bottom, right, top = ws.grid.bounds
    cx, cy, rx, ry = (left + right) / 2, (bottom + top) / 2, (right - left) / 2, (top - bottom) / 2
    sites = []
    while len(sites) < args.sites:
        x, y = rng.uniform(left, right), rng.uniform(bottom, top)
        if ((x - cx) / (rx - 800)) ** 2 + ((y - cy) / (ry - 800)) ** 2 > 1:
            continue
        sq = shapely.affinity.rotate(shapely.box(x - 500, y - 500, x + 500, y + 500), rng.uniform(0, 90))
        sites.append({"type": "Feature", "crs": {"type": "name", "properties": {"name": "EPSG:4527"}},
                      "properties": {"name": f"s{len(sites)}"}, "geometry": shapely.geometry.mapping(sq)})
    window = SiteValuer(ws, store)
    zonal = SiteValuer(ws, store, engine="zonal")
    window.value(window.footprint(sites[0]))  # warm-up (numba-free, but GDAL/exactextract caches)
    vals = {}

    def value_window(i):
        vals[i] = window.value(window.footprint(sites[i])).gep_lost

    res["site_1km2_library_window"] = summary(timed(value_window, args.sites))
    zon_vals = {}

    def value_zonal(i):
        zon_vals[i] = zonal.value(zonal.footprint(sites[i])).gep_lost

    n_zonal = min(10, args.sites)
    res["site_1km2_library_zonal"] = summary(timed(value_zonal, n_zonal))
    res["window_vs_zonal_max_rel_diff"] = max(abs(vals[i] - zon_vals[i]) / max(abs(zon_vals[i]), 1e-9)
                                              for i in range(n_zonal))

    # HTTP: uvicorn on loopback, httpx client
    import httpx
    import uvicorn

    from ecoraster.api.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    app = create_app(ws_dir)
    res["app_start_s"] = round(time.perf_counter() - t0, 2)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=30) as client:
        client.get(f"/api/parcels/{pick[0]}")

        def http_lookup(i):
            r = client.get(f"/api/parcels/{pick[i]}")
            assert r.status_code == 200

        res["lookup_http"] = summary(timed(http_lookup, args.lookups))

        def http_bbox(i):
            b = shapely.geometry.shape(sites[i % len(sites)]["geometry"]).bounds
            r = client.get("/api/parcels", params={"bbox": ",".join(map(str, b)), "limit": 1000,
                                                   "columns": "parcel_id,gep_per_ha", "simplify": 5})
            assert r.status_code == 200

        res["bbox_1km2_page_http"] = summary(timed(http_bbox, min(100, args.lookups)))
        http_vals = {}

        def http_site(i):
            r = client.post("/api/site", json=sites[i])
            assert r.status_code == 200, r.text
            http_vals[i] = r.json()["gep_lost"]

        res["site_1km2_http"] = summary(timed(http_site, args.sites))
        res["http_equals_library"] = all(http_vals[i] == vals[i] for i in range(args.sites))
    server.should_exit = True
    th.join(timeout=10)
    out = args.out / f"bench_query_{args.size}.json"
    out.write_text(json.dumps(res, indent=2), encoding="utf-8")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
