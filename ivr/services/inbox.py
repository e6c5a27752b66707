"""Managers' audio inbox: their unit's referred messages, who may open them and hear their audio.

A message belongs to the inbox of the unit of its latest referral. Messages awaiting an
answer come first, nearest due date first: the referral is still open, or a reminder sent
the request back after an answer. Answered ones follow, most recently answered first.
On 1888 complaints a manager never sees the caller's number.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, func, select, union_all
from sqlalchemy.orm import Session, aliased

from ivr.models import (
    Citizen,
    Message,
    Recording,
    Referral,
    Reminder,
    Reply,
    Topic,
    Unit,
    User,
    utcnow,
)

PER_PAGE = 50
COUNT_CAP = 1000  # counts of a unit's messages stop here ("more than 1,000")
INBOX_STATES = ("all", "open", "answered")


class InboxError(LookupError):
    """A message or recording the viewer may not open (shown as 404 or 403)."""


class InboxNotFound(InboxError):
    """No such message in the viewer's reach (404: another unit's message looks like none)."""


class InboxForbidden(InboxError):
    """The viewer's role may not do this (403)."""


@dataclass(frozen=True)
class Viewer:
    """Who is looking: their user id, role and (for managers) unit."""

    user_id: int
    role: str
    unit_id: int | None


def phone_hidden(role: str, line_code: str, kind: str) -> bool:
    """Managers never see who complained on 1888; operators and supervisors do."""
    return role == "manager" and line_code == "1888" and kind == "complaint"


@dataclass(frozen=True)
class InboxItem:
    """One row of the inbox."""

    message_id: int
    tracking_code: str
    line_code: str
    kind: str
    topic: str | None
    district: int | None
    summary: str | None
    status: str
    created_at: datetime
    referred_at: datetime
    due_at: datetime
    overdue: bool
    reminders: int
    caller: str | None
    caller_hidden: bool
    recording_id: int | None
    seconds: float | None


