"""Whether the operators' queue is staffed now (working hours, Fridays and holidays)."""
from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.models import Holiday, WorkingHours

FRIDAY = 4


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
        return local.weekday() != FRIDAY and default_hours[0] <= local.time() < default_hours[1]
    if session.get(Holiday, local.date()) is not None:
        return False
    hours = session.scalar(select(WorkingHours).where(WorkingHours.weekday == local.weekday()))
    if hours is None:
        if session.scalar(select(WorkingHours).limit(1)) is not None:
            return False  # hours are configured and this day has none
        return local.weekday() != FRIDAY and default_hours[0] <= local.time() < default_hours[1]
    return hours.opens <= local.time() < hours.closes
