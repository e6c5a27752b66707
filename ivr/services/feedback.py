"""Citizens' satisfaction with replies, and the reminders (تذکر) it raises on line 137."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ivr.models import Feedback, Message, Survey, utcnow
from ivr.services.messages import latest_reply
from ivr.services.reminders import reopen_at_unit


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
    tz: ZoneInfo | None = None,
    now: datetime | None = None,
) -> Feedback:
    """Store whether the citizen is satisfied with the latest reply.

    On line 137 a dissatisfied citizen does not open a new message: a reminder is
    attached to the same request, back at the same unit, and the request returns to
    that unit's inbox. On 1888 the dissatisfaction is recorded for the supervisors.
    Idempotent on `origin_key`. A reply is rated once: the first answer wins (a later one, by
    another channel, returns the first); a new reply after a reminder is rated afresh.
    The reply's survey is marked answered. `tz` counts the re-opened deadline (default Tehran);
    `now` is when the citizen answered (default: the clock).
    """
    if origin_key:
        existing = session.scalar(select(Feedback).where(Feedback.origin_key == origin_key))
        if existing is not None:
            return existing
    reply = latest_reply(message)
    if reply is None:
        raise FeedbackError(f"message {message.tracking_code} has no reply to rate")
    first = session.scalar(select(Feedback).where(Feedback.reply_id == reply.id).order_by(Feedback.id).limit(1))
    if first is not None:
        return first
    fb = Feedback(
        message_id=message.id,
        reply_id=reply.id,
        satisfied=satisfied,
        channel=channel,
        raw_text=raw_text,
        origin_key=origin_key,
        created_at=now or utcnow(),
    )
    session.add(fb)
    session.flush()
    now = fb.created_at
    mark_survey_answered(session, reply.id, fb.id, now)
    if satisfied:
        message.status = "closed"
    elif message.line_code == "137":
        reopen_at_unit(session, message, reason="dissatisfied", feedback_id=fb.id, now=now, tz=tz)
    message.updated_at = now
    session.flush()
    return fb


def mark_survey_answered(session: Session, reply_id: int, feedback_id: int, now: datetime) -> None:
    """The citizen rated the reply (by SMS or phone): its survey is answered and never resent."""
    session.execute(
        update(Survey)
        .where(Survey.reply_id == reply_id, Survey.answered_at.is_(None))
        .values(status="answered", answered_at=now, feedback_id=feedback_id, due_at=None)
        .execution_options(synchronize_session=False)
    )
