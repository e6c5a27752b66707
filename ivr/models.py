"""The data model: calls, citizens, messages and everything that follows them.

`schema.sql` is the reviewed DDL of the same tables; `tests/test_schema.py` proves
the two agree. Change both (and add an Alembic migration) in one commit.
"""
from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    Time,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from ivr.vocabulary import (
    CALL_OUTCOMES,
    CASE_KINDS,
    CASE_STAGES,
    FEEDBACK_CHANNELS,
    LINES,
    MAX_DISTRICTS,
    MESSAGE_KINDS,
    MESSAGE_SOURCES,
    MESSAGE_STATUSES,
    NOT_REFERRED_REASONS,
    NOTICE_CHANNELS,
    REMINDER_REASONS,
    ROLES,
    SMS_DIRECTIONS,
    SMS_STATUSES,
    UNIT_KINDS,
    VERDICTS,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

RECORDING_PURPOSES = ("message", "reply")


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back as an aware datetime."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


intpk = Annotated[int, mapped_column(Integer, primary_key=True)]
stamp = Annotated[datetime, mapped_column(UTCDateTime, nullable=False, default=utcnow)]
maybe_stamp = Annotated[datetime | None, mapped_column(UTCDateTime, nullable=True)]
line_fk = Annotated[str, mapped_column(String(4), ForeignKey("lines.code"), nullable=False)]


class Base(DeclarativeBase):
    """Declarative base with deterministic constraint names."""

    metadata = MetaData(naming_convention=NAMING)
    if TYPE_CHECKING:
        # Every model here names its own table (`__tablename__`), so `__table__` is a Table,
        # not the FromClause SQLAlchemy declares for any mapped selectable.
        __table__: ClassVar[Table]


class Line(Base):
    """A public number: 137 (city problems) or 1888 (the Inspection line)."""

    __tablename__ = "lines"
    __table_args__ = (CheckConstraint(_in("code", LINES), name="code"),)

    code: Mapped[str] = mapped_column(String(4), primary_key=True)
    name: Mapped[str] = mapped_column(String(120), nullable=False)


class Unit(Base):
    """An executive unit in the city's tree: deputy → organisation or district office."""

    __tablename__ = "units"
    __table_args__ = (
        CheckConstraint(_in("kind", UNIT_KINDS), name="kind"),
        CheckConstraint(f"district IS NULL OR district BETWEEN 1 AND {MAX_DISTRICTS}", name="district"),
        Index(None, "parent_id"),
    )

    id: Mapped[intpk]
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    code: Mapped[str] = mapped_column(String(40), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    district: Mapped[int | None] = mapped_column(SmallInteger)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[stamp]

    parent: Mapped[Unit | None] = relationship(remote_side=lambda: Unit.id)


class User(Base):
    """A person who works in the console: operator, manager, supervisor, ..."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(_in("role", ROLES), name="role"),
        CheckConstraint("role <> 'manager' OR unit_id IS NOT NULL", name="manager_unit"),
        Index(None, "unit_id"),
    )

    id: Mapped[intpk]
    username: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    full_name: Mapped[str] = mapped_column(String(200), nullable=False)
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    phone: Mapped[str | None] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[stamp]
    last_login_at: Mapped[maybe_stamp]
    # Raised to end every console session of the user (logout, password reset, deactivation).
    session_version: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=text("0"))

    unit: Mapped[Unit | None] = relationship()


class Citizen(Base):
    """A caller, known by a normalised phone number (09xxxxxxxxx for Iranian mobiles)."""

    __tablename__ = "citizens"

    id: Mapped[intpk]
    phone: Mapped[str] = mapped_column(String(16), nullable=False, unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    national_id: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[stamp]


class Topic(Base):
    """What a message is about; carries the deadline for answering it."""

    __tablename__ = "topics"
    __table_args__ = (
        CheckConstraint("due_working_days BETWEEN 1 AND 365", name="due_days"),
        UniqueConstraint("line_code", "menu_key"),
    )

    id: Mapped[intpk]
    code: Mapped[str] = mapped_column(String(40), nullable=False, unique=True)
    line_code: Mapped[line_fk]
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    menu_key: Mapped[str | None] = mapped_column(String(1))
    due_working_days: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=7)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


# "test": a call from the console's test phone (/phone/), left out of the screening queue by default.
TEST_DRIVER = "test"
CALL_DRIVERS = ("agi", "twilio", TEST_DRIVER)


class Call(Base):
    """One phone call on a line, with the keys pressed and how it ended."""

    __tablename__ = "calls"
    __table_args__ = (
        CheckConstraint(_in("outcome", CALL_OUTCOMES), name="outcome"),
        CheckConstraint(_in("driver", CALL_DRIVERS), name="driver"),
        Index(None, "line_code", "started_at"),
        Index(None, "citizen_id"),
        Index(None, "caller_number"),
    )

    id: Mapped[intpk]
    line_code: Mapped[line_fk]
    channel_id: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    driver: Mapped[str] = mapped_column(String(10), nullable=False)
    caller_number: Mapped[str | None] = mapped_column(String(32))
    citizen_id: Mapped[int | None] = mapped_column(ForeignKey("citizens.id"))
    started_at: Mapped[stamp]
    answered_at: Mapped[maybe_stamp]
    ended_at: Mapped[maybe_stamp]
    keys: Mapped[str] = mapped_column(String(400), nullable=False, default="")
    outcome: Mapped[str | None] = mapped_column(String(24))
    error: Mapped[str | None] = mapped_column(Text)

    citizen: Mapped[Citizen | None] = relationship()


class Message(Base):
    """A citizen's message (1888) or request (137), voice, typed or by SMS."""

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(_in("kind", MESSAGE_KINDS), name="kind"),
        CheckConstraint(
            "(line_code = '137' AND kind = 'request') OR (line_code = '1888' AND kind <> 'request')",
            name="line_kind",
        ),
        CheckConstraint(_in("source", MESSAGE_SOURCES), name="source"),
        CheckConstraint(_in("status", MESSAGE_STATUSES), name="status"),
        CheckConstraint(_in("not_referred_reason", NOT_REFERRED_REASONS), name="reason"),
        CheckConstraint(
            "(status = 'not_referred') = (not_referred_reason IS NOT NULL)", name="status_reason"
        ),
        CheckConstraint(
            "(not_referred_reason = 'duplicate') = (duplicate_of_id IS NOT NULL)",
            name="duplicate_link",
        ),
        CheckConstraint(f"district IS NULL OR district BETWEEN 1 AND {MAX_DISTRICTS}", name="district"),
        Index(None, "status", "created_at"),
        Index(None, "citizen_id"),
        Index(None, "unit_id", "status"),
        Index(None, "call_id"),
    )

    id: Mapped[intpk]
    tracking_code: Mapped[str] = mapped_column(String(12), nullable=False, unique=True)
    line_code: Mapped[line_fk]
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    topic_id: Mapped[int | None] = mapped_column(ForeignKey("topics.id"))
    district: Mapped[int | None] = mapped_column(SmallInteger)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    citizen_id: Mapped[int | None] = mapped_column(ForeignKey("citizens.id"))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"))
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="new")
    not_referred_reason: Mapped[str | None] = mapped_column(String(24))
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    body: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    origin_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    created_at: Mapped[stamp]
    updated_at: Mapped[stamp]
    screened_at: Mapped[maybe_stamp]
    screened_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    claimed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    claim_expires_at: Mapped[maybe_stamp]

    topic: Mapped[Topic | None] = relationship()
    unit: Mapped[Unit | None] = relationship()
    citizen: Mapped[Citizen | None] = relationship()
    recordings: Mapped[list[Recording]] = relationship(
        back_populates="message", foreign_keys="Recording.message_id", order_by="Recording.id"
    )
    replies: Mapped[list[Reply]] = relationship(back_populates="message", order_by="Reply.id")
    referrals: Mapped[list[Referral]] = relationship(
        back_populates="message", order_by="Referral.id"
    )


