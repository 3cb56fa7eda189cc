"""Make configs/parameters/soil_k_wuhan_hwsd.csv: soil texture per Wuhan soil unit, for K by EPIC.

Chain: the Wuhan soil raster (../shared/data/real/wuhan-dem-soil-pop-30m-plus/wh_soiltype.tif, HWSD v1.2 mapping
units) → HWSD v2.0 SMU table rows with HWSD1_SMU_ID = unit (../shared/data/real/hwsd2_smu_attribute_table,
all 31 Wuhan units link, one row each at SHARE 100 %) → TEXTURE_USDA of the dominant soil → representative sand,
silt, clay and organic carbon of that texture class (configs/parameters/soil_texture_usda_epic.csv, ✱) → the
service computes K = EPIC (Williams 1990). HWSD2_LAYERS.csv (measured SAND/SILT/CLAY/ORG_CARBON per layer) was not
available; with it, replace the class values by the unit's topsoil values. Units without a texture (WR water
bodies, UR urban) get empty fractions → K = 0 (no soil surface to erode).

Usage: python scripts/make_wuhan_soil_k_table.py [--shared ../shared]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    shared = Path(ap.parse_args().shared)
    with rasterio.open(shared / "data/real/wuhan-dem-soil-pop-30m-plus/wh_soiltype.tif") as src:
        units = np.unique(src.read(1))
        units = units[units != src.nodata]
    smu = pd.read_csv(shared / "data/real/hwsd2_smu_attribute_table/HWSD2_SMU.csv")
    smu = smu[smu.HWSD1_SMU_ID.isin(units)].sort_values("SHARE", ascending=False).drop_duplicates("HWSD1_SMU_ID")
    tex = pd.read_csv(REPO / "configs/parameters/soil_texture_usda_epic.csv", comment="#")
    rows = []
    for u in units:
        hit = smu[smu.HWSD1_SMU_ID == u]
        if hit.empty:
            rows.append({"soil_unit": int(u), "source": "no HWSD2 row: K = 0"})
            continue
        h = hit.iloc[0]
        row = {"soil_unit": int(u), "hwsd2_smu_id": int(h.HWSD2_SMU_ID), "wrb2": h.WRB2, "fao90": h.FAO90,
               "share_pct": int(h.SHARE)}
        if pd.notna(h.TEXTURE_USDA):
            t = tex[tex.texture_usda == int(h.TEXTURE_USDA)].iloc[0]
            row.update(texture_usda=int(h.TEXTURE_USDA), texture=t["name"], sand_pct=t.sand_pct, silt_pct=t.silt_pct,
                       clay_pct=t.clay_pct, org_carbon_pct=t.org_carbon_pct,
                       source="HWSD2 SMU TEXTURE_USDA → class fractions (✱)")
        else:
            row["source"] = f"HWSD2 {h.WRB2} (water / urban), no texture: K = 0"
        rows.append(row)
    out = REPO / "configs/parameters/soil_k_wuhan_hwsd.csv"
    header = ("# Soil texture per Wuhan soil unit (HWSD v1.2 MU_GLOBAL) for K by EPIC; made by "
              "scripts/make_wuhan_soil_k_table.py (read its docstring for the chain and the ✱ assumptions).\n")
    out.write_text(header + pd.DataFrame(rows).to_csv(index=False), encoding="utf-8")
    print(out)


if __name__ == "__main__":
    main()
