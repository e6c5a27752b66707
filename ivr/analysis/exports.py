"""Any dashboard table as CSV (UTF-8 with a BOM, so Excel reads Persian) or XLSX (openpyxl, RTL).

Text cells come partly from people (unit and topic names typed by administrators): one starting
with `= + - @`, a tab or a carriage return would be a live formula in Excel or LibreOffice
(`=HYPERLINK(...)`), so it is written with a leading `'` (OWASP's CSV-injection rule). Numbers
stay numbers.
"""
from __future__ import annotations

import csv
import io

from openpyxl import Workbook
from openpyxl.styles import Font

from ivr.analysis.dashboard import Filters, Table, jalali


def export_name(table: Table, filters: Filters, extension: str) -> str:
    """A file name that says what and when: calls-daily_1405-08-01_1405-08-30.csv."""
    start = jalali(filters.period.start).replace("/", "-")
    end = jalali(filters.period.end).replace("/", "-")
    return f"{table.name}_{start}_{end}.{extension}"


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """`value` as a spreadsheet may show it: text that a spreadsheet would run as a formula gets a leading `'`."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _header_and_rows(table: Table) -> tuple[list[object], list[list[object]]]:
    header = [safe_cell(c.label or c.key) for c in table.columns]
    rows = [[safe_cell(row.get(c.key)) for c in table.columns] for row in table.rows]
    return header, rows


def to_csv(table: Table) -> bytes:
    """The table as CSV bytes, Persian column labels in the first row."""
    header, rows = _header_and_rows(table)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(table: Table) -> bytes:
    """The table as an XLSX workbook of one right-to-left sheet named after it."""
    header, rows = _header_and_rows(table)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = table.name[:31]
    sheet.sheet_view.rightToLeft = True
    sheet.append([safe_cell(table.title)])
    sheet["A1"].font = Font(bold=True)
    sheet.append(header)
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(row)
    for line in sheet.iter_rows():
        for cell in line:
            if isinstance(cell.value, str):
                cell.data_type = "s"  # text is text: openpyxl would take any remaining '=…' as a formula
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
