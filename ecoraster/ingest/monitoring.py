"""Air-quality monitoring stations → QC'd station means → concentration grids.

Pipeline::

    obs = read_cnemc("20170411_O3_hourly_city_obs.txt")          # or read_station_csv(...)
    obs, qc = qc_observations(obs, ["O3"], region=tianjin, region_buffer_m=100_000)
    daily = daily_means(obs, "O3", min_hours=18)                  # ≥ 75 % of 24 h
    annual = period_means(daily, "O3", start="2017-01-01", end="2017-12-31")
    conc, report = interpolate_stations(annual, "O3", grid, method="kriging")

Interpolation runs in a projected CRS (the grid's, or a CGCS2000 GK / azimuthal
equidistant one when the grid is lon/lat). The report holds the leave-one-out RMSE.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from pyproj import CRS, Transformer
from scipy.optimize import curve_fit

from ..errors import ConfigError, InputDataError, MissingFileError, TableError
from ..grid import DEFAULT_CHUNK, Grid
from ..kernels import ingest_interp as kern
from ._common import georef
from .units import linear_conversion

POLLUTANTS = ("SO2", "NO2", "CO", "O3", "PM10", "PM2_5")
#: Units of the CNEMC release (readme_original.txt): CO in mg/m³, the rest in µg/m³.
CNEMC_UNITS = {"SO2": "µg/m3", "NO2": "µg/m3", "CO": "mg/m3", "O3": "µg/m3", "PM10": "µg/m3", "PM2_5": "µg/m3"}
#: Generous physical ceilings for QC (station units). Not literature coefficients: values
#: above any credible observation (dust storms give PM10 of a few thousand µg/m³).
DEFAULT_CEILINGS = {"SO2": 5000.0, "NO2": 3000.0, "CO": 150.0, "O3": 1500.0, "PM10": 6000.0, "PM2_5": 3000.0}
DEFAULT_MISSING_CODES = (-9999, -999, 9999)


def read_cnemc(path: str | Path) -> pd.DataFrame:
    """Read a CNEMC whitespace text file (daily 12 columns, or hourly 8 columns with one pollutant).

    Daily: ``siteID year month day lon lat SO2 NO2 CO O3 PM10 PM2.5``; hourly (the O3
    sample): ``siteID year month day hour lon lat O3``. Missing values stay as written
    (−9999) for :func:`qc_observations` to count.

    Returns
    -------
    DataFrame with ``station_id, time, lon, lat`` and pollutant columns; ``attrs["units"]``.
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(str(path), field="stations")
    df = pd.read_csv(path, sep=r"\s+", header=None, comment=None)
    if df.shape[1] == 12:
        df.columns = ["station_id", "year", "month", "day", "lon", "lat", *POLLUTANTS]
        df["hour"] = 0
        value_cols = list(POLLUTANTS)
    elif df.shape[1] == 8:
        pollutant = _pollutant_from_name(path.name)
        df.columns = ["station_id", "year", "month", "day", "hour", "lon", "lat", pollutant]
        value_cols = [pollutant]
    else:
        raise InputDataError(f"{path}: {df.shape[1]} columns; expected 12 (daily) or 8 (hourly) CNEMC columns")
    df["time"] = pd.to_datetime(df[["year", "month", "day", "hour"]])
    df["station_id"] = df["station_id"].astype(str)
    out = df[["station_id", "time", "lon", "lat", *value_cols]].copy()
    out.attrs["units"] = {c: CNEMC_UNITS[c] for c in value_cols}
    out.attrs["source"] = str(path)
    return out


def _pollutant_from_name(name: str) -> str:
    upper = name.upper().replace("PM2.5", "PM2_5")
    for p in sorted(POLLUTANTS, key=len, reverse=True):
        if p in upper:
            return p
    raise InputDataError(f"{name}: cannot tell the pollutant of an hourly file from its name")


