"""Benchmark of planners' queries (run by hand, never in tests).

Generates a synthetic run workspace (default 10,000 × 10,000 px at 10 m, 3 products → 6
value/physical COGs, ~100,000 Voronoi parcels) and measures:

- parcel lookup by id: DuckDB in memory (indexed), DuckDB scanning the GeoParquet, and
  through the HTTP API (httpx → uvicorn on loopback);
- a bbox page of parcels (1 km², HTTP);
- valuation of a 1 km² footprint (rotated square, random position inside the region):
  library window engine, library zonal engine, HTTP POST /api/site.

    PYTHONPATH=. python bench/bench_query.py [--size 10000] [--parcels 100000] [--out DIR] [--reuse]

Mixed mode under concurrency (``--requests N``): ``eco serve`` runs as its own process (``--workers``
uvicorn workers) and ``--concurrency`` client threads send N requests of mixed kinds — parcel by id,
bbox page, 1 km² footprint (some partly outside the region), and malformed requests that must get a
4xx — and report per kind p50/p95 (ms) and the counts of 2xx/4xx/5xx. The exit code is 1 on any 5xx,
transport error or unexpected status (timings never fail the run; they are reported against the
target footprint p95 < 500 ms)::

    PYTHONPATH=. python bench/bench_query.py --reuse --concurrency 8 --requests 1000

Prints a JSON summary (ms) and writes it next to the workspace.
"""

from __future__ import annotations

import argparse
import json
import os
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


def rotated_squares(ws, rng, n: int, *, side_m: float = 1000.0, edge: bool = False) -> list[dict]:
    """``n`` GeoJSON features: squares of ``side_m`` (m) rotated by a random angle, centred
    inside the region ellipse (``edge``: centred on its outline, so partly outside the data)."""
    import shapely
    import shapely.affinity

    left, bottom, right, top = ws.grid.bounds
    cx, cy, rx, ry = (left + right) / 2, (bottom + top) / 2, (right - left) / 2, (top - bottom) / 2
    half = side_m / 2
    sites: list[dict] = []
    while len(sites) < n:
        if edge:
            a = rng.uniform(0, 2 * np.pi)
            x, y = cx + rx * np.cos(a), cy + ry * np.sin(a)
        else:
            x, y = rng.uniform(left, right), rng.uniform(bottom, top)
            if ((x - cx) / (rx - 800)) ** 2 + ((y - cy) / (ry - 800)) ** 2 > 1:
                continue
        sq = shapely.affinity.rotate(shapely.box(x - half, y - half, x + half, y + half), rng.uniform(0, 90))
        sites.append({"type": "Feature", "crs": {"type": "name", "properties": {"name": "EPSG:4527"}},
                      "properties": {"name": f"{'e' if edge else 's'}{len(sites)}"},
                      "geometry": shapely.geometry.mapping(sq)})
    return sites


def header(args) -> dict:
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "size": args.size, "parcels_asked": args.parcels}


def workspace(args, res: dict) -> Path:
    """The synthetic workspace of ``--size``/``--parcels`` (generated unless ``--reuse`` finds it)."""
    from ecoraster.query.synthetic import SYNTHETIC_PRODUCTS, synthetic_workspace

    ws_dir = args.out / f"ws_{args.size}_{args.parcels}"
    if not (args.reuse and (ws_dir / "run.json").exists()):
        t0 = time.perf_counter()
        synthetic_workspace(ws_dir, shape=(args.size, args.size), res=10.0, n_parcels=args.parcels,
                            products=SYNTHETIC_PRODUCTS[:args.products], parcel_sums=False, chunk=2048)
        res["generate_s"] = round(time.perf_counter() - t0, 1)
        print(f"generated {ws_dir} in {res['generate_s']} s", flush=True)
    return ws_dir


#: Share of each request kind in the mixed mode (the malformed ones must be answered 4xx).
MIX = {"parcel_by_id": 0.35, "bbox_page": 0.2, "footprint": 0.3, "footprint_edge": 0.05, "malformed": 0.1}

#: Footprint p95 target under concurrency (ms), issue 17 item 7.
FOOTPRINT_P95_TARGET_MS = 500.0


