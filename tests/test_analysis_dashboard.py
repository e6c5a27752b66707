"""The dashboards' numbers equal hand-written SQL over generated data, on SQLite and PostgreSQL."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from ivr.analysis import dashboard as d
from ivr.analysis.generator import GeneratorError, call_outcome_shares, generate
from ivr.analysis.stats import benjamini_hochberg, poisson_sf
from ivr.demo import load_demo
from ivr.models import Feedback, Message, Referral, Reminder, Reply, Topic, Unit
from ivr.services.deadlines import answer_due_at
from tests.conftest import rolled_back

END = date(2026, 11, 1)
PERIOD = d.Period(END - timedelta(days=30), END - timedelta(days=1))
TEHRAN = ZoneInfo("Asia/Tehran")


def load_city(session: Session) -> None:
    """The demo city's units, topics and staff, without its month of calls."""
    load_demo(session, calls=0, messages=0)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def generated(request: pytest.FixtureRequest) -> Iterator[Session]:
    """One generated city per backend for the whole module (the tests only read), rolled back after."""
    with rolled_back(request.getfixturevalue(f"{request.param}_engine")) as factory, factory() as session:
        report = generate(session, calls=6000, messages=600, days=120, end=END, seed=7, chunk=2500,
                          load_city=load_city)
        assert report.counts["calls"] == 6000
        assert report.counts["messages"] == 600
        assert report.triggers_off == (request.param == "postgres")
        yield session


def _local(session: Session, column: str) -> tuple[str, str, str]:
    """SQL for the Tehran day, hour and weekday (0 = Sunday) of a UTC column."""
    if session.get_bind().dialect.name == "postgresql":
        local = f"({column} AT TIME ZONE 'Asia/Tehran')"
        return (
            f"CAST({local} AS date)",
            f"CAST(extract(hour FROM {local}) AS integer)",
            f"CAST(extract(dow FROM {local}) AS integer)",
        )
    return (
        f"date({column}, '+210 minutes')",
        f"CAST(strftime('%H', {column}, '+210 minutes') AS INTEGER)",
        f"CAST(strftime('%w', {column}, '+210 minutes') AS INTEGER)",
    )


def _rows(session: Session, sql: str, period: d.Period = PERIOD, **params: Any) -> list[Any]:
    return session.execute(
        text(sql), {"start": period.start.isoformat(), "end": period.end.isoformat(), **params}
    ).all()


def _in_period(session: Session, column: str) -> str:
    day, _, _ = _local(session, column)
    if session.get_bind().dialect.name == "postgresql":
        return f"{day} BETWEEN CAST(:start AS date) AND CAST(:end AS date)"
    return f"{day} BETWEEN :start AND :end"


def test_generator_keeps_the_source_proportions(generated: Session) -> None:
    s = generated
    calls, key4 = _rows(s, "SELECT count(*), sum(CASE WHEN keys LIKE '4%' THEN 1 ELSE 0 END) FROM calls")[0]
    assert (calls, key4) == (6000, 2700)  # 45 % press 4
    screened, referred, answered = _rows(
        s,
        "SELECT count(*), sum(CASE WHEN EXISTS (SELECT 1 FROM referrals r WHERE r.message_id = m.id)"
        " THEN 1 ELSE 0 END), sum(CASE WHEN EXISTS (SELECT 1 FROM replies p WHERE p.message_id = m.id)"
        " THEN 1 ELSE 0 END) FROM messages m",
    )[0]
    assert (screened, referred) == (600, 480)  # 80 % referred
    assert answered / referred > 0.97  # 99 % answered, drawn
    reasons = dict(_rows(s, "SELECT not_referred_reason, count(*) FROM messages WHERE not_referred_reason IS NOT NULL GROUP BY 1"))
    assert sum(reasons.values()) == 120
    assert set(reasons) == {"incomplete_message", "incomplete_caller", "duplicate", "irrelevant"}