def read_station_csv(
    path: str | Path,
    value_cols: list[str],
    *,
    id_col: str = "station_id",
    lon_col: str = "lon",
    lat_col: str = "lat",
    time_col: str | None = "time",
    units: dict[str, str] | None = None,
    encoding: str = "utf-8-sig",
) -> pd.DataFrame:
    """Read a station / micro-station CSV (one row per station and time).

    ``time_col`` is parsed by pandas; when absent, ``year, month, day[, hour]`` columns are
    used. ``units`` maps value columns to units (default µg/m³). Errors name the file and
    the missing column.
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(str(path), field="stations")
    df = pd.read_csv(path, encoding=encoding)
    need = [id_col, lon_col, lat_col, *value_cols]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise TableError(f"{path}: missing column(s) {missing}; columns are {list(df.columns)}")
    if time_col and time_col in df.columns:
        time = pd.to_datetime(df[time_col], errors="coerce")
        if time.isna().any():
            bad = df[time_col][time.isna()].iloc[0]
            raise TableError(f"{path}: field {time_col!r} has an unparseable time {bad!r}")
    elif {"year", "month", "day"} <= set(df.columns):
        parts = df[["year", "month", "day"]].copy()
        parts["hour"] = df["hour"] if "hour" in df.columns else 0
        time = pd.to_datetime(parts)
    else:
        raise TableError(f"{path}: no time column {time_col!r} and no year/month/day columns")
    out = pd.DataFrame({"station_id": df[id_col].astype(str), "time": time,
                        "lon": df[lon_col].astype(float), "lat": df[lat_col].astype(float)})
    for c in value_cols:
        out[c] = pd.to_numeric(df[c], errors="coerce")
    out.attrs["units"] = {c: (units or {}).get(c, "µg/m3") for c in value_cols}
    out.attrs["source"] = str(path)
    return out


#: Column names a station table may use (case, spaces, dots and dashes ignored) → their role.
STATION_COLUMNS = {
    "station_id": ("station_id", "stationid", "site_id", "siteid", "station", "site", "code", "stationcode",
                   "device_id", "deviceid", "sn", "站点编码", "监测点编码", "站点编号", "设备编号"),
    "lon": ("lon", "longitude", "long", "lng", "经度"),
    "lat": ("lat", "latitude", "纬度"),
    "time": ("time", "datetime", "timestamp", "date", "时间", "日期", "监测时间"),
    "year": ("year", "年"), "month": ("month", "月"), "day": ("day", "日"), "hour": ("hour", "时", "小时"),
    "doy": ("doy", "dayofyear"),
    "name": ("name", "station_name", "stationname", "site_name", "city", "城市", "站点名称", "监测点名称", "站点",
             "province", "省份", "district", "区县"),
    "ignore": ("aqi", "quality", "level", "质量等级", "primary_pollutant", "首要污染物", "temperature", "humidity",
               "pressure", "wind_speed", "wind_direction", "precipitation", "温度", "湿度", "气压", "风速", "风向"),
}
#: Pollutant column spellings → :data:`POLLUTANTS` names.
POLLUTANT_ALIASES = {"so2": "SO2", "no2": "NO2", "co": "CO", "o3": "O3", "pm10": "PM10", "pm25": "PM2_5",
                     "pm2_5": "PM2_5", "pm2.5": "PM2_5", "pm₂.₅": "PM2_5"}


def _norm(name: str) -> str:
    return str(name).strip().lower().replace(" ", "_").replace("-", "_")


def station_column_roles(columns, path, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """{column: role} for every column of a station table (roles: the keys of
    :data:`STATION_COLUMNS` or a pollutant of :data:`POLLUTANTS`); ``overrides`` maps a column to
    a role (``ignore`` to skip it). A column no vocabulary knows is a :class:`TableError`."""
    lookup = {_norm(a): role for role, names in STATION_COLUMNS.items() for a in names}
    lookup.update({_norm(a): p for a, p in POLLUTANT_ALIASES.items()})
    lookup.update({_norm(p): p for p in POLLUTANTS})
    roles, unknown = {}, []
    for col in columns:
        role = (overrides or {}).get(col) or lookup.get(_norm(col)) or lookup.get(_norm(col).replace("_", ""))
        if role is None:
            unknown.append(col)
        else:
            roles[col] = role
    if unknown:
        raise TableError(f"{path}: unknown column(s) {unknown}; a station table has an id, lon, lat, a time "
                         f"(time/date or year, month, day[, hour]) and pollutant columns {list(POLLUTANTS)} "
                         "(--column NAME=ROLE maps or ignores one)")
    return roles


def read_station_table(path: str | Path, *, columns: dict[str, str] | None = None) -> pd.DataFrame:
    """Any station table as it arrives → the long table of :func:`read_cnemc`.

    CNEMC whitespace text (daily 12 columns, hourly 8) goes to :func:`read_cnemc`; a CSV (or
    ``.csv.gz`` / ``.xlsx``) is read by its header: national stations, micro-stations (微站)
    and city tables, hourly or daily. The time is a ``time``/``date`` column, ``year, month,
    day[, hour]``, or ``year`` + ``doy`` (or + ``Time`` as day-of-year / 365, the SpTe2M form of
    the CNEMC city series). A table without station ids uses the name / city column. Units:
    CO in mg/m³, the rest µg/m³ (the CNEMC release's units). ``attrs``: ``source``, ``units``,
    ``checksum`` (sha256 of the file), ``time_step`` (``hourly`` / ``daily``).
    """
    from ..datasets import file_sha256

    path = Path(path)
    if not path.exists():
        raise MissingFileError(str(path), field="stations")
    if path.suffix.lower() == ".txt":
        out = read_cnemc(path)
    else:
        try:
            df = pd.read_excel(path) if path.suffix.lower() in (".xlsx", ".xls") else pd.read_csv(path, encoding="utf-8-sig")
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise TableError(f"{path}: not a readable station table ({exc})") from None
        roles = station_column_roles(df.columns, path, columns)
        by_role: dict[str, str] = {}
        for col, role in roles.items():
            by_role.setdefault(role, col)
        for need in ("lon", "lat"):
            if need not in by_role:
                raise TableError(f"{path}: no {need} column; columns are {list(df.columns)}")
        ident = by_role.get("station_id") or by_role.get("name")
        if ident is None:
            raise TableError(f"{path}: no station id or name column; columns are {list(df.columns)}")
        pollutants = [p for p in POLLUTANTS if p in by_role]
        if not pollutants:
            raise TableError(f"{path}: no pollutant column ({', '.join(POLLUTANTS)}); columns are {list(df.columns)}")
        time = _station_time(df, by_role, path)
        out = pd.DataFrame({"station_id": df[ident].astype(str), "time": time,
                            "lon": pd.to_numeric(df[by_role["lon"]], errors="coerce"),
                            "lat": pd.to_numeric(df[by_role["lat"]], errors="coerce")})
        for p in pollutants:
            out[p] = pd.to_numeric(df[by_role[p]], errors="coerce")
        out.attrs["units"] = {p: CNEMC_UNITS[p] for p in pollutants}
    out.attrs["source"] = str(path)
    out.attrs["checksum"] = "sha256:" + file_sha256(path)
    out.attrs["time_step"] = "hourly" if (out["time"] != out["time"].dt.floor("D")).any() else "daily"
    return out


def _station_time(df: pd.DataFrame, by_role: dict[str, str], path) -> pd.Series:
    if "year" in by_role and "month" in by_role and "day" in by_role:
        parts = pd.DataFrame({k: pd.to_numeric(df[by_role[k]], errors="coerce") for k in ("year", "month", "day")})
        parts["hour"] = pd.to_numeric(df[by_role["hour"]], errors="coerce") if "hour" in by_role else 0
        return pd.to_datetime(parts, errors="raise")
    time_col = by_role.get("time")
    if time_col is not None:
        parsed = pd.to_datetime(df[time_col], errors="coerce")
        numeric = pd.to_numeric(df[time_col], errors="coerce")
        if parsed.notna().all() and not numeric.notna().all():
            return parsed
        if "year" in by_role and numeric.notna().all() and numeric.between(0, 1.01).all():
            doy = (numeric * 365).round().astype(int)  # SpTe2M: Time = day-of-year / 365
            return pd.to_datetime(pd.to_numeric(df[by_role["year"]]).astype(int).astype(str), format="%Y") + \
                pd.to_timedelta(doy - 1, unit="D")
        bad = df[time_col][parsed.isna()].iloc[0] if parsed.isna().any() else df[time_col].iloc[0]
        raise TableError(f"{path}: field {time_col!r} has an unparseable time {bad!r}")
    if "year" in by_role and "doy" in by_role:
        return pd.to_datetime(pd.to_numeric(df[by_role["year"]]).astype(int).astype(str), format="%Y") + \
            pd.to_timedelta(pd.to_numeric(df[by_role["doy"]]).astype(int) - 1, unit="D")
    raise TableError(f"{path}: no time: give a time/date column, year/month/day, or year + doy")


def period_station_means(table: pd.DataFrame, pollutant: str, start, end, *, min_fraction: float = 0.75,
                         min_hours: int = 18) -> tuple[pd.DataFrame, dict]:
    """QC → daily means (hourly tables: ≥ ``min_hours`` valid hours) → mean over ``start..end``
    per station (≥ ``min_fraction`` of the days valid). Raises :class:`InputDataError` naming the
    table's time span when the table has no value in the period or no station passes."""
    src = table.attrs.get("source", "stations")
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    span = (table["time"].min(), table["time"].max())
    inside = table[(table["time"] >= start) & (table["time"] < end + pd.Timedelta(days=1))]
    if inside.empty or inside[pollutant].isna().all():
        raise InputDataError(f"{src}: no {pollutant} value in {start.date()}..{end.date()} "
                             f"(the table covers {span[0].date()}..{span[1].date()})")
    clean, qc = qc_observations(inside, [pollutant])
    hourly = table.attrs.get("time_step") == "hourly"
    daily = daily_means(clean, pollutant, min_hours=min_hours if hourly else 1)
    means = period_means(daily, pollutant, start=start, end=end, min_fraction=min_fraction)
    attrs = dict(means.attrs)
    means = means[means["n_days"] > 0].reset_index(drop=True)  # min_fraction 0 must not keep empty stations
    means.attrs = attrs
    qc["period"] = means.attrs["period"]
    qc["time_step"] = "hourly" if hourly else "daily"
    if len(means) < 3:
        raise InputDataError(f"{src}: {len(means)} station(s) with ≥ {means.attrs['period']['min_days']} valid days "
                             f"of {pollutant} in {start.date()}..{end.date()}; need ≥ 3 (lower --min-fraction?)")
    return means, qc


def qc_observations(
    df: pd.DataFrame,
    value_cols: list[str],
    *,
    missing_codes=DEFAULT_MISSING_CODES,
    ceilings: dict[str, float] | None = None,
    region=None,
    region_buffer_m: float = 0.0,
) -> tuple[pd.DataFrame, dict]:
    """Quality control of station observations; returns the clean table and a QC report.

    Steps, each counted in the report: missing codes → NaN; impossible values (negative,
    or above ``ceilings`` in the column's units) → NaN; invalid coordinates (outside
    ±180/±90 or exactly 0, 0) → station dropped; duplicate (station, time) rows → first
    kept (conflicting duplicates counted apart); stations outside ``region`` (shapely
    geometry or GeoDataFrame in lon/lat, grown by ``region_buffer_m`` metres) → dropped;
    rows with no value left → dropped.
    """
    missing_cols = [c for c in ["station_id", "time", "lon", "lat", *value_cols] if c not in df.columns]
    if missing_cols:
        raise TableError(f"{df.attrs.get('source', 'stations')}: missing column(s) {missing_cols}")
    ceilings = {**DEFAULT_CEILINGS, **(ceilings or {})}
    out = df.copy()
    report: dict = {"source": df.attrs.get("source"), "rows_in": int(len(df)),
                    "stations_in": int(df["station_id"].nunique()), "missing_codes": {}, "impossible": {}}
    for c in value_cols:
        v = out[c].astype(float)
        is_missing = v.isin(list(missing_codes)) | v.isna()
        report["missing_codes"][c] = int(v.isin(list(missing_codes)).sum())
        v = v.mask(is_missing)
        ceiling = ceilings.get(c, np.inf)
        impossible = (v < 0) | (v > ceiling)
        report["impossible"][c] = {"count": int(impossible.sum()), "ceiling": ceiling,
                                   "examples": v[impossible].head(5).tolist()}
        out[c] = v.mask(impossible)

    bad_xy = ~out["lon"].between(-180, 180) | ~out["lat"].between(-90, 90) | ((out["lon"] == 0) & (out["lat"] == 0))
    report["bad_coordinates"] = sorted(out.loc[bad_xy, "station_id"].unique().tolist())
    out = out[~out["station_id"].isin(report["bad_coordinates"])]
    moved = out.groupby("station_id")[["lon", "lat"]].nunique().max(axis=1)
    report["stations_with_moving_coordinates"] = sorted(moved[moved > 1].index.tolist())

    sites = out.drop_duplicates("station_id")
    shared = sites[sites.duplicated(["lon", "lat"], keep=False)]
    report["colocated_stations"] = [sorted(g.tolist()) for _, g in shared.groupby(["lon", "lat"])["station_id"]]

    dup_all = out.duplicated(["station_id", "time"], keep="first")
    dup_same = out.duplicated(["station_id", "time", "lon", "lat", *value_cols], keep="first")
    report["duplicates"] = {"identical": int(dup_same.sum()), "conflicting": int((dup_all & ~dup_same).sum())}
    out = out[~dup_all]

    report["outside_region"] = []
    if region is not None:
        inside = _inside_region(out, region, region_buffer_m)
        report["outside_region"] = sorted(out.loc[~inside, "station_id"].unique().tolist())
        out = out[inside]
    no_value = out[value_cols].isna().all(axis=1)
    report["rows_without_value"] = int(no_value.sum())
    out = out[~no_value].reset_index(drop=True)
    out.attrs = dict(df.attrs)
    report["rows_out"] = int(len(out))
    report["stations_out"] = int(out["station_id"].nunique())
    return out, report


def _inside_region(df: pd.DataFrame, region, buffer_m: float) -> pd.Series:
    import geopandas as gpd
    import shapely

    if isinstance(region, (gpd.GeoDataFrame, gpd.GeoSeries)):
        geom = region.to_crs("EPSG:4326").union_all()
    else:
        geom = region
    lon0, lat0 = geom.centroid.x, geom.centroid.y
    local = local_projected_crs(lon0, lat0)
    to_local = Transformer.from_crs("EPSG:4326", local, always_xy=True)
    geom_m = shapely.transform(geom, lambda c: np.column_stack(to_local.transform(c[:, 0], c[:, 1])))
    if buffer_m:
        geom_m = geom_m.buffer(buffer_m)
    x, y = to_local.transform(df["lon"].to_numpy(), df["lat"].to_numpy())
    return pd.Series(shapely.contains_xy(geom_m, x, y), index=df.index)


def local_projected_crs(lon: float, lat: float) -> CRS:
    """CGCS2000 3-degree GK zone inside China's zones 25..45, else azimuthal equidistant at (lon, lat)."""
    from .vectors import cgcs2000_gk_zone

    if 73.5 <= lon < 136.5 and 15.0 <= lat <= 55.0:
        return CRS.from_user_input(cgcs2000_gk_zone(lon))
    return CRS.from_proj4(f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m")


def daily_means(df: pd.DataFrame, value_col: str, *, min_hours: int = 18) -> pd.DataFrame:
    """Daily mean per station from hourly values, kept only with ≥ ``min_hours`` valid hours.

    ``min_hours=18`` is 75 % of 24 h; GB 3095-2012 §8 asks ≥ 20 hourly values per day for
    SO₂, NO₂, CO, PM₁₀, PM₂.₅. Days (calendar days of ``time``) below the rule get NaN.

    Returns
    -------
    DataFrame ``station_id, date, lon, lat, <value_col>, n_hours`` (mean in the column's units).
    """
    d = df.assign(date=df["time"].dt.floor("D"))
    g = d.groupby(["station_id", "date"])
    res = g.agg(lon=("lon", "first"), lat=("lat", "first"), mean=(value_col, "mean"),
                n_hours=(value_col, "count")).reset_index()
    res[value_col] = res["mean"].where(res["n_hours"] >= min_hours)
    res = res.drop(columns="mean")
    res.attrs = dict(df.attrs)
    return res


def period_means(
    daily: pd.DataFrame,
    value_col: str,
    *,
    start,
    end,
    min_fraction: float = 0.75,
    min_days: int | None = None,
) -> pd.DataFrame:
    """Mean of valid daily means per station over ``start..end`` (inclusive dates).

    A station needs ≥ ``min_days`` valid days (default ``ceil(min_fraction × days)``;
    GB 3095-2012 asks 324 days for an annual mean).

    Returns
    -------
    DataFrame ``station_id, lon, lat, <value_col>, n_days`` with only the stations that pass.
    """
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    n_period = (end - start).days + 1
    need = min_days if min_days is not None else math.ceil(min_fraction * n_period)
    sel = daily[(daily["date"] >= start) & (daily["date"] <= end)]
    g = sel.groupby("station_id")
    res = g.agg(lon=("lon", "first"), lat=("lat", "first"), value=(value_col, "mean"),
                n_days=(value_col, "count")).reset_index()
    res = res[res["n_days"] >= need].rename(columns={"value": value_col}).reset_index(drop=True)
    res.attrs = dict(daily.attrs)
    res.attrs["period"] = {"start": str(start.date()), "end": str(end.date()), "min_days": need}
    return res


def annual_means(daily: pd.DataFrame, value_col: str, year: int, **kwargs) -> pd.DataFrame:
    """:func:`period_means` over calendar ``year``."""
    return period_means(daily, value_col, start=f"{year}-01-01", end=f"{year}-12-31", **kwargs)


def fit_variogram(xy: np.ndarray, z: np.ndarray, model: str = "spherical", n_lags: int = 10) -> dict:
    """Fit nugget, partial sill and range (m) of a variogram model to the binned semivariance.

    Weighted least squares (weights ∝ pair count, Cressie 1993 §2.6), up to half the
    largest station distance.
    """
    if model not in kern.VARIOGRAM_MODELS:
        raise ConfigError(f"variogram model {model!r}; use one of {sorted(kern.VARIOGRAM_MODELS)}")
    func = kern.VARIOGRAM_MODELS[model]
    span = float(np.hypot(*(xy.max(axis=0) - xy.min(axis=0))))
    lags, sv, counts = kern.empirical_variogram(xy, z, n_lags, span / 2.0)
    var = float(np.var(z)) or 1.0
    p0 = (0.0, var, span / 4.0)
    fitted = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # OptimizeWarning: covariance not estimable (few lags)
            params, _ = curve_fit(lambda h, c0, c, a: func(h, c0, c, a), lags, sv, p0=p0,
                                  sigma=1.0 / np.sqrt(counts),
                                  bounds=([0, 0, span / 1000], [4 * var, 4 * var, 2 * span]), maxfev=5000)
    except (RuntimeError, ValueError):
        params, fitted = np.array(p0), False
    if params[1] <= 0:  # pure nugget fits make the kriging system singular-ish; keep a small sill
        params[1] = 1e-6 * var
    return {"model": model, "nugget": float(params[0]), "psill": float(params[1]), "range_m": float(params[2]),
            "fitted": fitted, "lags_m": lags.tolist(), "semivariance": sv.tolist(), "pairs": counts.astype(int).tolist()}


def _unit_factor(from_units: str, to_units: str) -> float:
    scale, offset = linear_conversion(from_units, to_units)
    if offset:
        raise ConfigError(f"concentration units {from_units!r} -> {to_units!r} need an offset")
    return scale


def interpolate_stations(
    stations: pd.DataFrame,
    value_col: str,
    grid: Grid,
    *,
    method: str = "idw",
    power: float = 2.0,
    neighbours: int = 12,
    variogram: str = "spherical",
    n_lags: int = 10,
    value_units: str | None = None,
    units: str = "µg/m3",
    chunk: int = DEFAULT_CHUNK,
) -> tuple[xr.DataArray, dict]:
    """Interpolate station values to ``grid`` by IDW or ordinary kriging.

    Parameters
    ----------
    stations : DataFrame
        ``lon, lat`` (degrees, WGS 84) and ``value_col`` (e.g. from :func:`period_means`).
    grid : Grid
        Target grid. Interpolation distances are metres in the grid's CRS if projected,
        else in :func:`local_projected_crs` of the grid centre.
    method : {"idw", "kriging"}
        IDW (Shepard 1968) with ``power`` over the ``neighbours`` nearest stations, or
        ordinary kriging with all stations (unique neighbourhood) and a fitted
        ``variogram`` ("spherical" / "exponential").
    value_units, units : str
        Station units (default from ``stations.attrs["units"]``, else µg/m³) and output
        units; converted with pint (e.g. CO mg/m³ → µg/m³ × 1000).
    chunk : int
        Output chunk edge (pixels); work is done chunk by chunk when computed.

    Returns
    -------
    (DataArray, report)
        float32 (y, x), dask-backed, attrs ``units``, ``nodata`` (NaN: never produced inside
        the grid). ``report`` has ``method``, ``n_stations``, ``loocv_rmse``, ``loocv_mae``
        (output units) and the variogram for kriging.
    """
    if method not in ("idw", "kriging"):
        raise ConfigError(f"interpolation method {method!r}; use 'idw' or 'kriging'")
    st = stations.dropna(subset=[value_col])
    if len(st) < 3:
        raise InputDataError(f"{stations.attrs.get('source', 'stations')}: {len(st)} station(s) with {value_col}; need ≥ 3")
    src_units = value_units or stations.attrs.get("units", {}).get(value_col, "µg/m3")
    factor = _unit_factor(src_units, units)
    z = st[value_col].to_numpy(dtype=np.float64) * factor

    work_crs = CRS.from_user_input(grid.crs.to_wkt())
    if work_crs.is_geographic:
        lonc = (grid.bounds[0] + grid.bounds[2]) / 2
        latc = (grid.bounds[1] + grid.bounds[3]) / 2
        work_crs = local_projected_crs(lonc, latc)
    to_work = Transformer.from_crs("EPSG:4326", work_crs, always_xy=True)
    xy = np.column_stack(to_work.transform(st["lon"].to_numpy(), st["lat"].to_numpy()))
    # stations at the same place (to 1 m) would make the systems singular: average them
    xy_key, inverse = np.unique(xy.round(0), axis=0, return_inverse=True)
    n_merged = len(xy) - len(xy_key)
    if n_merged:
        inverse = inverse.ravel()
        z = np.bincount(inverse, weights=z) / np.bincount(inverse)
        xy = np.array([xy[inverse == i][0] for i in range(len(xy_key))])

    report: dict = {"method": method, "n_stations": int(len(z)), "colocated_merged": int(n_merged),
                    "units": units, "work_crs": work_crs.to_string(), "value": value_col}
    if method == "idw":
        est = kern.idw_loocv(xy, z, power, neighbours)
        errors = z - est
        predictor = ("idw", xy, z, power, neighbours)
        report.update(power=power, neighbours=neighbours)
    else:
        vg = fit_variogram(xy, z, variogram, n_lags)
        params = (vg["nugget"], vg["psill"], vg["range_m"])
        a = kern.kriging_matrix(xy, kern.VARIOGRAM_MODELS[variogram], params)
        alpha = kern.kriging_dual_weights(a, z)
        errors = kern.kriging_loocv_errors(a, alpha)
        predictor = ("kriging", xy, alpha, variogram, params)
        report["variogram"] = vg
    report["loocv_rmse"] = float(np.sqrt(np.mean(errors ** 2)))
    report["loocv_mae"] = float(np.mean(np.abs(errors)))

    grid_to_work = None if work_crs == CRS.from_user_input(grid.crs.to_wkt()) else \
        Transformer.from_crs(CRS.from_user_input(grid.crs.to_wkt()), work_crs, always_xy=True)
    row_chunks, col_chunks = grid.chunks(chunk)
    blocks = []
    r0 = 0
    for rh in row_chunks:
        c0, row = 0, []
        for cw in col_chunks:
            task = dask.delayed(_predict_window)(predictor, grid, grid_to_work, r0, r0 + rh, c0, c0 + cw)
            row.append(da.from_delayed(task, shape=(rh, cw), dtype=np.float32))
            c0 += cw
        blocks.append(row)
        r0 += rh
    arr = da.block(blocks).rechunk((row_chunks, col_chunks))
    out = georef(xr.DataArray(arr, dims=("y", "x"), name=f"{value_col}_concentration"), grid)
    out.attrs = {"units": units, "nodata": float("nan"), "method": method,
                 "loocv_rmse": report["loocv_rmse"], "source": str(stations.attrs.get("source", ""))}
    return out, report


def _predict_window(predictor, grid: Grid, grid_to_work, row0, row1, col0, col1) -> np.ndarray:
    cols = np.arange(col0, col1) + 0.5
    rows = np.arange(row0, row1) + 0.5
    cc, rr = np.meshgrid(cols, rows)
    t = grid.transform
    x = t.c + t.a * cc
    y = t.f + t.e * rr
    if grid_to_work is not None:
        x, y = grid_to_work.transform(x, y)
    targets = np.column_stack([np.ravel(x), np.ravel(y)])
    if predictor[0] == "idw":
        _, xy, z, power, k = predictor
        vals = kern.idw_predict(xy, z, targets, power, k)
    else:
        _, xy, alpha, model, params = predictor
        vals = kern.kriging_predict(xy, alpha, targets, kern.VARIOGRAM_MODELS[model], params)
    return vals.reshape(row1 - row0, col1 - col0).astype(np.float32)
