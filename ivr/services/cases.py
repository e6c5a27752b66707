"""Urban-planning and Article 100 cases: the feed from the urban-planning system, and lookups.

The urban-planning system exports a CSV (see `CASES_CSV_COLUMNS`); `import_cases` checks
every row in Python and writes the good ones in batches with one INSERT … ON CONFLICT
(case_number, kind) DO UPDATE per batch, so a million-row feed loads in bulk and a
re-import updates cases in place. Callers typing a case number on the keypad reach the
row through `find_case`.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TextIO, TypedDict

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ivr.identifiers import latin_digits
from ivr.models import UrbanCase, utcnow
from ivr.speech.persian import MAX_AMOUNT_RIALS, speakable_amount
from ivr.vocabulary import CASE_KINDS, CASE_STAGES, DEFAULT_DISTRICTS, VERDICTS

CASES_CSV_COLUMNS = (
    "case_number",
    "kind",
    "district",
    "stage",
    "next_date",
    "verdict",
    "fine_rials",
    "updated_at",
)
CASE_NUMBER_MAX_DIGITS = 15
DEFAULT_BATCH_SIZE = 5000

_STAGES = {kind: frozenset(stages) for kind, stages in CASE_STAGES.items()}
_VERDICTS = frozenset(VERDICTS)
_KINDS_TEXT = ", ".join(CASE_KINDS)
_VERDICTS_TEXT = ", ".join(VERDICTS)
# The table's columns, in the CSV's order (the CSV says updated_at for the column updated_on).
_ROW_COLUMNS = tuple("updated_on" if c == "updated_at" else c for c in CASES_CSV_COLUMNS)
# Columns an upsert overwrites; (case_number, kind) is the key and never changes.
_UPDATED_COLUMNS = (
    "district",
    "stage",
    "next_date",
    "verdict",
    "fine_rials",
    "updated_on",
    "imported_at",
)


class CaseImportError(Exception):
    """The feed cannot be read at all (not UTF-8 CSV, or a wrong header); nothing is imported."""


class CaseRow(TypedDict):
    """One validated case, shaped as the `cases` table's columns."""

    case_number: str
    kind: str
    district: int | None
    stage: str
    next_date: date | None
    verdict: str | None
    fine_rials: int | None
    updated_on: date | None


@dataclass
class ImportReport:
    """What an import did: rows read, rows written (inserted or updated), and rejected rows."""

    rows_read: int = 0
    # Every good row counts once, as if applied in file order: a case repeated in the file
    # is an insert then an update. So rows_read == imported + len(errors), always.
    imported: int = 0
    # (physical line in the file, header = 1; reason in English)
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every row was imported."""
        return not self.errors


def cases_csv_header() -> str:
    """The header line the feed must start with, for help texts and error messages."""
    return ",".join(CASES_CSV_COLUMNS)


def find_case(session: Session, kind: str, case_number: str) -> UrbanCase | None:
    """The case of `kind` with this number (Persian digits accepted), or None."""
    number = latin_digits(case_number.strip())
    if kind not in CASE_KINDS or not number:
        return None
    return session.scalars(
        select(UrbanCase).where(UrbanCase.kind == kind, UrbanCase.case_number == number)
    ).one_or_none()


def upsert_cases(session: Session, rows: Sequence[CaseRow]) -> int:
    """Insert or update validated cases in one statement; a repeated key keeps its last row.

    Returns the number of distinct cases written. Does not commit.
    """
    if not rows:
        return 0
    # PostgreSQL refuses to update one row twice in a statement, so the last row wins here.
    unique: dict[tuple[str, str], CaseRow] = {}
    for row in rows:
        unique[(row["case_number"], row["kind"])] = row
    stamp = utcnow()
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        plain: list[dict[str, Any]] = [dict(row) for row in unique.values()]
        arrays = {name: [row[name] for row in plain] for name in _ROW_COLUMNS}
        session.execute(_postgresql_upsert(), {**arrays, "imported_at": stamp})
    elif dialect == "sqlite":
        session.execute(
            _sqlite_upsert(), [{**row, "imported_at": stamp} for row in unique.values()]
        )
    else:  # pragma: no cover - the project supports these two
        raise CaseImportError(f"case import supports SQLite and PostgreSQL, not {dialect}")
    return len(unique)


def import_cases(
    session: Session,
    stream: TextIO,
    *,
    progress: Callable[[int], None] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    districts: int = DEFAULT_DISTRICTS,
) -> ImportReport:
    """Import the urban-planning CSV from `stream`: bad rows are reported, good rows upserted.

    `progress`, if given, is called after each batch with the number of rows read so far;
    `districts` is the city's count (IVR_DISTRICTS). A stream that is not UTF-8 CSV with the
    expected header raises `CaseImportError` and leaves the database as it was. Does not commit.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    report = ImportReport()
    # A savepoint, so a file found to be corrupt half-way leaves no half-import behind.
    with session.begin_nested():
        for batch in _read_batches(stream, report, batch_size, districts):
            upsert_cases(session, batch)
            if progress is not None:
                progress(report.rows_read)
    return report


