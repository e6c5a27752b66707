"""Calls and messages at the source's scale (10 million calls, 1 million messages), fast.

The shapes are the demo city's (ivr/citydata.py) and PRODUCT.md's: 45 % of calls press 4 for
a case, 80 % of messages are referred and 20 % are not for the four reasons, 99 % of the
referred are answered, 81 % of rated replies satisfy, a dissatisfied 137 caller re-opens
the request as a reminder. Calls spread over `days` days before `end`, shaped by Tehran's
hours and weekdays. Shares are exact quotas per chunk, shuffled. A few topic x district
cells run hot in the last 30 days (more messages, or more reminders), so critical points
have something to find.

On PostgreSQL every chunk goes in by COPY with the rollup triggers (and foreign-key
triggers) switched off for the loading transaction (`session_replication_role`), and the
rollups are rebuilt once at the end; elsewhere (SQLite, tests) rows go in by executemany
with the triggers on. Needs the demo city's units, topics and staff (`load_city` loads them if
missing: the CLI passes the demo's loader).

Rows are written in bulk, too many for a service call each, but the rules are the product's, used as
pure functions: a referral falls due `deadline_after` the topic's (or kind's) working days on the
city's calendar, a satisfied citizen closes the message, a dissatisfied 137 caller re-opens the
referral at the same unit with a new deadline from that moment (as `reopen_at_unit` does), and the
unit's next reply closes it again and resolves the reminder (as `answer_referral` does).
"""
from __future__ import annotations

import itertools
import random
import time as clock
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session
from stdnum import verhoeff

from ivr.analysis.rollups import rebuild_rollups
from ivr.citydata import (
    CALL_OUTCOME_SHARES,
    DISTRICT_TOPICS,
    DISTRICT_WEIGHTS,
    DISTRICTS,
    HOUR_WEIGHTS,
    KINDS_1888,
    NOT_REFERRED_SHARES,
    OTHER_CALL_KEYS,
    PLAIN_CALL_KEYS,
    REFERRED_SHARE,
    REPLY_TEXTS,
    SATISFIED_SHARE,
    TEHRAN,
    TOPICS_137,
    TOPICS_1888,
    WEEKDAY_WEIGHTS,
)
from ivr.identifiers import TRACKING_CODE_LENGTH
from ivr.models import (
    Base,
    Call,
    Feedback,
    Holiday,
    Message,
    Referral,
    Reminder,
    Reply,
    Topic,
    Unit,
    User,
)
from ivr.services.calendar import deadline_after
from ivr.services.deadlines import working_days_to_answer

ANSWERED_SHARE = 0.99
FEEDBACK_SHARE = 0.60
KEY4_SHARE = CALL_OUTCOME_SHARES["case_lookup"]
DEFAULT_DAYS = 13 * 365  # the source: about 770,000 calls a year, 10 million since 2006
HOT_DAYS = 30
# (topic code, district): more messages in the last HOT_DAYS days; and more reminders.
HOT_VOLUME_CELLS = (("roads", 4), ("cleaning", 15), ("lighting", 11))
HOT_REMINDER_CELL = ("green", 7)
HOT_SHARE = 0.05
CALL_SECONDS = (20, 240)
CHUNK = 100_000


class GeneratorError(ValueError):
    """Bad generator arguments (negative counts, more messages than calls can carry)."""


@dataclass
class GenerationReport:
    """Rows written per table, rollup rows after the rebuild, and how long it took."""

    counts: dict[str, int] = field(default_factory=dict)
    rollups: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    triggers_off: bool = False


def call_outcome_shares(calls: int, messages: int) -> dict[str, float]:
    """The demo's outcome shares with key 4 kept at 45 % and messages registered set by `messages`.

    Nine in ten messages are left by phone; the rest are typed by operators or sent by SMS.
    The other outcomes keep their relative sizes.
    """
    voice = min(CALL_OUTCOME_SHARES["message_registered"], 0.9 * messages / calls) if calls else 0.0
    fixed = {"case_lookup": KEY4_SHARE, "message_registered": voice}
    rest = {k: v for k, v in CALL_OUTCOME_SHARES.items() if k not in fixed}
    scale = (1.0 - sum(fixed.values())) / sum(rest.values())
    return {**fixed, **{k: v * scale for k, v in rest.items()}}