def test_dashboard_calls_equal_hand_written_sql(generated: Session) -> None:
    s = generated
    filters = d.Filters(PERIOD)
    summary = d.calls_summary(s, filters)
    expected = {
        line: (n, k)
        for line, n, k in _rows(
            s,
            "SELECT line_code, count(*), sum(CASE WHEN keys LIKE '4%' THEN 1 ELSE 0 END) FROM calls "
            f"WHERE {_in_period(s, 'started_at')} GROUP BY line_code",
        )
    }
    got = {row["line"]: (row["calls"], row["key4"]) for row in summary.rows}
    assert got[d.LINE_LABELS["137"]] == expected["137"]
    assert got[d.LINE_LABELS["1888"]] == expected["1888"]
    assert got["جمع"] == (sum(v[0] for v in expected.values()), sum(v[1] for v in expected.values()))
    assert got["جمع"][0] > 1000

    previous = d.Period(PERIOD.start - timedelta(days=30), PERIOD.start - timedelta(days=1))
    (prev_total,) = _rows(s, f"SELECT count(*) FROM calls WHERE {_in_period(s, 'started_at')}", previous)[0]
    assert summary.rows[-1]["previous_calls"] == prev_total

    outcomes = {row["code"]: row["calls"] for row in d.calls_outcomes(s, filters).rows}
    assert outcomes == dict(
        _rows(s, f"SELECT outcome, count(*) FROM calls WHERE {_in_period(s, 'started_at')} GROUP BY outcome")
    )

    day, hour, dow = _local(s, "started_at")
    heat = {
        ((w + 1) % 7, h): n
        for w, h, n in _rows(
            s, f"SELECT {dow}, {hour}, count(*) FROM calls WHERE {_in_period(s, 'started_at')} GROUP BY 1, 2"
        )
    }
    table = d.calls_heatmap(s, filters)
    got_heat = {(w, h): row[f"h{h:02d}"] for w, row in enumerate(table.rows) for h in range(24) if row[f"h{h:02d}"]}
    assert got_heat == heat

    daily = {row["day"]: row["calls"] for row in d.calls_daily(s, filters).rows if row["calls"]}
    expected_daily = {
        d.jalali(x if isinstance(x, date) else date.fromisoformat(x)): n
        for x, n in _rows(s, f"SELECT {day}, count(*) FROM calls WHERE {_in_period(s, 'started_at')} GROUP BY 1")
    }
    assert daily == expected_daily

    keys = {row["key"]: row["calls"] for row in d.calls_keys(s, filters).rows}
    assert keys["4"] == sum(v[1] for v in expected.values())


FUNNEL_SQL = """
SELECT count(*),
  sum(CASE WHEN EXISTS (SELECT 1 FROM referrals r WHERE r.message_id = m.id) THEN 1 ELSE 0 END),
  sum(CASE WHEN m.not_referred_reason = 'incomplete_message' THEN 1 ELSE 0 END),
  sum(CASE WHEN m.not_referred_reason = 'incomplete_caller' THEN 1 ELSE 0 END),
  sum(CASE WHEN m.not_referred_reason = 'duplicate' THEN 1 ELSE 0 END),
  sum(CASE WHEN m.not_referred_reason = 'irrelevant' THEN 1 ELSE 0 END),
  sum(CASE WHEN EXISTS (SELECT 1 FROM replies p WHERE p.message_id = m.id) THEN 1 ELSE 0 END),
  (SELECT count(*) FROM feedback f JOIN messages x ON x.id = f.message_id WHERE {where_x}),
  (SELECT count(*) FROM feedback f JOIN messages x ON x.id = f.message_id WHERE {where_x} AND {happy}),
  (SELECT count(*) FROM reminders n JOIN messages x ON x.id = n.message_id WHERE {where_x})
FROM messages m WHERE {where_m}
"""


def _funnel(s: Session, period: d.Period, unit_id: int | None = None) -> tuple[int, ...]:
    unit = " AND {t}.unit_id = :unit" if unit_id is not None else ""
    happy = "f.satisfied" if s.get_bind().dialect.name == "postgresql" else "f.satisfied = 1"
    sql = FUNNEL_SQL.format(
        where_m=_in_period(s, "m.created_at") + unit.format(t="m"),
        where_x=_in_period(s, "x.created_at") + unit.format(t="x"),
        happy=happy,
    )
    return tuple(int(v or 0) for v in _rows(s, sql, period, unit=unit_id)[0])


def _funnel_from(row: dict[str, Any]) -> tuple[int, ...]:
    return (
        row["registered"], row["referred"], row["not_referred_incomplete_message"],
        row["not_referred_incomplete_caller"], row["not_referred_duplicate"],
        row["not_referred_irrelevant"], row["answered"], row["feedback"], row["satisfied"],
        row["reminders"],
    )


