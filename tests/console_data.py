"""Rows the console tests share: two units with managers, topics on both lines, messages with callers."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from ivr.models import Call, Citizen, Message, Recording, Topic, Unit, User
from ivr.services.users import hash_password

# A Saturday morning in Tehran (10:00 UTC = 13:30 local).
T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


@dataclass
class Seed:
    """Ids of what `seed` made."""

    unit_a: int
    unit_b: int
    manager_a: int
    topic_1888: int
    topic_137: int
    messages: list[int]


def seed(session: Session, *, with_manager: bool = True) -> Seed:
    """Units, a manager, topics and three new messages (oldest first) from two callers."""
    unit_a = Unit(code="water", name="سازمان آب", kind="organisation")
    unit_b = Unit(code="district-5", name="شهرداری منطقه ۵", kind="district_office", district=5)
    session.add_all([unit_a, unit_b])
    session.flush()
    manager = User(username="water-boss", full_name="مدیر آب", role="manager", unit_id=unit_a.id,
                   password_hash=hash_password("x" * 12))
    if with_manager:
        session.add(manager)
    topic_1888 = Topic(code="conduct", line_code="1888", name="رفتار کارکنان", due_working_days=3, unit_id=unit_a.id)
    topic_137 = Topic(code="potholes", line_code="137", name="چاله", due_working_days=5, unit_id=unit_b.id)
    session.add_all([topic_1888, topic_137])
    ali = Citizen(phone="09121234567")
    sara = Citizen(phone="09351112233")
    session.add_all([ali, sara])
    session.flush()
    call = Call(line_code="1888", channel_id="seed-1", driver="agi", caller_number="09121234567",
                citizen_id=ali.id, started_at=T0 - timedelta(hours=5), keys="13", outcome="message_registered")
    session.add(call)
    session.flush()
    msgs = [
        Message(tracking_code="100000016", line_code="1888", kind="complaint", citizen_id=ali.id, call_id=call.id,
                source="phone_voice", status="new", created_at=T0 - timedelta(hours=5),
                updated_at=T0 - timedelta(hours=5)),
        Message(tracking_code="200000015", line_code="137", kind="request", citizen_id=sara.id,
                source="phone_voice", status="new", created_at=T0 - timedelta(hours=3),
                updated_at=T0 - timedelta(hours=3)),
        Message(tracking_code="300000019", line_code="1888", kind="criticism", citizen_id=ali.id,
                source="phone_voice", status="new", created_at=T0 - timedelta(hours=1),
                updated_at=T0 - timedelta(hours=1)),
    ]
    session.add_all(msgs)
    session.flush()
    session.add(Recording(path="messages/seed-1.wav", format="wav", seconds=65.0, sha256="0" * 64, size_bytes=1000,
                          purpose="message", message_id=msgs[0].id, created_at=T0))
    session.flush()
    return Seed(unit_a.id, unit_b.id, manager.id if with_manager else 0, topic_1888.id, topic_137.id,
                [m.id for m in msgs])


def seed_committed(session_factory: sessionmaker[Session]) -> Seed:
    """`seed` in a session of its own, committed, for tests that go through the web app."""
    with session_factory() as session:
        s = seed(session)
        session.commit()
    return s
