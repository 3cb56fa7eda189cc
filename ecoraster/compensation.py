"""Eco-compensation (生态保护补偿): cross-boundary water-quality section schemes and GEP-based
transfers. Pure pandas: no rasters, and no part of GEP (a value-realisation channel,
gep-methods.md §5).

Section schemes (parameters in ``configs/compensation/<scheme>.yaml`` with unit, source and
confidence; formulas in those files and below):

- ``jiangsu`` (load): amount = max(0, C − C₀) [mg/L = g/m³] × flow [m³] × 10⁻⁶ [t/g] × standard
  [CNY/t], summed over factors; the upstream unit pays the downstream unit.
- ``henan`` (周口, tiered): m = (C − C₀)/C₀; amount = base(m) × (1 + m) for m above 0.1.
- ``tianjin`` (ranking): per period the districts are ranked on the composite pollution index,
  its year-on-year change and the outflow / inflow ratio; the summed ranks give an overall rank
  → reward (+) or penalty (−) in steps of 20 万元.
- ``xinanjiang`` (index): P = k₀ Σ kᵢ Cᵢ/Cᵢ₀; P ≤ 1 downstream pays upstream, P > 1 the reverse.

Input table (CSV / XLSX / Parquet), one row per section × period × factor:
``section, period, factor, measured_mg_l, target_mg_l, flow_m3`` (flow only where the scheme
needs it), plus ``upstream`` / ``downstream`` (paying / receiving units), ``district``,
``inflow_mg_l``, ``measured_prev_year_mg_l`` (tianjin), ``section_type`` (henan). Factor codes
``codmn``, ``cod``, ``nh3_n``, ``tn``, ``tp`` or their Chinese names. Every bad row is an error
naming the file, the row (as numbered in a spreadsheet: header = row 1), the field and the value.

GEP-based transfers (:func:`transfer_by_gep_share`, :func:`transfer_by_regulating_per_capita`,
:func:`transfer_by_gep_change`) split a fund among units; formulas in their docstrings.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import yamlio
from .resources import config_path
from .errors import ConfigError, TableError

SCHEMES = ("jiangsu", "henan", "tianjin", "xinanjiang")

#: t per (mg/L × m³): 1 mg/L = 1 g/m³, 1 t = 10⁶ g.
TONNES_PER_MG_L_M3 = 1e-6

FACTOR_NAMES_ZH = {"codmn": "高锰酸盐指数", "cod": "化学需氧量", "nh3_n": "氨氮", "tn": "总氮", "tp": "总磷"}

#: Accepted spellings of the factor codes (compared after :func:`_normalise_name`).
FACTOR_ALIASES = {
    "codmn": ["codmn", "cod_mn", "高锰酸盐指数", "高锰酸盐", "permanganate_index", "pi"],
    "cod": ["cod", "codcr", "cod_cr", "化学需氧量", "化学需氧量cod"],
    "nh3_n": ["nh3_n", "nh3n", "nh3", "氨氮", "ammonia_nitrogen", "nh4_n"],
    "tn": ["tn", "总氮", "total_nitrogen"],
    "tp": ["tp", "总磷", "total_phosphorus"],
}

REQUIRED_COLUMNS = ["section", "period", "factor", "measured_mg_l", "target_mg_l"]


def _normalise_name(text: str) -> str:
    s = str(text).strip().lower().replace("₃", "3").replace("ₙ", "n")
    s = re.sub(r"[\s\-‐–—()（）·.]+", "_", s).strip("_")
    return s


_ALIAS_LOOKUP = {_normalise_name(a): code for code, names in FACTOR_ALIASES.items() for a in names}


def factor_code(name: Any) -> str | None:
    """The factor code (``codmn`` …) of a name or code, or ``None`` if unknown."""
    return _ALIAS_LOOKUP.get(_normalise_name(name))


# ---------------------------------------------------------------------------------------
# scheme tables
# ---------------------------------------------------------------------------------------

@dataclass
class Scheme:
    """A scheme's parameter table (``configs/compensation/<id>.yaml``)."""

    id: str
    name: str
    family: str
    version: str
    needs_flow: bool
    raw: dict[str, Any]
    path: Path

    def param(self, key: str) -> float:
        entry = self.raw.get(key)
        if not isinstance(entry, dict) or "value" not in entry:
            raise ConfigError(f"{self.path}: {key}.value: missing")
        return _number(entry["value"], f"{self.path}: {key}.value")

    def describe(self) -> dict[str, Any]:
        return {"scheme": self.id, "name": self.name, "version": self.version, "table": str(self.path)}


