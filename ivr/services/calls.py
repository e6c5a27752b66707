"""The call log: one row per call, written when the call ends (or replayed from the spool)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.models import CALL_OUTCOMES, Call
from ivr.services.messages import citizen_for


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


def save_call(session: Session, record: CallRecord) -> Call:
    """Insert or update the call row for `record.channel_id` (idempotent)."""
    if record.outcome is not None and record.outcome not in CALL_OUTCOMES:
        raise ValueError(f"unknown call outcome {record.outcome!r}")
    call = session.scalar(select(Call).where(Call.channel_id == record.channel_id))
    if call is None:
        citizen = citizen_for(session, record.caller)
        call = Call(
            channel_id=record.channel_id,
            line_code=record.line,
            driver=record.driver,
            caller_number=(record.caller or None) and record.caller[:32],
            citizen_id=citizen.id if citizen else None,
            started_at=record.started_at,
        )
        session.add(call)
    call.answered_at = record.answered_at
    call.ended_at = record.ended_at
    call.keys = record.keys[-400:]
    call.outcome = record.outcome
    call.error = record.error
    session.flush()
    return call
