"""Reading the audit log: filter by user, action and day (in the city's time zone), newest first."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ivr.models import AuditEntry, User

PER_PAGE = 50


@dataclass(frozen=True)
class AuditFilter:
    """Which entries to show; every field is optional. Days are inclusive, local to the city."""

    user_id: int | None = None
    action: str | None = None
    since: date | None = None
    until: date | None = None


@dataclass(frozen=True)
class AuditRow:
    """One entry as the viewer shows it."""

    created_at: datetime
    username: str | None
    full_name: str | None
    action: str
    object_type: str
    object_id: int | None
    detail: str | None
    ip: str | None


@dataclass(frozen=True)
class AuditPage:
    """One page of matching entries."""

    rows: list[AuditRow]
    total: int
    page: int
    pages: int


def _start_of(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tz)


def search(
    session: Session, flt: AuditFilter, tz: ZoneInfo, *, page: int = 1, per_page: int = PER_PAGE
) -> AuditPage:
    """A page of audit entries matching `flt`, newest first."""
    conditions = []
    if flt.user_id is not None:
        conditions.append(AuditEntry.user_id == flt.user_id)
    if flt.action:
        conditions.append(AuditEntry.action == flt.action)
    if flt.since is not None:
        conditions.append(AuditEntry.created_at >= _start_of(flt.since, tz))
    if flt.until is not None:
        conditions.append(AuditEntry.created_at < _start_of(flt.until + timedelta(days=1), tz))
    total = session.scalar(select(func.count(AuditEntry.id)).where(*conditions)) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    rows = session.execute(
        select(AuditEntry, User.username, User.full_name)
        .outerjoin(User, User.id == AuditEntry.user_id)
        .where(*conditions)
        .order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return AuditPage(
        rows=[
            AuditRow(e.created_at, username, full_name, e.action, e.object_type, e.object_id, e.detail, e.ip)
            for e, username, full_name in rows
        ],
        total=total,
        page=page,
        pages=pages,
    )


def actions(session: Session) -> list[str]:
    """Every action name that occurs in the log."""
    return list(session.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action)))


def users(session: Session) -> list[tuple[int, str, str]]:
    """Console users (id, username, full name), for the user filter."""
    return [tuple(row) for row in session.execute(select(User.id, User.username, User.full_name).order_by(User.username))]  # type: ignore[misc]