def _number(value: Any, where: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} = {value!r}: not a number") from None
    if not np.isfinite(out):
        raise ConfigError(f"{where} = {value!r}: not a finite number")
    return out


def load_scheme(name_or_path: str | os.PathLike) -> Scheme:
    """A scheme by id (``jiangsu`` …) or by path of its YAML table; errors name the field."""
    p = Path(name_or_path)
    if p.suffix.lower() not in (".yaml", ".yml"):
        if str(name_or_path) not in SCHEMES:
            raise ConfigError(f"--scheme = {name_or_path!r}: use one of {', '.join(SCHEMES)} or a YAML table")
        p = config_path("compensation", f"{name_or_path}.yaml")
    raw = yamlio.read_mapping(p, field="scheme")
    for key in ("id", "family", "version"):
        if key not in raw:
            raise ConfigError(f"{p}: {key}: missing")
    families = ("load", "tiered", "ranking", "index")
    if raw["family"] not in families:
        raise ConfigError(f"{p}: family = {raw['family']!r}: use one of {', '.join(families)}")
    scheme = Scheme(id=str(raw["id"]), name=str(raw.get("name", raw["id"])), family=str(raw["family"]),
                    version=str(raw["version"]), needs_flow=bool(raw.get("needs_flow", False)), raw=raw, path=p)
    if scheme.family == "load":
        for code, entry in (raw.get("factors") or {}).items():
            if factor_code(code) != code:
                raise ConfigError(f"{p}: factors.{code}: not a factor code ({', '.join(FACTOR_NAMES_ZH)})")
            _number((entry or {}).get("unit_standard"), f"{p}: factors.{code}.unit_standard")
            if (entry or {}).get("unit") != "CNY/t":
                raise ConfigError(f"{p}: factors.{code}.unit = {(entry or {}).get('unit')!r}: expected 'CNY/t'")
    return scheme


# ---------------------------------------------------------------------------------------
# the section table
# ---------------------------------------------------------------------------------------

def _row(i: int) -> int:
    """Spreadsheet row number of data row ``i`` (header = row 1)."""
    return int(i) + 2


