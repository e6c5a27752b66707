"""Screening rules: the queue, claims that expire, classification, referral, duplicates, typed messages."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from ivr.models import AuditEntry, Message, Referral, User
from ivr.services import screening
from ivr.services.screening import ClaimConflict, Classification, ScreeningError, TypedMessage
from ivr.services.users import hash_password
from tests.console_data import T0, seed

TZ = ZoneInfo("Asia/Tehran")


def _operators(db) -> tuple[int, int]:
    a = User(username="op-a", full_name="کارشناس الف", role="operator", password_hash=hash_password("x" * 12))
    b = User(username="op-b", full_name="کارشناس ب", role="operator", password_hash=hash_password("x" * 12))
    db.add_all([a, b])
    db.flush()
    return a.id, b.id


def _refer(s, **changes) -> Classification:
    values = dict(decision="refer", kind="complaint", topic_id=s.topic_1888, district=5, unit_id=s.unit_a,
                  summary="برخورد نامناسب کارمند")
    values.update(changes)
    return Classification(**values)


def test_queue_lists_new_messages_oldest_first_with_caller_and_duration(db) -> None:
    s = seed(db)
    db.get(Message, s.messages[1]).status = "closed"
    db.flush()
    rows = screening.screening_queue(db)
    assert [r.id for r in rows] == [s.messages[0], s.messages[2]]
    assert (rows[0].caller, rows[0].seconds, rows[0].line_code, rows[0].kind) == ("09121234567", 65.0, "1888", "complaint")
    assert rows[1].seconds is None and rows[1].recording_id is None
    assert screening.queue_size(db) == 2
    assert screening.queue_size(db, cap=1) == 2  # counted up to cap + 1: "more than 1"
    assert screening.queue_size(db, cap=0) == 1


def test_claim_held_by_another_operator_conflicts_until_it_expires(db) -> None:
    s = seed(db)
    a, b = _operators(db)
    msg = screening.claim(db, s.messages[0], a, T0)
    assert msg.claimed_by_id == a and msg.claim_expires_at == T0 + timedelta(minutes=10)
    with pytest.raises(ClaimConflict, match="کارشناس الف"):
        screening.claim(db, s.messages[0], b, T0 + timedelta(minutes=9))
    assert db.get(Message, s.messages[0]).claimed_by_id == a
    renewed = screening.claim(db, s.messages[0], b, T0 + timedelta(minutes=11))
    assert renewed.claimed_by_id == b


def test_claim_of_a_missing_message_is_not_found(db) -> None:
    seed(db)
    a, _ = _operators(db)
    with pytest.raises(screening.MessageNotFound):
        screening.claim(db, 999999, a, T0)


def test_classify_refer_creates_referral_to_the_units_manager_with_the_topics_deadline(db) -> None:
    s = seed(db)
    a, _ = _operators(db)
    screening.claim(db, s.messages[0], a, T0)
    msg = screening.classify(db, s.messages[0], a, _refer(s), T0, TZ, ip="10.0.0.1")
    assert (msg.status, msg.unit_id, msg.district, msg.summary) == ("referred", s.unit_a, 5, "برخورد نامناسب کارمند")
    assert msg.screened_by_id == a and msg.claimed_by_id is None and msg.claim_expires_at is None
    referral = db.scalars(select(Referral).where(Referral.message_id == msg.id)).one()
    assert (referral.unit_id, referral.manager_id, referral.referred_by_id) == (s.unit_a, s.manager_a, a)
    # Saturday + 3 working days = Tuesday, end of day in Tehran.
    assert referral.due_at == datetime(2026, 12, 1, 23, 59, 59, tzinfo=TZ)
    actions = db.scalars(select(AuditEntry.action).where(AuditEntry.object_id == msg.id).order_by(AuditEntry.id)).all()
    assert actions == ["claim", "claim", "refer"]


def test_classify_refer_to_a_unit_without_manager_leaves_manager_empty(db) -> None:
    s = seed(db, with_manager=False)
    a, _ = _operators(db)
    screening.classify(db, s.messages[1], a, _refer(s, kind="request", topic_id=s.topic_137, unit_id=s.unit_b), T0, TZ)
    referral = db.scalars(select(Referral)).one()
    assert referral.manager_id is None and referral.unit_id == s.unit_b
    assert referral.due_at == datetime(2026, 12, 3, 23, 59, 59, tzinfo=TZ)  # 5 working days


def test_classify_while_another_operator_holds_the_claim_saves_nothing(db) -> None:
    s = seed(db)
    a, b = _operators(db)
    screening.claim(db, s.messages[0], a, T0)
    with pytest.raises(ClaimConflict):
        screening.classify(db, s.messages[0], b, _refer(s), T0 + timedelta(minutes=1), TZ)
    msg = db.get(Message, s.messages[0])
    db.refresh(msg)
    assert (msg.status, msg.claimed_by_id, msg.summary) == ("new", a, None)
    assert db.scalars(select(Referral)).all() == []


def test_classify_an_already_screened_message_conflicts(db) -> None:
    s = seed(db)
    a, b = _operators(db)
    screening.classify(db, s.messages[0], a, _refer(s), T0, TZ)
    with pytest.raises(ClaimConflict, match="پیش‌تر پالایش شده"):
        screening.classify(db, s.messages[0], b, _refer(s), T0 + timedelta(minutes=20), TZ)
    assert len(db.scalars(select(Referral)).all()) == 1


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"kind": "request"}, "نوع پیام"),
        ({"unit_id": None}, "واحد مربوط"),
        ({"topic_id": None}, "موضوع"),
        ({"summary": " "}, "خلاصه"),
        ({"summary": "x" * 501}, "حداکثر"),
        ({"district": 23}, "۱ تا ۲۲"),
        ({"decision": "maybe"}, "تصمیم"),
        ({"decision": "not_referred", "reason": None}, "دلیل"),
        ({"decision": "not_referred", "reason": "duplicate"}, "کد رهگیری پیام اصلی"),
        ({"decision": "not_referred", "reason": "duplicate", "duplicate_of": "123456789"}, "پیدا نشد"),
    ],
)
def test_classify_bad_input_is_refused_and_nothing_changes(db, changes, error) -> None:
    s = seed(db)
    a, _ = _operators(db)
    with pytest.raises(ScreeningError, match=error):
        screening.classify(db, s.messages[0], a, _refer(s, **changes), T0, TZ)
    msg = db.get(Message, s.messages[0])
    assert (msg.status, msg.claimed_by_id, msg.summary) == ("new", None, None)


def test_classify_topic_of_the_other_line_is_refused(db) -> None:
    s = seed(db)
    a, _ = _operators(db)
    with pytest.raises(ScreeningError, match="موضوع انتخاب‌شده"):
        screening.classify(db, s.messages[0], a, _refer(s, topic_id=s.topic_137), T0, TZ)


def test_not_referred_duplicate_links_the_original(db) -> None:
    s = seed(db)
    a, _ = _operators(db)
    c = Classification(decision="not_referred", kind="criticism", reason="duplicate", duplicate_of="۱۰۰۰۰۰۰۱۶")
    msg = screening.classify(db, s.messages[2], a, c, T0, TZ)
    assert (msg.status, msg.not_referred_reason, msg.duplicate_of_id) == ("not_referred", "duplicate", s.messages[0])
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "not_referred")).one()
    assert entry.detail == "reason=duplicate original=100000016"


def test_not_referred_irrelevant_has_no_referral(db) -> None:
    s = seed(db)
    a, _ = _operators(db)
    c = Classification(decision="not_referred", kind="request", reason="irrelevant")
    msg = screening.classify(db, s.messages[1], a, c, T0, TZ)
    assert (msg.status, msg.not_referred_reason, msg.duplicate_of_id) == ("not_referred", "irrelevant", None)
    assert db.scalars(select(Referral)).all() == []


def test_suggest_originals_same_caller_or_topic_and_district_within_the_window(db) -> None:
    s = seed(db)
    first, second, third = (db.get(Message, i) for i in s.messages)
    first.topic_id, first.district = s.topic_1888, 5
    third.topic_id, third.district = s.topic_1888, 5
    other = Message(tracking_code="400000018", line_code="1888", kind="complaint", topic_id=s.topic_1888, district=5,
                    source="operator", status="referred", body="x", created_at=T0 - timedelta(days=2),
                    updated_at=T0)
    old = Message(tracking_code="500000014", line_code="1888", kind="complaint", topic_id=s.topic_1888, district=5,
                  source="operator", status="referred", body="x", created_at=T0 - timedelta(days=20),
                  updated_at=T0)
    db.add_all([other, old])
    db.flush()
    got = screening.suggest_originals(db, third, 14)
    assert [(g.tracking_code, g.same_caller) for g in got] == [("100000016", True), ("400000018", False)]
    assert [g.tracking_code for g in screening.suggest_originals(db, third, 30)][-1] == "500000014"
    assert screening.suggest_originals(db, second, 14) == []


def test_register_typed_message_gets_a_tracking_code_and_waits_for_screening(db) -> None:
    s = seed(db)
    a, _ = _operators(db)
    t = TypedMessage(line="137", kind="request", caller="+98 912 765 4321", body="چراغ خیابان خاموش است",
                     topic_id=s.topic_137, district=5, unit_id=s.unit_b, summary="چراغ خاموش")
    msg = screening.register_typed(db, a, t, T0)
    assert len(msg.tracking_code) == 9 and msg.tracking_code.isdigit()
    assert (msg.source, msg.status, msg.unit_id, msg.summary, msg.citizen.phone) == (
        "operator", "new", s.unit_b, "چراغ خاموش", "09127654321")
    assert db.scalars(select(AuditEntry.action).where(AuditEntry.object_id == msg.id)).all() == ["typed_message"]


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"caller": "abc"}, "شماره"),
        ({"body": "  "}, "خالی"),
        ({"kind": "complaint"}, "نوع پیام"),
        ({"line": "999"}, "سامانه"),
        ({"district": 30}, "نوع پیام یا منطقه"),
    ],
)
def test_register_typed_bad_input_registers_nothing(db, changes, error) -> None:
    seed(db)
    a, _ = _operators(db)
    values = dict(line="137", kind="request", caller="09127654321", body="متن")
    values.update(changes)
    before = len(db.scalars(select(Message)).all())
    with pytest.raises(ScreeningError, match=error):
        screening.register_typed(db, a, TypedMessage(**values), datetime.now(UTC))
    assert len(db.scalars(select(Message)).all()) == before


@pytest.mark.slow
def test_concurrent_claims_and_decisions_on_postgres_let_exactly_one_operator_win() -> None:
    """Real concurrency: threads with their own PostgreSQL connections race for one message."""
    import threading
    import uuid

    from sqlalchemy import text

    from ivr.db import make_engine, make_sessionmaker, transaction
    from ivr.migrate import upgrade
    from tests.conftest import POSTGRES_URL

    schema = f"ivr_race_{uuid.uuid4().hex[:10]}"
    admin_engine = make_engine(POSTGRES_URL)
    with admin_engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        upgrade(engine)
        factory = make_sessionmaker(engine)
        with transaction(factory) as session:
            s = seed(session)
            ids = []
            for i in range(8):
                user = User(username=f"racer{i}", full_name=f"کارشناس {i}", role="operator", password_hash="x")
                session.add(user)
                session.flush()
                ids.append(user.id)

        def race(work) -> list[str]:
            barrier = threading.Barrier(len(ids))
            results: list[str] = []

            def run(user_id: int) -> None:
                barrier.wait()
                try:
                    with transaction(factory) as session:
                        work(session, user_id)
                    results.append("won")
                except ClaimConflict:
                    results.append("conflict")

            threads = [threading.Thread(target=run, args=(uid,)) for uid in ids]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            return sorted(results)

        claims = race(lambda session, uid: screening.claim(session, s.messages[0], uid, T0))
        assert claims == ["conflict"] * 7 + ["won"]
        decisions = race(lambda session, uid: screening.classify(
            session, s.messages[1], uid,
            Classification(decision="refer", kind="request", topic_id=s.topic_137, unit_id=s.unit_b, summary="x"),
            T0, TZ))
        assert decisions == ["conflict"] * 7 + ["won"]
        with transaction(factory, readonly=True) as session:
            assert len(session.scalars(select(Referral).where(Referral.message_id == s.messages[1])).all()) == 1
    finally:
        engine.dispose()
        with admin_engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin_engine.dispose()


def test_classify_refer_uses_the_kinds_own_deadline_on_that_topic(db) -> None:
    from ivr.models import TopicDeadline

    s = seed(db)
    a, _ = _operators(db)
    refer = _refer(s)
    db.add(TopicDeadline(topic_id=refer.topic_id, kind=refer.kind, due_working_days=1))
    db.flush()
    screening.classify(db, s.messages[0], a, refer, T0, TZ)
    referral = db.scalars(select(Referral)).one()
    # Saturday + 1 working day = Sunday, not the topic's 3 days.
    assert referral.due_at == datetime(2026, 11, 29, 23, 59, 59, tzinfo=TZ)
