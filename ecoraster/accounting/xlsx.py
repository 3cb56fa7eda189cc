"""Excel workbooks people open: Chinese column headers with units, number formats (no
1.49E+10), a frozen header row, filters and column widths.

- :func:`write_catalogue_workbook` — ``catalogue.xlsx`` (sheets 目录清单 / 一级分类 / 二级分类 /
  GEP / 说明) from the catalogue frames;
- :func:`write_zone_workbook` — ``<zone set>.xlsx``: one row per zone (parcels …) with every
  product's quantity and value, GEP and GEP per ha; openpyxl's write-only mode, so 3,000
  parcels × 30 columns take about a second.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

#: Catalogue column → Chinese header (units in the header where the column has one unit).
CATALOGUE_HEADERS = {
    "code": "编码", "level1": "一级分类", "level2": "二级分类", "product": "产品代码", "name_zh": "生态产品",
    "zone_set": "核算单元类型", "zone_id": "单元编号", "zone_name": "单元名称",
    "quantity": "实物量", "quantity_unit": "实物量单位", "physical_method": "实物量核算方法",
    "valuation_method": "价值量核算方法", "value_cny": "价值量（元）", "price": "价格",
    "price_unit": "价格单位", "price_year": "价格年份", "price_id": "价格编号", "price_source": "价格来源",
    "source": "来源", "confidence": "可信度", "profile": "核算标准", "counted": "计入GEP", "contested": "有争议项",
    # sums and GEP sheets
    "products": "包含产品", "gep_cny": "GEP（元）", "gep_excl_contested_cny": "GEP不含争议项（元）",
    "物质产品_cny": "物质产品（元）", "调节服务_cny": "调节服务（元）", "文化服务_cny": "文化服务（元）",
    "n_units": "单位数",
}

#: Number formats by header (Excel codes): thousands separators, fixed decimals.
FORMATS = {"实物量": "#,##0.00", "价值量（元）": "#,##0", "价格": "#,##0.00##", "价格年份": "0",
           "GEP（元）": "#,##0", "GEP不含争议项（元）": "#,##0", "物质产品（元）": "#,##0",
           "调节服务（元）": "#,##0", "文化服务（元）": "#,##0"}


def _number_format(header: str) -> str | None:
    if header in FORMATS:
        return FORMATS[header]
    if "（元" in header or header.endswith("价值量"):
        return "#,##0"
    if "（" in header or header.endswith("实物量") or "公顷" in header:
        return "#,##0.00"
    return None


def _width(header: str, values: pd.Series) -> float:
    def w(s: str) -> int:  # CJK characters take two columns
        return sum(2 if ord(ch) > 0x2E80 else 1 for ch in s)

    sample = [w(str(v)) for v in values.head(200) if v is not None]
    longest = max([w(header), *(min(x, 40) for x in sample)] or [8])
    return min(max(longest + 2, 8), 48)


def format_sheet(ws: Any, df: pd.DataFrame) -> None:
    """Frozen header row, auto filter, widths and number formats on a sheet written by pandas."""
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    ws.freeze_panes = "A2"
    if len(df.columns):
        ws.auto_filter.ref = ws.dimensions
    for j, header in enumerate(df.columns, start=1):
        letter = get_column_letter(j)
        ws.column_dimensions[letter].width = _width(str(header), df[header])
        ws.cell(row=1, column=j).font = Font(bold=True)
        fmt = _number_format(str(header))
        if fmt:
            for row in ws.iter_rows(min_row=2, min_col=j, max_col=j):
                row[0].number_format = fmt


def zh_headers(df: pd.DataFrame) -> pd.DataFrame:
    return df.rename(columns={c: CATALOGUE_HEADERS.get(c, c) for c in df.columns})


def write_catalogue_workbook(path: Path, sheets: dict[str, pd.DataFrame]) -> None:
    """Write ``sheets`` (name → frame with catalogue columns) with Chinese headers and formats."""
    with pd.ExcelWriter(path, engine="openpyxl") as xl:
        for name, df in sheets.items():
            out = zh_headers(df)
            for c in out.columns:  # booleans as 是 / 否
                if out[c].dtype == bool:
                    out[c] = out[c].map({True: "是", False: "否"})
            out.to_excel(xl, sheet_name=name, index=False)
            format_sheet(xl.sheets[name], out)


def zone_headers(columns: list[str], units: dict[str, str], field_names: dict[str, str]) -> list[str]:
    """Headers of a zone workbook: the GeoPackage's Chinese field name (or the English one)
    with its unit, e.g. ``水源涵养_实物量（m3）``, ``GEP_元`` → ``GEP（元）``."""
    out = []
    for c in columns:
        name = field_names.get(c, c)
        name = re.sub(r"_元每公顷$", "（元/公顷）", re.sub(r"_元$", "（元）", name))
        name = name.replace("面积_公顷", "面积（公顷）")
        unit = units.get(c, "")
        if unit and "（" not in name:
            unit_zh = {"CNY": "元", "CNY/ha": "元/公顷", "ha": "公顷"}.get(unit, unit)
            name = f"{name}（{unit_zh}）"
        out.append(name)
    return out


def write_zone_workbook(df: pd.DataFrame, path: Path, units: dict[str, str], field_names: dict[str, str],
                        sheet: str) -> Path:
    """One row per zone, headers in Chinese with units, number formats, frozen header row."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    cols = [c for c in df.columns if c != "geometry"]
    headers = zone_headers(cols, units, field_names)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(sheet)
    ws.freeze_panes = "A2"
    for j, (h, c) in enumerate(zip(headers, cols), start=1):
        ws.column_dimensions[get_column_letter(j)].width = _width(h, df[c].astype(str))
    bold = Font(bold=True)
    head = []
    for h in headers:
        cell = WriteOnlyCell(ws, value=h)
        cell.font = bold
        head.append(cell)
    ws.append(head)
    formats = [_number_format(h) if pd.api.types.is_numeric_dtype(df[c]) else None for h, c in zip(headers, cols)]
    for rec in df[cols].itertuples(index=False, name=None):
        row = []
        for v, fmt in zip(rec, formats):
            if fmt is None:
                row.append(None if pd.isna(v) else v)
                continue
            cell = WriteOnlyCell(ws, value=None if pd.isna(v) else float(v))
            cell.number_format = fmt
            row.append(cell)
        ws.append(row)
    ws.auto_filter.ref = f"A1:{get_column_letter(len(cols))}{len(df) + 1}"
    wb.save(path)
    return path