def malformed_requests(ws, parcel_id: str) -> list[tuple[str, str, dict, int]]:
    """(method, url, httpx keyword arguments, expected status) of requests that must be refused."""
    left, bottom, right, top = ws.grid.bounds
    crs = {"type": "name", "properties": {"name": "EPSG:4527"}}
    bowtie = {"type": "Feature", "crs": crs, "properties": {}, "geometry": {"type": "Polygon", "coordinates": [[
        [left + 100, bottom + 100], [left + 900, bottom + 900], [left + 900, bottom + 100], [left + 100, bottom + 900],
        [left + 100, bottom + 100]]]}}
    far = {"type": "Feature", "crs": crs, "properties": {}, "geometry": {"type": "Polygon", "coordinates": [[
        [right + 1e5, top], [right + 1e5 + 500, top], [right + 1e5 + 500, top + 500], [right + 1e5, top]]]}}
    return [
        ("GET", f"/api/parcels/{parcel_id}-nope", {}, 404),
        ("POST", "/api/site", {"content": b'{"type": "Feature", ', "headers": {"content-type": "application/json"}},
         422),
        ("POST", "/api/site", {"json": bowtie}, 422),
        ("POST", "/api/site", {"json": far}, 422),
        ("POST", "/api/site", {"json": {"type": "Point", "coordinates": [0, 0]}}, 422),
        ("GET", "/api/parcels", {"params": {"bbox": "1,2,3"}}, 400),
        ("GET", "/api/parcels", {"params": {"bbox": f"{left},{bottom},{right},{top}", "limit": 0}}, 422),
        ("GET", "/api/nowhere", {}, 404),
    ]


