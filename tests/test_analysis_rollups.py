"""Rollups kept by triggers equal the raw totals after any sequence of changes, on both backends.

The raw totals are hand-written GROUP BY queries here, independent of ivr/analysis.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, text, update
from sqlalchemy.orm import Session, sessionmaker

from ivr.analysis.rollups import (
    drop_triggers,
    install_triggers,
    rebuild_rollups,
    split_sql,
    trigger_sql,
)
from ivr.models import Call, Feedback, Message, Referral, Reminder, Reply, Topic, Unit

# 23:30 in Tehran on the last day of February: offsets of up to two hours cross the city's
# midnight and the month boundary.
BASE = datetime(2026, 2, 28, 20, 0, tzinfo=UTC)
REASONS = (None, "incomplete_message", "incomplete_caller", "irrelevant")
OUTCOMES = (None, "case_lookup", "message_registered", "dropped", "operator")
KEYS = ("", "4", "41", "1", "2", "0")


def _local(dialect: str, column: str) -> tuple[str, str]:
    if dialect == "postgresql":
        return (
            f"CAST(({column} AT TIME ZONE 'Asia/Tehran') AS date)",
            f"CAST(extract(hour FROM ({column} AT TIME ZONE 'Asia/Tehran')) AS integer)",
        )
    return f"date({column}, '+210 minutes')", f"CAST(strftime('%H', {column}, '+210 minutes') AS INTEGER)"


MESSAGES_SQL = """
            SELECT {day}, m.line_code, m.kind, coalesce(m.topic_id, 0), coalesce(m.district, 0),
                   coalesce(m.unit_id, 0), count(*),
                   sum(CASE WHEN EXISTS (SELECT 1 FROM referrals r WHERE r.message_id = m.id)
                       THEN 1 ELSE 0 END),
                   sum(CASE WHEN m.not_referred_reason = 'incomplete_message' THEN 1 ELSE 0 END),
                   sum(CASE WHEN m.not_referred_reason = 'incomplete_caller' THEN 1 ELSE 0 END),
                   sum(CASE WHEN m.not_referred_reason = 'duplicate' THEN 1 ELSE 0 END),
                   sum(CASE WHEN m.not_referred_reason = 'irrelevant' THEN 1 ELSE 0 END),
                   sum(CASE WHEN EXISTS (SELECT 1 FROM replies p WHERE p.message_id = m.id)
                       THEN 1 ELSE 0 END),
                   sum((SELECT count(*) FROM feedback f WHERE f.message_id = m.id)),
                   sum((SELECT count(*) FROM feedback f WHERE f.message_id = m.id AND {happy})),
                   sum((SELECT count(*) FROM reminders n WHERE n.message_id = m.id))
            FROM messages m GROUP BY 1, 2, 3, 4, 5, 6"""


def raw_totals(session: Session) -> dict[str, set[tuple[Any, ...]]]:
    """Hand-written totals over the raw tables, in the rollups' shapes (zero rows left out)."""
    dialect = session.get_bind().dialect.name
    day, hour = _local(dialect, "started_at")
    mday, _ = _local(dialect, "m.created_at")
    happy = "f.satisfied" if dialect == "postgresql" else "f.satisfied = 1"
    month = (
        "CAST(date_trunc('month', m.created_at AT TIME ZONE 'Asia/Tehran') AS date)"
        if dialect == "postgresql"
        else "date(m.created_at, '+210 minutes', 'start of month')"
    )
    if dialect == "postgresql":
        cmonth = "CAST(date_trunc('month', started_at AT TIME ZONE 'Asia/Tehran') AS date)"
        dow = "CAST(extract(dow FROM started_at AT TIME ZONE 'Asia/Tehran') AS integer)"
    else:
        cmonth = "date(started_at, '+210 minutes', 'start of month')"
        dow = "CAST(strftime('%w', started_at, '+210 minutes') AS INTEGER)"
    q = {
        "rollup_call_hours": f"""
            SELECT {day}, {hour}, line_code, count(*),
                   sum(CASE WHEN keys LIKE '4%' THEN 1 ELSE 0 END)
            FROM calls GROUP BY 1, 2, 3""",
        "rollup_call_outcomes": f"""
            SELECT {day}, line_code, coalesce(outcome, 'in_progress'), substr(keys, 1, 1), count(*)
            FROM calls GROUP BY 1, 2, 3, 4""",
        "rollup_call_hours_monthly": f"""
            SELECT {cmonth}, {dow}, {hour}, line_code, count(*),
                   sum(CASE WHEN keys LIKE '4%' THEN 1 ELSE 0 END)
            FROM calls GROUP BY 1, 2, 3, 4""",
        "rollup_call_outcomes_monthly": f"""
            SELECT {cmonth}, line_code, coalesce(outcome, 'in_progress'), substr(keys, 1, 1), count(*)
            FROM calls GROUP BY 1, 2, 3, 4""",
        "rollup_messages": MESSAGES_SQL.format(day=mday, happy=happy),
        "rollup_messages_monthly": MESSAGES_SQL.format(day=month, happy=happy),
    }
    return {name: {_norm(row) for row in session.execute(text(sql))} for name, sql in q.items()}