def _read_batches(
    stream: TextIO, report: ImportReport, batch_size: int, districts: int = DEFAULT_DISTRICTS
) -> Iterator[list[CaseRow]]:
    """Yield lists of validated rows; count rows and record bad ones in `report` on the way.

    The last list may be empty, so a caller's progress always sees the final count.
    """
    reader = csv.reader(stream)
    width = len(CASES_CSV_COLUMNS)
    try:
        positions = _check_header(next(reader, None))
        in_order = positions == list(range(width))
        batch: list[CaseRow] = []
        # csv counts physical lines read so far, so a record starts one line after the last.
        start = reader.line_num + 1
        for fields in reader:
            line, start = start, reader.line_num + 1
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            report.rows_read += 1
            if len(fields) != width:
                report.errors.append((line, f"expected {width} fields, found {len(fields)}"))
                continue
            row, problems = _validate(fields if in_order else [fields[i] for i in positions], districts)
            if row is None:
                report.errors.append((line, "; ".join(problems)))
                continue
            batch.append(row)
            report.imported += 1
            if len(batch) >= batch_size:
                yield batch
                batch = []
        yield batch
    except UnicodeDecodeError:
        raise CaseImportError(
            "the file is not UTF-8 text (binary, or another encoding such as Windows-1256);"
            " export the feed as UTF-8 CSV"
        ) from None
    except csv.Error as exc:
        raise CaseImportError(f"not a readable CSV file (line {reader.line_num}): {exc}") from None


def _check_header(header: list[str] | None) -> list[int]:
    """Positions of the expected columns in `header`, or CaseImportError saying what is wrong."""
    expected = cases_csv_header()
    if not header or not any(cell.strip() for cell in header):
        raise CaseImportError(f"the file is empty or has no header line; expected: {expected}")
    # Spreadsheet tools write a BOM at the start of UTF-8 files; it is not part of the name.
    names = [cell.strip().lower() for cell in header]
    names[0] = names[0].lstrip("\ufeff").strip()
    if len(names) == 1 and (";" in names[0] or "\t" in names[0]):
        raise CaseImportError(
            f"the header has a single column {header[0]!r}: the file must be separated by commas;"
            f" expected: {expected}"
        )
    duplicated = sorted({n for n in names if names.count(n) > 1})
    missing = [c for c in CASES_CSV_COLUMNS if c not in names]
    unknown = [n for n in names if n not in CASES_CSV_COLUMNS]
    problems = []
    if missing:
        problems.append("missing columns: " + ", ".join(missing))
    if unknown:
        problems.append("unknown columns: " + ", ".join(repr(n) for n in unknown))
    if duplicated:
        problems.append("repeated columns: " + ", ".join(duplicated))
    if problems:
        raise CaseImportError("; ".join(problems) + f" (expected header: {expected})")
    return [names.index(c) for c in CASES_CSV_COLUMNS]