def test_dashboard_funnel_equals_hand_written_sql(generated: Session) -> None:
    s = generated
    table = d.message_funnel(s, d.Filters(PERIOD))
    expected = _funnel(s, PERIOD)
    assert expected[0] > 100 and expected[9] > 0
    assert _funnel_from(table.rows[0]) == expected
    previous = d.Period(PERIOD.start - timedelta(days=30), PERIOD.start - timedelta(days=1))
    assert _funnel_from(table.rows[1]) == _funnel(s, previous)
    assert table.rows[0]["referred_share"] == round(100 * expected[1] / expected[0], 1)


def test_dashboard_breakdowns_equal_hand_written_sql(generated: Session) -> None:
    s = generated
    filters = d.Filters(PERIOD)
    by_district = {row["code"]: row["registered"] for row in d.message_breakdown(s, filters, "district").rows}
    expected = dict(
        _rows(s, f"SELECT coalesce(district, 0), count(*) FROM messages WHERE {_in_period(s, 'created_at')} GROUP BY 1")
    )
    assert {k: v for k, v in by_district.items() if v} == expected
    by_kind = {row["code"]: row["referred"] for row in d.message_breakdown(s, filters, "kind").rows}
    expected_kind = dict(
        _rows(
            s,
            "SELECT kind, count(*) FROM messages m WHERE EXISTS (SELECT 1 FROM referrals r WHERE r.message_id = m.id)"
            f" AND {_in_period(s, 'm.created_at')} GROUP BY kind",
        )
    )
    assert {k: v for k, v in by_kind.items() if v} == expected_kind
    by_topic = {row["code"]: row["registered"] for row in d.message_breakdown(s, filters, "topic").rows}
    expected_topic = dict(
        _rows(s, f"SELECT coalesce(topic_id, 0), count(*) FROM messages WHERE {_in_period(s, 'created_at')} GROUP BY 1")
    )
    assert {k: v for k, v in by_topic.items() if v} == expected_topic


def test_dashboard_manager_scope_counts_only_their_unit(generated: Session) -> None:
    s = generated
    unit_id = s.scalar(select(Unit.id).where(Unit.code == "district-04"))
    assert unit_id is not None
    table = d.message_funnel(s, d.Filters(PERIOD, unit_id=unit_id))
    expected = _funnel(s, PERIOD, unit_id)
    assert expected[0] > 0
    assert _funnel_from(table.rows[0]) == expected
    units = {row["code"] for row in d.message_breakdown(s, d.Filters(PERIOD, unit_id=unit_id), "unit").rows}
    assert units == {unit_id}


def test_dashboard_bad_filters_are_refused_in_persian() -> None:
    today = date(2026, 11, 29)
    with pytest.raises(d.FilterError, match="تاریخ"):
        d.parse_filters({"from": "1405/13/01"}, today)
    with pytest.raises(d.FilterError, match="بعد از"):
        d.parse_filters({"from": "1405/09/08", "to": "1405/09/01"}, today)
    with pytest.raises(d.FilterError, match="سامانه"):
        d.parse_filters({"line": "110"}, today)
    f = d.parse_filters({"from": "۱۴۰۵/۰۹/۰۱", "to": "1405-09-08", "line": "137"}, today)
    assert f.period == d.Period(date(2026, 11, 22), date(2026, 11, 29)) and f.line == "137"
    assert d.parse_filters({}, today).period == d.Period(date(2026, 10, 31), today)
    assert d.jalali_month("1405/12") == d.Period(date(2027, 2, 20), date(2027, 3, 20))
    with pytest.raises(d.FilterError):
        d.jalali_month("1405/13")


def test_generator_refuses_bad_counts(session_factory: sessionmaker[Session]) -> None:
    session = session_factory()
    with pytest.raises(GeneratorError, match="at most one message per call"):
        generate(session, calls=10, messages=11)
    with pytest.raises(GeneratorError):
        generate(session, calls=-1, messages=0)
    session.close()


def test_generator_without_a_city_or_a_loader_says_to_load_the_demo(session_factory: sessionmaker[Session]) -> None:
    session = session_factory()
    with pytest.raises(GeneratorError, match="ivr demo"):
        generate(session, calls=10, messages=1)
    session.close()


