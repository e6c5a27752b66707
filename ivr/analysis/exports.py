"""Any dashboard table as CSV (UTF-8 with a BOM, so Excel reads Persian) or XLSX (openpyxl, RTL)."""
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


def _header_and_rows(table: Table) -> tuple[list[str], list[list[object]]]:
    header = [c.label or c.key for c in table.columns]
    rows = [[row.get(c.key) for c in table.columns] for row in table.rows]
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
    sheet.append([table.title])
    sheet["A1"].font = Font(bold=True)
    sheet.append(header)
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
