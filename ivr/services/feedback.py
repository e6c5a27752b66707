"""Citizens' satisfaction with replies, and the reminders (تذکر) it raises on line 137."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.models import Feedback, Message, Reminder, utcnow
from ivr.services.messages import latest_reply


class FeedbackError(ValueError):
    """Feedback that cannot be recorded (no reply yet, unknown message)."""


def record_feedback(
    session: Session,
    message: Message,
    *,
    satisfied: bool,
    channel: str,
    raw_text: str | None = None,
    origin_key: str | None = None,
) -> Feedback:
    """Store whether the citizen is satisfied with the latest reply.

    On line 137 a dissatisfied citizen does not open a new message: a reminder is
    attached to the same request, back at the same unit, and the request returns to
    that unit's inbox. On 1888 the dissatisfaction is recorded for the supervisors.
    Idempotent on `origin_key`.
    """
    if origin_key:
        existing = session.scalar(select(Feedback).where(Feedback.origin_key == origin_key))
        if existing is not None:
            return existing
    reply = latest_reply(message)
    if reply is None:
        raise FeedbackError(f"message {message.tracking_code} has no reply to rate")
    fb = Feedback(
        message_id=message.id,
        reply_id=reply.id,
        satisfied=satisfied,
        channel=channel,
        raw_text=raw_text,
        origin_key=origin_key,
    )
    session.add(fb)
    session.flush()
    now = utcnow()
    if satisfied:
        message.status = "closed"
    elif message.line_code == "137" and message.unit_id is not None:
        session.add(
            Reminder(
                message_id=message.id,
                unit_id=message.unit_id,
                reason="dissatisfied",
                feedback_id=fb.id,
                created_at=now,
            )
        )
        message.status = "referred"
    message.updated_at = now
    session.flush()
    return fb