def test_generator_follows_the_production_rules(generated: Session) -> None:
    s = generated
    rows = s.execute(select(Referral, Message).join(Message, Message.id == Referral.message_id)).all()
    reminders = {r.message_id: r for r in s.scalars(select(Reminder))}
    assert rows and any(r.resolved_at is None for r in reminders.values())
    assert any(r.resolved_at is not None for r in reminders.values())
    for referral, message in rows:
        reminder = reminders.get(message.id)
        # The deadline answer_due_at gives, from the referral or (reopen_at_unit) from the reminder.
        start = reminder.created_at if reminder is not None else referral.referred_at
        assert referral.due_at == answer_due_at(s, topic_id=message.topic_id, kind=message.kind, start=start, tz=TEHRAN)
        if reminder is not None and reminder.resolved_at is None:
            assert message.status == "referred" and referral.closed_at is None
        elif reminder is not None:
            # answer_referral: the unit's second reply closes the referral and resolves the reminder.
            last = s.scalar(select(func.max(Reply.created_at)).where(Reply.message_id == message.id))
            assert referral.closed_at == reminder.resolved_at == last
    rated = s.execute(select(Feedback.satisfied, Message.status).join(Message, Message.id == Feedback.message_id)).all()
    assert rated and all(status == "closed" for satisfied, status in rated if satisfied)


def test_generator_outcome_shares_keep_key4_at_45_percent() -> None:
    shares = call_outcome_shares(10_000_000, 1_000_000)
    assert shares["case_lookup"] == 0.45
    assert shares["message_registered"] == pytest.approx(0.09)
    assert sum(shares.values()) == pytest.approx(1.0)


# ---- hotspots ---------------------------------------------------------------------


def test_stats_poisson_tail_and_benjamini_hochberg_exact_values() -> None:
    assert poisson_sf(5, 1.0) == pytest.approx(0.0036598468, rel=1e-8)
    assert poisson_sf(0, 3.0) == 1.0
    assert poisson_sf(1, 2.0) == pytest.approx(1 - 0.1353352832, rel=1e-9)
    assert poisson_sf(60, 10.0) == pytest.approx(2.66e-24, rel=0.01)
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5])


def _message(s: Session, n: int, topic: Topic, district: int, day: date, unit: Unit) -> Message:
    m = Message(
        tracking_code=f"{n:09d}", line_code="137", kind="request", topic_id=topic.id,
        district=district, unit_id=unit.id, source="sms", status="referred",
        created_at=datetime.combine(day, time(12), TEHRAN).astimezone(UTC),
    )
    s.add(m)
    return m


def test_hotspots_flag_a_cell_far_above_its_history(session_factory: sessionmaker[Session]) -> None:
    s = session_factory()
    unit = Unit(code="u-crit", name="واحد", kind="deputy")
    s.add(unit)
    s.flush()
    topic = Topic(code="t-crit", line_code="137", name="آسفالت", menu_key="8", unit_id=unit.id)
    s.add(topic)
    s.flush()
    period = d.Period(date(2026, 10, 1), date(2026, 10, 30))
    n = 0
    # Six earlier periods of 30 days: 3 messages a period in districts 4 and 9, and in
    # district 12 twenty referred a period with one reminder each time.
    for back in range(0, 7):
        start = period.start - timedelta(days=30 * back)
        hot = {4: 16 if back == 0 else 3, 9: 4 if back == 0 else 3, 12: 20}
        for district, count in hot.items():
            for k in range(count):
                n += 1
                m = _message(s, n, topic, district, start + timedelta(days=k % 30), unit)
                if district == 12:
                    s.flush()
                    s.add(Referral(message_id=m.id, unit_id=unit.id, due_at=m.created_at))
                    if k < (10 if back == 0 else 1):
                        s.add(Reminder(message_id=m.id, unit_id=unit.id, reason="dissatisfied"))
    s.flush()
    table = d.hotspots(s, d.Filters(period))
    found = {(row["district"], row["kind"]): row for row in table.rows}
    assert set(found) == {(4, "volume"), (12, "reminders")}
    # History: April to September (183 days), 18 messages: 18 * 30 / 183 expected in 30 days.
    assert table.extra["history_from"] == d.jalali(date(2026, 4, 1))
    assert table.extra["history_to"] == d.jalali(date(2026, 9, 30))
    assert found[(4, "volume")]["observed"] == 16 and found[(4, "volume")]["expected"] == 3.0
    assert found[(4, "volume")]["p_value"] == float(f"{poisson_sf(16, 18 * 30 / 183):.3g}")
    assert found[(12, "reminders")]["observed"] == 10
    grid = {cell["district"]: cell for cell in table.extra["grid"]}
    assert len(grid) == 22 and grid[4]["hotspots"] == 1 and grid[9]["hotspots"] == 0
    assert grid[4]["registered"] == 16 and grid[9]["registered"] == 4
    s.rollback()
    s.close()


