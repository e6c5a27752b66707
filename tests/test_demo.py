"""The demo city: the shapes PRODUCT.md promises, valid links, working logins, and no second load.

Loading hashes ~50 scrypt passwords, so the demo is loaded once per backend for this
module, inside a transaction rolled back at the end; the tests here only read it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from ivr.demo import DemoAlreadyLoaded, DemoReport, load_demo
from ivr.identifiers import is_valid_national_id, is_valid_tracking_code
from ivr.models import (
    Base,
    Call,
    Citizen,
    Feedback,
    Holiday,
    Message,
    Referral,
    Reminder,
    Reply,
    Topic,
    Unit,
    User,
    WorkingHours,
)
from ivr.services.deadlines import answer_due_at
from ivr.services.users import verify_password

NOW = datetime(2025, 3, 10, 6, 0, tzinfo=UTC)  # Monday 09:30 in Tehran, 20 Esfand 1403
TEHRAN = ZoneInfo("Asia/Tehran")
REFERRED = ("referred", "answered", "closed")


@dataclass
class Demo:
    db: Session
    report: DemoReport
    progress: list[int]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def demo(request: pytest.FixtureRequest) -> Iterator[Demo]:
    """The demo loaded once per backend, rolled back after the module."""
    engine = request.getfixturevalue(f"{request.param}_engine")
    conn = engine.connect()
    outer = conn.begin()
    db = Session(bind=conn, expire_on_commit=False, join_transaction_mode="create_savepoint")
    progress: list[int] = []
    try:
        yield Demo(db, load_demo(db, calls=2000, now=NOW, progress=progress.append), progress)
    finally:
        db.close()
        outer.rollback()
        conn.close()


def count(db: Session, model: type[Base]) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


def test_load_demo_report_counts_match_the_tables(demo: Demo) -> None:
    tables = Base.metadata.tables
    counted = {
        name: demo.db.scalar(select(func.count()).select_from(tables[name]))
        for name in demo.report.counts
    }

    assert counted == demo.report.counts
    assert demo.report.counts["calls"] == 2000
    assert demo.report.counts["cases"] == 300
    assert 200 <= demo.report.counts["citizens"] <= 500


def test_load_demo_progress_adds_up_to_the_rows_written(demo: Demo) -> None:
    assert sum(demo.progress) == sum(demo.report.counts.values())
    # Users are hashed one by one, so the slow step moves the bar per user.
    assert demo.progress.count(1) >= demo.report.counts["users"]


def test_load_demo_key_4_is_pressed_in_45_percent_of_calls(demo: Demo) -> None:
    calls = demo.db.execute(select(Call.keys, Call.outcome)).all()
    key_4 = [keys for keys, _ in calls if keys.startswith("4")]

    assert len(key_4) / len(calls) == pytest.approx(0.45, abs=0.03)
    assert all((outcome == "case_lookup") == keys.startswith("4") for keys, outcome in calls)


def test_load_demo_call_outcomes_cover_every_kind_of_call(demo: Demo) -> None:
    outcomes = Counter(demo.db.scalars(select(Call.outcome)))

    assert set(outcomes) == {
        "case_lookup",
        "message_registered",
        "follow_up",
        "guidance",
        "operator",
        "dropped",
        "nuisance",
        "irrelevant",
    }
    assert outcomes["message_registered"] > outcomes["follow_up"] > outcomes["nuisance"]


def test_load_demo_calls_fall_in_the_last_30_days_mostly_in_daytime(demo: Demo) -> None:
    calls = demo.db.scalars(select(Call)).all()

    for call in calls:
        assert NOW - timedelta(days=30) <= call.started_at < NOW
        assert call.ended_at is not None and call.started_at <= call.ended_at <= NOW
        assert call.answered_at is None or call.started_at <= call.answered_at <= call.ended_at
    assert {c.driver for c in calls} == {"agi"}
    assert len({c.channel_id for c in calls}) == len(calls)
    assert all(c.channel_id.startswith("demo-") for c in calls)
    daytime = [c for c in calls if 8 <= c.started_at.astimezone(TEHRAN).hour < 21]
    assert len(daytime) / len(calls) > 0.75


def test_load_demo_each_message_registered_call_has_its_voice_message(demo: Demo) -> None:
    registered = demo.db.scalars(select(Call).where(Call.outcome == "message_registered")).all()
    voice = demo.db.scalars(select(Message).where(Message.source == "phone_voice")).all()
    by_call = {m.call_id: m for m in voice}

    assert len(voice) == len(registered)
    for call in registered:
        message = by_call[call.id]
        assert message.line_code == call.line_code
        assert message.citizen_id == call.citizen_id
        assert call.keys.startswith("1")
        if call.line_code == "137":
            topic = demo.db.get(Topic, message.topic_id)
            assert topic is not None
            assert call.keys in (
                f"1{topic.menu_key}{message.district}#1",
                f"1{topic.menu_key}{message.district}##1",
            )


def test_load_demo_messages_come_by_phone_operator_and_sms_on_both_lines(demo: Demo) -> None:
    rows = demo.db.execute(select(Message.line_code, Message.source, Message.kind)).all()

    assert {source for _, source, _ in rows} == {"phone_voice", "operator", "sms"}
    assert {kind for line, _, kind in rows if line == "1888"} == {
        "criticism",
        "suggestion",
        "complaint",
        "appreciation",
    }
    assert {kind for line, _, kind in rows if line == "137"} == {"request"}


def test_load_demo_screened_messages_are_80_percent_referred(demo: Demo) -> None:
    statuses = Counter(demo.db.scalars(select(Message.status)))
    referred = sum(statuses[s] for s in REFERRED)
    screened = referred + statuses["not_referred"]

    assert referred / screened == pytest.approx(0.80, abs=0.03)
    assert statuses["new"] > 0 and statuses["closed"] > 0
    assert statuses["answered"] > statuses["referred"] > statuses["closed"] / 4


def test_load_demo_all_four_not_referred_reasons_appear(demo: Demo) -> None:
    reasons = Counter(
        demo.db.scalars(select(Message.not_referred_reason).where(Message.status == "not_referred"))
    )

    assert set(reasons) == {"incomplete_message", "incomplete_caller", "duplicate", "irrelevant"}


def test_load_demo_duplicates_point_at_an_earlier_message_of_same_citizen_or_topic(
    demo: Demo,
) -> None:
    original = aliased(Message)
    pairs = demo.db.execute(
        select(Message, original).join(original, Message.duplicate_of_id == original.id)
    ).all()

    assert pairs
    assert len(pairs) == count_duplicates(demo.db)
    for duplicate, first in pairs:
        assert duplicate.not_referred_reason == "duplicate"
        assert first.created_at < duplicate.created_at
        assert first.line_code == duplicate.line_code
        assert (
            first.citizen_id is not None and first.citizen_id == duplicate.citizen_id
        ) or first.topic_id == duplicate.topic_id


def count_duplicates(db: Session) -> int:
    return (
        db.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.not_referred_reason == "duplicate")
        )
        or 0
    )


def test_load_demo_unscreened_1888_messages_wait_for_topic_and_district(demo: Demo) -> None:
    new = demo.db.scalars(select(Message).where(Message.status == "new")).all()

    assert new
    assert all(m.screened_at is None for m in new)
    assert all(m.topic_id is None and m.unit_id is None for m in new if m.line_code == "1888")
    # A 137 caller picks the topic, so register_message gives the message its topic's usual unit.
    units = {tid: uid for tid, uid in demo.db.execute(select(Topic.id, Topic.unit_id))}
    assert all(m.topic_id is not None and m.unit_id == units[m.topic_id] for m in new if m.line_code == "137")


def test_load_demo_tracking_codes_are_valid_and_unique(demo: Demo) -> None:
    codes = demo.db.scalars(select(Message.tracking_code)).all()

    assert all(is_valid_tracking_code(c) for c in codes)
    assert len(set(codes)) == len(codes)


def test_load_demo_has_22_district_offices(demo: Demo) -> None:
    offices = demo.db.scalars(select(Unit).where(Unit.kind == "district_office")).all()

    assert sorted(u.district or 0 for u in offices) == list(range(1, 23))
    assert {u.code for u in offices} == {f"district-{d:02d}" for d in range(1, 23)}
    assert any(u.name == "شهرداری منطقه ۷" for u in offices)


def test_load_demo_units_form_a_tree_under_the_deputies(demo: Demo) -> None:
    units = demo.db.scalars(select(Unit)).all()
    by_id = {u.id: u for u in units}

    assert all(u.parent_id is None for u in units if u.kind == "deputy")
    assert all(
        u.parent_id is not None and by_id[u.parent_id].kind == "deputy"
        for u in units
        if u.kind != "deputy"
    )
    assert {"waste", "parks", "roads", "traffic"} <= {u.code for u in units}
    assert all(u.code.isascii() for u in units)


def test_load_demo_137_menu_keys_1_to_6_each_have_a_topic(demo: Demo) -> None:
    topics = demo.db.scalars(select(Topic)).all()
    menu = {t.menu_key: t for t in topics if t.line_code == "137"}

    assert sorted(menu) == ["1", "2", "3", "4", "5", "6"]
    assert [menu[k].code for k in "123456"] == [
        "cleaning",
        "roads",
        "lighting",
        "green",
        "traffic",
        "other_137",
    ]
    assert menu["1"].name == "نظافت و پسماند"
    assert all(t.menu_key is None for t in topics if t.line_code == "1888")
    assert all(t.unit_id is not None and 1 <= t.due_working_days <= 365 for t in topics)


def test_load_demo_every_unit_has_exactly_one_manager(demo: Demo) -> None:
    managers = demo.db.scalars(select(User).where(User.role == "manager")).all()
    units = demo.db.scalars(select(Unit.id)).all()

    assert all(m.unit_id is not None for m in managers)
    assert sorted(m.unit_id or 0 for m in managers) == sorted(units)


def test_load_demo_staff_roles_are_as_promised(demo: Demo) -> None:
    roles = Counter(demo.db.scalars(select(User.role)))

    assert {r: n for r, n in roles.items() if r != "manager"} == {
        "operator": 6,
        "supervisor": 2,
        "inspector": 1,
        "analyst": 1,
        "admin": 1,
    }


def test_load_demo_logins_verify_against_the_stored_hashes(demo: Demo) -> None:
    logins = demo.report.logins
    users = {u.username: u for u in demo.db.scalars(select(User))}

    assert {name for name, _, _ in logins} == set(users)
    assert all(users[name].role == role for name, role, _ in logins)
    assert len({password for _, _, password in logins}) == len(logins)
    assert all(len(password) >= 10 for _, _, password in logins)
    assert all(password not in users[name].password_hash for name, _, password in logins)
    # scrypt is slow on purpose: one login of each role proves the hashing path.
    first_of_role = {role: (name, password) for name, role, password in reversed(logins)}
    for name, password in first_of_role.values():
        assert verify_password(users[name].password_hash, password)
    name, _, password = logins[0]
    assert not verify_password(users[name].password_hash, password + "!")


def test_load_demo_referrals_go_to_a_managed_unit_and_fall_due_later(demo: Demo) -> None:
    rows = demo.db.execute(select(Referral, Message).join(Message)).all()
    managers = {
        u.id: u.unit_id for u in demo.db.scalars(select(User).where(User.role == "manager"))
    }

    assert rows
    for referral, message in rows:
        assert message.status in REFERRED
        assert referral.unit_id == message.unit_id
        assert referral.manager_id is not None and managers[referral.manager_id] == referral.unit_id
        assert message.screened_at is not None and referral.referred_at == message.screened_at
        assert referral.referred_at < referral.due_at
    referred_messages = (
        demo.db.scalar(
            select(func.count()).select_from(Message).where(Message.status.in_(REFERRED))
        )
        or 0
    )
    assert referred_messages == len(rows)
    district_units = {m.unit_id for _, m in rows if m.district is not None} & set(
        demo.db.scalars(select(Unit.id).where(Unit.kind == "district_office"))
    )
    assert district_units, "district offices receive referrals too"


def test_load_demo_replies_follow_referral_and_most_are_answered(demo: Demo) -> None:
    rows = demo.db.execute(
        select(Reply, Referral, Message)
        .join(Referral, Reply.referral_id == Referral.id)
        .join(Message, Reply.message_id == Message.id)
    ).all()
    statuses = Counter(demo.db.scalars(select(Message.status).where(Message.status.in_(REFERRED))))

    reopened = set(demo.db.scalars(select(Reminder.message_id).where(Reminder.resolved_at.is_(None))))
    replied = {message.id for _, _, message in rows}
    assert len(replied) == statuses["answered"] + statuses["closed"] + len(reopened)
    assert reopened <= replied
    assert statuses["answered"] + statuses["closed"] > 3 * statuses["referred"]
    latest: dict[int, Reply] = {}
    for reply, referral, message in rows:
        assert reply.message_id == referral.message_id == message.id
        assert referral.referred_at < reply.created_at < NOW
        assert reply.author_id == referral.manager_id
        assert reply.text
        if message.id not in latest or reply.created_at > latest[message.id].created_at:
            latest[message.id] = reply
    for _reply, referral, message in rows:
        if message.id in reopened:
            assert referral.closed_at is None and message.status == "referred"
        else:
            assert referral.closed_at == latest[message.id].created_at
    late = [r for r, ref, _ in rows if ref.closed_at is not None and r.created_at > ref.due_at]
    assert 0 < len(late) < len(rows) / 3


def test_load_demo_feedback_is_81_percent_satisfied(demo: Demo) -> None:
    feedback = demo.db.scalars(select(Feedback)).all()
    satisfied = [f for f in feedback if f.satisfied]

    assert len(satisfied) / len(feedback) == pytest.approx(0.81, abs=0.03)
    closed = demo.db.scalars(select(Message.id).where(Message.status == "closed")).all()
    assert set(closed) <= {f.message_id for f in satisfied}


def test_load_demo_reminders_reopen_dissatisfied_137_requests_at_the_same_unit(
    demo: Demo,
) -> None:
    rows = demo.db.execute(
        select(Reminder, Feedback, Message)
        .join(Feedback, Reminder.feedback_id == Feedback.id)
        .join(Message, Reminder.message_id == Message.id)
    ).all()
    dissatisfied_137 = (
        demo.db.scalar(
            select(func.count())
            .select_from(Feedback)
            .join(Message, Feedback.message_id == Message.id)
            .where(Feedback.satisfied.is_(False), Message.line_code == "137")
        )
        or 0
    )

    assert rows and len(rows) == dissatisfied_137 == count(demo.db, Reminder)
    for reminder, feedback, message in rows:
        assert not feedback.satisfied
        assert message.line_code == "137"
        assert reminder.unit_id == message.unit_id
        assert reminder.reason == "dissatisfied"
        referral = demo.db.scalars(select(Referral).where(Referral.message_id == message.id)).one()
        replies = demo.db.scalars(select(Reply).where(Reply.message_id == message.id).order_by(Reply.created_at)).all()
        if reminder.resolved_at is None:
            # Back in the unit's inbox with a new deadline after the reminder.
            assert message.status == "referred" and referral.closed_at is None
            assert referral.due_at > reminder.created_at and len(replies) == 1
        else:
            # The unit answered again: a second reply closed it.
            assert len(replies) == 2 and replies[1].created_at == reminder.resolved_at == referral.closed_at
    assert {r.resolved_at is None for r, _, _ in rows} == {True, False}


def test_load_demo_citizens_have_unique_mobile_numbers(demo: Demo) -> None:
    citizens = demo.db.scalars(select(Citizen)).all()

    assert all(len(c.phone) == 11 and c.phone[:4] in ("0912", "0935", "0901") for c in citizens)
    assert len({c.phone for c in citizens}) == len(citizens)
    assert all(is_valid_national_id(c.national_id) for c in citizens if c.national_id)
    assert any(c.name for c in citizens)


def test_load_demo_working_hours_leave_friday_closed(demo: Demo) -> None:
    hours = {h.weekday: (h.opens, h.closes) for h in demo.db.scalars(select(WorkingHours))}

    assert hours == {
        5: (time(7), time(19)),
        6: (time(7), time(19)),
        0: (time(7), time(19)),
        1: (time(7), time(19)),
        2: (time(7), time(19)),
        3: (time(7), time(13)),
    }


def test_load_demo_holidays_are_jalali_days_stored_gregorian(demo: Demo) -> None:
    holidays = {h.day: h.name for h in demo.db.scalars(select(Holiday))}

    # 1 Farvardin 1403 and 1404, 29 Esfand 1403, 22 Bahman 1404.
    assert holidays[date(2024, 3, 20)] == "نوروز"
    assert holidays[date(2025, 3, 21)] == "نوروز"
    assert holidays[date(2025, 3, 19)] == "ملی شدن صنعت نفت"
    assert holidays[date(2026, 2, 11)] == "پیروزی انقلاب اسلامی"
    assert len(holidays) == 20


def test_load_demo_case_lookups_mostly_name_loaded_cases(demo: Demo) -> None:
    from ivr.services.cases import find_case

    lookups = demo.db.scalars(select(Call.keys).where(Call.outcome == "case_lookup")).all()
    found = [
        k
        for k in lookups
        if find_case(demo.db, "urban_planning" if k[1] == "1" else "article100", k[2:-1])
        is not None
    ]

    assert len(found) / len(lookups) == pytest.approx(0.9, abs=0.05)


def test_load_demo_second_load_raises_demo_already_loaded(demo: Demo) -> None:
    units = count(demo.db, Unit)

    with pytest.raises(DemoAlreadyLoaded, match="already loaded"):
        load_demo(demo.db, calls=10, now=NOW)

    assert count(demo.db, Unit) == units


def test_load_demo_naive_now_is_refused(demo: Demo) -> None:
    with pytest.raises(ValueError, match="aware"):
        load_demo(demo.db, now=datetime(2025, 3, 10, 9, 30))



def test_load_demo_referral_due_dates_are_the_production_deadlines(demo: Demo) -> None:
    rows = demo.db.execute(select(Referral, Message).join(Message)).all()
    reminded = {r.message_id: r.created_at for r in demo.db.scalars(select(Reminder))}
    reopened = set(demo.db.scalars(select(Reminder.message_id).where(Reminder.resolved_at.is_(None))))

    assert rows and reopened
    for referral, message in rows:
        # A re-opened request counts its new deadline from the reminder, as reopen_at_unit does.
        start = reminded.get(message.id, referral.referred_at)
        assert referral.due_at == answer_due_at(
            demo.db, topic_id=message.topic_id, kind=message.kind, start=start, tz=TEHRAN
        )
        if message.id in reopened:
            assert referral.escalated_at is None and referral.closed_at is None
            assert message.status == "referred" and message.updated_at == start


def test_load_demo_satisfied_citizens_close_their_message_as_record_feedback_does(demo: Demo) -> None:
    rated = demo.db.execute(select(Feedback.satisfied, Message.status).join(Message)).all()

    assert rated
    assert all(status == "closed" for satisfied, status in rated if satisfied)
    assert all(status != "closed" for satisfied, status in rated if not satisfied)
