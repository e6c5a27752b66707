"""The call log: one row per call, written when the call ends (or replayed from the spool)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import exists, insert, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from ivr.identifiers import InvalidIdentifier, normalize_phone
from ivr.models import Call, Citizen, utcnow
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
    if session.get_bind().dialect.name == "postgresql":
        return _save_call_row_postgresql(session, record, changes)
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


def _save_call_row_postgresql(session: Session, record: CallRecord, changes: dict[str, Any]) -> SavedCall:
    """`save_call_row` in one statement (one round trip): update the row, or insert it with its citizen.

    Data-modifying CTEs: the UPDATE of an existing row; else the citizen found by the
    caller's number, or created (ON CONFLICT DO NOTHING: another call may create the same
    citizen at the same moment), and the INSERT of the call row.
    """
    table = Call.__table__
    upd = (
        update(table).where(table.c.channel_id == record.channel_id).values(changes)
        .returning(table.c.id, table.c.citizen_id).cte("upd")
    )
    no_row = ~exists(select(upd.c.id))
    number = _phone_or_none(record.caller)
    citizen: Any = literal(None, table.c.citizen_id.type)
    if number is not None:
        people = Citizen.__table__
        found = select(people.c.id).where(people.c.phone == number).cte("found")
        made = (
            pg_insert(people)
            .from_select(["phone", "created_at"], select(
                literal(number, people.c.phone.type), literal(utcnow(), people.c.created_at.type),
            ).where(no_row, ~exists(select(found.c.id))))
            .on_conflict_do_nothing(index_elements=["phone"])
            .returning(people.c.id).cte("made")
        )
        citizen = select(found.c.id).union_all(select(made.c.id)).limit(1).scalar_subquery()
    values = {
        "channel_id": record.channel_id,
        "line_code": record.line,
        "driver": record.driver,
        "caller_number": (record.caller or None) and record.caller[:32],
        "started_at": record.started_at,
        **changes,
    }
    columns = list(values)
    ins = (
        insert(table)
        .from_select(columns + ["citizen_id"], select(
            *(literal(values[c], table.c[c].type) for c in columns), citizen,
        ).where(no_row))
        .returning(table.c.id, table.c.citizen_id).cte("ins")
    )
    row = session.execute(
        select(upd.c.id, upd.c.citizen_id).union_all(select(ins.c.id, ins.c.citizen_id))
    ).first()
    if row is None:  # pragma: no cover - one of the two always returns the row
        raise RuntimeError(f"call {record.channel_id}: the call row was neither updated nor inserted")
    call_id, citizen_id = int(row[0]), row[1]
    if citizen_id is None and number is not None:
        # Rare: another call created this citizen during the statement, unseen by its snapshot.
        citizen_id = citizen_id_for(session, record.caller)
        session.execute(update(table).where(table.c.id == call_id).values(citizen_id=citizen_id))
    return SavedCall(call_id, citizen_id)


def _phone_or_none(phone: str | None) -> str | None:
    """The caller's number as citizens are keyed (as `citizen_id_for` does); None if there is none."""
    if not phone:
        return None
    try:
        return normalize_phone(phone)
    except InvalidIdentifier:
        return None
