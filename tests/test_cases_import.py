"""The urban-planning system's case feed: validation, upsert, whole-file failures, lookups."""

from __future__ import annotations

import io
from datetime import date

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ivr.models import UrbanCase
from ivr.services.cases import (
    CaseImportError,
    ImportReport,
    cases_csv_header,
    find_case,
    import_cases,
)
from ivr.speech.persian import MAX_NUMBER, amount

HEADER = "case_number,kind,district,stage,next_date,verdict,fine_rials,updated_at"


def feed(*lines: str, header: str = HEADER) -> io.StringIO:
    """A CSV feed as the CLI would open it (text, newline='')."""
    return io.StringIO("\n".join([header, *lines]) + "\n", newline="")


def raw_feed(data: bytes) -> io.TextIOWrapper:
    """Bytes opened the way the CLI opens a feed file: UTF-8 text, newline=''."""
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="")


def case_count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(UrbanCase)) or 0


def stage_of(db: Session, kind: str, number: str) -> str | None:
    case = find_case(db, kind, number)
    return None if case is None else case.stage


def test_cases_csv_header_matches_the_documented_feed() -> None:
    assert cases_csv_header() == HEADER


def test_import_cases_mixed_file_imports_good_rows_and_reports_each_bad_line(db: Session) -> None:
    stream = feed(
        "1001,urban_planning,7,received,2025-03-01,,,2025-02-20",  # line 2
        "12AB34,urban_planning,7,received,,,,",  # 3
        "1234567890123456,article100,3,appeal,,,,",  # 4
        "1002,zoning,3,received,,,,",  # 5
        "",  # 6: blank lines are skipped but still counted as lines
        "1003,article100,5,paid,,,,",  # 7
        "1004,urban_planning,0,received,,,,",  # 8
        "1005,urban_planning,23,received,,,,",  # 9
        "1006,article100,12,hearing_scheduled,2025-02-30,,,",  # 10
        "1007,article100,12,final_verdict,,fine,-5000,2025-01-10",  # 11
        "1008,article100,12,final_verdict,,jail,,",  # 12
        "2001,article100,22,final_verdict,2025-06-01,fine,250000000,2025-05-01",  # 13
        "123456789012345,urban_planning,,permit_issued,,,,",  # 14
        "1009,urban_planning,4,received,,",  # 15
    )

    report = import_cases(db, stream)

    assert report.errors == [
        (3, "case number '12AB34' must contain digits only"),
        (4, "case number '1234567890123456' has 16 digits (at most 15)"),
        (5, "kind 'zoning' is not one of urban_planning, article100"),
        (7, "stage 'paid' is not valid for article100"),
        (8, "district '0' must be empty or a number from 1 to 22"),
        (9, "district '23' must be empty or a number from 1 to 22"),
        (10, "next_date '2025-02-30' is not a date (YYYY-MM-DD)"),
        (11, "fine_rials '-5000' must be empty or a whole number of rials, 0 or more"),
        (12, "verdict 'jail' is not one of fine, demolition, closure (or empty)"),
        (15, "expected 8 fields, found 6"),
    ]
    assert not report.ok
    assert (report.rows_read, report.imported) == (13, 3)
    assert case_count(db) == 3
    first = find_case(db, "urban_planning", "1001")
    assert first is not None
    assert (first.district, first.stage, first.next_date, first.updated_on) == (
        7,
        "received",
        date(2025, 3, 1),
        date(2025, 2, 20),
    )
    assert (first.verdict, first.fine_rials) == (None, None)
    ruled = find_case(db, "article100", "2001")
    assert ruled is not None
    assert (ruled.stage, ruled.verdict, ruled.fine_rials) == ("final_verdict", "fine", 250_000_000)
    longest = find_case(db, "urban_planning", "123456789012345")
    assert longest is not None and longest.district is None


def test_import_cases_row_with_several_problems_lists_them_all(db: Session) -> None:
    report = import_cases(db, feed("12x,article100,30,received,1403-05-12,,,"))

    assert report.errors == [
        (
            2,
            "case number '12x' must contain digits only; "
            "stage 'received' is not valid for article100; "
            "district '30' must be empty or a number from 1 to 22; "
            "next_date '1403-05-12' looks like a Jalali date; the feed must use Gregorian YYYY-MM-DD",
        )
    ]
    assert case_count(db) == 0