class Reply(Base):
    """A manager's answer to a message: spoken (a recording) and/or a written note."""

    __tablename__ = "replies"
    __table_args__ = (Index(None, "message_id"),)

    id: Mapped[intpk]
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), nullable=False)
    referral_id: Mapped[int | None] = mapped_column(ForeignKey("referrals.id"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[stamp]
    heard_at: Mapped[maybe_stamp]

    message: Mapped[Message] = relationship(back_populates="replies")
    recordings: Mapped[list[Recording]] = relationship(
        back_populates="reply", foreign_keys="Recording.reply_id", order_by="Recording.id"
    )


class Recording(Base):
    """Stored audio: a caller's voice message or a manager's spoken reply."""

    __tablename__ = "recordings"
    __table_args__ = (
        CheckConstraint(_in("purpose", RECORDING_PURPOSES), name="purpose"),
        CheckConstraint(
            "(purpose = 'message' AND message_id IS NOT NULL AND reply_id IS NULL)"
            " OR (purpose = 'reply' AND reply_id IS NOT NULL)",
            name="owner",
        ),
        CheckConstraint("seconds >= 0", name="seconds"),
        Index(None, "message_id"),
        Index(None, "reply_id"),
    )

    id: Mapped[intpk]
    path: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    format: Mapped[str] = mapped_column(String(10), nullable=False)
    seconds: Mapped[float] = mapped_column(Float, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size_bytes: Mapped[int] = mapped_column(Integer, nullable=False)
    purpose: Mapped[str] = mapped_column(String(10), nullable=False)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    reply_id: Mapped[int | None] = mapped_column(ForeignKey("replies.id"))
    created_at: Mapped[stamp]

    message: Mapped[Message | None] = relationship(
        back_populates="recordings", foreign_keys=[message_id]
    )
    reply: Mapped[Reply | None] = relationship(back_populates="recordings", foreign_keys=[reply_id])


class Referral(Base):
    """A message sent to a unit (and its manager) to be answered by a due date."""

    __tablename__ = "referrals"
    __table_args__ = (
        Index(None, "message_id"),
        Index(None, "unit_id", "closed_at"),
        # The inbox's unanswered list, in due-date order, straight from the index (0005_inbox).
        Index(
            "ix_referrals_open",
            "unit_id",
            "due_at",
            "id",
            postgresql_where=text("closed_at IS NULL"),
            sqlite_where=text("closed_at IS NULL"),
        ),
    )

    id: Mapped[intpk]
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), nullable=False)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), nullable=False)
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    referred_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    referred_at: Mapped[stamp]
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    closed_at: Mapped[maybe_stamp]
    escalated_at: Mapped[maybe_stamp]

    message: Mapped[Message] = relationship(back_populates="referrals")
    unit: Mapped[Unit] = relationship()


