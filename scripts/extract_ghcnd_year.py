"""One year of a GHCN-Daily station file (``.dly``) as the tidy daily CSV the climate-regulation service reads.

GHCN-Daily fixed-width records (NOAA NCEI, ``readme.txt`` of GHCN-Daily): station id (columns 1–11), year
(12–15), month (16–17), element (18–21), then 31 day groups of 8 characters: value (5, tenths of mm for PRCP,
tenths of °C for TMAX / TMIN / TAVG; −9999 missing), measurement, quality and source flags (1 each).
Values with a quality flag are dropped, as in ``../shared/data/real/wuhan_ghcnd_57494`` (README).

    .venv/bin/python scripts/extract_ghcnd_year.py ../shared/data/real/wuhan_ghcnd_57494/CHM00057494.dly 2005 \
        data/sample/wuhan/climate/wuhan_57494_daily_2005.csv
"""

from __future__ import annotations

import argparse
import calendar
from datetime import date
from pathlib import Path

import pandas as pd

ELEMENTS = {"PRCP": "prcp_mm", "TAVG": "tavg_degC", "TMAX": "tmax_degC", "TMIN": "tmin_degC"}


def read_year(path: Path, year: int) -> pd.DataFrame:
    """Daily rows of ``year``: date, station, prcp_mm, tavg_degC, tmax_degC, tmin_degC and a QC flag per element
    (always empty here: flagged values are dropped)."""
    values: dict[tuple[date, str], float] = {}
    station = ""
    for line in path.read_text(encoding="ascii").splitlines():
        if int(line[11:15]) != year or line[17:21] not in ELEMENTS:
            continue
        station, month, element = line[0:11], int(line[15:17]), line[17:21]
        for day in range(1, calendar.monthrange(year, month)[1] + 1):
            group = line[21 + 8 * (day - 1): 29 + 8 * (day - 1)]
            raw, qflag = int(group[0:5]), group[6:7].strip()
            if raw == -9999 or qflag:
                continue
            values[(date(year, month, day), ELEMENTS[element])] = raw / 10.0
    days = pd.date_range(f"{year}-01-01", f"{year}-12-31", freq="D").date
    out = pd.DataFrame({"date": [d.isoformat() for d in days], "station": station})
    for column in ELEMENTS.values():
        out[column] = [values.get((d, column)) for d in days]
    for column in ELEMENTS.values():
        out[column.split("_")[0] + "_qflag"] = ""
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dly", type=Path)
    ap.add_argument("year", type=int)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    table = read_year(args.dly, args.year)
    table.to_csv(args.out, index=False, float_format="%.1f")
    counts = {c: int(table[c].notna().sum()) for c in ELEMENTS.values()}
    print(f"{args.out}: {len(table)} days; values per element {counts}")


if __name__ == "__main__":
    main()
