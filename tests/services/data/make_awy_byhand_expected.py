"""Make the InVEST oracle for the awy_byhand sample (run by hand with InVEST's own venv).

    .invest-venv/bin/python tests/services/data/make_awy_byhand_expected.py

Runs natcap.invest.annual_water_yield 3.20.2 on ``../shared/data/invest-sample/awy_byhand/inputs``
(seasonality_constant = 5, watersheds simple_reg_ws.shp / sub-watersheds simple_reg_subws.shp) in a
temp workspace and writes ``awy_byhand_expected.npz`` next to this file:

- ``wyield_mm``, ``aet_mm``, ``fractp`` (float64 copies of InVEST's per-pixel rasters, nodata → NaN)
- ``transform`` (GDAL geotransform of those rasters), ``nodata`` (InVEST's −1)
- ``ws_id``, ``ws_wyield_mn``, ``ws_wyield_vol``, ``ws_aet_mn`` (watershed table)
- ``subws_id``, ``subws_wyield_mn``, ``subws_wyield_vol`` (sub-watershed table)
- ``invest_version``

This script is NOT part of the test suite and the package never imports natcap.invest.
"""

import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from osgeo import gdal

import natcap.invest
from natcap.invest.annual_water_yield import annual_water_yield as awy

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
INPUTS = REPO.parent / "shared" / "data" / "invest-sample" / "awy_byhand" / "inputs"


def _read(path):
    ds = gdal.Open(str(path))
    band = ds.GetRasterBand(1)
    arr = band.ReadAsArray().astype(np.float64)
    nodata = band.GetNoDataValue()
    arr[arr == nodata] = np.nan
    return arr, ds.GetGeoTransform(), nodata


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="invest_awy_byhand_"))
    args = {
        "workspace_dir": str(work),
        "results_suffix": "",
        "lulc_path": str(INPUTS / "lulc.tif"),
        "depth_to_root_rest_layer_path": str(INPUTS / "soil_depth.tif"),
        "precipitation_path": str(INPUTS / "precipitation.tif"),
        "pawc_path": str(INPUTS / "pawc.tif"),
        "eto_path": str(INPUTS / "eto.tif"),
        "watersheds_path": str(INPUTS / "simple_reg_ws.shp"),
        "sub_watersheds_path": str(INPUTS / "simple_reg_subws.shp"),
        "biophysical_table_path": str(INPUTS / "biophysical_table_derived_modern.csv"),
        "seasonality_constant": 5,
        "demand_table_path": "",
        "valuation_table_path": "",
        "n_workers": -1,
    }
    awy.execute(args)
    out = work / "output"
    wyield, gt, nodata = _read(out / "per_pixel" / "wyield.tif")
    aet, _, _ = _read(out / "per_pixel" / "aet.tif")
    fractp, _, _ = _read(out / "per_pixel" / "fractp.tif")
    ws = pd.read_csv(out / "watershed_results_wyield.csv").sort_values("ws_id")
    sub = pd.read_csv(out / "subwatershed_results_wyield.csv").sort_values("subws_id")
    np.savez_compressed(
        HERE / "awy_byhand_expected.npz",
        wyield_mm=wyield, aet_mm=aet, fractp=fractp, transform=np.array(gt), nodata=np.float64(nodata),
        ws_id=ws["ws_id"].to_numpy(), ws_wyield_mn=ws["wyield_mn"].to_numpy(np.float64),
        ws_wyield_vol=ws["wyield_vol"].to_numpy(np.float64), ws_aet_mn=ws["AET_mn"].to_numpy(np.float64),
        subws_id=sub["subws_id"].to_numpy(), subws_wyield_mn=sub["wyield_mn"].to_numpy(np.float64),
        subws_wyield_vol=sub["wyield_vol"].to_numpy(np.float64),
        invest_version=np.array(natcap.invest.__version__),
    )
    print(ws.to_string(index=False))
    print(sub.to_string(index=False))
    print("grid", wyield.shape, gt, "valid", int(np.isfinite(wyield).sum()))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
