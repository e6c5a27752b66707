"""Working days: Fridays and holidays off, deadlines at the end of the N-th working day."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.models import Holiday
from ivr.services.calendar import (
    add_working_days,
    deadline_after,
    due_at,
    is_working_day,
    working_days_between,
)

TEHRAN = ZoneInfo("Asia/Tehran")


def test_friday_is_off_and_saturday_works() -> None:
    assert not is_working_day(date(2026, 11, 27))  # a Friday
    assert is_working_day(date(2026, 11, 28))


def test_add_working_days_skips_fridays_and_holidays() -> None:
    # Wed 2026-11-25 + 2 working days: Thu 26, (Fri 27 off), Sat 28
    assert add_working_days(date(2026, 11, 25), 2, []) == date(2026, 11, 28)
    assert add_working_days(date(2026, 11, 25), 2, [date(2026, 11, 28)]) == date(2026, 11, 29)
    assert add_working_days(date(2026, 11, 27), 0, []) == date(2026, 11, 28)  # Friday starts on Saturday


def test_add_working_days_refuses_absurd_deadlines() -> None:
    with pytest.raises(ValueError, match="between 0 and 365"):
        add_working_days(date(2026, 1, 1), -1, [])


@given(
    st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)),
    st.integers(min_value=0, max_value=60),
    st.sets(st.integers(min_value=0, max_value=120), max_size=15),
)
def test_add_working_days_matches_counting_forward(start, days, offsets) -> None:
    holidays = {start + timedelta(days=o) for o in offsets}
    end = add_working_days(start, days, holidays)
    assert is_working_day(end, holidays)
    first = start if is_working_day(start, holidays) else add_working_days(start, 0, holidays)
    assert working_days_between(first, end, holidays) == days


def test_due_at_reads_holidays_from_the_database(db) -> None:
    db.add(Holiday(day=date(2026, 11, 28), name="تعطیل رسمی"))
    db.flush()
    # 20:45 UTC on Wed 25 Nov is already Thursday 26 Nov 00:15 in Tehran.
    due = due_at(db, datetime(2026, 11, 25, 20, 45, tzinfo=UTC), 1, TEHRAN)
    assert due == datetime(2026, 11, 29, 23, 59, 59, tzinfo=TEHRAN)


def test_deadline_after_equals_due_at_given_the_same_holidays(db) -> None:
    db.add(Holiday(day=date(2026, 11, 28), name="تعطیل رسمی"))
    db.flush()
    start = datetime(2026, 11, 25, 20, 45, tzinfo=UTC)
    for days in (0, 1, 3, 10):
        assert deadline_after(start, days, TEHRAN, {date(2026, 11, 28)}) == due_at(db, start, days, TEHRAN)