def read_sections(path_or_frame: str | os.PathLike | pd.DataFrame, scheme: Scheme | None = None,
                  *, source: str | None = None) -> pd.DataFrame:
    """The section table, checked: factor codes normalised (column ``factor``; the input's
    spelling kept in ``factor_input``), numbers as float64, ``period`` as text.

    Errors (:class:`TableError`) name the row: unknown factor, a non-number or negative
    concentration or flow, a missing target, the same section × period × factor twice.
    """
    from .tables import read_table, require_columns

    if isinstance(path_or_frame, pd.DataFrame):
        df = path_or_frame.copy().reset_index(drop=True)
        src = source or "sections"
    else:
        src = source or str(path_or_frame)
        df = read_table(path_or_frame, field="sections")
    df.columns = [str(c).strip() for c in df.columns]
    needed = list(REQUIRED_COLUMNS)
    if scheme is not None and scheme.needs_flow:
        needed.append("flow_m3")
    if scheme is not None and scheme.family == "ranking":
        needed += ["district", "inflow_mg_l", "measured_prev_year_mg_l"]
    require_columns(df, needed, src)
    if df.empty:
        raise TableError(f"{src}: no rows")
    for col in ("section", "period"):
        empty = df[col].isna() | (df[col].astype(str).str.strip() == "")
        if empty.any():
            raise TableError(f"{src}: row {_row(np.flatnonzero(empty)[0])}: field {col!r} is empty")
        df[col] = df[col].astype(str).str.strip()
    codes = []
    for i, name in enumerate(df["factor"]):
        code = factor_code(name) if pd.notna(name) else None
        if code is None:
            raise TableError(f"{src}: row {_row(i)}: field 'factor' = {name!r} is not a known factor "
                             f"(use {', '.join(FACTOR_NAMES_ZH)} or {', '.join(FACTOR_NAMES_ZH.values())})")
        codes.append(code)
    df.insert(df.columns.get_loc("factor") + 1, "factor_input", df["factor"].astype(str))
    df["factor"] = codes
    numeric = [c for c in ("measured_mg_l", "target_mg_l", "flow_m3", "inflow_mg_l", "measured_prev_year_mg_l")
               if c in df.columns]
    for col in numeric:
        values = pd.to_numeric(df[col], errors="coerce")
        for i in np.flatnonzero((values.isna() & df[col].notna()).to_numpy()):
            raise TableError(f"{src}: row {_row(i)}: field {col!r} = {df[col].iloc[i]!r} is not a number")
        required = col in needed
        for i in np.flatnonzero(values.isna().to_numpy()):
            if required:
                what = "target" if col == "target_mg_l" else "value"
                raise TableError(f"{src}: row {_row(i)} (section {df['section'].iloc[i]!r}, period "
                                 f"{df['period'].iloc[i]!r}, factor {df['factor'].iloc[i]}): field {col!r} is "
                                 f"empty (missing {what})")
        for i in np.flatnonzero((values < 0).to_numpy()):
            raise TableError(f"{src}: row {_row(i)}: field {col!r} = {float(values.iloc[i]):g} is negative")
        if col in ("target_mg_l", "inflow_mg_l", "measured_prev_year_mg_l"):
            for i in np.flatnonzero((values == 0).to_numpy()):
                raise TableError(f"{src}: row {_row(i)}: field {col!r} = 0 (a divisor must be > 0)")
        df[col] = values.astype("float64")
    key = ["section", "period", "factor"]
    dup = df.duplicated(key, keep=False)
    if dup.any():
        first = df[dup].iloc[0]
        rows = [_row(i) for i in np.flatnonzero(dup.to_numpy())
                if tuple(df.loc[i, key]) == tuple(first[key])]
        raise TableError(f"{src}: rows {', '.join(map(str, rows))}: section {first['section']!r}, period "
                         f"{first['period']!r}, factor {first['factor']} given twice")
    for col in ("upstream", "downstream", "district", "section_type"):
        if col in df.columns:
            df[col] = df[col].where(df[col].notna(), "").astype(str).str.strip()
    if "upstream" in df.columns:
        for i, text in enumerate(df["upstream"]):
            try:
                parse_shares(text)
            except ValueError as exc:
                raise TableError(f"{src}: row {_row(i)}: field 'upstream' = {text!r}: {exc}") from None
    df.attrs["source"] = src
    return df


# ---------------------------------------------------------------------------------------
# the schemes
# ---------------------------------------------------------------------------------------

@dataclass
class CompensationResult:
    """``sections``: one row per section × period (or district × period for ``tianjin``) with
    ``compensation_cny``, ``payer``, ``payee``; ``factors``: the per-factor detail;
    ``districts``: per unit payable / receivable / net (CNY); ``notes``."""

    scheme: Scheme
    sections: pd.DataFrame
    factors: pd.DataFrame
    districts: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def total_cny(self) -> float:
        return float(self.sections["compensation_cny"].sum())