class Feedback(Base):
    """Whether the citizen was satisfied with a reply (phone, SMS or web)."""

    __tablename__ = "feedback"
    __table_args__ = (
        CheckConstraint(_in("channel", FEEDBACK_CHANNELS), name="channel"),
        Index(None, "message_id"),
        UniqueConstraint("origin_key"),
    )

    id: Mapped[intpk]
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), nullable=False)
    reply_id: Mapped[int | None] = mapped_column(ForeignKey("replies.id"))
    satisfied: Mapped[bool] = mapped_column(Boolean, nullable=False)
    channel: Mapped[str] = mapped_column(String(8), nullable=False)
    raw_text: Mapped[str | None] = mapped_column(Text)
    origin_key: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[stamp]


class Reminder(Base):
    """تذکر: a 137 request re-opened at the same unit; a negative point for that unit."""

    __tablename__ = "reminders"
    __table_args__ = (
        CheckConstraint(_in("reason", REMINDER_REASONS), name="reason"),
        Index(None, "message_id"),
        Index(None, "unit_id", "created_at"),
        # Requests sent back to a unit's inbox by a reminder not yet answered (0005_inbox).
        Index(
            "ix_reminders_open",
            "unit_id",
            "message_id",
            postgresql_where=text("resolved_at IS NULL"),
            sqlite_where=text("resolved_at IS NULL"),
        ),
    )

    id: Mapped[intpk]
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), nullable=False)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), nullable=False)
    reason: Mapped[str] = mapped_column(String(24), nullable=False)
    feedback_id: Mapped[int | None] = mapped_column(ForeignKey("feedback.id"))
    created_at: Mapped[stamp]
    resolved_at: Mapped[maybe_stamp]


