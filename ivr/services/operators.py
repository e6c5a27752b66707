"""Whether the operators' queue is staffed now (working hours, Fridays and holidays)."""
from __future__ import annotations

import threading
import time as clock
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.models import Holiday, WorkingHours

FRIDAY = 4


@dataclass(frozen=True)
class Schedule:
    """The operators' working hours per weekday and the holidays, as read from the database."""

    hours: dict[int, tuple[time, time]]
    holidays: frozenset[date]

    def is_open(self, now: datetime, tz: ZoneInfo, default_hours: tuple[time, time]) -> bool:
        """True when a call at `now` would reach a staffed queue (the rules of `operators_open`)."""
        local = now.astimezone(tz)
        if local.date() in self.holidays:
            return False
        hours = self.hours.get(local.weekday())
        if hours is None:
            if self.hours:
                return False  # hours are configured and this day has none
            return _default_open(local, default_hours)
        return hours[0] <= local.time() < hours[1]


def load_schedule(session: Session, today: date | None = None) -> Schedule:
    """Working hours and holidays (from `today` on, when given) in two small queries."""
    hours = {h.weekday: (h.opens, h.closes) for h in session.scalars(select(WorkingHours))}
    query = select(Holiday.day)
    if today is not None:
        query = query.where(Holiday.day >= today)
    return Schedule(hours, frozenset(session.scalars(query)))


class ScheduleCache:
    """The schedule read at most once per `ttl` seconds per process: every call asking "open?" shares it.

    Invalidation is the TTL: a change of hours or holidays in the console reaches the
    phone within `ttl` seconds.
    """

    def __init__(self, ttl: float = 30.0) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._schedule: Schedule | None = None
        self._day: date | None = None
        self._loaded = 0.0

    def get(self, today: date, load: Callable[[date], Schedule]) -> Schedule:
        """The schedule for local day `today`; `load(today)` reads it when older than `ttl` or of another day."""
        with self._lock:
            if (self._schedule is not None and self._day == today
                    and clock.monotonic() - self._loaded < self.ttl):
                return self._schedule
        schedule = load(today)  # outside the lock: a slow database must not queue every call here
        with self._lock:
            self._schedule, self._day, self._loaded = schedule, today, clock.monotonic()
        return schedule


def operators_open(
    session: Session | None,
    now: datetime,
    tz: ZoneInfo,
    default_hours: tuple[time, time],
) -> bool:
    """True when a call now would reach a staffed operators' queue.

    Hours and holidays come from the database; with no session (database down) the
    configured default hours apply, Saturday to Thursday.
    """
    local = now.astimezone(tz)
    if session is None:
        return _default_open(local, default_hours)
    if session.get(Holiday, local.date()) is not None:
        return False
    hours = session.scalar(select(WorkingHours).where(WorkingHours.weekday == local.weekday()))
    if hours is None:
        if session.scalar(select(WorkingHours).limit(1)) is not None:
            return False  # hours are configured and this day has none
        return _default_open(local, default_hours)
    return hours.opens <= local.time() < hours.closes


def _default_open(local: datetime, default_hours: tuple[time, time]) -> bool:
    return local.weekday() != FRIDAY and default_hours[0] <= local.time() < default_hours[1]
