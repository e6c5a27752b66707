"""Messages: registering what citizens leave, finding them by tracking code, their status."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from ivr.identifiers import (
    InvalidIdentifier,
    is_valid_tracking_code,
    latin_digits,
    new_tracking_code,
    normalize_phone,
)
from ivr.infra.storage import StoredAudio
from ivr.models import Citizen, Message, Recording, Referral, Reply, Topic, utcnow
from ivr.speech import persian
from ivr.vocabulary import (
    DEFAULT_DISTRICTS,
    LINE_KINDS,
    LINES,
    MESSAGE_SOURCES,
    district_range,
)

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite


class MessageError(ValueError):
    """A message that cannot be registered as given."""


def citizen_for(session: Session, phone: str | None) -> Citizen | None:
    """The citizen behind a caller number (created on first contact); None if unknown."""
    citizen_id = citizen_id_for(session, phone)
    return session.get(Citizen, citizen_id) if citizen_id is not None else None


def citizen_id_for(session: Session, phone: str | None) -> int | None:
    """The id of the citizen behind a caller number (created on first contact); None if unknown.

    Plain SQL statements, no ORM objects: it runs for every call that ends.
    """
    if not phone:
        return None
    try:
        number = normalize_phone(phone)
    except InvalidIdentifier:
        return None
    table = Citizen.__table__
    found = session.scalar(select(table.c.id).where(table.c.phone == number))
    if found is not None:
        return int(found)
    new = insert_or_nothing(session, table, "phone")
    if new is not None:
        # Another call creating the same citizen at the same moment makes this a no-op.
        created = session.scalar(new.values(phone=number, created_at=utcnow()).returning(table.c.id))
    else:  # a database without INSERT ... ON CONFLICT: a savepoint absorbs the duplicate
        created = None
        try:
            with session.begin_nested():
                created = session.scalar(
                    table.insert().values(phone=number, created_at=utcnow()).returning(table.c.id)
                )
        except IntegrityError:
            pass
    if created is None:  # another call created it a moment ago
        created = session.scalar(select(table.c.id).where(table.c.phone == number))
    return int(created) if created is not None else None


def insert_or_nothing(session: Session, table: Table, column: str) -> postgresql.Insert | sqlite.Insert | None:
    """`INSERT ... ON CONFLICT (column) DO NOTHING` for this session's database, or None."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=[column])
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=[column])
    return None


def register_message(
    session: Session,
    *,
    line: str,
    kind: str,
    source: str,
    caller: str | None = None,
    citizen_id: int | None = None,
    topic_code: str | None = None,
    district: int | None = None,
    call_id: int | None = None,
    body: str | None = None,
    audio: StoredAudio | None = None,
    origin_key: str | None = None,
    tracking_code: str | None = None,
    created_at: datetime | None = None,
    districts: int = DEFAULT_DISTRICTS,
) -> Message:
    """Register a message and give it a tracking code.

    `districts` is the city's count (IVR_DISTRICTS); a `district` outside it is refused.

    Idempotent on `origin_key` (a replayed webhook or spooled call returns the message
    it already made). A `tracking_code` the caller was already told (spooled while
    the database was down) is kept unless another message took it meanwhile.
    """
    if origin_key:
        existing = session.scalar(select(Message).where(Message.origin_key == origin_key))
        if existing is not None:
            return existing
    if line not in LINES:
        raise MessageError(f"unknown line {line!r}")
    if kind not in LINE_KINDS[line]:
        raise MessageError(f"kind {kind!r} does not belong on line {line}")
    if source not in MESSAGE_SOURCES:
        raise MessageError(f"unknown source {source!r}")
    if district is not None and district not in district_range(districts):
        raise MessageError(f"district must be 1 to {districts}, got {district}")
    if audio is None and not (body and body.strip()):
        raise MessageError("a message needs a recording or a text")
    topic_id = None
    unit_id = None
    if topic_code:
        topic = session.scalar(select(Topic).where(Topic.code == topic_code))
        if topic is None:
            raise MessageError(f"unknown topic {topic_code!r}")
        topic_id, unit_id = topic.id, topic.unit_id
    if citizen_id is None:
        citizen = citizen_for(session, caller)
        citizen_id = citizen.id if citizen else None
    now = created_at or utcnow()
    code = tracking_code if tracking_code and is_valid_tracking_code(tracking_code) else None
    for _ in range(20):
        code = code or new_tracking_code()
        msg = Message(
            tracking_code=code,
            line_code=line,
            kind=kind,
            topic_id=topic_id,
            district=district,
            unit_id=unit_id,
            citizen_id=citizen_id,
            call_id=call_id,
            source=source,
            status="new",
            body=body,
            origin_key=origin_key,
            created_at=now,
            updated_at=now,
        )
        try:
            with session.begin_nested():
                session.add(msg)
                session.flush()
        except IntegrityError:
            if origin_key:
                existing = session.scalar(select(Message).where(Message.origin_key == origin_key))
                if existing is not None:
                    return existing
            code = None  # the code was taken: draw another
            continue
        if audio is not None:
            session.add(
                Recording(
                    path=audio.rel_path,
                    format=audio.format,
                    seconds=audio.seconds,
                    sha256=audio.sha256,
                    size_bytes=audio.size_bytes,
                    purpose="message",
                    message_id=msg.id,
                    created_at=now,
                )
            )
            session.flush()
        return msg
    raise MessageError("could not draw a free tracking code")  # pragma: no cover