class UrbanCase(Base):
    """An urban-planning or Article 100 case, fed by the urban-planning system's CSV."""

    __tablename__ = "cases"
    __table_args__ = (
        UniqueConstraint("case_number", "kind"),
        CheckConstraint(_in("kind", CASE_KINDS), name="kind"),
        CheckConstraint(
            "(kind = 'urban_planning' AND "
            + _in("stage", CASE_STAGES["urban_planning"])
            + ") OR (kind = 'article100' AND "
            + _in("stage", CASE_STAGES["article100"])
            + ")",
            name="stage",
        ),
        CheckConstraint(_in("verdict", VERDICTS), name="verdict"),
        CheckConstraint("fine_rials IS NULL OR fine_rials >= 0", name="fine"),
        CheckConstraint(f"district IS NULL OR district BETWEEN 1 AND {MAX_DISTRICTS}", name="district"),
    )

    id: Mapped[intpk]
    case_number: Mapped[str] = mapped_column(String(15), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    district: Mapped[int | None] = mapped_column(SmallInteger)
    stage: Mapped[str] = mapped_column(String(32), nullable=False)
    next_date: Mapped[date | None] = mapped_column(Date)
    verdict: Mapped[str | None] = mapped_column(String(12))
    fine_rials: Mapped[int | None] = mapped_column(BigInteger)
    updated_on: Mapped[date | None] = mapped_column(Date)
    imported_at: Mapped[stamp]


class Sms(Base):
    """An SMS sent to or received from a citizen, with its delivery status."""

    __tablename__ = "sms"
    __table_args__ = (
        CheckConstraint(_in("direction", SMS_DIRECTIONS), name="direction"),
        CheckConstraint(_in("status", SMS_STATUSES), name="status"),
        Index(None, "phone", "created_at"),
    )

    id: Mapped[intpk]
    direction: Mapped[str] = mapped_column(String(3), nullable=False)
    phone: Mapped[str] = mapped_column(String(16), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(12), nullable=False)
    purpose: Mapped[str | None] = mapped_column(String(24))
    provider_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[stamp]
    updated_at: Mapped[stamp]


class AuditEntry(Base):
    """Who listened to, screened, referred, answered or changed what, and when."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "object_type", "object_id"), Index(None, "created_at"))

    id: Mapped[intpk]
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(40), nullable=False)
    object_type: Mapped[str] = mapped_column(String(40), nullable=False)
    object_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(String(45))
    created_at: Mapped[stamp]


class WorkingHours(Base):
    """When the operators' queue is staffed, per weekday (0 = Monday, as Python counts)."""

    __tablename__ = "working_hours"
    __table_args__ = (
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday"),
        CheckConstraint("opens < closes", name="range"),
    )

    weekday: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    opens: Mapped[time] = mapped_column(Time, nullable=False)
    closes: Mapped[time] = mapped_column(Time, nullable=False)


class Holiday(Base):
    """A day the operators' queue is closed (stored Gregorian, shown Jalali)."""

    __tablename__ = "holidays"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)


class FailedJob(Base):
    """A background job that kept failing after its retries: kept for inspection and a manual retry.

    The in-process queue writes here; on Redis, RQ's own failed-job registry keeps them instead.
    """

    __tablename__ = "failed_jobs"
    __table_args__ = (Index(None, "failed_at"),)

    id: Mapped[intpk]
    job_id: Mapped[str] = mapped_column(String(120), nullable=False)
    name: Mapped[str] = mapped_column(String(60), nullable=False)
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    error: Mapped[str] = mapped_column(Text, nullable=False)
    attempts: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    failed_at: Mapped[stamp]
    retried_at: Mapped[maybe_stamp]


# ---- follow-through: reply notices, surveys, escalations, field checks (0007) ----------------

NOTICE_STATUSES = ("queued", "sent", "failed")
SURVEY_STATUSES = ("scheduled", "sent", "answered", "superseded")
FIELD_CHECK_STATUSES = ("pending", "passed", "failed")


class ReplyNotice(Base):
    """One attempt to tell a citizen that a reply is ready (an SMS, or a call that plays it)."""

    __tablename__ = "reply_notices"
    __table_args__ = (
        CheckConstraint(_in("channel", NOTICE_CHANNELS), name="channel"),
        CheckConstraint(_in("status", NOTICE_STATUSES), name="status"),
        UniqueConstraint("reply_id", "channel", "attempt"),
    )

    id: Mapped[intpk]
    reply_id: Mapped[int] = mapped_column(ForeignKey("replies.id"), nullable=False)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), nullable=False)
    channel: Mapped[str] = mapped_column(String(8), nullable=False)
    attempt: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=1)
    status: Mapped[str] = mapped_column(String(10), nullable=False)
    sms_id: Mapped[int | None] = mapped_column(ForeignKey("sms.id"))
    call_ref: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[stamp]


