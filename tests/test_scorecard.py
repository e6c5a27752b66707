"""The units' scorecard equals numbers worked out by hand; Jalali months; PostgreSQL concurrent sweeps."""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ivr.followthrough.escalation import sweep_overdue
from ivr.followthrough.scorecard import (
    jalali_month,
    month_of,
    parse_month,
    recent_months,
    unit_scorecard,
)
from ivr.models import Citizen, Escalation, Feedback, Message, Referral, Reminder, Unit
from tests.test_followthrough import QueuedJobs, answer, make_request, make_unit


def d(day: int, month: int = 11, hour: int = 8) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=UTC)


def test_scorecard_equals_hand_computed_fixture(db: Session) -> None:
    unit = make_unit(db, "district-6")
    other = make_unit(db, "district-7")
    # Four referrals to the unit in November.
    m1, r1 = make_request(db, unit, referred_at=d(2), due_at=d(9, hour=20))
    m2, r2 = make_request(db, unit, referred_at=d(4), due_at=d(11, hour=20))
    m3, r3 = make_request(db, unit, referred_at=d(5), due_at=d(8, hour=20))
    m4, r4 = make_request(db, unit, referred_at=d(20), due_at=d(25, hour=20))
    # Answered 24 h, 48 h and 120 h after referral; the third after its deadline; the fourth never.
    rep1 = answer(db, m1, r1, d(3))
    rep2 = answer(db, m2, r2, d(6))
    rep3 = answer(db, m3, r3, d(10))
    # Outside the period or another unit's: not counted.
    m0, r0 = make_request(db, unit, referred_at=d(20, month=10), due_at=d(27, month=10))
    answer(db, m0, r0, d(3))
    mo, ro = make_request(db, other, referred_at=d(3), due_at=d(4))
    db.add_all([
        Reminder(message_id=m1.id, unit_id=unit.id, reason="dissatisfied", created_at=d(12)),
        Reminder(message_id=m0.id, unit_id=unit.id, reason="dissatisfied", created_at=d(30, month=10)),
        Reminder(message_id=mo.id, unit_id=other.id, reason="dissatisfied", created_at=d(12)),
        Feedback(message_id=m1.id, reply_id=rep1.id, satisfied=False, channel="sms", created_at=d(4)),
        Feedback(message_id=m2.id, reply_id=rep2.id, satisfied=True, channel="sms", created_at=d(7)),
        Feedback(message_id=m3.id, reply_id=rep3.id, satisfied=True, channel="phone", created_at=d(11)),
        # One message of the unit's topic that screening did not refer.
        Message(tracking_code="900000001", line_code="137", kind="request", unit_id=unit.id, source="phone_voice",
                status="not_referred", not_referred_reason="irrelevant", body="x", created_at=d(15), updated_at=d(15)),
    ])
    db.flush()

    card = unit_scorecard(db, unit.id, d(1, hour=0), d(1, month=12, hour=0), as_of=d(1, month=12, hour=0))

    assert (card.received, card.answered, card.on_time, card.overdue) == (4, 3, 2, 2)
    assert card.on_time_pct == 50.0
    assert card.median_hours == 48.0
    assert card.reminders == 1
    assert (card.feedback, card.satisfied, card.satisfaction_pct) == (3, 2, 66.7)
    assert (card.messages, card.not_referred, card.not_referred_pct) == (5, 1, 20.0)
    # 40 × 2/4 + 30 × 2/3 + 30 × (1 − 48/168) − 5 × 1 − 2 × 2 = 20 + 20 + 21.43 − 5 − 4 = 52.43
    assert card.score == 52.4


def test_scorecard_of_an_idle_unit_has_no_score(db: Session) -> None:
    unit = make_unit(db, "idle")
    card = unit_scorecard(db, unit.id, d(1), d(30), as_of=d(30))
    assert (card.received, card.on_time_pct, card.median_hours, card.satisfaction_pct, card.score) == (
        0, None, None, None, None)


def test_jalali_months(settings) -> None:
    tz = settings.timezone
    azar = jalali_month(1405, 9, tz)
    assert (azar.key, azar.start, azar.end) == ("1405-09", datetime(2026, 11, 22, tzinfo=tz), datetime(2026, 12, 22, tzinfo=tz))
    assert month_of(datetime(2026, 11, 21, 21, 0, tzinfo=UTC), tz).key == "1405-09"  # 00:30 Tehran on 1 Azar
    assert [m.key for m in recent_months(datetime(2027, 1, 1, tzinfo=UTC), tz, 4)] == ["1405-07", "1405-08", "1405-09", "1405-10"]
    assert parse_month("1405-12", tz).end == datetime(2027, 3, 21, tzinfo=tz)
    with pytest.raises(ValueError, match="درست نیست"):
        parse_month("azar", tz)
    with pytest.raises(ValueError, match="درست نیست"):
        parse_month("1405-13", tz)


@pytest.mark.postgres
@pytest.mark.slow
def test_two_concurrent_sweeps_on_postgres_escalate_once(postgres_engine: Engine) -> None:
    now = datetime.now(UTC)
    setup = Session(postgres_engine)
    unit = make_unit(setup, "concurrent")
    msg, ref = make_request(setup, unit, referred_at=now - timedelta(days=9), due_at=now - timedelta(hours=2),
                            phone="09129990000")
    setup.commit()
    unit_id, msg_id, ref_id = unit.id, msg.id, ref.id
    setup.close()
    first, second = Session(postgres_engine), Session(postgres_engine)
    results: dict[str, list[int]] = {}
    try:
        results["first"] = sweep_overdue(first, QueuedJobs(), now)  # holds the row lock, not committed yet

        def run_second() -> None:
            results["second"] = sweep_overdue(second, QueuedJobs(), now)
            second.commit()

        thread = threading.Thread(target=run_second)
        thread.start()
        thread.join(1.0)
        assert thread.is_alive()  # blocked on the first sweep's row lock
        first.commit()
        thread.join(10)
        assert results["first"] != [] and results["second"] == []
        with Session(postgres_engine) as check:
            assert len(check.scalars(select(Escalation).where(Escalation.referral_id == ref_id)).all()) == 1
    finally:
        first.close()
        second.close()
        with Session(postgres_engine) as cleanup:
            cleanup.execute(delete(Escalation).where(Escalation.referral_id == ref_id))
            cleanup.execute(delete(Referral).where(Referral.id == ref_id))
            cleanup.execute(delete(Message).where(Message.id == msg_id))
            cleanup.execute(delete(Citizen).where(Citizen.phone == "09129990000"))
            cleanup.execute(delete(Unit).where(Unit.id == unit_id))
            cleanup.commit()