def _parties(df: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    up = df["upstream"] if "upstream" in df.columns else pd.Series("", index=df.index)
    down = df["downstream"] if "downstream" in df.columns else pd.Series("", index=df.index)
    up = up.where(up != "", "upstream of " + df["section"])
    down = down.where(down != "", "downstream of " + df["section"])
    return up, down


def _used_factors(df: pd.DataFrame, factors: list[str], scheme: Scheme, notes: list[str]) -> pd.DataFrame:
    unused = df[~df["factor"].isin(factors)]
    if len(unused):
        notes.append(f"scheme {scheme.id} does not price factor(s) {', '.join(sorted(unused['factor'].unique()))}: "
                     f"{len(unused)} row(s) left out (it uses {', '.join(factors)})")
    return df[df["factor"].isin(factors)].copy()


def _section_totals(detail: pd.DataFrame) -> pd.DataFrame:
    keys = ["section", "period", "payer", "payee"]
    out = detail.groupby(keys, sort=False, as_index=False).agg(
        compensation_cny=("compensation_cny", "sum"), factors=("factor", ",".join))
    return out


def jiangsu_load(df: pd.DataFrame, scheme: Scheme, notes: list[str]) -> pd.DataFrame:
    """Per-factor amounts of the load scheme: max(0, C − C₀) × flow × 10⁻⁶ × standard (CNY)."""
    stds = {code: float(e["unit_standard"]) for code, e in scheme.raw["factors"].items()}
    d = _used_factors(df, list(stds), scheme, notes)
    d["excess_mg_l"] = np.maximum(d["measured_mg_l"] - d["target_mg_l"], 0.0)
    d["excess_load_t"] = d["excess_mg_l"] * d["flow_m3"] * TONNES_PER_MG_L_M3
    d["unit_standard_cny_per_t"] = d["factor"].map(stds)
    d["compensation_cny"] = d["excess_load_t"] * d["unit_standard_cny_per_t"]
    return d


def henan_tiered(df: pd.DataFrame, scheme: Scheme, notes: list[str]) -> pd.DataFrame:
    """Per-factor amounts of the tiered scheme: base(m) × (1 + m), m = (C − C₀)/C₀ (CNY)."""
    d = _used_factors(df, list(scheme.raw.get("factors") or []), scheme, notes)
    m = (d["measured_mg_l"] - d["target_mg_l"]) / d["target_mg_l"]
    floor = scheme.param("no_charge_upto")
    base = np.zeros(len(d))
    for t in scheme.raw["tiers"]:
        lo = _number(t["above"], f"{scheme.path}: tiers.above")
        hi = np.inf if t.get("upto") is None else _number(t["upto"], f"{scheme.path}: tiers.upto")
        base = np.where((m > lo) & (m <= hi), _number(t["base"], f"{scheme.path}: tiers.base"), base)
    if "section_type" in d.columns:
        mouth = (d["section_type"].str.lower() == "inflow_mouth").to_numpy()
        base = np.where(mouth & (m > floor).to_numpy(), scheme.param("inflow_mouth_base"), base)
    d["exceedance_multiple"] = m
    d["tier_base_cny"] = np.where(m > floor, base, 0.0)
    d["compensation_cny"] = d["tier_base_cny"] * (1.0 + m.clip(lower=0.0))
    return d


def xinanjiang_index(df: pd.DataFrame, scheme: Scheme, notes: list[str]) -> pd.DataFrame:
    """Per-section × period index P = k₀ Σ kᵢ Cᵢ/Cᵢ₀ and the amount with its direction."""
    weights = {code: _number(e["value"], f"{scheme.path}: weights.{code}.value")
               for code, e in scheme.raw["weights"].items()}
    d = _used_factors(df, list(weights), scheme, notes)
    d["ratio"] = d["measured_mg_l"] / d["target_mg_l"]
    d["weight"] = d["factor"].map(weights)
    d["weighted_ratio"] = d["weight"] * d["ratio"]
    k0, amount = scheme.param("k0"), scheme.param("amount")
    up, down = _parties(d)
    d["upstream_unit"], d["downstream_unit"] = up, down
    rows = []
    for (section, period), g in d.groupby(["section", "period"], sort=False):
        missing = sorted(set(weights) - set(g["factor"]))
        if missing:
            raise TableError(f"{df.attrs.get('source', 'sections')}: section {section!r}, period {period!r}: "
                             f"factor(s) {', '.join(missing)} missing (the index needs {', '.join(weights)})")
        p = k0 * float(g["weighted_ratio"].sum())
        u, w = g["upstream_unit"].iloc[0], g["downstream_unit"].iloc[0]
        payer, payee = (w, u) if p <= 1.0 else (u, w)
        rows.append({"section": section, "period": period, "index_p": p, "payer": payer, "payee": payee,
                     "compensation_cny": amount, "factors": ",".join(g["factor"])})
    d.attrs["sections"] = pd.DataFrame(rows)
    return d


def tianjin_ranking(df: pd.DataFrame, scheme: Scheme, notes: list[str]) -> pd.DataFrame:
    """Per district × period: the three indicators, their ranks, the overall rank and the
    reward (+) / penalty (−) in CNY (see ``configs/compensation/tianjin.yaml``)."""
    d = df.copy()
    empty = d["district"] == ""
    if empty.any():
        raise TableError(f"{df.attrs.get('source', 'sections')}: row {_row(np.flatnonzero(empty)[0])}: "
                         "field 'district' is empty")
    d["ratio"] = d["measured_mg_l"] / d["target_mg_l"]
    d["ratio_prev"] = d["measured_prev_year_mg_l"] / d["target_mg_l"]
    d["out_in"] = d["measured_mg_l"] / d["inflow_mg_l"]
    g = d.groupby(["period", "district"], sort=False).agg(
        pollution_index=("ratio", "mean"), pollution_index_prev=("ratio_prev", "mean"),
        outflow_inflow_ratio=("out_in", "mean")).reset_index()
    g["yoy_change"] = (g["pollution_index"] - g["pollution_index_prev"]) / g["pollution_index_prev"]
    reward_from, penalty_from = scheme.param("reward_from_rank"), scheme.param("penalty_from_rank")
    step = scheme.param("step")
    parts = []
    for period, p in g.groupby("period", sort=False):
        p = p.copy()
        for col, rank_col in (("pollution_index", "rank_index"), ("yoy_change", "rank_yoy"),
                              ("outflow_inflow_ratio", "rank_out_in")):
            p[rank_col] = p[col].rank(method="min").astype(int)
        p["rank_sum"] = p["rank_index"] + p["rank_yoy"] + p["rank_out_in"]
        order = p.sort_values(["rank_sum", "pollution_index"], kind="mergesort").index
        p.loc[order, "overall_rank"] = np.arange(1, len(p) + 1)
        p["overall_rank"] = p["overall_rank"].astype(int)
        r = p["overall_rank"]
        p["compensation_cny"] = np.where(r <= reward_from, step * (reward_from - r + 1),
                                         np.where(r >= penalty_from, -step * (r - penalty_from + 1), 0.0))
        parts.append(p)
        if len(p) < penalty_from:
            notes.append(f"period {period}: {len(p)} districts ranked; the scheme's penalties start at rank "
                         f"{int(penalty_from)}, so no district pays")
    out = pd.concat(parts, ignore_index=True)
    city = str(scheme.raw.get("payer_of_rewards", "city"))
    out["payer"] = np.where(out["compensation_cny"] >= 0, city, out["district"])
    out["payee"] = np.where(out["compensation_cny"] >= 0, out["district"], city)
    d.attrs["sections"] = out
    return d


def parse_shares(text: str) -> list[tuple[str, float]]:
    """Units and their shares of a liability: ``"甲"`` → [(甲, 1)]; ``"甲:0.6;乙:0.4"`` → the
    shares given (pollution-contribution shares of the upstream districts, Jiangsu scheme);
    shares must be > 0 and sum to 1."""
    text = str(text).strip()
    if ":" not in text and "：" not in text:
        return [(text, 1.0)]
    parts = []
    for item in re.split(r"[;；]", text):
        if not item.strip():
            continue
        name, _, share = item.replace("：", ":").partition(":")
        try:
            value = float(share)
        except ValueError:
            raise ValueError(f"share {share.strip()!r} of {name.strip()!r} is not a number") from None
        if not value > 0:
            raise ValueError(f"share of {name.strip()!r} = {value!r} must be > 0")
        parts.append((name.strip(), value))
    total = sum(v for _, v in parts)
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"shares sum to {total:g}, not 1")
    return parts