@dataclass(frozen=True)
class InboxPage:
    """One page of a unit's inbox; counts stop at COUNT_CAP (`more` then says there are more)."""

    unit_id: int
    unit_name: str
    items: list[InboxItem]
    total: int
    more: bool
    open_total: int
    open_more: bool
    page: int
    per_page: int
    has_next: bool
    state: str

    @property
    def pages(self) -> int | None:
        """The number of pages, when the count is exact."""
        return None if self.more else max(1, -(-self.total // self.per_page))


def _latest_referral_only() -> ColumnElement[bool]:
    later = aliased(Referral)
    return ~exists().where(later.message_id == Referral.message_id, later.id > Referral.id)


def _awaiting(unit_id: int) -> tuple[Select[int, datetime], Select[int, datetime]]:
    """The unit's referrals awaiting an answer: still open, and answered ones sent back by a reminder."""
    sent_back = select(Reminder.message_id).where(Reminder.unit_id == unit_id, Reminder.resolved_at.is_(None))
    fresh = select(Referral.id, Referral.due_at).where(
        Referral.unit_id == unit_id, Referral.closed_at.is_(None), _latest_referral_only()
    )
    reopened = select(Referral.id, Referral.due_at).where(
        Referral.unit_id == unit_id,
        Referral.closed_at.is_not(None),
        Referral.message_id.in_(sent_back),
        _latest_referral_only(),
    )
    return fresh, reopened


def _answered(unit_id: int) -> Select[int]:
    """The unit's answered referrals (closed, no open reminder), most recently answered first."""
    open_reminder = exists().where(Reminder.message_id == Referral.message_id, Reminder.resolved_at.is_(None))
    return (
        select(Referral.id)
        .where(Referral.unit_id == unit_id, Referral.closed_at.is_not(None), ~open_reminder, _latest_referral_only())
        .order_by(Referral.closed_at.desc(), Referral.id.desc())
    )


def _capped_count(session: Session, stmt: Select[*tuple[Any, ...]], cap: int | None) -> int:
    # Counting a large unit's whole history costs more than the page itself: stop at the cap.
    inner = stmt.order_by(None)
    if cap is not None:
        inner = inner.limit(cap + 1)
    return session.scalar(select(func.count()).select_from(inner.subquery())) or 0


def _awaiting_ids(session: Session, unit_id: int, offset: int, limit: int) -> list[int]:
    fresh, reopened = _awaiting(unit_id)
    n = offset + limit
    a = fresh.order_by(Referral.due_at, Referral.id).limit(n).subquery()
    b = reopened.order_by(Referral.due_at, Referral.id).limit(n).subquery()
    both = union_all(select(a.c.id, a.c.due_at), select(b.c.id, b.c.due_at)).subquery()
    return list(session.scalars(select(both.c.id).order_by(both.c.due_at, both.c.id).offset(offset).limit(limit)))


def _awaiting_count(session: Session, unit_id: int, cap: int | None) -> int:
    fresh, reopened = _awaiting(unit_id)
    return _capped_count(session, fresh, cap) + _capped_count(session, reopened, cap)


def list_inbox(
    session: Session,
    viewer: Viewer,
    unit_id: int | None = None,
    *,
    state: str = "all",
    page: int = 1,
    per_page: int = PER_PAGE,
    now: datetime | None = None,
) -> InboxPage:
    """A page of a unit's inbox: a manager's own unit; a supervisor's choice of unit.

    Awaiting an answer (unanswered, nearest due date first; requests sent back by a reminder
    among them), then answered (most recently answered first).
    """
    if viewer.role == "manager":
        unit_id = viewer.unit_id
    elif viewer.role != "supervisor":
        raise InboxForbidden("only managers and supervisors have inboxes")
    unit = session.get(Unit, unit_id) if unit_id is not None else None
    if unit is None:
        raise InboxNotFound(f"no unit {unit_id}")
    if state not in INBOX_STATES:
        state = "all"
    now = now or utcnow()
    page = max(1, page)
    offset, want = (page - 1) * per_page, per_page + 1  # one more: is there a next page?
    open_total = _awaiting_count(session, unit.id, COUNT_CAP)
    open_more = open_total > COUNT_CAP
    ids: list[int] = []
    if state in ("all", "open"):
        ids = _awaiting_ids(session, unit.id, offset, want)
    if state == "answered" or (state == "all" and len(ids) < want):
        if state == "all":
            awaiting_exact = open_total if not open_more else _awaiting_count(session, unit.id, None)
            answered_offset = max(0, offset - awaiting_exact)
        else:
            answered_offset = offset
        ids += list(session.scalars(_answered(unit.id).offset(answered_offset).limit(want - len(ids))))
    if state == "open":
        total = open_total
    else:
        answered_total = _capped_count(session, _answered(unit.id), COUNT_CAP)
        total = answered_total if state == "answered" else open_total + answered_total
    more = total > COUNT_CAP or (state == "all" and open_more)
    has_next, ids = len(ids) > per_page, ids[:per_page]
    return InboxPage(unit.id, unit.name, _items(session, viewer, ids, now), min(total, COUNT_CAP), more,
                     min(open_total, COUNT_CAP), open_more, page, per_page, has_next, state)


def _items(session: Session, viewer: Viewer, referral_ids: list[int], now: datetime) -> list[InboxItem]:
    if not referral_ids:
        return []
    rows = session.execute(
        select(Message, Referral, Topic.name, Citizen.phone)
        .join(Referral, Referral.message_id == Message.id)
        .outerjoin(Topic, Topic.id == Message.topic_id)
        .outerjoin(Citizen, Citizen.id == Message.citizen_id)
        .where(Referral.id.in_(referral_ids))
    ).all()
    by_referral = {row[1].id: row for row in rows}
    message_ids = [row[0].id for row in rows]
    reminders = dict(
        session.execute(
            select(Reminder.message_id, func.count(Reminder.id))
            .where(Reminder.message_id.in_(message_ids), Reminder.resolved_at.is_(None))
            .group_by(Reminder.message_id)
        ).all()
    )
    audio = _first_recordings(session, message_ids)
    items = []
    for rid in referral_ids:
        msg, ref, topic_name, phone = by_referral[rid]
        hidden = phone_hidden(viewer.role, msg.line_code, msg.kind)
        count = int(reminders.get(msg.id, 0))
        awaiting = ref.closed_at is None or count > 0
        rec = audio.get(msg.id)
        items.append(
            InboxItem(
                message_id=msg.id,
                tracking_code=msg.tracking_code,
                line_code=msg.line_code,
                kind=msg.kind,
                topic=topic_name,
                district=msg.district,
                summary=msg.summary,
                status=msg.status,
                created_at=msg.created_at,
                referred_at=ref.referred_at,
                due_at=ref.due_at,
                overdue=awaiting and ref.due_at < now,
                reminders=count,
                caller=None if hidden else phone,
                caller_hidden=hidden,
                recording_id=rec[0] if rec else None,
                seconds=rec[1] if rec else None,
            )
        )
    return items


def _first_recordings(session: Session, message_ids: list[int]) -> dict[int, tuple[int, float]]:
    if not message_ids:
        return {}
    rows = session.execute(
        select(Recording.message_id, Recording.id, Recording.seconds)
        .where(Recording.message_id.in_(message_ids), Recording.purpose == "message")
        .order_by(Recording.id)
    ).all()
    out: dict[int, tuple[int, float]] = {}
    for message_id, rec_id, seconds in rows:
        if message_id is not None:  # always, by the IN above: narrows the nullable column
            out.setdefault(message_id, (rec_id, seconds))
    return out


def units_for_filter(session: Session) -> list[tuple[int, str]]:
    """Active units by name, for a supervisor's unit filter."""
    return [(u.id, u.name) for u in session.scalars(select(Unit).where(Unit.active.is_(True)).order_by(Unit.name))]


def latest_referral(session: Session, message_id: int) -> Referral | None:
    """The message's current referral (the newest), if it was referred at all."""
    return session.scalar(
        select(Referral).where(Referral.message_id == message_id).order_by(Referral.id.desc()).limit(1)
    )


def open_reminder_count(session: Session, message_id: int) -> int:
    """Reminders on the message not yet answered."""
    return session.scalar(
        select(func.count(Reminder.id)).where(Reminder.message_id == message_id, Reminder.resolved_at.is_(None))
    ) or 0


def message_in_reach(session: Session, viewer: Viewer, message_id: int) -> tuple[Message, Referral | None]:
    """The message and its current referral if the viewer may open it; InboxNotFound otherwise."""
    msg = session.get(Message, message_id)
    if msg is None:
        raise InboxNotFound(f"no message {message_id}")
    referral = latest_referral(session, msg.id)
    if viewer.role == "supervisor":
        return msg, referral
    if viewer.role == "manager" and referral is not None and referral.unit_id == viewer.unit_id:
        return msg, referral
    if viewer.role == "manager":
        raise InboxNotFound(f"message {message_id} is not in unit {viewer.unit_id}'s inbox")
    raise InboxForbidden(f"role {viewer.role} has no inbox")


@dataclass(frozen=True)
class AudioRef:
    """A recording the page can play."""

    recording_id: int
    format: str
    seconds: float


@dataclass(frozen=True)
class ReplyView:
    """A reply as the message page shows it."""

    reply_id: int
    author: str | None
    text: str | None
    created_at: datetime
    heard_at: datetime | None
    audio: AudioRef | None


@dataclass(frozen=True)
class MessageView:
    """A message page: the message, its referral, its audio and its replies."""

    message_id: int
    tracking_code: str
    line_code: str
    kind: str
    topic: str | None
    district: int | None
    summary: str | None
    body: str | None
    status: str
    created_at: datetime
    unit_id: int | None
    unit_name: str | None
    referred_at: datetime | None
    due_at: datetime | None
    overdue: bool
    reminders: int
    caller: str | None
    caller_hidden: bool
    recordings: list[AudioRef]
    replies: list[ReplyView]
    can_reply: bool


def _browser_audio(recordings: list[Recording]) -> AudioRef | None:
    # The browser copy if there is one, else the phone WAV (browsers play PCM WAV too).
    chosen = next((r for r in recordings if r.format != "wav"), None) or next(iter(recordings), None)
    return AudioRef(chosen.id, chosen.format, chosen.seconds) if chosen else None


def message_view(session: Session, viewer: Viewer, message_id: int, *, now: datetime | None = None) -> MessageView:
    """Everything the message page shows, for a viewer allowed to open it."""
    msg, referral = message_in_reach(session, viewer, message_id)
    now = now or utcnow()
    hidden = phone_hidden(viewer.role, msg.line_code, msg.kind)
    reminders = open_reminder_count(session, msg.id)
    replies = []
    for reply in msg.replies:
        author = session.get(User, reply.author_id) if reply.author_id else None
        replies.append(
            ReplyView(
                reply.id,
                author.full_name if author else None,
                reply.text,
                reply.created_at,
                reply.heard_at,
                _browser_audio(list(reply.recordings)),
            )
        )
    unit = referral.unit if referral is not None else None
    awaiting = msg.status == "referred" and referral is not None
    return MessageView(
        message_id=msg.id,
        tracking_code=msg.tracking_code,
        line_code=msg.line_code,
        kind=msg.kind,
        topic=msg.topic.name if msg.topic else None,
        district=msg.district,
        summary=msg.summary,
        body=msg.body,
        status=msg.status,
        created_at=msg.created_at,
        unit_id=unit.id if unit else None,
        unit_name=unit.name if unit else None,
        referred_at=referral.referred_at if referral else None,
        due_at=referral.due_at if referral else None,
        overdue=awaiting and referral is not None and referral.due_at < now,
        reminders=reminders,
        caller=None if hidden else (msg.citizen.phone if msg.citizen else None),
        caller_hidden=hidden,
        recordings=[AudioRef(r.id, r.format, r.seconds) for r in msg.recordings if r.purpose == "message"],
        replies=replies,
        can_reply=viewer.role == "manager" and awaiting,
    )


def may_hear(session: Session, viewer: Viewer, recording: Recording) -> bool:
    """May this viewer listen to this recording?

    Operators and supervisors: any. Managers: recordings of messages in their inbox and of
    replies given for their unit. Everyone else (inspectors have no field checks yet): none.
    """
    if viewer.role in ("operator", "supervisor"):
        return True
    if viewer.role != "manager" or viewer.unit_id is None:
        return False
    message_id: int | None
    if recording.purpose == "reply" and recording.reply_id is not None:
        reply = session.get(Reply, recording.reply_id)
        if reply is None:
            return False
        if reply.referral_id is not None:
            ref = session.get(Referral, reply.referral_id)
            if ref is not None and ref.unit_id == viewer.unit_id:
                return True
        message_id = reply.message_id
    else:
        message_id = recording.message_id
    if message_id is None:
        return False
    ref = latest_referral(session, message_id)
    return ref is not None and ref.unit_id == viewer.unit_id