def find_by_tracking_code(session: Session, code: str) -> Message | None:
    """The message with this tracking code (Persian digits accepted), or None."""
    code = latin_digits(code.strip())
    return session.scalar(select(Message).where(Message.tracking_code == code))


def find_for_phone(session: Session, code: str) -> Message | None:
    """`find_by_tracking_code` with what `phone_status` reads (referrals, units, replies, recordings) in one query."""
    code = latin_digits(code.strip())
    return session.scalars(
        select(Message)
        .where(Message.tracking_code == code)
        .options(
            joinedload(Message.referrals).joinedload(Referral.unit),
            joinedload(Message.replies).joinedload(Reply.recordings),
        )
    ).unique().one_or_none()


@dataclass(frozen=True)
class PhoneStatus:
    """What the phone follow-up tells a caller about a message."""

    tracking_code: str
    status: str
    prompts: tuple[str, ...]
    reply_id: int | None
    reply_audio: str | None


def latest_reply(message: Message) -> Reply | None:
    """The newest reply to a message, if any."""
    return message.replies[-1] if message.replies else None


def reply_phone_audio(reply: Reply) -> str | None:
    """Where (under the recordings folder) a reply's 8 kHz WAV is: the copy phones play, never the browser's."""
    wavs = [rec.path for rec in reply.recordings if rec.format == "wav"]
    return wavs[-1] if wavs else None


def phone_status(message: Message) -> PhoneStatus:
    """The status of a message as prompt names for the phone follow-up (key 2)."""
    prompts: list[str] = [f"status_{message.status}"]
    referral = message.referrals[-1] if message.referrals else None
    if message.status in ("referred", "answered", "closed") and referral is not None:
        unit = referral.unit
        if unit.kind == "district_office" and unit.district:
            prompts += ["referred_to_district", *persian.number(unit.district)]
        else:
            prompts.append("referred_to_unit")
    if message.status == "not_referred" and message.not_referred_reason:
        prompts.append(f"reason_{message.not_referred_reason}")
    reply = latest_reply(message)
    audio = reply_phone_audio(reply) if reply is not None else None
    return PhoneStatus(
        tracking_code=message.tracking_code,
        status=message.status,
        prompts=tuple(prompts),
        reply_id=reply.id if reply else None,
        reply_audio=audio,
    )


def mark_reply_heard(session: Session, reply_id: int | None, when: datetime) -> None:
    """Note the first time the citizen heard a reply on the phone.

    Heard means played to its end, or skipped after the menus' `heard_after_ms`; the
    flow calls this after the playback (action `reply_heard`), never at look-up.
    """
    if reply_id is None:
        return
    reply = session.get(Reply, reply_id)
    if reply is not None and reply.heard_at is None:
        reply.heard_at = when