def _districts(sections: pd.DataFrame) -> pd.DataFrame:
    """Per unit: payable (paid to others), receivable, net = receivable − payable (CNY). A payer
    given as ``"甲:0.6;乙:0.4"`` pays those shares of the amount."""
    amt = sections["compensation_cny"].abs()
    split = [(unit, a * share) for payer, a in zip(sections["payer"], amt) for unit, share in parse_shares(payer)]
    pay = pd.Series([v for _, v in split], index=[u for u, _ in split], dtype="float64").groupby(level=0).sum()
    rec = amt.groupby(sections["payee"]).sum()
    units = list(dict.fromkeys([*(u for u, _ in split), *sections["payee"]]))
    out = pd.DataFrame({"unit": units})
    out["payable_cny"] = out["unit"].map(pay).fillna(0.0).astype("float64")
    out["receivable_cny"] = out["unit"].map(rec).fillna(0.0).astype("float64")
    out["net_cny"] = out["receivable_cny"] - out["payable_cny"]
    return out


def compute(sections: str | os.PathLike | pd.DataFrame, scheme: str | os.PathLike | Scheme) -> CompensationResult:
    """Run a scheme on a section table (path or DataFrame); see the module docstring."""
    sch = scheme if isinstance(scheme, Scheme) else load_scheme(scheme)
    df = read_sections(sections, sch)
    notes: list[str] = []
    if sch.family == "load":
        detail = jiangsu_load(df, sch, notes)
    elif sch.family == "tiered":
        detail = henan_tiered(df, sch, notes)
    elif sch.family == "index":
        detail = xinanjiang_index(df, sch, notes)
    else:
        detail = tianjin_ranking(df, sch, notes)
    if sch.family in ("load", "tiered"):
        up, down = _parties(detail)
        detail["payer"], detail["payee"] = up, down
        per_section = _section_totals(detail)
    else:
        per_section = detail.attrs.pop("sections")
    per_section.insert(0, "scheme", sch.id)
    per_section["compensation_cny"] = per_section["compensation_cny"].astype("float64")
    detail.attrs.clear()
    return CompensationResult(sch, per_section, detail.reset_index(drop=True), _districts(per_section), notes)