def rollups(session: Session) -> dict[str, set[tuple[Any, ...]]]:
    """The rollup tables' rows that count anything."""
    counters = {
        "rollup_call_hours": 3,
        "rollup_call_outcomes": 4,
        "rollup_call_hours_monthly": 4,
        "rollup_call_outcomes_monthly": 4,
        "rollup_messages": 6,
        "rollup_messages_monthly": 6,
    }
    out = {}
    for table, keys in counters.items():
        rows = session.execute(text(f"SELECT * FROM {table}")).all()
        out[table] = {_norm(r) for r in rows if any(r[keys:])}
    return out


def _norm(row: Any) -> tuple[Any, ...]:
    return tuple(int(v) if isinstance(v, int | Decimal) else str(v) for v in row)


# ---- operations ------------------------------------------------------------------------

minutes = st.integers(min_value=0, max_value=150)
pick = st.integers(min_value=0, max_value=50)
operation = st.one_of(
    st.tuples(st.just("add_call"), st.sampled_from(("137", "1888")), minutes, st.sampled_from(KEYS),
              st.sampled_from(OUTCOMES)),
    st.tuples(st.just("end_call"), pick, st.sampled_from(OUTCOMES), st.sampled_from(KEYS)),
    st.tuples(st.just("move_call"), pick, minutes, st.sampled_from(("137", "1888"))),
    st.tuples(st.just("delete_call"), pick),
    st.tuples(st.just("add_message"), st.sampled_from(("137", "1888")), minutes, st.booleans(),
              st.sampled_from((None, 3, 15)), st.sampled_from(REASONS)),
    st.tuples(st.just("screen_message"), pick, st.sampled_from(REASONS), st.sampled_from((None, 3, 15)),
              st.booleans()),
    st.tuples(st.just("move_message"), pick, minutes),
    st.tuples(st.just("delete_message"), pick),
    st.tuples(st.just("add_referral"), pick),
    st.tuples(st.just("move_referral"), pick, pick),
    st.tuples(st.just("add_two_referrals"), pick),
    st.tuples(st.just("add_two_replies"), pick),
    st.tuples(st.just("move_all_replies"), pick, pick),
    st.tuples(st.just("delete_referral"), pick),
    st.tuples(st.just("add_reply"), pick),
    st.tuples(st.just("delete_reply"), pick),
    st.tuples(st.just("add_feedback"), pick, st.booleans()),
    st.tuples(st.just("flip_feedback"), pick),
    st.tuples(st.just("delete_feedback"), pick),
    st.tuples(st.just("add_reminder"), pick),
    st.tuples(st.just("delete_reminder"), pick),
)