def test_import_cases_fine_beyond_64_bits_is_rejected_not_crashing_the_batch(db: Session) -> None:
    report = import_cases(
        db,
        feed(
            "3001,article100,1,final_verdict,,fine,99999999999999999999,",
            "3002,article100,1,final_verdict,,fine,5000000,",
        ),
    )

    assert report.errors == [
        (2, "fine_rials '99999999999999999999' is too large (at most 18 digits)")
    ]
    assert case_count(db) == 1


def test_import_cases_fine_that_cannot_be_spoken_is_refused_with_its_line(db: Session) -> None:
    report = import_cases(
        db,
        feed(
            "3101,article100,1,final_verdict,,fine,999999999999999,",  # the largest speakable
            "3102,article100,1,final_verdict,,fine,1000000000000000,",
            "3103,article100,1,final_verdict,,fine,۱۲۳۴۵۶۷۸۹۰۱۲۳۴۵۶,",
        ),
    )

    assert report.errors == [
        (3, "fine_rials '1000000000000000' cannot be spoken on the phone"
            " (at most 999,999,999,999,999 rials)"),
        (4, "fine_rials '۱۲۳۴۵۶۷۸۹۰۱۲۳۴۵۶' cannot be spoken on the phone"
            " (at most 999,999,999,999,999 rials)"),
    ]
    case = find_case(db, "article100", "3101")
    assert case is not None and case.fine_rials == MAX_NUMBER
    assert amount(case.fine_rials, "rial")[-1] == "rial"  # what the phone will say


def test_import_cases_reimport_updates_stage_without_duplicating(db: Session) -> None:
    import_cases(db, feed("5001,article100,3,hearing_scheduled,2025-04-01,,,2025-03-01"))
    before = find_case(db, "article100", "5001")
    assert before is not None
    case_id = before.id

    report = import_cases(db, feed("5001,article100,3,final_verdict,,demolition,,2025-04-02"))
    db.expire_all()

    assert report.ok and report.imported == 1
    assert case_count(db) == 1
    after = find_case(db, "article100", "5001")
    assert after is not None
    assert after.id == case_id
    assert (after.stage, after.next_date, after.verdict, after.updated_on) == (
        "final_verdict",
        None,
        "demolition",
        date(2025, 4, 2),
    )


def test_import_cases_same_number_of_other_kind_is_another_case(db: Session) -> None:
    report = import_cases(
        db,
        feed("6001,urban_planning,2,paid,,,,", "6001,article100,2,appeal,,,,"),
    )

    assert report.ok
    assert case_count(db) == 2
    assert stage_of(db, "urban_planning", "6001") == "paid"
    assert stage_of(db, "article100", "6001") == "appeal"


def test_import_cases_same_case_twice_in_one_file_last_row_wins(db: Session) -> None:
    report = import_cases(
        db,
        feed(
            "7001,urban_planning,9,received,,,,2025-01-01",
            "7002,urban_planning,9,received,,,,2025-01-01",
            "7001,urban_planning,9,site_visit,2025-02-01,,,2025-01-15",
        ),
    )

    assert report.ok and (report.rows_read, report.imported) == (3, 3)
    assert case_count(db) == 2
    case = find_case(db, "urban_planning", "7001")
    assert case is not None
    assert (case.stage, case.next_date) == ("site_visit", date(2025, 2, 1))


def test_import_cases_same_case_in_two_batches_last_row_wins(db: Session) -> None:
    report = import_cases(
        db,
        feed(
            "7101,article100,,appeal,,,,",
            "7102,article100,,appeal,,,,",
            "7101,article100,,executed,,closure,,",
        ),
        batch_size=2,
    )

    assert report.ok
    assert stage_of(db, "article100", "7101") == "executed"


def test_import_cases_persian_digits_are_normalised(db: Session) -> None:
    report = import_cases(db, feed("۱۲۳۴۵۶,urban_planning,۷,paid,۲۰۲۵-۰۱-۱۵,,۱۰۰۰,"))

    assert report.ok
    case = find_case(db, "urban_planning", "123456")
    assert case is not None
    assert (case.case_number, case.district, case.next_date, case.fine_rials) == (
        "123456",
        7,
        date(2025, 1, 15),
        1000,
    )
    assert find_case(db, "urban_planning", "۱۲۳۴۵۶") is case


