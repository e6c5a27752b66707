"""Screening (پالایش اولیه): the queue of new messages, claims, classification, referral.

An operator claims a message for CLAIM_MINUTES; the claim and the classification are
conditional UPDATEs (`... WHERE claimed_by_id = me OR the claim expired`), so two operators
never both screen one message and a late second one gets a ClaimConflict, never a silently
lost update. Referring creates a Referral to the unit concerned (its manager, a due date from
the topic's deadline in working days); not referring records one of NOT_REFERRED_REASONS
("duplicate" links the original).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from ivr.db import execute_dml
from ivr.identifiers import (
    InvalidIdentifier,
    ascii_digits,
    normalize_phone,
    persian_digits,
)
from ivr.models import TEST_DRIVER, Call, Citizen, Message, Recording, Referral, Topic, Unit, User
from ivr.services import audit
from ivr.services.deadlines import answer_due_at
from ivr.services.messages import MessageError, register_message
from ivr.vocabulary import (
    DEFAULT_DISTRICTS,
    LINE_KINDS,
    LINES,
    MESSAGE_KINDS,
    NOT_REFERRED_REASONS,
    district_range,
)

CLAIM_MINUTES = 10
SUMMARY_MAX = 500
BODY_MAX = 4000
DECISIONS = ("refer", "not_referred")


class ScreeningError(ValueError):
    """A classification that cannot be saved as given; the message is Persian, for the operator."""


class MessageNotFound(LookupError):
    """No message with that id."""


class ClaimConflict(RuntimeError):
    """Another operator holds the message, or it was already screened; the message says which."""


@dataclass(frozen=True)
class QueueRow:
    """One line of the screening queue."""

    id: int
    tracking_code: str
    line_code: str
    kind: str
    source: str
    caller: str | None
    seconds: float | None
    recording_id: int | None
    created_at: datetime
    claimed_by: str | None
    claimed_by_id: int | None
    claim_expires_at: datetime | None


@dataclass(frozen=True)
class Classification:
    """What the operator decided about a message."""

    decision: str
    kind: str
    topic_id: int | None = None
    district: int | None = None
    unit_id: int | None = None
    summary: str = ""
    reason: str | None = None
    duplicate_of: str | None = None  # tracking code (or id) of the original


@dataclass(frozen=True)
class Suggestion:
    """A likely original of a duplicate."""

    id: int
    tracking_code: str
    created_at: datetime
    status: str
    same_caller: bool
    summary: str | None


def _waiting(include_test: bool) -> Select[int]:
    """The new messages' ids; those left by test calls (the console's test phone) only when asked."""
    query = select(Message.id).where(Message.status == "new")
    if not include_test:
        query = query.where(~select(Call.id).where(Call.id == Message.call_id, Call.driver == TEST_DRIVER).exists())
    return query


def screening_queue(session: Session, *, limit: int = 50, offset: int = 0,
                    include_test: bool = False) -> list[QueueRow]:
    """New messages, oldest first, with the caller, audio length and who holds a claim (test calls left out)."""
    page = (
        _waiting(include_test)
        .order_by(Message.created_at, Message.id)
        .limit(limit)
        .offset(offset)
        .subquery()
    )
    holder = aliased(User)
    rec = aliased(Recording)
    rows = session.execute(
        select(
            Message.id, Message.tracking_code, Message.line_code, Message.kind, Message.source,
            Citizen.phone, Message.created_at, Message.claimed_by_id, holder.full_name,
            Message.claim_expires_at,
            select(rec.id).where(rec.message_id == Message.id, rec.purpose == "message")
            .order_by(rec.id).limit(1).scalar_subquery().label("rid"),
            select(rec.seconds).where(rec.message_id == Message.id, rec.purpose == "message")
            .order_by(rec.id).limit(1).scalar_subquery().label("secs"),
        )
        .join(page, page.c.id == Message.id)
        .outerjoin(Citizen, Citizen.id == Message.citizen_id)
        .outerjoin(holder, holder.id == Message.claimed_by_id)
        .order_by(Message.created_at, Message.id)
    ).all()
    return [
        QueueRow(
            id=r.id, tracking_code=r.tracking_code, line_code=r.line_code, kind=r.kind, source=r.source,
            caller=r.phone, seconds=r.secs, recording_id=r.rid, created_at=r.created_at,
            claimed_by=r.full_name, claimed_by_id=r.claimed_by_id, claim_expires_at=r.claim_expires_at,
        )
        for r in rows
    ]


QUEUE_COUNT_CAP = 10_000


def queue_size(session: Session, *, cap: int = QUEUE_COUNT_CAP, include_test: bool = False) -> int:
    """How many messages wait for screening, counted up to `cap` + 1 (more than `cap`: "over cap")."""
    waiting = _waiting(include_test).limit(cap + 1).subquery()
    return session.scalar(select(func.count()).select_from(waiting)) or 0


def get_message(session: Session, message_id: int) -> Message:
    """The message with this id, or MessageNotFound."""
    message = session.get(Message, message_id)
    if message is None:
        raise MessageNotFound(message_id)
    return message


def _conflict(session: Session, message_id: int, user_id: int, now: datetime) -> ClaimConflict:
    message = get_message(session, message_id)
    session.refresh(message)
    if message.status != "new":
        return ClaimConflict("این پیام پیش‌تر پالایش شده است و دیگر در صف نیست.")
    holder = session.get(User, message.claimed_by_id) if message.claimed_by_id else None
    name = holder.full_name if holder else "کاربر دیگری"
    return ClaimConflict(f"این پیام را {name} در دست بررسی دارد؛ پیام دیگری را بردارید.")


def claim(session: Session, message_id: int, user_id: int, now: datetime, *, ip: str | None = None) -> Message:
    """Take (or renew) the claim on a new message for CLAIM_MINUTES; ClaimConflict if someone else holds it."""
    get_message(session, message_id)
    result = execute_dml(
        session,
        update(Message)
        .where(
            Message.id == message_id,
            Message.status == "new",
            or_(
                Message.claimed_by_id.is_(None),
                Message.claimed_by_id == user_id,
                Message.claim_expires_at < now,
            ),
        )
        .values(claimed_by_id=user_id, claim_expires_at=now + timedelta(minutes=CLAIM_MINUTES))
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise _conflict(session, message_id, user_id, now)
    message = get_message(session, message_id)
    session.refresh(message)
    audit.record(session, user_id, "claim", "message", message_id, None, ip)
    return message


def release(session: Session, message_id: int, user_id: int, *, ip: str | None = None) -> bool:
    """Give up one's own claim; False when there was none to give up."""
    get_message(session, message_id)
    result = execute_dml(
        session,
        update(Message)
        .where(Message.id == message_id, Message.claimed_by_id == user_id, Message.status == "new")
        .values(claimed_by_id=None, claim_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount:
        audit.record(session, user_id, "release", "message", message_id, None, ip)
    return bool(result.rowcount)


def _find_original(session: Session, ref: str, message: Message) -> Message:
    digits = ascii_digits(ref.strip())  # '²' passes str.isdigit() but not int()
    original = None
    if digits is not None:
        original = session.scalar(select(Message).where(Message.tracking_code == digits))
        if original is None and len(digits) < 9:
            original = session.get(Message, int(digits))
    if original is None:
        raise ScreeningError("پیام اصلی با این کد رهگیری پیدا نشد.")
    if original.id == message.id:
        raise ScreeningError("یک پیام نمی‌تواند تکراریِ خودش باشد.")
    return original


def district_error(districts: int) -> str:
    """The Persian error for a district outside 1 to `districts`."""
    return f"منطقه باید عددی از ۱ تا {persian_digits(str(districts))} باشد."


def _check(
    session: Session, message: Message, c: Classification, districts: int
) -> tuple[Topic | None, Unit | None]:
    if c.decision not in DECISIONS:
        raise ScreeningError("تصمیم باید «ارجاع» یا «عدم ارجاع» باشد.")
    allowed = LINE_KINDS.get(message.line_code, ())
    if c.kind not in MESSAGE_KINDS or c.kind not in allowed:
        raise ScreeningError("نوع پیام با سامانه این پیام جور نیست.")
    topic = None
    if c.topic_id is not None:
        topic = session.get(Topic, c.topic_id)
        if topic is None or topic.line_code != message.line_code:
            raise ScreeningError("موضوع انتخاب‌شده برای این سامانه نیست.")
    if c.district is not None and c.district not in district_range(districts):
        raise ScreeningError(district_error(districts))
    if len(c.summary) > SUMMARY_MAX:
        raise ScreeningError("خلاصه باید کوتاه باشد (حداکثر ۵۰۰ نویسه).")
    unit = None
    if c.unit_id is not None:
        unit = session.get(Unit, c.unit_id)
        if unit is None or not unit.active:
            raise ScreeningError("واحد انتخاب‌شده وجود ندارد یا غیرفعال است.")
    if c.decision == "refer":
        if unit is None:
            raise ScreeningError("برای ارجاع، واحد مربوط را انتخاب کنید.")
        if topic is None:
            raise ScreeningError("برای ارجاع، موضوع را انتخاب کنید.")
        if not c.summary.strip():
            raise ScreeningError("برای ارجاع، خلاصه‌ای کوتاه بنویسید.")
    else:
        if c.reason not in NOT_REFERRED_REASONS:
            raise ScreeningError("دلیل عدم ارجاع را انتخاب کنید.")
        if c.reason == "duplicate" and not (c.duplicate_of and c.duplicate_of.strip()):
            raise ScreeningError("برای پیام تکراری، کد رهگیری پیام اصلی را وارد کنید.")
    return topic, unit


def unit_manager_id(session: Session, unit_id: int) -> int | None:
    """The active manager of a unit (the longest-serving one if several), or None."""
    return session.scalar(
        select(User.id)
        .where(User.unit_id == unit_id, User.role == "manager", User.active.is_(True))
        .order_by(User.id)
        .limit(1)
    )


def classify(
    session: Session,
    message_id: int,
    user_id: int,
    c: Classification,
    now: datetime,
    tz: ZoneInfo,
    *,
    ip: str | None = None,
    districts: int = DEFAULT_DISTRICTS,
) -> Message:
    """Save the operator's classification and refer the message or close it as not referred.

    The user must hold the claim (it is taken here if free or expired); a message someone else
    holds or already screened raises ClaimConflict and nothing is saved.
    """
    message = get_message(session, message_id)
    topic, unit = _check(session, message, c, districts)
    original = None
    if c.decision == "not_referred" and c.reason == "duplicate":
        original = _find_original(session, c.duplicate_of or "", message)
    claim(session, message_id, user_id, now, ip=ip)
    values: dict[str, object] = dict(
        kind=c.kind,
        topic_id=c.topic_id,
        district=c.district,
        unit_id=c.unit_id,
        summary=c.summary.strip() or None,
        screened_at=now,
        screened_by_id=user_id,
        claimed_by_id=None,
        claim_expires_at=None,
        updated_at=now,
    )
    if c.decision == "refer":
        values.update(status="referred", not_referred_reason=None, duplicate_of_id=None)
    else:
        values.update(
            status="not_referred",
            not_referred_reason=c.reason,
            duplicate_of_id=original.id if original else None,
        )
    result = execute_dml(
        session,
        update(Message)
        .where(Message.id == message_id, Message.status == "new", Message.claimed_by_id == user_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # pragma: no cover - the claim above holds the row in this transaction
        raise _conflict(session, message_id, user_id, now)
    session.refresh(message)
    if c.decision == "refer":
        assert unit is not None and topic is not None
        referral = Referral(
            message_id=message.id,
            unit_id=unit.id,
            manager_id=unit_manager_id(session, unit.id),
            referred_by_id=user_id,
            referred_at=now,
            due_at=answer_due_at(session, topic_id=topic.id, kind=message.kind, start=now, tz=tz),
        )
        session.add(referral)
        session.flush()
        audit.record(session, user_id, "refer", "message", message.id, f"unit={unit.code} referral={referral.id}", ip)
    else:
        detail = f"reason={c.reason}" + (f" original={original.tracking_code}" if original else "")
        audit.record(session, user_id, "not_referred", "message", message.id, detail, ip)
    return message


def suggest_originals(
    session: Session, message: Message, window_days: int, *, limit: int = 10
) -> list[Suggestion]:
    """Likely originals of `message`: the same caller, or the same topic and district, within `window_days` before it."""
    since = message.created_at - timedelta(days=window_days)
    conditions = []
    if message.citizen_id is not None:
        conditions.append(Message.citizen_id == message.citizen_id)
    if message.topic_id is not None and message.district is not None:
        conditions.append(and_(Message.topic_id == message.topic_id, Message.district == message.district))
    if not conditions:
        return []
    rows = session.execute(
        select(Message.id, Message.tracking_code, Message.created_at, Message.status, Message.citizen_id,
               Message.summary)
        .where(or_(*conditions), Message.id != message.id, Message.created_at >= since,
               Message.created_at <= message.created_at)
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(limit)
    ).all()
    return [
        Suggestion(r.id, r.tracking_code, r.created_at, r.status,
                   message.citizen_id is not None and r.citizen_id == message.citizen_id, r.summary)
        for r in rows
    ]


def message_call_keys(session: Session, message: Message) -> str | None:
    """The keys pressed on the call that left the message, if it came by phone."""
    if message.call_id is None:
        return None
    return session.scalar(select(Call.keys).where(Call.id == message.call_id))


def topics_for(session: Session, line: str | None = None) -> list[Topic]:
    """Active topics (of one line, if given), by line and name."""
    query = select(Topic).where(Topic.active.is_(True))
    if line:
        query = query.where(Topic.line_code == line)
    return list(session.scalars(query.order_by(Topic.line_code, Topic.name)))


def active_units(session: Session) -> list[Unit]:
    """Active units by name (for the referral drop-down)."""
    return list(session.scalars(select(Unit).where(Unit.active.is_(True)).order_by(Unit.name)))


@dataclass(frozen=True)
class TypedMessage:
    """A message an operator types while the citizen is on the line."""

    line: str
    kind: str
    caller: str
    body: str
    topic_id: int | None = None
    district: int | None = None
    unit_id: int | None = None
    summary: str = ""


def register_typed(
    session: Session,
    user_id: int,
    t: TypedMessage,
    now: datetime,
    *,
    ip: str | None = None,
    districts: int = DEFAULT_DISTRICTS,
) -> Message:
    """Register a typed message (source 'operator') through register_message; it then waits for screening."""
    if t.line not in LINES:
        raise ScreeningError("سامانه را انتخاب کنید.")
    try:
        caller = normalize_phone(t.caller)
    except InvalidIdentifier:
        raise ScreeningError("شماره تماس شهروند درست نیست.") from None
    if not t.body.strip():
        raise ScreeningError("متن پیام خالی است.")
    if len(t.body) > BODY_MAX:
        raise ScreeningError("متن پیام بیش از حد بلند است (حداکثر ۴۰۰۰ نویسه).")
    if len(t.summary) > SUMMARY_MAX:
        raise ScreeningError("خلاصه باید کوتاه باشد (حداکثر ۵۰۰ نویسه).")
    topic_code = None
    if t.topic_id is not None:
        topic = session.get(Topic, t.topic_id)
        if topic is None or topic.line_code != t.line:
            raise ScreeningError("موضوع انتخاب‌شده برای این سامانه نیست.")
        topic_code = topic.code
    if t.unit_id is not None:
        unit = session.get(Unit, t.unit_id)
        if unit is None or not unit.active:
            raise ScreeningError("واحد انتخاب‌شده وجود ندارد یا غیرفعال است.")
    try:
        message = register_message(
            session, line=t.line, kind=t.kind, source="operator", caller=caller, topic_code=topic_code,
            district=t.district, body=t.body.strip(), created_at=now, districts=districts,
        )
    except MessageError:
        raise ScreeningError("نوع پیام یا منطقه با سامانه جور نیست.") from None
    if t.unit_id is not None:
        message.unit_id = t.unit_id
    if t.summary.strip():
        message.summary = t.summary.strip()
    session.flush()
    audit.record(session, user_id, "typed_message", "message", message.id, f"line={t.line}", ip)
    return message


@dataclass(frozen=True)
class MessageView:
    """Everything the screening page shows about one message."""

    message: Message
    caller: str | None
    recordings: tuple[Recording, ...]
    keys: str | None
    suggestions: tuple[Suggestion, ...]
    topics: tuple[Topic, ...]
    units: tuple[Unit, ...]
    holder: str | None  # who holds the claim (even if expired)


def message_view(session: Session, message_id: int, window_days: int) -> MessageView:
    """Load one message with its caller, recordings, call keys, likely originals and the form's choices."""
    message = get_message(session, message_id)
    return MessageView(
        message=message,
        caller=message.citizen.phone if message.citizen else None,
        recordings=tuple(message.recordings),
        keys=message_call_keys(session, message),
        suggestions=tuple(suggest_originals(session, message, window_days)),
        topics=tuple(topics_for(session, message.line_code)),
        units=tuple(active_units(session)),
        holder=session.scalar(select(User.full_name).where(User.id == message.claimed_by_id))
        if message.claimed_by_id else None,
    )
