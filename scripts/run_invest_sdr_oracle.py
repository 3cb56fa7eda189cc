"""Run InVEST SDR (the oracle, never a dependency) on the soil-retention example sets and keep
its avoided erosion and streams as test fixtures, so tests never need InVEST.

Run with the InVEST venv (``bash ../shared/tools/install-invest.sh .invest-venv``)::

    .invest-venv/bin/python scripts/run_invest_sdr_oracle.py [--bench]

Writes ``tests/services/data/soil_retention/<set>_invest.npz`` (avoided_erosion float32 with
NaN for nodata, stream uint8 with 255 for nodata; InVEST version and arguments in ``meta``).
With ``--bench DIR``, runs SDR on DIR's five files only and prints the wall time.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from osgeo import gdal

REPO = Path(__file__).resolve().parents[1]
SETS = {"wuhan": REPO / "data/examples/soil_retention", "texas": REPO / "data/examples/soil_retention_texas"}
OUT = REPO / "tests/services/data/soil_retention"


def sdr_args(folder: Path, workspace: Path, watersheds: bool = True) -> dict:
    args = {
        "workspace_dir": str(workspace),
        "results_suffix": "",
        "dem_path": str(folder / "dem.tif"),
        "erosivity_path": str(folder / "erosivity.tif"),
        "erodibility_path": str(folder / "erodibility.tif"),
        "lulc_path": str(folder / "lulc.tif"),
        "biophysical_table_path": str(folder / "biophysical_table.csv"),
        "threshold_flow_accumulation": 1000,
        "k_param": 2,
        "sdr_max": 0.8,
        "ic_0_param": 0.5,
        "l_max": 122,
        "flow_dir_algorithm": "MFD",
        "n_workers": -1,
    }
    if watersheds:
        args["watersheds_path"] = str(folder / "watersheds.gpkg")
    return args


def read(path: Path) -> np.ndarray:
    ds = gdal.Open(str(path))
    band = ds.GetRasterBand(1)
    a = band.ReadAsArray().astype(np.float32)
    nd = band.GetNoDataValue()
    if nd is not None:
        a[a == nd] = np.nan
    return a


def find(workspace: Path, name: str) -> Path:
    hits = sorted(workspace.rglob(name))
    if not hits:
        raise FileNotFoundError(f"{name} not in {workspace}")
    return hits[0]


def main() -> None:
    import natcap.invest
    from natcap.invest.sdr import sdr

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bench", help="folder with the five SDR inputs: time InVEST SDR on it")
    ns = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if ns.bench:
        ws = Path(tempfile.mkdtemp(prefix="invest_sdr_bench_"))
        t0 = time.monotonic()
        sdr.execute(sdr_args(Path(ns.bench), ws, watersheds=(Path(ns.bench) / "watersheds.gpkg").exists()))
        print(json.dumps({"invest": natcap.invest.__version__, "seconds": round(time.monotonic() - t0, 1)}))
        shutil.rmtree(ws, ignore_errors=True)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    for name, folder in SETS.items():
        ws = Path(tempfile.mkdtemp(prefix=f"invest_sdr_{name}_"))
        args = sdr_args(folder, ws)
        sdr.execute(args)
        np.savez_compressed(
            OUT / f"{name}_invest.npz",
            avoided_erosion=read(find(ws, "avoided_erosion.tif")),
            stream=np.nan_to_num(read(find(ws, "stream.tif")), nan=255).astype(np.uint8),
            meta=json.dumps({"invest": natcap.invest.__version__,
                             "args": {k: (str(Path(v).relative_to(REPO)) if k.endswith("_path") else v)
                                      for k, v in args.items() if not k.endswith("_dir")}}))
        print(name, "done", ws)
        shutil.rmtree(ws, ignore_errors=True)


if __name__ == "__main__":
    main()
