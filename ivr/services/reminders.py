"""Reminders (تذکر): a 137 request re-opened at the same unit instead of a new complaint.

A dissatisfied citizen (or a failed field check) never opens a new message and nothing goes to
1888: the request's latest referral is opened again (closed_at cleared, a new deadline in working
days from now, escalation cleared so the new deadline can be escalated once more), the message goes
back to `referred`, and a Reminder row is attached to the unit. Each Reminder is a negative point
in that unit's scorecard. The unit's next reply closes the referral and triggers a new survey.
"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from ivr.models import Message, Reminder, utcnow
from ivr.services.deadlines import answer_due_at
from ivr.services.inbox import latest_referral

DEFAULT_TZ = "Asia/Tehran"


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