def _apportion(total: int, shares: dict[str, float]) -> dict[str, int]:
    """Split `total` into whole counts proportional to `shares` (largest remainder)."""
    weight = sum(shares.values())
    exact = {k: total * v / weight for k, v in shares.items()}
    counts = {k: int(x) for k, x in exact.items()}
    for k in sorted(exact, key=lambda k: exact[k] - counts[k], reverse=True)[: total - sum(counts.values())]:
        counts[k] += 1
    return counts


def _quota(rng: random.Random, total: int, shares: dict[str, float]) -> list[str]:
    items = [k for k, n in _apportion(total, shares).items() for _ in range(n)]
    rng.shuffle(items)
    return items


class _Writer:
    """Writes rows of one table: COPY on PostgreSQL, executemany elsewhere."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.postgres = session.connection().dialect.name == "postgresql"

    def write(self, model: type[Base], columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        table = Base.metadata.tables[model.__tablename__]
        if self.postgres:
            dbapi = self.session.connection().connection.dbapi_connection
            assert dbapi is not None
            with dbapi.cursor() as cur:  # type: ignore[attr-defined]
                sql = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
                with cur.copy(sql) as copy:
                    for row in rows:
                        copy.write_row(row)
        else:
            self.session.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])


@dataclass
class _City:
    topics: dict[str, tuple[int, int | None, int]]  # code -> (id, unit id, due working days)
    districts: dict[int, int]  # district -> district office unit id
    managers: dict[int, int]  # unit id -> manager user id
    screeners: list[int]


def _load_city(session: Session, load_city: Callable[[Session], object] | None) -> _City:
    if load_city is not None and session.scalar(select(func.count()).select_from(Topic)) == 0:
        load_city(session)
    topics = {
        code: (tid, unit, days)
        for code, tid, unit, days in session.execute(
            select(Topic.code, Topic.id, Topic.unit_id, Topic.due_working_days)
        )
    }
    missing = [t[0] for t in (*TOPICS_137, *TOPICS_1888) if t[0] not in topics]
    if missing:
        raise GeneratorError(f"the demo city's topics are missing ({', '.join(missing)}): load it with `ivr demo`")
    districts: dict[int, int] = {
        d: uid
        for d, uid in session.execute(
            select(Unit.district, Unit.id).where(Unit.kind == "district_office", Unit.district.is_not(None))
        )
        if d is not None
    }
    managers = {
        unit_id: user_id
        for unit_id, user_id in session.execute(
            select(User.unit_id, User.id).where(User.role == "manager", User.unit_id.is_not(None))
        )
        if unit_id is not None
    }
    screeners = list(session.scalars(select(User.id).where(User.role.in_(("operator", "supervisor")))))
    if not screeners:
        raise GeneratorError("no operator or supervisor to screen messages")
    return _City(topics, districts, managers, screeners)


def _next_id(session: Session, model: type[Base]) -> int:
    return int(session.scalar(select(func.coalesce(func.max(model.id), 0))) or 0) + 1  # type: ignore[attr-defined]


class _Generator:
    def __init__(self, session: Session, rng: random.Random, end: date, days: int, city: _City) -> None:
        self.session = session
        self.rng = rng
        self.city = city
        self.writer = _Writer(session)
        self.now = datetime.combine(end, time(0), TEHRAN).astimezone(UTC)
        self.hot_from = self.now - timedelta(days=HOT_DAYS)
        first = end - timedelta(days=days)
        # One slot per Tehran hour of the period, weighted by hour of day and weekday.
        self.slots: list[datetime] = []
        weights: list[float] = []
        for k in range(days):
            day = first + timedelta(days=k)
            for hour in range(24):
                self.slots.append(datetime.combine(day, time(hour), TEHRAN).astimezone(UTC))
                weights.append(HOUR_WEIGHTS[hour] * WEEKDAY_WEIGHTS.get(day.weekday(), 1.0))
        self.cum = list(itertools.accumulate(weights))
        # The city's calendar, read once: deadlines are counted on it without a query per message.
        self.holidays = set(session.scalars(select(Holiday.day).where(Holiday.day >= first - timedelta(days=1))))
        self.working_days: dict[tuple[int, str], int] = {}
        self.deadlines: dict[tuple[date, int], datetime] = {}
        self.ids = {m: _next_id(session, m) for m in (Call, Message, Referral, Reply, Feedback)}
        self.codes: set[str] = set(session.scalars(select(Message.tracking_code)))
        self.last_of_topic: dict[str, int] = {}
        self.counts = {t: 0 for t in ("calls", "messages", "referrals", "replies", "feedback", "reminders")}

    def due(self, topic_id: int, kind: str, start: datetime) -> datetime:
        """The production deadline (`answer_due_at`) of a message referred or re-opened at `start`."""
        days = self.working_days.get((topic_id, kind))
        if days is None:  # once per topic and kind: the topic's deadline or the kind's own
            days = self.working_days[(topic_id, kind)] = working_days_to_answer(self.session, topic_id, kind)
        key = (start.astimezone(TEHRAN).date(), days)
        due = self.deadlines.get(key)
        if due is None:
            due = self.deadlines[key] = deadline_after(start, days, TEHRAN, self.holidays).astimezone(UTC)
        return due

    def times(self, n: int) -> list[datetime]:
        rng = self.rng
        return [
            slot + timedelta(seconds=rng.random() * 3600)
            for slot in rng.choices(self.slots, cum_weights=self.cum, k=n)
        ]

    def code(self) -> str:
        rng = self.rng
        while True:
            low = 10 ** (TRACKING_CODE_LENGTH - 2)
            body = str(rng.randrange(low, 10 * low))
            code = body + verhoeff.calc_check_digit(body)
            if code not in self.codes:
                self.codes.add(code)
                return code

    # ---- calls -----------------------------------------------------------------------

    def calls(self, n: int, shares: dict[str, float]) -> list[tuple[int, str, datetime]]:
        """Write n calls; return (call id, line, ended) of those that registered a message."""
        rng = self.rng
        outcomes = _quota(rng, n, shares)
        starts = self.times(n)
        rows = []
        voice = []
        call_id = self.ids[Call]
        for outcome, started in zip(outcomes, starts, strict=True):
            line = "137" if rng.random() < 0.5 else "1888"
            if outcome == "dropped" and rng.random() < 0.35:
                answered = None
                ended = started + timedelta(seconds=rng.uniform(3, 20))
            else:
                answered = started + timedelta(seconds=rng.uniform(0.5, 3))
                ended = answered + timedelta(seconds=rng.uniform(*CALL_SECONDS))
            keys = self.keys(outcome, line)
            caller = None if rng.random() < 0.03 else f"09{rng.randrange(10**9):09d}"
            rows.append((call_id, line, f"gen-{call_id}", "agi", caller, started, answered, ended, keys, outcome))
            if outcome == "message_registered":
                voice.append((call_id, line, ended))
            call_id += 1
        self.writer.write(
            Call,
            ("id", "line_code", "channel_id", "driver", "caller_number", "started_at", "answered_at",
             "ended_at", "keys", "outcome"),
            rows,
        )
        self.ids[Call] = call_id
        self.counts["calls"] += n
        return voice

    def keys(self, outcome: str, line: str) -> str:
        """Keys as the demo logs them; only case lookups start with 4."""
        rng = self.rng
        if outcome == "case_lookup":
            return "4" + rng.choice("12") + str(rng.randrange(10**6, 10**9)) + "#"
        if outcome == "message_registered":
            return "1" + (rng.choice("123456") + str(rng.randint(1, 22)) + "#" if line == "137" else rng.choice("1234")) + "#1"
        if outcome == "follow_up":
            return "2" + str(rng.randrange(10**8, 10**9)) + "#"
        return rng.choice(PLAIN_CALL_KEYS.get(outcome, OTHER_CALL_KEYS))

    # ---- messages --------------------------------------------------------------------

    def messages(self, voice: list[tuple[int, str, datetime]], typed: int) -> None:
        """Write the messages of one chunk (voice ones from its calls, plus `typed`) and what followed."""
        rng = self.rng
        city = self.city
        planned: list[tuple[int | None, str, str, datetime]] = [(cid, line, "phone_voice", ended) for cid, line, ended in voice]
        planned += [
            (None, "137" if rng.random() < 0.5 else "1888", rng.choice(("operator", "sms")), when)
            for when in self.times(typed)
        ]
        n = len(planned)
        referred_n = round(n * REFERRED_SHARE)
        fates = ["referred"] * referred_n + _quota(rng, n - referred_n, NOT_REFERRED_SHARES)
        rng.shuffle(fates)
        messages: list[tuple[Any, ...]] = []
        referrals: list[tuple[Any, ...]] = []
        replies: list[tuple[Any, ...]] = []
        feedback: list[tuple[Any, ...]] = []
        reminders: list[tuple[Any, ...]] = []
        w137 = [t[5] for t in TOPICS_137]
        w1888 = [t[4] for t in TOPICS_1888]
        kind_weights = [k[2] for k in KINDS_1888]
        for (call_id, line, source, created), fate in zip(planned, fates, strict=True):
            if line == "137":
                kind = "request"
                topic = rng.choices(TOPICS_137, weights=w137)[0][0]
                district: int | None = rng.choices(DISTRICTS, weights=DISTRICT_WEIGHTS)[0]
            else:
                kind = rng.choices(KINDS_1888, weights=kind_weights)[0][1]
                topic = rng.choices(TOPICS_1888, weights=w1888)[0][0]
                district = rng.choices(DISTRICTS, weights=DISTRICT_WEIGHTS)[0] if rng.random() < 0.6 else None
            hot_reminders = False
            if line == "137" and created >= self.hot_from:
                roll = rng.random()
                if roll < HOT_SHARE:
                    topic, district = rng.choice(HOT_VOLUME_CELLS)
                elif roll < HOT_SHARE * 1.4:
                    topic, district = HOT_REMINDER_CELL
                hot_reminders = (topic, district) == HOT_REMINDER_CELL
            topic_id, topic_unit, _ = city.topics[topic]
            message_id = self.ids[Message]
            self.ids[Message] += 1
            screened = created + timedelta(minutes=rng.uniform(15, 480))
            reason = None if fate == "referred" else fate
            duplicate_of = None
            if reason == "duplicate":
                duplicate_of = self.last_of_topic.get(topic)
                if duplicate_of is None:
                    reason = "incomplete_message"
            self.last_of_topic[topic] = message_id
            status = "not_referred" if reason else "referred"
            unit_id = None
            updated = screened
            if reason is None:
                unit_id = (
                    city.districts[district]
                    if district is not None and topic in DISTRICT_TOPICS and district in city.districts
                    else topic_unit
                )
                due = self.due(topic_id, kind, screened)
                manager = city.managers.get(unit_id) if unit_id is not None else None
                referral_id = self.ids[Referral]
                self.ids[Referral] += 1
                reply_at = None
                closed_at = None
                if rng.random() < ANSWERED_SHARE:
                    span = due - screened
                    factor = rng.uniform(0.05, 0.95) if rng.random() < 0.85 else rng.uniform(1.05, 2.0)
                    reply_at = closed_at = screened + span * factor
                if reply_at is not None:
                    status, updated = "answered", reply_at
                    reply_id = self.ids[Reply]
                    self.ids[Reply] += 1
                    replies.append((reply_id, message_id, referral_id, manager, rng.choice(REPLY_TEXTS[line]), reply_at))
                    if hot_reminders or rng.random() < FEEDBACK_SHARE:
                        satisfied = rng.random() < (0.2 if hot_reminders else SATISFIED_SHARE)
                        at = reply_at + timedelta(hours=rng.uniform(0.2, 48))
                        feedback_id = self.ids[Feedback]
                        self.ids[Feedback] += 1
                        feedback.append((feedback_id, message_id, reply_id, satisfied, rng.choice(("sms", "phone")), at))
                        updated = at
                        if satisfied:
                            status = "closed"  # record_feedback: a satisfied citizen closes the message
                        elif line == "137" and unit_id is not None:
                            # reopen_at_unit: back at the same unit with a new deadline from now; the
                            # unit's next reply (answer_referral) closes it and resolves the reminder.
                            due = self.due(topic_id, kind, at)
                            again = at + timedelta(days=rng.uniform(1, 6))
                            if again < self.now and rng.random() < ANSWERED_SHARE:
                                reply_id = self.ids[Reply]
                                self.ids[Reply] += 1
                                replies.append((reply_id, message_id, referral_id, manager,
                                                rng.choice(REPLY_TEXTS[line]), again))
                                reminders.append((message_id, unit_id, "dissatisfied", feedback_id, at, again))
                                closed_at = updated = again
                            else:
                                reminders.append((message_id, unit_id, "dissatisfied", feedback_id, at, None))
                                status, closed_at = "referred", None
                referrals.append((referral_id, message_id, unit_id, manager, rng.choice(city.screeners), screened, due,
                                  closed_at))
            messages.append(
                (message_id, self.code(), line, kind, topic_id, district, unit_id, call_id, source, status,
                 reason, duplicate_of, created, updated, screened, rng.choice(city.screeners))
            )
        w = self.writer
        w.write(
            Message,
            ("id", "tracking_code", "line_code", "kind", "topic_id", "district", "unit_id", "call_id", "source",
             "status", "not_referred_reason", "duplicate_of_id", "created_at", "updated_at", "screened_at",
             "screened_by_id"),
            messages,
        )
        w.write(
            Referral,
            ("id", "message_id", "unit_id", "manager_id", "referred_by_id", "referred_at", "due_at", "closed_at"),
            referrals,
        )
        w.write(Reply, ("id", "message_id", "referral_id", "author_id", "text", "created_at"), replies)
        w.write(Feedback, ("id", "message_id", "reply_id", "satisfied", "channel", "created_at"), feedback)
        w.write(Reminder, ("message_id", "unit_id", "reason", "feedback_id", "created_at", "resolved_at"), reminders)
        for table, rows in (("messages", messages), ("referrals", referrals), ("replies", replies),
                            ("feedback", feedback), ("reminders", reminders)):
            self.counts[table] += len(rows)


def generate(
    session: Session,
    *,
    calls: int,
    messages: int,
    days: int = DEFAULT_DAYS,
    end: date | None = None,
    seed: int = 1888,
    chunk: int = CHUNK,
    progress: Callable[[int], None] | None = None,
    load_city: Callable[[Session], object] | None = None,
) -> GenerationReport:
    """Add `calls` calls and `messages` messages over `days` days before `end`. Does not commit.

    `progress` is called with the number of calls each chunk wrote. `load_city` loads the city's
    units, topics and staff when the database has no topic yet (the CLI passes the demo's loader).
    """
    if calls < 0 or messages < 0 or days < 1 or chunk < 1:
        raise GeneratorError("calls and messages must be 0 or more, days and chunk 1 or more")
    if messages > calls:
        raise GeneratorError("at most one message per call: ask for more calls or fewer messages")
    started = clock.monotonic()
    end = end or datetime.now(TEHRAN).date()
    report = GenerationReport()
    city = _load_city(session, load_city)
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        # Triggers (ours and the foreign keys') off for this transaction only; rebuilt below.
        try:
            with session.begin_nested():
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            report.triggers_off = True
        except Exception:  # noqa: BLE001 - not a superuser: load with the triggers on
            report.triggers_off = False
    gen = _Generator(session, random.Random(seed), end, days, city)
    shares = call_outcome_shares(calls, messages)
    voice_total = round(calls * shares["message_registered"])
    typed_total = messages - voice_total
    done_calls = done_typed = 0
    while done_calls < calls:
        n = min(chunk, calls - done_calls)
        voice = gen.calls(n, shares)
        done_calls += n
        remaining = messages - gen.counts["messages"]
        if done_calls == calls:
            typed = remaining - len(voice)  # the last chunk settles rounding: totals are exact
        else:
            typed = round(typed_total * done_calls / calls) - done_typed
        if typed < 0:
            voice, typed = voice[: len(voice) + typed], 0
        voice = voice[:remaining]
        typed = min(typed, remaining - len(voice))
        done_typed += typed
        gen.messages(voice, typed)
        if progress is not None:
            progress(n)
    if conn.dialect.name == "postgresql":
        for table in ("calls", "messages", "referrals", "replies", "feedback", "reminders"):
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
            )
        if report.triggers_off:
            conn.exec_driver_sql("SET LOCAL session_replication_role = origin")
            report.rollups = rebuild_rollups(session)
            for table in ("calls", "messages", "referrals", "replies", "feedback", "reminders"):
                conn.exec_driver_sql(f"ANALYZE {table}")
    report.counts = dict(gen.counts)
    report.seconds = clock.monotonic() - started
    return report