def mixed(args) -> int:
    """The mixed mode: ``--requests`` requests from ``--concurrency`` threads against ``eco serve``
    in its own process. Returns the exit code (1 on any 5xx / transport error / unexpected status)."""
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    import psutil
    import shapely

    from ecoraster.query import ParcelStore, RunWorkspace, SiteValuer

    res = header(args)
    res.update({"mode": "mixed", "requests": args.requests, "concurrency": args.concurrency,
                "workers": args.workers, "mix": MIX})
    ws_dir = workspace(args, res)
    ws = RunWorkspace.open(ws_dir)
    store = ParcelStore(ws.parcels_path, in_memory=False)
    rng = np.random.default_rng(7)
    ids = [r[0] for r in store.cursor().execute("SELECT parcel_id FROM parcels USING SAMPLE 2000 ROWS").fetchall()]
    sites = rotated_squares(ws, rng, args.sites)
    edge_sites = rotated_squares(ws, rng, max(4, args.sites // 5), edge=True)
    # the library's answers, to check every HTTP answer against (same numbers, any thread)
    valuer = SiteValuer(ws, None)
    expected = {}
    for f in sites + edge_sites:
        try:
            expected[f["properties"]["name"]] = valuer.value(valuer.footprint(f), with_parcels=False).gep_lost
        except Exception as exc:  # a site the API must refuse too
            expected[f["properties"]["name"]] = type(exc).__name__
    bad = malformed_requests(ws, ids[0])

    kinds = list(MIX)
    plan = []
    for kind in rng.choice(kinds, size=args.requests, p=[MIX[k] for k in kinds]):
        if kind == "parcel_by_id":
            plan.append((kind, "GET", f"/api/parcels/{ids[rng.integers(len(ids))]}", {}, 200))
        elif kind == "bbox_page":
            b = shapely.geometry.shape(sites[rng.integers(len(sites))]["geometry"]).bounds
            plan.append((kind, "GET", "/api/parcels", {"params": {
                "bbox": ",".join(map(str, b)), "limit": 1000, "columns": "parcel_id,gep_per_ha", "simplify": 5}}, 200))
        elif kind in ("footprint", "footprint_edge"):
            pool = sites if kind == "footprint" else edge_sites
            site = pool[rng.integers(len(pool))]
            refused = isinstance(expected[site["properties"]["name"]], str)
            plan.append((kind, "POST", "/api/site", {"json": site}, 422 if refused else 200))
        else:
            method, url, kw, status = bad[rng.integers(len(bad))]
            plan.append((kind, method, url, kw, status))

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-c", "from ecoraster.cli import main; main()", "serve", "-w", str(ws_dir),
           "--port", str(port)]
    if args.workers > 1:
        cmd += ["--workers", str(args.workers)]
    t0 = time.perf_counter()
    server = subprocess.Popen(cmd)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(f"{base}/api/info", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.perf_counter() - t0 > 300:
                raise SystemExit(f"eco serve did not start (exit code {server.poll()})")
            time.sleep(0.2)
        res["server_start_s"] = round(time.perf_counter() - t0, 2)
        local = threading.local()
        server_ms: list[float] = []  # a footprint's valuation time inside the server (elapsed_ms)

        def send(item):
            kind, method, url, kw, want = item
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = httpx.Client(base_url=base, timeout=60)
            t = time.perf_counter()
            try:
                r = client.request(method, url, **kw)
            except httpx.TransportError as exc:
                return kind, (time.perf_counter() - t) * 1000, 0, want, f"transport: {exc!r}"
            ms = (time.perf_counter() - t) * 1000
            note = None
            if r.status_code >= 400:
                body = r.json()
                if set(body) - {"error", "message", "details"} or "error" not in body:
                    note = f"error format: {body}"
            elif kind.startswith("footprint"):
                body = r.json()
                server_ms.append(body["elapsed_ms"])
                if body["gep_lost"] != expected[body["name"]]:
                    note = f"{body['name']}: gep_lost {body['gep_lost']!r} != library {expected[body['name']]!r}"
            return kind, ms, r.status_code, want, note

        with ThreadPoolExecutor(args.concurrency) as ex:  # warm-up: every kind once per thread
            firsts = [next((p for p in plan if p[0] == k), None) for k in kinds]
            list(ex.map(send, [p for p in firsts if p is not None] * args.concurrency))
        server_ms.clear()
        res["load_avg_before"] = [round(v, 2) for v in os.getloadavg()]
        procs = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
        cpu0 = sum(sum(p.cpu_times()[:2]) for p in procs), time.process_time()
        t_all = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as ex:
            answers = list(ex.map(send, plan))
        res["wall_s"] = round(time.perf_counter() - t_all, 2)
        res["server_cpu_s"] = round(sum(sum(p.cpu_times()[:2]) for p in procs) - cpu0[0], 2)
        res["client_cpu_s"] = round(time.process_time() - cpu0[1], 2)
        res["load_avg_after"] = [round(v, 2) for v in os.getloadavg()]
    finally:
        server.terminate()
        server.wait(timeout=30)
    res["throughput_rps"] = round(len(answers) / res["wall_s"], 1)
    counts = {"2xx": 0, "4xx": 0, "5xx": 0, "transport_errors": 0}
    problems = []
    for kind, ms, status, want, note in answers:
        if status == 0:
            counts["transport_errors"] += 1
        else:
            counts[f"{status // 100}xx"] = counts.get(f"{status // 100}xx", 0) + 1
        if status != want:
            problems.append(f"{kind}: status {status}, expected {want}" + (f" ({note})" if note else ""))
        elif note:
            problems.append(f"{kind}: {note}")
    res["status_counts"] = counts
    res["by_kind"] = {k: summary([ms for kind, ms, *_ in answers if kind == k]) for k in kinds
                      if any(a[0] == k for a in answers)}
    fp = [ms for kind, ms, *_ in answers if kind.startswith("footprint")]
    res["footprint_all"] = summary(fp)
    res["footprint_valuation_in_server"] = summary(server_ms)
    res["footprint_p95_target_met"] = res["footprint_all"]["p95_ms"] < FOOTPRINT_P95_TARGET_MS
    res["problems"] = problems[:20]
    res["n_problems"] = len(problems)
    out = args.out / f"bench_query_mixed_{args.size}_c{args.concurrency}_w{args.workers}.json"
    out.write_text(json.dumps(res, indent=2), encoding="utf-8")
    print(json.dumps(res, indent=2))
    return 1 if counts["5xx"] or counts["transport_errors"] or problems else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=10_000)
    ap.add_argument("--parcels", type=int, default=100_000)
    ap.add_argument("--products", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("/tmp/eco_bench_query"))
    ap.add_argument("--reuse", action="store_true", help="reuse a workspace generated earlier")
    ap.add_argument("--lookups", type=int, default=1000)
    ap.add_argument("--sites", type=int, default=50)
    ap.add_argument("--requests", type=int, default=0, help="mixed mode: this many requests in all")
    ap.add_argument("--concurrency", type=int, default=8, help="mixed mode: client threads")
    ap.add_argument("--workers", type=int, default=1, help="mixed mode: `eco serve --workers`")
    args = ap.parse_args()
    if args.requests:
        raise SystemExit(mixed(args))

    import shapely
    import shapely.affinity

    from ecoraster.query import ParcelStore, RunWorkspace, SiteValuer

    res = header(args)
    ws_dir = workspace(args, res)

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
    sites = rotated_squares(ws, rng, args.sites)
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
