"""Test calls (the console's test phone, driver `test`): removing them and everything they left.

Every function takes a session and never commits (the caller owns the transaction).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Table, delete, select, update
from sqlalchemy.orm import Session

from ivr.models import TEST_DRIVER, Base, Call, Recording, TwilioCall


@dataclass
class Purged:
    """What a purge removed: rows per table, and the stored audio files now unused."""

    rows: dict[str, int] = field(default_factory=dict)
    audio: list[str] = field(default_factory=list)


def purge_test_calls(session: Session) -> Purged:
    """Delete every test call with its messages and all that hangs off them (replies, feedback, recordings...).

    Rows that point at them from the outside and may point nowhere (a real message marked
    duplicate of a test one) are unlinked instead. The rollups follow by their delete triggers.
    """
    purged = Purged()
    calls = session.execute(select(Call.id, Call.channel_id).where(Call.driver == TEST_DRIVER)).all()
    if not calls:
        return purged
    call_ids = [c.id for c in calls]
    # Each test call's state between requests (the browser driver keeps it in twilio_calls' shape).
    result = session.execute(delete(TwilioCall).where(TwilioCall.call_sid.in_([c.channel_id for c in calls])))
    purged.rows[TwilioCall.__tablename__] = result.rowcount  # type: ignore[attr-defined]
    _purge(session, Call.__table__, call_ids, purged, ())
    return purged


def _purge(session: Session, table: Table, ids: list[int], purged: Purged, stack: tuple[Table, ...]) -> None:
    """Delete `ids` of `table` after whatever references them (depth first, by the models' foreign keys)."""
    if not ids:
        return
    for child in Base.metadata.sorted_tables:
        for fk in child.foreign_keys:
            if fk.column.table is not table:
                continue
            col = fk.parent
            if child is table or child in stack:  # a reference back up the chain: unlink, never loop
                if col.nullable:
                    session.execute(update(child).where(col.in_(ids)).values({col.name: None}))
                continue
            child_ids = list(session.scalars(select(child.c.id).where(col.in_(ids))))
            _purge(session, child, child_ids, purged, (*stack, table))
    if table is Recording.__table__:
        purged.audio += list(session.scalars(select(Recording.path).where(Recording.id.in_(ids))))
    result = session.execute(delete(table).where(table.c.id.in_(ids)))
    purged.rows[table.name] = purged.rows.get(table.name, 0) + result.rowcount  # type: ignore[attr-defined]
