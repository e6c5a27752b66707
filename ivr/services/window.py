"""The single window (پنجره واحد): everything one phone number has done on both lines."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, joinedload, selectinload

from ivr.identifiers import InvalidIdentifier, normalize_phone
from ivr.models import Call, Citizen, Feedback, Message, Reminder, Sms

HISTORY_LIMIT = 50


class WindowError(ValueError):
    """A number that cannot be looked up; the message is Persian."""


@dataclass(frozen=True)
class CallRow:
    """One call: line, when, keys pressed, how it ended."""

    id: int
    line_code: str
    started_at: datetime
    ended_at: datetime | None
    keys: str
    outcome: str | None
    caller_number: str | None


@dataclass
class Window:
    """A citizen's history, newest first in each list."""

    phone: str
    citizen_id: int | None
    name: str | None
    calls: list[CallRow] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    feedback: list[Feedback] = field(default_factory=list)
    reminders: list[Reminder] = field(default_factory=list)
    sms: list[Sms] = field(default_factory=list)
    limit: int = HISTORY_LIMIT  # each list holds at most this many, newest first


def parse_phone(raw: str) -> str:
    """The normalised number, or WindowError in Persian."""
    try:
        return normalize_phone(raw)
    except InvalidIdentifier:
        raise WindowError("شماره تلفن درست نیست.") from None


def _call_row(c: Call) -> CallRow:
    return CallRow(c.id, c.line_code, c.started_at, c.ended_at, c.keys, c.outcome, c.caller_number)


def single_window(session: Session, raw_phone: str, *, limit: int = HISTORY_LIMIT) -> Window:
    """Calls (with keys and outcomes), messages with their referrals and replies, feedback, reminders and SMS of one number."""
    phone = parse_phone(raw_phone)
    citizen = session.scalar(select(Citizen).where(Citizen.phone == phone))
    window = Window(
        phone=phone, citizen_id=citizen.id if citizen else None, name=citizen.name if citizen else None, limit=limit
    )
    call_match = Call.caller_number == phone
    if citizen is not None:
        call_match = or_(Call.citizen_id == citizen.id, call_match)
    window.calls = [
        _call_row(c)
        for c in session.scalars(select(Call).where(call_match).order_by(Call.started_at.desc()).limit(limit))
    ]
    if citizen is not None:
        window.messages = list(
            session.scalars(
                select(Message)
                .where(Message.citizen_id == citizen.id)
                .options(selectinload(Message.referrals), selectinload(Message.replies), joinedload(Message.topic))
                .order_by(Message.created_at.desc())
                .limit(limit)
            )
        )
        ids = [m.id for m in window.messages]
        if ids:
            window.feedback = list(
                session.scalars(select(Feedback).where(Feedback.message_id.in_(ids)).order_by(Feedback.created_at.desc()))
            )
            window.reminders = list(
                session.scalars(select(Reminder).where(Reminder.message_id.in_(ids)).order_by(Reminder.created_at.desc()))
            )
    window.sms = list(session.scalars(select(Sms).where(Sms.phone == phone).order_by(Sms.created_at.desc()).limit(limit)))
    return window


def operator_handoffs(session: Session, *, limit: int = HISTORY_LIMIT) -> list[CallRow]:
    """The callers the IVR handed to the operators' queue, newest first."""
    calls = session.scalars(
        select(Call).where(Call.outcome == "operator").order_by(Call.started_at.desc(), Call.id.desc()).limit(limit)
    )
    return [_call_row(c) for c in calls]