def _validate(fields: list[str], districts: int = DEFAULT_DISTRICTS) -> tuple[CaseRow | None, list[str]]:
    """One row's fields (in CASES_CSV_COLUMNS order) as a CaseRow, or None and every problem."""
    # This runs once per row of million-row feeds: ASCII fields skip the digit translation.
    raw_number, raw_kind, raw_district, raw_stage, raw_next, raw_verdict, raw_fine, raw_updated = (
        map(str.strip, fields)
    )
    problems: list[str] = []

    number = raw_number if raw_number.isascii() else latin_digits(raw_number)
    if not number:
        problems.append("case number is empty")
    elif not (number.isascii() and number.isdigit()):
        problems.append(f"case number {raw_number!r} must contain digits only")
    elif len(number) > CASE_NUMBER_MAX_DIGITS:
        problems.append(
            f"case number {raw_number!r} has {len(number)} digits"
            f" (at most {CASE_NUMBER_MAX_DIGITS})"
        )

    kind = raw_kind.lower()
    stage = raw_stage.lower()
    stages = _STAGES.get(kind)
    if stages is None:
        problems.append(f"kind {raw_kind!r} is not one of {_KINDS_TEXT}")
    elif not stage:
        problems.append("stage is empty")
    elif stage not in stages:
        problems.append(f"stage {raw_stage!r} is not valid for {kind}")

    district: int | None = None
    if raw_district:
        digits = raw_district if raw_district.isascii() else latin_digits(raw_district)
        if digits.isascii() and digits.isdigit() and 1 <= int(digits) <= districts:
            district = int(digits)
        else:
            problems.append(f"district {raw_district!r} must be empty or a number from 1 to {districts}")

    next_date = _parse_date("next_date", raw_next, problems) if raw_next else None
    updated_on = _parse_date("updated_at", raw_updated, problems) if raw_updated else None

    verdict = raw_verdict.lower() or None
    if verdict is not None and verdict not in _VERDICTS:
        problems.append(f"verdict {raw_verdict!r} is not one of {_VERDICTS_TEXT} (or empty)")

    fine: int | None = None
    if raw_fine:
        digits = raw_fine if raw_fine.isascii() else latin_digits(raw_fine)
        if not (digits.isascii() and digits.isdigit()):
            problems.append(
                f"fine_rials {raw_fine!r} must be empty or a whole number of rials, 0 or more"
            )
        elif len(digits) > 18:
            # The column is a 64-bit integer; one oversized value would fail the whole batch.
            problems.append(f"fine_rials {raw_fine!r} is too large (at most 18 digits)")
        elif not speakable_amount(int(digits)):
            # Stored, it would make every look-up of the case fail on the phone.
            problems.append(
                f"fine_rials {raw_fine!r} cannot be spoken on the phone"
                f" (at most {MAX_AMOUNT_RIALS:,} rials)"
            )
        else:
            fine = int(digits)

    if problems:
        return None, problems
    row: CaseRow = {
        "case_number": number,
        "kind": kind,
        "district": district,
        "stage": stage,
        "next_date": next_date,
        "verdict": verdict,
        "fine_rials": fine,
        "updated_on": updated_on,
    }
    return row, problems


def _parse_date(column: str, raw: str, problems: list[str]) -> date | None:
    """A non-empty ISO date (YYYY-MM-DD); a bad value adds a problem and gives None."""
    text = raw if raw.isascii() else latin_digits(raw)
    # fromisoformat alone would also take 20240101 and week dates; the feed promises YYYY-MM-DD.
    if len(text) == 10 and text[4] == "-" and text[7] == "-":
        try:
            day = date.fromisoformat(text)
        except ValueError:
            pass
        else:
            # A Jalali date (e.g. 1403-05-12) parses as a Gregorian one 600 years ago.
            if day.year >= 1900:
                return day
            problems.append(
                f"{column} {raw!r} looks like a Jalali date; the feed must use Gregorian YYYY-MM-DD"
            )
            return None
    problems.append(f"{column} {raw!r} is not a date (YYYY-MM-DD)")
    return None


def _sqlite_upsert() -> Any:
    """INSERT … VALUES … ON CONFLICT DO UPDATE for SQLite, run once per row (executemany)."""
    table = UrbanCase.__table__
    stmt = sqlite.insert(table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.case_number, table.c.kind],
        set_={name: stmt.excluded[name] for name in _UPDATED_COLUMNS},
    )


def _postgresql_upsert() -> Any:
    """INSERT … SELECT unnest(arrays) … ON CONFLICT DO UPDATE for PostgreSQL, one statement a batch.

    One array per column keeps a batch to a single round trip and a single plan; row by
    row (even pipelined) PostgreSQL spends its time on per-statement overhead.
    """
    table = UrbanCase.__table__
    columns = [
        func.unnest(bindparam(name, type_=postgresql.ARRAY(table.c[name].type))).label(name)
        for name in _ROW_COLUMNS
    ]
    stamp = bindparam("imported_at", type_=table.c.imported_at.type)
    stmt = postgresql.insert(table).from_select([*_ROW_COLUMNS, "imported_at"], select(*columns, stamp))
    return stmt.on_conflict_do_update(
        index_elements=[table.c.case_number, table.c.kind],
        set_={name: stmt.excluded[name] for name in _UPDATED_COLUMNS},
    )