def test_dashboard_spans_split_whole_months_from_edge_days() -> None:
    assert d.spans(d.Period(date(2026, 8, 15), date(2026, 10, 31))) == (
        [d.Period(date(2026, 8, 15), date(2026, 8, 31))],
        d.Period(date(2026, 9, 1), date(2026, 10, 1)),
    )
    assert d.spans(d.Period(date(2026, 9, 1), date(2026, 9, 30))) == ([], d.Period(date(2026, 9, 1), date(2026, 9, 1)))
    assert d.spans(d.Period(date(2026, 9, 2), date(2026, 10, 30))) == ([d.Period(date(2026, 9, 2), date(2026, 10, 30))], None)
    assert d.spans(d.Period(date(2026, 1, 31), date(2026, 3, 1))) == (
        [d.Period(date(2026, 1, 31), date(2026, 1, 31)), d.Period(date(2026, 3, 1), date(2026, 3, 1))],
        d.Period(date(2026, 2, 1), date(2026, 2, 1)),
    )


LONG = d.Period(date(2026, 8, 15), date(2026, 10, 31))  # edge days and two whole months


def test_dashboard_long_period_reads_months_and_equals_hand_written_sql(generated: Session) -> None:
    s = generated
    table = d.message_funnel(s, d.Filters(LONG))
    assert _funnel_from(table.rows[0]) == _funnel(s, LONG)
    assert _funnel_from(table.rows[1]) == _funnel(s, LONG.previous())
    by_district = {row["code"]: row["registered"] for row in d.message_breakdown(s, d.Filters(LONG), "district").rows}
    expected = dict(
        _rows(s, f"SELECT coalesce(district, 0), count(*) FROM messages WHERE {_in_period(s, 'created_at')} GROUP BY 1", LONG)
    )
    assert {k: v for k, v in by_district.items() if v} == expected
    unit_id = s.scalar(select(Unit.id).where(Unit.code == "district-15"))
    assert _funnel_from(d.message_funnel(s, d.Filters(LONG, unit_id=unit_id)).rows[0]) == _funnel(s, LONG, unit_id)


def test_hotspots_long_period_reads_months_and_counts_like_sql(generated: Session) -> None:
    s = generated
    table = d.hotspots(s, d.Filters(LONG))
    # 78 days: 6 * 3 = 18 whole months before August.
    assert (table.extra["history_from"], table.extra["history_to"]) == (
        d.jalali(date(2025, 2, 1)), d.jalali(date(2026, 7, 31))
    )
    expected = dict(
        _rows(
            s,
            "SELECT district, count(*) FROM messages WHERE topic_id IS NOT NULL AND district IS NOT NULL"
            f" AND {_in_period(s, 'created_at')} GROUP BY district",
            LONG,
        )
    )
    assert {c["district"]: c["registered"] for c in table.extra["grid"] if c["registered"]} == expected


def test_dashboard_long_period_calls_read_months_and_equal_hand_written_sql(generated: Session) -> None:
    s = generated
    filters = d.Filters(LONG)
    outcomes = {row["code"]: (row["calls"], row["previous_calls"]) for row in d.calls_outcomes(s, filters).rows}
    sql = f"SELECT outcome, count(*) FROM calls WHERE {_in_period(s, 'started_at')} GROUP BY outcome"
    now, before = dict(_rows(s, sql, LONG)), dict(_rows(s, sql, LONG.previous()))
    assert outcomes == {k: (now.get(k, 0), before.get(k, 0)) for k in now.keys() | before.keys()}
    _, hour, dow = _local(s, "started_at")
    heat = {
        ((w + 1) % 7, h): n
        for w, h, n in _rows(
            s, f"SELECT {dow}, {hour}, count(*) FROM calls WHERE {_in_period(s, 'started_at')} GROUP BY 1, 2", LONG
        )
    }
    table = d.calls_heatmap(s, filters)
    assert {(w, h): row[f"h{h:02d}"] for w, row in enumerate(table.rows) for h in range(24) if row[f"h{h:02d}"]} == heat
    with pytest.raises(d.FilterError):
        d.calls_summary(s, d.Filters(LONG, unit_id=1))
