"""Working days on the city's calendar: Fridays and configured holidays are off.

Deadlines (a referral's due date, the overdue sweep, "answered on time" in the scorecard) are
counted in working days. A deadline of N working days from a moment falls at the end of the
N-th working day after the day of that moment, in the city's time zone.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.models import Holiday

FRIDAY = 4
MAX_WORKING_DAYS = 365


def holidays_between(session: Session, start: date, end: date) -> set[date]:
    """Configured holidays from `start` to `end` inclusive."""
    return set(session.scalars(select(Holiday.day).where(Holiday.day >= start, Holiday.day <= end)))


def is_working_day(day: date, holidays: Iterable[date] = ()) -> bool:
    """Not a Friday and not a holiday."""
    return day.weekday() != FRIDAY and day not in set(holidays)


def add_working_days(start: date, days: int, holidays: Iterable[date]) -> date:
    """The `days`-th working day after `start` (0: `start` itself if it is a working day, else the next)."""
    if not 0 <= days <= MAX_WORKING_DAYS:
        raise ValueError(f"working days must be between 0 and {MAX_WORKING_DAYS}, got {days}")
    off = set(holidays)
    day = start
    while not is_working_day(day, off):
        day += timedelta(days=1)
    for _ in range(days):
        day += timedelta(days=1)
        while not is_working_day(day, off):
            day += timedelta(days=1)
    return day


def due_at(session: Session, start: datetime, days: int, tz: ZoneInfo) -> datetime:
    """The deadline `days` working days after `start`: the end of that day (23:59:59 local), as an aware time."""
    local_day = start.astimezone(tz).date()
    # A year of calendar days covers any deadline up to MAX_WORKING_DAYS with every holiday in it.
    holidays = holidays_between(session, local_day, local_day + timedelta(days=2 * days + 60))
    return deadline_after(start, days, tz, holidays)


def deadline_after(start: datetime, days: int, tz: ZoneInfo, holidays: Iterable[date]) -> datetime:
    """`due_at` without the database: the end of the `days`-th working day after `start`, given the holidays."""
    day = add_working_days(start.astimezone(tz).date(), days, holidays)
    return datetime.combine(day, time(23, 59, 59), tzinfo=tz)


def working_days_between(start: date, end: date, holidays: Iterable[date]) -> int:
    """Working days after `start` up to and including `end` (0 when `end` is not after `start`)."""
    off = set(holidays)
    count, day = 0, start
    while day < end:
        day += timedelta(days=1)
        if is_working_day(day, off):
            count += 1
    return count