class Survey(Base):
    """The satisfaction survey SMS for one reply: sent once, resent at most once, answered once."""

    __tablename__ = "surveys"
    __table_args__ = (
        CheckConstraint(_in("status", SURVEY_STATUSES), name="status"),
        CheckConstraint("sent_count BETWEEN 0 AND 2", name="sent_count"),
        UniqueConstraint("reply_id"),
        Index(None, "status", "due_at"),
        Index(None, "message_id"),
    )

    id: Mapped[intpk]
    reply_id: Mapped[int] = mapped_column(ForeignKey("replies.id"), nullable=False)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), nullable=False)
    phone: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(12), nullable=False, default="scheduled")
    due_at: Mapped[maybe_stamp]
    sent_count: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=0)
    last_sent_at: Mapped[maybe_stamp]
    sms_id: Mapped[int | None] = mapped_column(ForeignKey("sms.id"))
    feedback_id: Mapped[int | None] = mapped_column(ForeignKey("feedback.id"))
    answered_at: Mapped[maybe_stamp]
    created_at: Mapped[stamp]


class Escalation(Base):
    """An overdue referral raised to the parent unit and the supervisors (once per deadline)."""

    __tablename__ = "escalations"
    __table_args__ = (
        UniqueConstraint("referral_id", "due_at"),
        Index(None, "to_unit_id", "created_at"),
        Index(None, "created_at"),
    )

    id: Mapped[intpk]
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), nullable=False)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), nullable=False)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), nullable=False)
    to_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    notified_sms_id: Mapped[int | None] = mapped_column(ForeignKey("sms.id"))
    created_at: Mapped[stamp]


class FieldCheck(Base):
    """A sampled answered request a field inspector goes to check ("smart inspection")."""

    __tablename__ = "field_checks"
    __table_args__ = (
        CheckConstraint(_in("status", FIELD_CHECK_STATUSES), name="status"),
        CheckConstraint("(status = 'pending') = (checked_at IS NULL)", name="checked"),
        UniqueConstraint("reply_id"),
        Index(None, "status", "sampled_at"),
        Index(None, "unit_id"),
    )

    id: Mapped[intpk]
    reply_id: Mapped[int] = mapped_column(ForeignKey("replies.id"), nullable=False)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), nullable=False)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), nullable=False)
    weight: Mapped[float] = mapped_column(Float, nullable=False)
    status: Mapped[str] = mapped_column(String(8), nullable=False, default="pending")
    inspector_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    note: Mapped[str | None] = mapped_column(Text)
    photo_path: Mapped[str | None] = mapped_column(String(255))
    reminder_id: Mapped[int | None] = mapped_column(ForeignKey("reminders.id"))
    sampled_at: Mapped[stamp]
    checked_at: Mapped[maybe_stamp]


TWILIO_RECORDING_STATUSES = ("pending", "speech", "empty", "absent", "discarded")


class TwilioCall(Base):
    """A call running on Twilio: the flow's state between two webhooks, keyed by Twilio's CallSid.

    `state` is JSON (the engine's CallState and what the last answer waits for);
    `last_fingerprint`/`last_twiml` answer a retried webhook with the same TwiML instead
    of advancing the call twice; `version` guards against two requests saving at once.
    """

    __tablename__ = "twilio_calls"

    id: Mapped[intpk]
    call_sid: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    line_code: Mapped[line_fk]
    state: Mapped[str] = mapped_column(Text, nullable=False)
    last_fingerprint: Mapped[str | None] = mapped_column(String(64))
    last_twiml: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[stamp]
    updated_at: Mapped[stamp]
    finished_at: Mapped[maybe_stamp]


class TwilioRecording(Base):
    """A recording Twilio made for a call: fetched by a job, checked for speech, stored, linked.

    `audio` is the stored file's facts (JSON) once fetched; `keep` holds what the message
    needs (line, kind, topic, district) when the caller hung up before it was registered.
    """

    __tablename__ = "twilio_recordings"
    __table_args__ = (
        CheckConstraint(_in("status", TWILIO_RECORDING_STATUSES), name="status"),
        Index(None, "call_sid"),
    )

    id: Mapped[intpk]
    recording_sid: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    call_sid: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(12), nullable=False, default="pending")
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    audio: Mapped[str | None] = mapped_column(Text)
    keep: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[stamp]
    updated_at: Mapped[stamp]


# ---- 0004_console: API tokens and the indexes the console's queries need ------------------------