def test_import_cases_bom_at_start_is_tolerated(db: Session) -> None:
    data = ("\ufeff" + HEADER + "\r\n8001,article100,1,appeal,,,,\r\n").encode("utf-8")

    report = import_cases(db, raw_feed(data))

    assert report.ok and report.imported == 1
    assert find_case(db, "article100", "8001") is not None


def test_import_cases_header_in_other_order_and_case_is_accepted(db: Session) -> None:
    header = "Kind,Case_Number,stage,district,next_date,verdict,fine_rials,updated_at"

    report = import_cases(db, feed("article100,8101,appeal,4,,,,", header=header))

    assert report.ok
    case = find_case(db, "article100", "8101")
    assert case is not None and case.district == 4


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(b"", "the file is empty or has no header line", id="empty"),
        pytest.param(
            b"1001,urban_planning,7,received,,,,\n",
            "missing columns: case_number, kind, district, stage, next_date, verdict,"
            " fine_rials, updated_at",
            id="no-header",
        ),
        pytest.param(
            b"case_number,kind,district,stage,next_date,verdict,fine,updated_at\n"
            b"1001,urban_planning,7,received,,,,\n",
            "missing columns: fine_rials; unknown columns: 'fine'",
            id="misnamed-column",
        ),
        pytest.param(
            b"case_number,kind,district,stage,next_date,verdict,updated_at\n",
            "missing columns: fine_rials (expected header",
            id="missing-column",
        ),
        pytest.param(
            HEADER.replace(",", ";").encode() + b"\n1001;urban_planning;7;received;;;;\n",
            "the file must be separated by commas",
            id="semicolons",
        ),
        pytest.param(
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00\xff\xd8\xff\xe0",
            "not UTF-8 text",
            id="binary",
        ),
        pytest.param(
            (HEADER + "\n1001,urban_planning,7,received,,,,\n").encode("cp1256")
            + "1002,article100,7,final_verdict,,تهران,,\n".encode("cp1256"),
            "not UTF-8 text",
            id="windows-1256",
        ),
    ],
)
def test_import_cases_unreadable_file_raises_and_imports_nothing(
    db: Session, data: bytes, reason: str
) -> None:
    with pytest.raises(CaseImportError, match=reason.replace("(", r"\(")):
        import_cases(db, raw_feed(data))

    assert case_count(db) == 0


def test_import_cases_corruption_after_written_batches_rolls_all_back(db: Session) -> None:
    good = "".join(f"{90000 + i},urban_planning,1,received,,,,\n" for i in range(1000))
    data = (HEADER + "\n" + good).encode() + b"\xff\xfe\x00garbage\n"
    written: list[int] = []

    with pytest.raises(CaseImportError, match="not UTF-8 text"):
        import_cases(db, raw_feed(data), batch_size=50, progress=written.append)

    assert written, "the bad bytes must come after some batches were written"
    assert case_count(db) == 0


def test_import_cases_progress_reports_rows_read_after_each_batch(db: Session) -> None:
    seen: list[int] = []
    rows = [f"{9100 + i},article100,,appeal,,,," for i in range(5)]

    import_cases(db, feed(*rows, "bad,article100,,appeal,,,,"), progress=seen.append, batch_size=2)

    assert seen == [2, 4, 6]


def test_import_cases_batch_size_below_one_is_refused(db: Session) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        import_cases(db, feed(), batch_size=0)


def test_import_report_ok_only_without_errors() -> None:
    assert ImportReport(rows_read=2, imported=2).ok
    assert not ImportReport(rows_read=2, imported=1, errors=[(3, "x")]).ok


def test_find_case_unknown_number_or_kind_is_none(db: Session) -> None:
    import_cases(db, feed("9201,urban_planning,1,received,,,,"))

    assert find_case(db, "urban_planning", "9201") is not None
    assert find_case(db, "article100", "9201") is None
    assert find_case(db, "urban_planning", "9202") is None
    assert find_case(db, "zoning", "9201") is None
    assert find_case(db, "urban_planning", "") is None
