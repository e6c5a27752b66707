"""The call log: one row per call, written when the call ends (or replayed from the spool)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from ivr.models import Call
from ivr.services.messages import citizen_id_for
from ivr.vocabulary import CALL_OUTCOMES


@dataclass
class CallRecord:
    """What a driver knows about a call; plain data so it can wait in the spool."""

    channel_id: str
    line: str
    driver: str
    caller: str | None
    started_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    keys: str = ""
    outcome: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (datetimes as ISO strings)."""
        d = asdict(self)
        for k in ("started_at", "answered_at", "ended_at"):
            if d[k] is not None:
                d[k] = d[k].isoformat()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CallRecord:
        """Rebuild from `to_dict`."""
        d = dict(d)
        for k in ("started_at", "answered_at", "ended_at"):
            if d.get(k):
                d[k] = datetime.fromisoformat(d[k])
        return cls(**d)


class SavedCall(NamedTuple):
    """The call row written for a record: its id and citizen."""

    id: int
    citizen_id: int | None


def save_call(session: Session, record: CallRecord) -> Call:
    """Insert or update the call row for `record.channel_id` (idempotent); the row as an object."""
    saved = save_call_row(session, record)
    call = session.get(Call, saved.id, populate_existing=True)
    assert call is not None
    return call


def save_call_row(session: Session, record: CallRecord) -> SavedCall:
    """Insert or update the call row for `record.channel_id` (idempotent).

    Plain SQL statements, no ORM objects: every call ends here. An existing row takes
    one UPDATE; a new one a citizen look-up and one INSERT.
    """
    if record.outcome is not None and record.outcome not in CALL_OUTCOMES:
        raise ValueError(f"unknown call outcome {record.outcome!r}")
    table = Call.__table__
    changes = {
        "answered_at": record.answered_at,
        "ended_at": record.ended_at,
        "keys": record.keys[-400:],
        "outcome": record.outcome,
        "error": record.error,
    }
    row = session.execute(
        update(table)
        .where(table.c.channel_id == record.channel_id)
        .values(changes)
        .returning(table.c.id, table.c.citizen_id)
    ).first()
    if row is not None:
        return SavedCall(row[0], row[1])
    citizen_id = citizen_id_for(session, record.caller)
    new_id = session.scalar(
        insert(table)
        .values(
            channel_id=record.channel_id,
            line_code=record.line,
            driver=record.driver,
            caller_number=(record.caller or None) and record.caller[:32],
            citizen_id=citizen_id,
            started_at=record.started_at,
            **changes,
        )
        .returning(table.c.id)
    )
    return SavedCall(int(new_id), citizen_id)