def write_result(result: CompensationResult, out: str | os.PathLike) -> dict[str, Path]:
    """``OUT.csv`` (per section × period), ``OUT_districts.csv`` and ``OUT_factors.csv``
    (UTF-8 with BOM, so Excel shows the Chinese)."""
    out = Path(out)
    if out.suffix.lower() != ".csv":
        raise TableError(f"--out {out}: use a .csv file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = {"sections": out, "districts": out.with_name(f"{out.stem}_districts.csv"),
             "factors": out.with_name(f"{out.stem}_factors.csv")}
    result.sections.to_csv(paths["sections"], index=False, encoding="utf-8-sig")
    result.districts.to_csv(paths["districts"], index=False, encoding="utf-8-sig")
    result.factors.to_csv(paths["factors"], index=False, encoding="utf-8-sig")
    return paths


# ---------------------------------------------------------------------------------------
# GEP-based transfers
# ---------------------------------------------------------------------------------------

TRANSFER_METHODS = ("gep_share", "regulating_per_capita", "gep_change")


def _weights_to_amounts(fund: float, weights: pd.Series, where: str) -> pd.Series:
    if not np.isfinite(fund) or fund < 0:
        raise TableError(f"{where}: fund = {fund!r} must be a finite amount ≥ 0 (CNY)")
    total = float(weights.sum())
    if total <= 0:
        raise TableError(f"{where}: the weights sum to {total!r}; nothing to split the fund by")
    return (fund * weights / total).astype("float64")


def _check_nonneg(s: pd.Series, name: str) -> pd.Series:
    s = pd.to_numeric(s, errors="coerce").astype("float64")
    bad = s.isna() | (s < 0)
    if bad.any():
        unit = s.index[np.flatnonzero(bad.to_numpy())[0]]
        raise TableError(f"{name}: unit {unit!r} has value {s.loc[unit]!r}; must be a number ≥ 0")
    return s