class World:
    """Applies operations with the ORM and with Core statements, as other code would."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.n = 0
        self.units = [Unit(code=f"u{i}", name=f"u{i}", kind="deputy") for i in range(2)]
        session.add_all(self.units)
        session.flush()
        self.topics = [
            Topic(code="t137", line_code="137", name="t", menu_key="9"),
            Topic(code="t1888", line_code="1888", name="t"),
        ]
        session.add_all(self.topics)
        session.flush()

    def ids(self, model: Any) -> list[int]:
        return list(self.s.scalars(text(f"SELECT id FROM {model.__tablename__} ORDER BY id")))

    def choose(self, model: Any, k: int) -> int | None:
        ids = self.ids(model)
        return ids[k % len(ids)] if ids else None

    def apply(self, op: tuple[Any, ...]) -> None:
        s = self.s
        name = op[0]
        self.n += 1
        if name == "add_call":
            _, line, m, keys, outcome = op
            s.add(Call(line_code=line, channel_id=f"c{self.n}", driver="agi",
                       started_at=BASE + timedelta(minutes=m), keys=keys, outcome=outcome))
        elif name == "end_call" and (cid := self.choose(Call, op[1])):
            s.execute(update(Call).where(Call.id == cid).values(outcome=op[2], keys=op[3]))
        elif name == "move_call" and (cid := self.choose(Call, op[1])):
            call = s.get(Call, cid)
            assert call is not None
            call.started_at, call.line_code = BASE + timedelta(minutes=op[2]), op[3]
        elif name == "delete_call" and (cid := self.choose(Call, op[1])):
            s.execute(update(Message).where(Message.call_id == cid).values(call_id=None))
            s.execute(delete(Call).where(Call.id == cid))
        elif name == "add_message":
            _, line, m, has_topic, district, reason = op
            s.add(Message(
                tracking_code=f"{self.n:09d}", line_code=line,
                kind="request" if line == "137" else "complaint",
                topic_id=self.topics[0 if line == "137" else 1].id if has_topic else None,
                district=district, source="sms",
                status="not_referred" if reason else "new", not_referred_reason=reason,
                created_at=BASE + timedelta(minutes=m),
            ))
        elif name == "screen_message" and (mid := self.choose(Message, op[1])):
            _, _, reason, district, unit = op
            s.execute(update(Message).where(Message.id == mid).values(
                status="not_referred" if reason else "referred", not_referred_reason=reason,
                district=district, unit_id=self.units[1].id if unit else None))
        elif name == "move_message" and (mid := self.choose(Message, op[1])):
            message = s.get(Message, mid)
            assert message is not None
            message.created_at = BASE + timedelta(minutes=op[2])
        elif name == "delete_message" and (mid := self.choose(Message, op[1])):
            for model in (Reminder, Feedback, Reply, Referral):
                s.execute(delete(model).where(model.message_id == mid))
            s.execute(delete(Message).where(Message.id == mid))
        elif name == "add_referral" and (mid := self.choose(Message, op[1])):
            s.add(Referral(message_id=mid, unit_id=self.units[0].id, due_at=BASE + timedelta(days=7)))
        elif name == "move_referral" and (rid := self.choose(Referral, op[1])):
            mid = self.choose(Message, op[2])
            s.execute(update(Referral).where(Referral.id == rid).values(message_id=mid))
        elif name == "add_two_referrals" and (mid := self.choose(Message, op[1])):
            # One flush, one multi-row INSERT: both rows reach the triggers in one statement.
            s.add_all([Referral(message_id=mid, unit_id=u.id, due_at=BASE) for u in self.units])
        elif name == "add_two_replies" and (mid := self.choose(Message, op[1])):
            s.add_all([Reply(message_id=mid, text="a"), Reply(message_id=mid, text="b")])
        elif name == "move_all_replies" and (mid := self.choose(Message, op[1])):
            target = self.choose(Message, op[2])
            s.execute(update(Reply).where(Reply.message_id == mid).values(message_id=target))
        elif name == "delete_referral" and (rid := self.choose(Referral, op[1])):
            s.execute(delete(Referral).where(Referral.id == rid))
        elif name == "add_reply" and (mid := self.choose(Message, op[1])):
            s.add(Reply(message_id=mid, text="ok"))
        elif name == "delete_reply" and (rid := self.choose(Reply, op[1])):
            reply = s.get(Reply, rid)
            s.delete(reply)
        elif name == "add_feedback" and (mid := self.choose(Message, op[1])):
            s.add(Feedback(message_id=mid, satisfied=op[2], channel="sms"))
        elif name == "flip_feedback" and (fid := self.choose(Feedback, op[1])):
            feedback = s.get(Feedback, fid)
            assert feedback is not None
            feedback.satisfied = not feedback.satisfied
        elif name == "delete_feedback" and (fid := self.choose(Feedback, op[1])):
            s.execute(delete(Feedback).where(Feedback.id == fid))
        elif name == "add_reminder" and (mid := self.choose(Message, op[1])):
            s.add(Reminder(message_id=mid, unit_id=self.units[0].id, reason="dissatisfied"))
        elif name == "delete_reminder" and (rid := self.choose(Reminder, op[1])):
            s.execute(delete(Reminder).where(Reminder.id == rid))
        s.flush()


@pytest.mark.slow
@pytest.mark.timeout(600)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, min_size=5, max_size=60))
def test_rollups_equal_raw_totals_after_any_changes(
    session_factory: sessionmaker[Session], ops: list[tuple[Any, ...]]
) -> None:
    session = session_factory()
    try:
        world = World(session)
        for op in ops:
            world.apply(op)
        assert rollups(session) == raw_totals(session)
    finally:
        session.rollback()
        session.close()


def test_rollups_rebuild_equals_raw_totals(session_factory: sessionmaker[Session]) -> None:
    session = session_factory()
    try:
        world = World(session)
        for op in [("add_call", "137", 20, "41", None), ("add_call", "1888", 100, "", "dropped"),
                   ("add_message", "137", 40, True, 3, None), ("add_referral", 0), ("add_reply", 0),
                   ("add_feedback", 0, True), ("add_feedback", 0, False), ("add_reminder", 0),
                   ("add_message", "1888", 120, False, None, "irrelevant")]:
            world.apply(op)
        session.execute(text("UPDATE rollup_messages SET registered = registered + 7"))
        rebuilt = rebuild_rollups(session)
        assert rollups(session) == raw_totals(session)
        assert rebuilt == {
            "rollup_call_hours": 2, "rollup_call_outcomes": 2, "rollup_messages": 2,
            "rollup_call_hours_monthly": 2, "rollup_call_outcomes_monthly": 2, "rollup_messages_monthly": 2,
        }
    finally:
        session.rollback()
        session.close()


def test_rollups_message_crossing_tehran_midnight_counts_on_the_tehran_day(
    session_factory: sessionmaker[Session],
) -> None:
    session = session_factory()
    try:
        world = World(session)
        world.apply(("add_call", "137", 29, "4", "case_lookup"))  # 23:59 Tehran, 28 February
        world.apply(("add_call", "137", 30, "0", "operator"))  # 00:00 Tehran, 1 March
        rows = session.execute(
            text("SELECT day, hour, calls, key4 FROM rollup_call_hours ORDER BY day, hour")
        ).all()
        assert [(str(d), h, c, k) for d, h, c, k in rows] == [
            ("2026-02-28", 23, 1, 1),
            ("2026-03-01", 0, 1, 0),
        ]
    finally:
        session.rollback()
        session.close()


ROOT = Path(__file__).resolve().parent.parent


def test_rollups_schema_sql_holds_the_trigger_ddl_verbatim() -> None:
    schema = (ROOT / "schema.sql").read_text(encoding="utf-8")
    assert trigger_sql("postgresql") in schema


def test_rollups_migration_reads_the_frozen_sql_files_and_imports_no_live_code() -> None:
    source = (ROOT / "ivr" / "migrations" / "versions" / "0006_rollups.py").read_text(encoding="utf-8")
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert imports == ["from pathlib import Path", "from alembic import op", "import sqlalchemy as sa"]
    assert '_run("0006_rollup_triggers")' in source


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_rollups_trigger_files_split_into_whole_statements(dialect: str) -> None:
    statements = split_sql(trigger_sql(dialect))
    creates = [s for s in statements if s.startswith("CREATE TRIGGER")]
    assert len(creates) == (12 if dialect == "postgresql" else 18)
    assert all(not s.startswith("--") and s.strip() for s in statements)


def test_rollups_triggers_dropped_and_installed_again_from_the_files(db: Session) -> None:
    conn = db.connection()
    postgres = conn.dialect.name == "postgresql"
    count = (
        "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "WHERE t.tgname LIKE 'rollup_%' AND c.relnamespace = to_regnamespace(current_schema())::oid"
        if postgres else "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'rollup_%'"
    )
    installed = conn.execute(text(count)).scalar_one()
    assert installed == (12 if postgres else 18)
    drop_triggers(conn)
    assert conn.execute(text(count)).scalar_one() == 0
    install_triggers(conn)
    assert conn.execute(text(count)).scalar_one() == installed
