"""Dissatisfaction the supervisors follow up: 1888 citizens who were not satisfied with a reply.

On 137 dissatisfaction re-opens the request at the same unit (a reminder, ivr/services/reminders.py);
on 1888 it is listed here for the supervisors.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.models import Feedback, Message, Unit


@dataclass(frozen=True)
class Dissatisfied1888:
    """A 1888 citizen's dissatisfaction, as the supervisors' list shows it."""

    feedback_id: int
    message_id: int
    tracking_code: str
    kind: str
    unit_name: str | None
    channel: str
    raw_text: str | None
    created_at: datetime


def dissatisfied_1888(session: Session, *, limit: int = 200) -> list[Dissatisfied1888]:
    """Dissatisfied feedback on line 1888, newest first (the supervisors' list)."""
    rows = session.execute(
        select(Feedback, Message, Unit.name)
        .join(Message, Message.id == Feedback.message_id)
        .outerjoin(Unit, Unit.id == Message.unit_id)
        .where(Message.line_code == "1888", Feedback.satisfied.is_(False))
        .order_by(Feedback.created_at.desc(), Feedback.id.desc())
        .limit(limit)
    ).all()
    return [
        Dissatisfied1888(fb.id, msg.id, msg.tracking_code, msg.kind, unit_name, fb.channel, fb.raw_text, fb.created_at)
        for fb, msg, unit_name in rows
    ]