class ApiToken(Base):
    """A bearer token for the JSON API; only its SHA-256 is stored, the token is shown once."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index(None, "user_id"),)

    id: Mapped[intpk]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    created_at: Mapped[stamp]
    last_used_at: Mapped[maybe_stamp]
    revoked_at: Mapped[maybe_stamp]
    expires_at: Mapped[maybe_stamp]  # None: never (IVR_API_TOKEN_DAYS=0 when it was made)


# Likely originals of a duplicate: same topic and district, recent first.
Index("ix_messages_topic_id_district_created_at", Message.topic_id, Message.district, Message.created_at)
# The callers the IVR handed to the operators' queue, newest first.
Index("ix_calls_outcome_started_at", Call.outcome, Call.started_at)

# ---- analysis desk: rollups kept by database triggers (ivr/analysis/rollups.py) -----------
# Days and hours are Tehran's (the city's), so a dashboard never converts time zones.
# NULL dimensions are stored as 0 (topic, district, unit), 'in_progress' (a call's outcome)
# or '' (no key pressed), because they are parts of the primary key.

ROLLUP_NO_OUTCOME = "in_progress"


class CallHourRollup(Base):
    """Calls started per Tehran day, hour and line, and how many of them pressed key 4 first."""

    __tablename__ = "rollup_call_hours"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    hour: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    line_code: Mapped[str] = mapped_column(String(4), primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, nullable=False)
    key4: Mapped[int] = mapped_column(Integer, nullable=False)


class CallOutcomeRollup(Base):
    """Calls started per Tehran day, line, outcome and first key pressed."""

    __tablename__ = "rollup_call_outcomes"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    line_code: Mapped[str] = mapped_column(String(4), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(24), primary_key=True)
    first_key: Mapped[str] = mapped_column(String(1), primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, nullable=False)


class _MessageCell:
    """The cell (line, kind, topic, district, unit) and counters shared by the daily and monthly message rollups."""

    line_code: Mapped[str] = mapped_column(String(4), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    topic_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    district: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    unit_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    registered: Mapped[int] = mapped_column(Integer, nullable=False)
    referred: Mapped[int] = mapped_column(Integer, nullable=False)
    not_referred_incomplete_message: Mapped[int] = mapped_column(Integer, nullable=False)
    not_referred_incomplete_caller: Mapped[int] = mapped_column(Integer, nullable=False)
    not_referred_duplicate: Mapped[int] = mapped_column(Integer, nullable=False)
    not_referred_irrelevant: Mapped[int] = mapped_column(Integer, nullable=False)
    answered: Mapped[int] = mapped_column(Integer, nullable=False)
    feedback: Mapped[int] = mapped_column(Integer, nullable=False)
    satisfied: Mapped[int] = mapped_column(Integer, nullable=False)
    reminders: Mapped[int] = mapped_column(Integer, nullable=False)


class MessageRollup(_MessageCell, Base):
    """Messages registered per Tehran day and cell (line, kind, topic, district, unit), and their fate.

    `referred` and `answered` count messages with at least one referral or reply;
    `feedback`, `satisfied` and `reminders` count those rows; the not-referred counters
    follow the message's status and reason.
    """

    __tablename__ = "rollup_messages"
    __table_args__ = (Index(None, "unit_id", "day"),)

    day: Mapped[date] = mapped_column(Date, primary_key=True)


class MessageMonthRollup(_MessageCell, Base):
    """rollup_messages summed per Gregorian month (first day): long periods read 12 rows a cell a year."""

    __tablename__ = "rollup_messages_monthly"
    __table_args__ = (Index(None, "unit_id", "month"),)

    month: Mapped[date] = mapped_column(Date, primary_key=True)


class CallHourMonthRollup(Base):
    """rollup_call_hours per Gregorian month and weekday (0 = Sunday, as SQL counts): yearly heatmaps."""

    __tablename__ = "rollup_call_hours_monthly"

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    weekday: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    hour: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    line_code: Mapped[str] = mapped_column(String(4), primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, nullable=False)
    key4: Mapped[int] = mapped_column(Integer, nullable=False)


class CallOutcomeMonthRollup(Base):
    """rollup_call_outcomes per Gregorian month (first day)."""

    __tablename__ = "rollup_call_outcomes_monthly"

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    line_code: Mapped[str] = mapped_column(String(4), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(24), primary_key=True)
    first_key: Mapped[str] = mapped_column(String(1), primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, nullable=False)


class TopicDeadline(Base):
    """A deadline for one kind of message on one topic (e.g. complaints sooner than suggestions).

    It overrides the topic's own `due_working_days` for messages of that kind.
    """

    __tablename__ = "topic_deadlines"
    __table_args__ = (
        CheckConstraint(_in("kind", MESSAGE_KINDS), name="kind"),
        CheckConstraint("due_working_days BETWEEN 1 AND 365", name="days"),
    )

    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    due_working_days: Mapped[int] = mapped_column(SmallInteger, nullable=False)
