"""Reminders (تذکر): a 137 request re-opened at the same unit instead of a new complaint.

A dissatisfied citizen (or a failed field check) never opens a new message and nothing goes to
1888: the request's latest referral is opened again (closed_at cleared, a new deadline in working
days from now, escalation cleared so the new deadline can be escalated once more), the message goes
back to `referred`, and a Reminder row is attached to the unit. Each Reminder is a negative point
in that unit's scorecard. The unit's next reply closes the referral and triggers a new survey.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.models import Feedback, Message, Referral, Reminder, Unit, utcnow
from ivr.services.deadlines import answer_due_at

DEFAULT_TZ = "Asia/Tehran"


def latest_referral(session: Session, message_id: int) -> Referral | None:
    """The newest referral of a message, if any."""
    return session.scalars(
        select(Referral).where(Referral.message_id == message_id).order_by(Referral.id.desc()).limit(1)
    ).first()


def reopen_at_unit(
    session: Session,
    message: Message,
    *,
    reason: str,
    feedback_id: int | None = None,
    now: datetime | None = None,
    tz: ZoneInfo | None = None,
) -> Reminder | None:
    """Attach a reminder and send the request back to the unit that answered it; None if it has no unit."""
    now = now or utcnow()
    referral = latest_referral(session, message.id)
    unit_id = referral.unit_id if referral is not None else message.unit_id
    if unit_id is None:
        return None
    reminder = Reminder(message_id=message.id, unit_id=unit_id, reason=reason, feedback_id=feedback_id, created_at=now)
    session.add(reminder)
    if referral is not None:
        referral.closed_at = None
        referral.escalated_at = None
        referral.due_at = answer_due_at(
            session, topic_id=message.topic_id, kind=message.kind, start=now, tz=tz or ZoneInfo(DEFAULT_TZ)
        )
    message.status = "referred"
    message.updated_at = now
    session.flush()
    return reminder


def open_reminder_count(session: Session, message_id: int) -> int:
    """Reminders on a message not yet resolved by a new reply."""
    return len(session.scalars(
        select(Reminder.id).where(Reminder.message_id == message_id, Reminder.resolved_at.is_(None))
    ).all())


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