def transfer_by_gep_share(fund: float, gep: pd.Series) -> pd.Series:
    """Split ``fund`` (CNY) by each unit's share of GEP: Tᵢ = F × GEPᵢ / Σⱼ GEPⱼ."""
    return _weights_to_amounts(fund, _check_nonneg(gep, "gep_cny"), "gep_share")


def transfer_by_regulating_per_capita(fund: float, regulating: pd.Series, population: pd.Series) -> pd.Series:
    """Split ``fund`` by regulating-service GEP per inhabitant:
    Tᵢ = F × (Rᵢ / Nᵢ) / Σⱼ (Rⱼ / Nⱼ), R in CNY, N in persons (> 0). Units that supply more
    regulating services per inhabitant (more ecological land, fewer people to pay for it)
    receive more."""
    r = _check_nonneg(regulating, "regulating_gep_cny")
    n = _check_nonneg(population, "population").reindex(r.index)
    if (n <= 0).any() or n.isna().any():
        unit = n.index[np.flatnonzero(((n <= 0) | n.isna()).to_numpy())[0]]
        raise TableError(f"population: unit {unit!r} has {n.get(unit)!r}; must be > 0 persons")
    return _weights_to_amounts(fund, r / n, "regulating_per_capita")


def transfer_by_gep_change(fund: float, gep_start: pd.Series, gep_end: pd.Series) -> pd.Series:
    """Split ``fund`` by GEP increase at constant prices: ΔGᵢ⁺ = max(0, Gᵢ(end) − Gᵢ(start)),
    Tᵢ = F × ΔGᵢ⁺ / Σⱼ ΔGⱼ⁺. Units whose GEP fell get nothing (the fund rewards gains; use
    the section schemes or the audit report for losses). Both GEPs must be in the same price
    year (e.g. the ``value_const_*`` columns of ``eco change``)."""
    a = _check_nonneg(gep_start, "gep_start_cny")
    b = _check_nonneg(gep_end, "gep_end_cny").reindex(a.index)
    gain = (b - a).clip(lower=0.0)
    return _weights_to_amounts(fund, gain, "gep_change")


def transfer_table(units: str | os.PathLike | pd.DataFrame, fund: float, method: str) -> pd.DataFrame:
    """Run a transfer method on a table with a ``unit`` column and the method's columns:
    ``gep_cny`` (gep_share); ``regulating_gep_cny``, ``population`` (regulating_per_capita);
    ``gep_start_cny``, ``gep_end_cny`` (gep_change). Adds ``weight`` and ``transfer_cny``."""
    from .tables import read_table, require_columns

    src = "units" if isinstance(units, pd.DataFrame) else str(units)
    df = units.copy() if isinstance(units, pd.DataFrame) else read_table(units, field="units")
    need = {"gep_share": ["gep_cny"], "regulating_per_capita": ["regulating_gep_cny", "population"],
            "gep_change": ["gep_start_cny", "gep_end_cny"]}
    if method not in need:
        raise TableError(f"--method = {method!r}: use one of {', '.join(TRANSFER_METHODS)}")
    require_columns(df, ["unit", *need[method]], src)
    dup = df["unit"].duplicated()
    if dup.any():
        raise TableError(f"{src}: row {_row(np.flatnonzero(dup)[0])}: unit {df['unit'][dup].iloc[0]!r} given twice")
    idx = df.set_index(df["unit"].astype(str))
    if method == "gep_share":
        amounts = transfer_by_gep_share(fund, idx["gep_cny"])
    elif method == "regulating_per_capita":
        amounts = transfer_by_regulating_per_capita(fund, idx["regulating_gep_cny"], idx["population"])
    else:
        amounts = transfer_by_gep_change(fund, idx["gep_start_cny"], idx["gep_end_cny"])
    out = df.copy()
    out["method"] = method
    out["transfer_cny"] = amounts.to_numpy()
    out["weight"] = out["transfer_cny"] / fund if fund > 0 else 0.0
    return out
