"""A demo city in Persian: Tehran's units, topics, staff, cases, callers and a month of calls.

The shapes follow PRODUCT.md (and ivr/citydata.py, which holds them): 45 % of calls press 4 for
a case, 80 % of screened messages are referred and 20 % are not (for the four reasons), most
referrals are answered, 81 % of citizens who rate a reply are satisfied, and a dissatisfied 137
caller re-opens the request at the same unit as a reminder. Shares are drawn as exact quotas and
then shuffled, so they hold for any seed and any size, not only on average.

The month is planned in Python first (who called when, what they left, what the screener and
the unit will do), then played through the same services production uses, each at its planned
moment: units, topics, users, hours and holidays through the admin and users services, messages
through `register_message`, screening through `classify` (the due date is `answer_due_at`),
replies through `answer_referral`, ratings through `record_feedback` (which re-opens a 137
request with `reopen_at_unit`). So the demo's rules are the product's. Only the record of what
happened around them is written in bulk: citizens, the call log, cases (`upsert_cases`), the SMS
history and the demo's synthetic audio for replies.

Everything except the passwords and tracking codes follows from `seed`: passwords come
from `secrets` (a demo server may face the internet), tracking codes from
`new_tracking_code()` like real ones. Without voices, voice messages carry the caller's words
as their text (the demo has no recordings); with voices, the ones still waiting are spoken.
"""

from __future__ import annotations

import bisect
import itertools
import random
import secrets
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jdatetime
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from ivr.citydata import (
    BODIES,
    CALL_OUTCOME_SHARES,
    CALL_SECONDS,
    DAYS,
    DEPUTIES,
    DISTRICT_TOPICS,
    DISTRICT_WEIGHTS,
    DISTRICTS,
    FEEDBACK_SHARE,
    FIRST_NAMES,
    HOUR_WEIGHTS,
    JALALI_HOLIDAYS,
    KINDS_1888,
    LAST_NAMES,
    MESSAGE_TEXTS,
    NOT_REFERRED_NOTES,
    NOT_REFERRED_SHARES,
    OTHER_CALL_KEYS,
    PENDING_SHARE,
    PLAIN_CALL_KEYS,
    REFERRED_SHARE,
    REPLY_TEXTS,
    REQUEST_TEXTS,
    SATISFIED_SHARE,
    STAFF,
    TEHRAN,
    TOPICS_137,
    TOPICS_1888,
    UNSCREENED_SHARE,
    WEEKDAY_WEIGHTS,
    WORKING_HOURS,
)
from ivr.followthrough.notices import NOTICE_PURPOSE, notice_text
from ivr.followthrough.surveys import SURVEY_PURPOSE, survey_text
from ivr.identifiers import new_tracking_code, persian_digits
from ivr.infra.storage import AudioStore, StoredAudio
from ivr.models import (
    CASE_STAGES,
    Base,
    Call,
    Citizen,
    Holiday,
    Message,
    Recording,
    Sms,
    Topic,
    Unit,
    UrbanCase,
    User,
    WorkingHours,
    utcnow,
)
from ivr.prompts import synthesize_speech
from ivr.services.admin import add_holiday, add_topic, add_unit, set_working_hours
from ivr.services.cases import CaseRow, upsert_cases
from ivr.services.deadlines import answer_due_at
from ivr.services.feedback import record_feedback
from ivr.services.inbox import latest_referral
from ivr.services.messages import mark_reply_heard, register_message
from ivr.services.replies import answer_referral
from ivr.services.screening import Classification, classify
from ivr.services.sms import TEXT_REGISTERED
from ivr.services.users import add_user

REPLY_VOICES = 60  # the newest spoken replies get audio (the phone follow-up plays them)


class DemoAlreadyLoaded(Exception):
    """The database already holds the demo city (or units, topics or users it would add)."""


@dataclass
class DemoReport:
    """What the demo loaded: rows per table, and the demo logins to print once."""

    counts: dict[str, int] = field(default_factory=dict)
    logins: list[tuple[str, str, str]] = field(default_factory=list)


Voice = Callable[[str], StoredAudio]


def espeak_voice(recordings_dir: Path, work_dir: Path) -> Voice:
    """A `voice` for load_demo: Persian speech by espeak-ng, stored like any recording."""
    store = AudioStore(recordings_dir)
    work_dir.mkdir(parents=True, exist_ok=True)

    def speak(text: str) -> StoredAudio:
        return store.store(synthesize_speech(text, work_dir / f"demo-{secrets.token_hex(8)}.wav"))

    return speak


def plain_call_keys(outcome: str, rng: random.Random) -> str:
    """Keys of a call that left no message and looked nothing up, as callers press them for `outcome`."""
    return rng.choice(PLAIN_CALL_KEYS.get(outcome, OTHER_CALL_KEYS))


def load_demo(
    session: Session,
    *,
    seed: int = 1888,
    calls: int = 2000,
    messages: int | None = None,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
    voice: Voice | None = None,
    tz: ZoneInfo = TEHRAN,
) -> DemoReport:
    """Load the demo city; refuse with DemoAlreadyLoaded if it is there. Does not commit.

    `calls` are spread over the 30 days before `now`. `messages` is the total number of
    messages wanted; it never drops below one per call that registered a message, and
    the default adds a quarter more typed by operators or sent by SMS. `progress`, if
    given, is called with the number of rows each step wrote (so `tqdm.update` fits).
    `voice`, if given, turns a Persian text into stored audio: the voice messages waiting
    for screening or for their unit's answer, and the newest spoken replies, then have it.
    `tz` is the city's time zone, as the services count working days in it.
    """
    if now is None:
        now = utcnow()
    elif now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if calls < 0 or (messages is not None and messages < 0):
        raise ValueError("calls and messages cannot be negative")
    _refuse_if_loaded(session)
    return _DemoCity(session, random.Random(seed), now, progress, voice, tz).load(calls, messages)


def _refuse_if_loaded(session: Session) -> None:
    """Raise DemoAlreadyLoaded naming what is in the way, if anything."""
    unit_codes = (
        [code for code, _ in DEPUTIES]
        + [b[0] for b in BODIES]
        + [_district_code(d) for d in DISTRICTS]
    )
    topic_codes = [t[0] for t in TOPICS_137] + [t[0] for t in TOPICS_1888]
    found = [
        *session.scalars(select(Unit.code).where(Unit.code.in_(unit_codes)).limit(3)),
        *session.scalars(select(Topic.code).where(Topic.code.in_(topic_codes)).limit(3)),
        *session.scalars(
            select(User.username).where(User.username.in_([s[0] for s in STAFF])).limit(3)
        ),
        *session.scalars(select(Call.channel_id).where(Call.channel_id.like("demo-%")).limit(1)),
    ]
    if found:
        raise DemoAlreadyLoaded(
            "the demo city is already loaded (or would clash with existing data: "
            + ", ".join(found)
            + ")"
        )


def _district_code(district: int) -> str:
    return f"district-{district:02d}"


def _fa(number: int) -> str:
    """A number in Persian digits, as names show it."""
    return persian_digits(str(number))


def _apportion(total: int, shares: dict[str, float]) -> dict[str, int]:
    """Split `total` into whole counts proportional to `shares` (largest remainder)."""
    weight = sum(shares.values())
    exact = {k: total * v / weight for k, v in shares.items()}
    counts = {k: int(x) for k, x in exact.items()}
    left = total - sum(counts.values())
    for k in sorted(exact, key=lambda k: exact[k] - counts[k], reverse=True)[:left]:
        counts[k] += 1
    return counts


def _insert(
    session: Session, model: type[Base], rows: Sequence[dict[str, Any]], key: str | None = None
) -> list[int]:
    """Insert rows in bulk; with `key` (a column unique among the rows), return ids in row order."""
    if not rows:
        return []
    # Core, not the ORM: ORM bulk inserts split batches wherever the None columns change.
    table = Base.metadata.tables[model.__tablename__]
    if key is None:
        session.execute(insert(table), list(rows))
        return []
    # Matching ids through a unique column keeps SQLite batching: asking for RETURNING in
    # parameter order would make it insert one row per statement.
    stmt = insert(table).returning(table.c[key], table.c.id)
    ids: dict[Any, int] = {k: i for k, i in session.execute(stmt, list(rows))}
    return [ids[row[key]] for row in rows]


@dataclass(eq=False)


@dataclass(eq=False)
class _Call:
    """A call as planned."""

    line: str
    started: datetime
    outcome: str
    citizen: int | None  # index into _DemoCity.phones
    answered: datetime | None = None
    ended: datetime | None = None
    keys: str = ""
    id: int = 0


@dataclass(eq=False)
class _Message:
    """A message as planned: what the citizen left and what screening and the unit will do with it."""

    line: str
    kind: str
    source: str
    created: datetime
    citizen: int | None
    topic: str | None = None
    district: int | None = None
    call: _Call | None = None
    text: str = ""
    code: str = ""
    status: str = "new"
    reason: str | None = None
    duplicate_of: _Message | None = None
    screened_at: datetime | None = None
    screened_by: int | None = None
    unit_id: int | None = None
    due: datetime | None = None
    reply_at: datetime | None = None
    satisfied: bool | None = None
    feedback_at: datetime | None = None
    feedback_channel: str | None = None
    reply_text: str = ""
    heard_at: datetime | None = None
    again_at: datetime | None = None  # the unit's second reply, after a reminder
    again_text: str = ""
    id: int = 0


class _DemoCity:
    """Plans the month in Python, then plays it through the services at each planned moment."""

    def __init__(
        self,
        session: Session,
        rng: random.Random,
        now: datetime,
        progress: Callable[[int], None] | None,
        voice: Voice | None,
        tz: ZoneInfo,
    ) -> None:
        self.session = session
        self.voice = voice
        self.tz = tz
        self.rng = rng
        self.now = now
        self.start = now - timedelta(days=DAYS)
        self.today = now.astimezone(tz).date()
        self.progress = progress
        self.report = DemoReport()
        self.replies: list[tuple[int, str, datetime]] = []  # (id, text, created) of each reply
        self.admin_id = 0
        self.units: dict[str, int] = {}
        self.managers: dict[int, int] = {}
        self.screeners: list[int] = []
        self.topics: dict[str, Topic] = {}
        self.holidays: set[date] = set()
        self.case_numbers: dict[str, list[str]] = {}
        self.phones: list[str] = []
        self.citizen_weights: list[float] = []
        self.citizen_ids: list[int] = []
        self.call_days = [self.today - timedelta(days=k) for k in range(DAYS + 1)]
        self.call_day_weights = list(
            itertools.accumulate(WEEKDAY_WEIGHTS.get(d.weekday(), 1.0) for d in self.call_days)
        )

    def count(self, table: str, n: int) -> None:
        self.report.counts[table] = self.report.counts.get(table, 0) + n
        if self.progress is not None:
            self.progress(n)

    def load(self, calls: int, messages: int | None) -> DemoReport:
        self.load_staff()
        self.load_units()
        self.load_topics()
        self.load_managers()
        self.load_calendar()
        self.load_cases(300)
        self.plan_citizens(max(60, min(3000, calls // 6)))
        planned_calls = self.plan_calls(calls)
        planned = self.plan_messages(planned_calls, messages)
        self.screen(planned)
        self.plan_referrals(planned)
        self.plan_follow_ups(planned_calls, planned)
        self.write_citizens()
        self.write_calls(planned_calls)
        self.register(planned)
        self.play(planned)
        self.write_sms(planned)
        if self.voice is not None:
            self.write_reply_voices(planned)
        self.session.flush()
        return self.report

    # ---- the city, through the admin and users services ---------------------------

    def person(self) -> str:
        return f"{self.rng.choice(FIRST_NAMES)} {self.rng.choice(LAST_NAMES)}"

    def add_login(self, username: str, role: str, unit_code: str | None) -> int:
        # Passwords come from `secrets`, never from the seed: the demo may face the internet.
        password = secrets.token_urlsafe(12)
        phone = self.mobile() if role == "manager" else None
        user = add_user(self.session, username, self.person(), role, unit_code, password, phone=phone)
        self.report.logins.append((username, role, password))
        # One at a time: hashing makes users the slow step, so progress moves per user.
        self.count("users", 1)
        return user.id

    def load_staff(self) -> None:
        """The staff first: the administrator is the one who then adds units, topics and the calendar."""
        for username, role in STAFF:
            user_id = self.add_login(username, role, None)
            if role in ("operator", "supervisor"):
                self.screeners.append(user_id)
            elif role == "admin" and not self.admin_id:
                self.admin_id = user_id

    def load_units(self) -> None:
        for code, name in DEPUTIES:
            unit = add_unit(self.session, self.admin_id, code=code, name=name, kind="deputy", parent_id=None,
                            district=None)
            self.units[code] = unit.id
        for code, name, kind, parent in BODIES:
            unit = add_unit(self.session, self.admin_id, code=code, name=name, kind=kind,
                            parent_id=self.units[parent], district=None)
            self.units[code] = unit.id
        for d in DISTRICTS:
            unit = add_unit(self.session, self.admin_id, code=_district_code(d), name=f"شهرداری منطقه {_fa(d)}",
                            kind="district_office", parent_id=self.units["deputy-districts"], district=d)
            self.units[unit.code] = unit.id
        self.count("units", len(self.units))

    def load_topics(self) -> None:
        wanted = [(code, "137", key, name, unit, days) for code, key, name, unit, days, _ in TOPICS_137] + [
            (code, "1888", None, name, unit, days) for code, name, unit, days, _ in TOPICS_1888
        ]
        for code, line, key, name, unit, days in wanted:
            topic = add_topic(self.session, self.admin_id, code=code, line=line, name=name,
                              due_working_days=days, unit_id=self.units[unit])
            topic.menu_key = key  # which key of the 137 menu names it (no rule: a label for the API)
            self.topics[code] = topic
        self.session.flush()
        self.count("topics", len(self.topics))

    def load_managers(self) -> None:
        for code, unit_id in self.units.items():
            self.managers[unit_id] = self.add_login(f"mgr-{code}", "manager", code)

    def load_calendar(self) -> None:
        existing_hours = set(self.session.scalars(select(WorkingHours.weekday)))
        hours = 0
        for day, (opens, closes) in WORKING_HOURS.items():
            if day not in existing_hours:
                set_working_hours(self.session, self.admin_id, day, opens, closes)
                hours += 1
        jy = jdatetime.date.fromgregorian(date=self.today).year
        days: dict[date, tuple[str, str]] = {}
        for year in (jy - 1, jy, jy + 1):
            for month, day, name in JALALI_HOLIDAYS:
                days[jdatetime.date(year, month, day).togregorian()] = (f"{year}/{month:02d}/{day:02d}", name)
        # Last year's days only shape when screeners work; the calendar gets this year and next.
        self.holidays = set(days)
        first_day = jdatetime.date(jy, 1, 1).togregorian()
        existing_days = set(self.session.scalars(select(Holiday.day).where(Holiday.day >= first_day)))
        added = 0
        for d, (jalali, name) in sorted(days.items()):
            if d >= first_day and d not in existing_days:
                add_holiday(self.session, self.admin_id, jalali, name)
                added += 1
        self.count("working_hours", hours)
        self.count("holidays", added)


    def load_cases(self, total: int) -> None:
        per_kind = _apportion(total, {"urban_planning": 0.6, "article100": 0.4})
        taken: set[str] = set()
        rows: list[CaseRow] = []
        for kind, n in per_kind.items():
            numbers: list[str] = []
            while len(numbers) < n:
                digits = self.rng.randint(6, 10)
                number = str(self.rng.randrange(10 ** (digits - 1), 10**digits))
                if number not in taken:
                    taken.add(number)
                    numbers.append(number)
            clash = set(
                self.session.scalars(
                    select(UrbanCase.case_number).where(
                        UrbanCase.kind == kind, UrbanCase.case_number.in_(numbers)
                    )
                )
            )
            # Never overwrite a case a real feed brought in.
            numbers = [x for x in numbers if x not in clash]
            self.case_numbers[kind] = numbers
            rows.extend(self.case_row(kind, number) for number in numbers)
        self.count("cases", upsert_cases(self.session, rows))

    def case_row(self, kind: str, number: str) -> CaseRow:
        rng = self.rng
        if kind == "urban_planning":
            # Weights follow CASE_STAGES["urban_planning"] in order.
            stage = rng.choices(CASE_STAGES["urban_planning"], weights=(14, 18, 16, 14, 20, 12, 6))[0]
            done = stage in ("completion_certificate", "rejected")
            verdict, fine = None, None
        else:
            # Weights follow CASE_STAGES["article100"] in order.
            stage = rng.choices(CASE_STAGES["article100"], weights=(12, 16, 20, 14, 12, 16, 10))[0]
            done = stage == "executed"
            verdict, fine = None, None
            if stage in ("first_verdict", "appeal", "final_verdict", "executed"):
                verdict = rng.choices(("fine", "demolition", "closure"), weights=(70, 20, 10))[0]
                if verdict == "fine":
                    fine = rng.randrange(20, 5000) * 1_000_000
        roll = rng.random()
        if done or roll < 0.15:
            next_date = None
        elif roll < 0.25:
            next_date = self.today - timedelta(days=rng.randint(1, 20))
        else:
            next_date = self.today + timedelta(days=rng.randint(2, 90))
        return {
            "case_number": number,
            "kind": kind,
            "district": rng.choices(DISTRICTS, weights=DISTRICT_WEIGHTS)[0],
            "stage": stage,
            "next_date": next_date,
            "verdict": verdict,
            "fine_rials": fine,
            "updated_on": self.today - timedelta(days=rng.randint(0, 60)),
        }

    # ---- callers -----------------------------------------------------------------

    def mobile(self) -> str:
        return self.rng.choice(("0912", "0935", "0901")) + f"{self.rng.randrange(10**7):07d}"

    def plan_citizens(self, n: int) -> None:
        phones: list[str] = []
        seen: set[str] = set()
        while len(phones) < n:
            phone = self.mobile()
            if phone not in seen:
                seen.add(phone)
                phones.append(phone)
        clash = set(self.session.scalars(select(Citizen.phone).where(Citizen.phone.in_(phones))))
        self.phones = [p for p in phones if p not in clash]
        # A few citizens call often and most call once or twice, as on any public line.
        self.citizen_weights = list(
            itertools.accumulate(1 / (rank + 1) ** 0.8 for rank in range(len(self.phones)))
        )

    def some_citizen(self) -> int:
        # Cumulative weights: choices() would otherwise re-add them on every call.
        return self.rng.choices(range(len(self.phones)), cum_weights=self.citizen_weights)[0]

    def write_citizens(self) -> None:
        rows = []
        for phone in self.phones:
            rows.append(
                {
                    "phone": phone,
                    "name": self.person() if self.rng.random() < 0.4 else None,
                    "national_id": self.national_id() if self.rng.random() < 0.25 else None,
                    "created_at": self.start - timedelta(days=self.rng.randint(0, 400)),
                }
            )
        self.citizen_ids = _insert(self.session, Citizen, rows, key="phone")
        self.count("citizens", len(rows))

    def national_id(self) -> str:
        while True:
            body = [self.rng.randrange(10) for _ in range(9)]
            if len(set(body)) > 1:
                break
        total = sum(d * (10 - i) for i, d in enumerate(body)) % 11
        check = total if total < 2 else 11 - total
        return "".join(map(str, body)) + str(check)

    # ---- calls -------------------------------------------------------------------

    def call_time(self) -> datetime:
        """A start time in the last 30 days, shaped by Tehran's day and week."""
        rng = self.rng
        days = self.call_days
        while True:
            day = rng.choices(days, cum_weights=self.call_day_weights)[0]
            hour = rng.choices(range(24), weights=HOUR_WEIGHTS)[0]
            local = datetime.combine(day, time(hour, rng.randrange(60), rng.randrange(60)), TEHRAN)
            when = local.astimezone(self.now.tzinfo)
            if self.start <= when < self.now - timedelta(minutes=10):
                return when

    def plan_calls(self, total: int) -> list[_Call]:
        rng = self.rng
        outcomes = [o for o, n in _apportion(total, CALL_OUTCOME_SHARES).items() for _ in range(n)]
        rng.shuffle(outcomes)
        planned = []
        for outcome in outcomes:
            line = rng.choice(("137", "1888"))
            # About 3 % of callers hide their number.
            citizen = None if rng.random() < 0.03 else self.some_citizen()
            call = _Call(line=line, started=self.call_time(), outcome=outcome, citizen=citizen)
            low, high = CALL_SECONDS[outcome]
            if outcome == "dropped" and rng.random() < 0.35:
                call.ended = call.started + timedelta(seconds=rng.uniform(3, 20))
            else:
                call.answered = call.started + timedelta(seconds=rng.uniform(0.5, 3))
                call.ended = min(
                    call.answered + timedelta(seconds=rng.uniform(low, high)), self.now
                )
            call.keys = self.call_keys(call)
            planned.append(call)
        planned.sort(key=lambda c: c.started)
        return planned

    def call_keys(self, call: _Call) -> str:
        """Keys as pressed, digit entries closed by '#'; 137 and 1888 share keys 0, 1, 2 and 4."""
        rng = self.rng
        outcome = call.outcome
        if outcome == "case_lookup":
            kind = "urban_planning" if rng.random() < 0.6 else "article100"
            known = self.case_numbers.get(kind) or []
            if known and rng.random() < 0.9:
                number = rng.choice(known)
            else:
                number = str(rng.randrange(10**7, 10**8))
            return "4" + ("1" if kind == "urban_planning" else "2") + number + "#"
        if outcome == "message_registered":
            return "1"  # completed once the message is planned: topic or kind key and so on
        if outcome == "follow_up":
            return "2"  # completed with a tracking code once the messages are planned
        # Only case lookups start with 4, so the keys alone give PRODUCT.md's 45 % figure.
        return plain_call_keys(outcome, rng)

    def write_calls(self, planned: list[_Call]) -> None:
        rows = [
            {
                "line_code": c.line,
                "channel_id": f"demo-{n}",
                "driver": "agi",
                "caller_number": None if c.citizen is None else self.phones[c.citizen],
                "citizen_id": None if c.citizen is None else self.citizen_ids[c.citizen],
                "started_at": c.started,
                "answered_at": c.answered,
                "ended_at": c.ended,
                "keys": c.keys,
                "outcome": c.outcome,
            }
            for n, c in enumerate(planned, start=1)
        ]
        for call, call_id in zip(
            planned, _insert(self.session, Call, rows, key="channel_id"), strict=True
        ):
            call.id = call_id
        self.count("calls", len(rows))

    # ---- messages ----------------------------------------------------------------


    def plan_messages(self, calls: list[_Call], wanted: int | None) -> list[_Message]:
        rng = self.rng
        planned: list[_Message] = []
        for call in calls:
            if call.outcome == "message_registered":
                planned.append(self.voice_message(call))
        extra = round(len(planned) * 0.25) if wanted is None else max(0, wanted - len(planned))
        operator_calls = [c for c in calls if c.outcome == "operator" and c.answered is not None]
        typed = min(round(extra * 0.6), len(operator_calls))
        for call in rng.sample(operator_calls, typed):
            planned.append(
                self.written_message(
                    "operator", call.line, call.ended or call.started, call.citizen, call
                )
            )
        for _ in range(extra - typed):
            citizen = self.some_citizen()
            when = self.start + (self.now - self.start) * rng.random()
            planned.append(
                self.written_message("sms", rng.choice(("137", "1888")), when, citizen, None)
            )
        planned.sort(key=lambda m: m.created)
        self.assign_codes(planned)
        return planned

    def voice_message(self, call: _Call) -> _Message:
        rng = self.rng
        assert call.ended is not None
        if call.line == "137":
            topic = rng.choices(TOPICS_137, weights=[t[5] for t in TOPICS_137])[0]
            district = rng.choices(DISTRICTS, weights=DISTRICT_WEIGHTS)[0]
            call.keys = "1" + topic[1] + str(district) + "#" + self.recording_keys()
            return _Message(
                line="137",
                kind="request",
                source="phone_voice",
                created=call.ended,
                citizen=call.citizen,
                topic=topic[0],
                district=district,
                call=call,
                text=rng.choice(REQUEST_TEXTS[topic[0]]),
            )
        key, kind, _ = rng.choices(KINDS_1888, weights=[k[2] for k in KINDS_1888])[0]
        call.keys = "1" + key + self.recording_keys()
        # On 1888 the caller only picks the kind; the screener sets topic and district.
        return _Message(
            line="1888",
            kind=kind,
            source="phone_voice",
            created=call.ended,
            citizen=call.citizen,
            call=call,
            text=rng.choice(MESSAGE_TEXTS[kind]),
        )

    def recording_keys(self) -> str:
        """After the beep, as the engine logs it: "#" if it ended the recording, then 1 (keep)."""
        return ("#" if self.rng.random() < 0.7 else "") + "1"

    def written_message(
        self, source: str, line: str, when: datetime, citizen: int | None, call: _Call | None
    ) -> _Message:
        rng = self.rng
        if line == "137":
            topic = rng.choices(TOPICS_137, weights=[t[5] for t in TOPICS_137])[0][0]
            return _Message(
                line="137",
                kind="request",
                source=source,
                created=when,
                citizen=citizen,
                topic=topic,
                district=rng.choices(DISTRICTS, weights=DISTRICT_WEIGHTS)[0],
                call=call,
                text=rng.choice(REQUEST_TEXTS[topic]),
            )
        kind = rng.choices(KINDS_1888, weights=[k[2] for k in KINDS_1888])[0][1]
        return _Message(
            line="1888",
            kind=kind,
            source=source,
            created=when,
            citizen=citizen,
            call=call,
            text=rng.choice(MESSAGE_TEXTS[kind]),
        )

    def assign_codes(self, planned: list[_Message]) -> None:
        codes: set[str] = set()
        while len(codes) < len(planned):
            batch = {new_tracking_code() for _ in range(len(planned) - len(codes))} - codes
            taken: set[str] = set()
            for chunk in _chunks(sorted(batch), 500):
                taken.update(
                    self.session.scalars(
                        select(Message.tracking_code).where(Message.tracking_code.in_(chunk))
                    )
                )
            codes.update(batch - taken)
        for message, code in zip(
            planned, sorted(codes, key=lambda _: self.rng.random()), strict=True
        ):
            message.code = code

    def screen(self, planned: list[_Message]) -> None:
        """Decide each message's screening: the newest wait, 80 % of the rest are referred."""
        rng = self.rng
        unscreened = round(len(planned) * UNSCREENED_SHARE)
        screened = planned[: len(planned) - unscreened]
        not_referred = len(screened) - round(len(screened) * REFERRED_SHARE)
        reasons = _apportion(not_referred, NOT_REFERRED_SHARES)

        for message in screened:
            if message.line == "1888":
                topic = rng.choices(TOPICS_1888, weights=[t[4] for t in TOPICS_1888])[0][0]
                message.topic = topic
                if rng.random() < 0.6:
                    message.district = rng.choices(DISTRICTS, weights=DISTRICT_WEIGHTS)[0]
        # Only a message with an earlier one on the same topic can be a duplicate.
        seen_topics: set[str | None] = set()
        candidates = []
        for message in screened:
            if message.topic in seen_topics:
                candidates.append(message)
            seen_topics.add(message.topic)
        duplicates = rng.sample(candidates, min(reasons["duplicate"], len(candidates)))
        # Too few candidates (a tiny demo): the other reasons take the difference.
        spare = reasons["duplicate"] - len(duplicates)
        reasons["duplicate"] = len(duplicates)
        reasons["incomplete_message"] += spare
        for message in duplicates:
            message.reason = "duplicate"
        rest = [m for m in screened if m.reason is None]
        rng.shuffle(rest)
        others = [r for r, n in reasons.items() if r != "duplicate" for _ in range(n)]
        for message, reason in zip(rest, others, strict=False):
            message.reason = reason

        for message in screened:
            message.screened_at = self.screening_time(message.created)
            message.screened_by = rng.choice(self.screeners)
            if message.reason is None:
                message.status = "referred"
            else:
                message.status = "not_referred"
        self.link_duplicates(screened)

    def link_duplicates(self, screened: list[_Message]) -> None:
        """Point each duplicate at an earlier message of its topic: same caller, else same place."""
        originals: dict[str | None, list[_Message]] = defaultdict(list)
        for message in screened:
            if message.reason == "duplicate":
                pool = originals[message.topic]
                same_citizen = [
                    m for m in pool if m.citizen is not None and m.citizen == message.citizen
                ]
                same_place = [m for m in pool if m.district == message.district]
                original = (same_citizen or same_place or pool)[-1]
                message.duplicate_of = original
                if message.line == "1888":
                    message.district = original.district
            else:
                originals[message.topic].append(message)

    def screening_time(self, created: datetime) -> datetime:
        """When an operator got to a message: minutes to hours later, within office hours."""
        rng = self.rng
        local = (created + timedelta(minutes=rng.uniform(15, 480))).astimezone(TEHRAN)
        for _ in range(14):
            hours = WORKING_HOURS.get(local.weekday())
            if hours and local.date() not in self.holidays:
                opens, closes = hours
                if local.time() < opens:
                    local = datetime.combine(local.date(), opens, TEHRAN) + timedelta(
                        minutes=rng.uniform(0, 90)
                    )
                if local.time() < closes:
                    break
            local = datetime.combine(local.date() + timedelta(days=1), time(0), TEHRAN)
        when = local.astimezone(self.now.tzinfo)
        latest = self.now - timedelta(minutes=rng.uniform(2, 30))
        return max(min(when, latest), created + timedelta(minutes=1))

    def plan_follow_ups(self, calls: list[_Call], planned: list[_Message]) -> None:
        """Give follow-up calls the tracking code of an earlier message, the caller's own if any."""
        rng = self.rng
        times = [m.created for m in planned]
        by_citizen: dict[int, list[_Message]] = defaultdict(list)
        for message in planned:
            if message.citizen is not None:
                by_citizen[message.citizen].append(message)
        for call in calls:
            if call.outcome != "follow_up":
                continue
            own = (
                [m for m in by_citizen.get(call.citizen, []) if m.created < call.started]
                if call.citizen is not None
                else []
            )
            earlier = bisect.bisect_left(times, call.started)
            if own:
                code = own[-1].code
                call.line = own[-1].line
            elif earlier and rng.random() < 0.7:
                message = planned[rng.randrange(earlier)]
                code = message.code
                call.citizen, call.line = message.citizen, message.line
            else:
                code = new_tracking_code()  # an unknown code: the caller mistyped or guessed
            call.keys = "2" + code + "#"

    def referral_unit(self, message: _Message) -> int:
        if message.district is not None and message.topic in DISTRICT_TOPICS:
            return self.units[_district_code(message.district)]
        assert message.topic is not None
        unit_id = self.topics[message.topic].unit_id
        assert unit_id is not None
        return unit_id

    def manager_of(self, message: _Message) -> int | None:
        return None if message.unit_id is None else self.managers.get(message.unit_id)


    def plan_referrals(self, planned: list[_Message]) -> None:
        """Referral unit, deadline, replies and feedback of each referred message, and the status they leave."""
        rng = self.rng
        referred = sorted(
            (m for m in planned if m.status == "referred"), key=lambda m: m.screened_at or m.created
        )
        # The most recently referred are still waiting for their unit.
        answered = len(referred) - round(len(referred) * PENDING_SHARE)
        for n, message in enumerate(referred):
            assert message.screened_at is not None and message.topic is not None
            message.unit_id = self.referral_unit(message)
            # The production deadline: what `classify` will set when the screener refers it.
            message.due = answer_due_at(
                self.session, topic_id=self.topics[message.topic].id, kind=message.kind,
                start=message.screened_at, tz=self.tz,
            )
            if n >= answered or message.screened_at > self.now - timedelta(minutes=20):
                continue
            span = message.due - message.screened_at
            # Most units answer in time; about one in seven is late.
            factor = rng.uniform(0.05, 0.95) if rng.random() < 0.85 else rng.uniform(1.05, 2.0)
            reply_at = min(
                message.screened_at + span * factor,
                self.now - timedelta(minutes=rng.uniform(5, 60)),
            )
            message.reply_at = max(reply_at, message.screened_at + timedelta(minutes=10))
            message.reply_text = rng.choice(REPLY_TEXTS[message.line])
            heard = message.reply_at + timedelta(hours=rng.uniform(1, 72))
            message.heard_at = heard if heard < self.now and rng.random() < 0.5 else None
            message.status = "answered"

        replied = [m for m in referred if m.reply_at is not None]
        rated = rng.sample(replied, round(len(replied) * FEEDBACK_SHARE))
        happy = round(len(rated) * SATISFIED_SHARE)
        for n, message in enumerate(rated):
            assert message.reply_at is not None
            message.satisfied = n < happy
            message.feedback_at = min(
                message.reply_at + timedelta(hours=rng.uniform(0.2, 48)),
                self.now - timedelta(minutes=1),
            )
            message.feedback_channel = (
                "sms" if message.citizen is not None and rng.random() < 0.7 else "phone"
            )
            # The statuses record_feedback will leave: a satisfied citizen closes the message; a
            # dissatisfied 137 caller re-opens it at the same unit, which answers again or not yet.
            if message.satisfied:
                message.status = "closed"
            elif message.line == "137":
                again = message.feedback_at + timedelta(days=rng.uniform(1, 6))
                if again < self.now and rng.random() < 0.5:
                    message.again_at, message.again_text = again, rng.choice(REPLY_TEXTS[message.line])
                else:
                    message.status = "referred"

    # ---- playing the month through the services ----------------------------------

    def register(self, planned: list[_Message]) -> None:
        """Register every message as it came in (register_message), with the tracking code planned for it."""
        for m in planned:
            audio = None
            if self.voice is not None and m.source == "phone_voice" and m.status in ("new", "referred"):
                audio = self.voice(m.text)  # still waiting: the screener or the unit will listen to it
            # Without audio a voice message carries the caller's words as text: the demo has no recordings.
            message = register_message(
                self.session,
                line=m.line,
                kind=m.kind,
                source=m.source,
                citizen_id=None if m.citizen is None else self.citizen_ids[m.citizen],
                # On 1888 the caller only picks the kind; the screener sets topic and district.
                topic_code=m.topic if m.line == "137" else None,
                district=m.district if m.line == "137" else None,
                call_id=None if m.call is None else m.call.id,
                body=None if audio is not None else m.text,
                audio=audio,
                tracking_code=m.code,
                created_at=m.created,
            )
            if message.tracking_code != m.code:  # pragma: no cover - the codes were checked free
                raise RuntimeError(f"tracking code {m.code} was taken while the demo loaded")
            m.id = message.id
            self.count("messages", 1)
            if audio is not None:
                self.count("recordings", 1)

    def play(self, planned: list[_Message]) -> None:
        """Screen, answer, rate and re-open each message through the services, at its planned times."""
        session = self.session
        for m in planned:
            if m.screened_at is None:
                continue
            assert m.screened_by is not None
            if m.reason is None:
                assert m.topic is not None
                decision = Classification(
                    decision="refer", kind=m.kind, topic_id=self.topics[m.topic].id, district=m.district,
                    unit_id=m.unit_id, summary=m.text,
                )
            else:
                decision = Classification(
                    decision="not_referred", kind=m.kind,
                    topic_id=None if m.topic is None else self.topics[m.topic].id, district=m.district,
                    summary=NOT_REFERRED_NOTES[m.reason], reason=m.reason,
                    duplicate_of=None if m.duplicate_of is None else m.duplicate_of.code,
                )
            message = classify(session, m.id, m.screened_by, decision, m.screened_at, self.tz)
            if m.reason is not None:
                continue
            self.count("referrals", 1)
            if m.reply_at is None:
                continue
            referral = latest_referral(session, m.id)
            assert referral is not None
            manager = self.managers.get(referral.unit_id)
            reply = answer_referral(session, message, referral, author_id=manager, text=m.reply_text, now=m.reply_at)
            self.replies.append((reply.id, m.reply_text, m.reply_at))
            self.count("replies", 1)
            if m.heard_at is not None:
                mark_reply_heard(session, reply.id, m.heard_at)
            if m.feedback_at is None or m.satisfied is None:
                continue
            session.expire(message, ["replies"])  # the reply above was added by id, not to the collection
            record_feedback(
                session, message, satisfied=m.satisfied, channel=m.feedback_channel or "phone",
                raw_text=("1" if m.satisfied else "2") if m.feedback_channel == "sms" else None,
                tz=self.tz, now=m.feedback_at,
            )
            self.count("feedback", 1)
            if not m.satisfied and m.line == "137":
                self.count("reminders", 1)
            if m.again_at is not None:
                again = answer_referral(session, message, referral, author_id=manager, text=m.again_text,
                                        now=m.again_at)
                self.replies.append((again.id, m.again_text, m.again_at))
                self.count("replies", 1)

    def write_reply_voices(self, planned: list[_Message]) -> None:
        """Audio for the newest replies, as the unit's manager would have recorded them."""
        assert self.voice is not None
        rows: list[dict[str, Any]] = []
        for reply_id, text, created in sorted(self.replies, key=lambda r: r[2])[-REPLY_VOICES:]:
            audio = self.voice(text)
            rows.append({
                "path": audio.rel_path, "format": audio.format, "seconds": audio.seconds, "sha256": audio.sha256,
                "size_bytes": audio.size_bytes, "purpose": "reply", "created_at": created, "reply_id": reply_id,
            })
        if rows:
            self.session.execute(insert(Recording), rows)
        self.count("recordings", len(rows))


    def write_sms(self, planned: list[_Message]) -> None:
        """The SMS history, in the product's own words and purposes (registration reply, reply notice, survey)."""
        rows = []
        for m in planned:
            if m.citizen is None:
                continue
            if m.source == "sms":
                rows.append(self.sms("in", m, m.text, "message", m.created))
                registered = TEXT_REGISTERED.format(code=persian_digits(m.code))
                rows.append(self.sms("out", m, registered, "reply", m.created + timedelta(seconds=20)))
            if m.reply_at is not None:
                notice = notice_text(m.code, m.line)
                rows.append(self.sms("out", m, notice, NOTICE_PURPOSE, m.reply_at + timedelta(minutes=1)))
            if m.feedback_channel == "sms" and m.reply_at is not None and m.feedback_at is not None:
                ask = m.reply_at + timedelta(minutes=2)
                rows.append(self.sms("out", m, survey_text(m.code), SURVEY_PURPOSE, ask))
                answer = "1" if m.satisfied else "2"
                rows.append(self.sms("in", m, answer, "feedback", max(m.feedback_at, ask + timedelta(seconds=30))))
        _insert(self.session, Sms, rows)
        self.count("sms", len(rows))

    def sms(
        self, direction: str, message: _Message, body: str, purpose: str, at: datetime
    ) -> dict[str, Any]:
        assert message.citizen is not None
        at = min(at, self.now)
        return {
            "direction": direction,
            "phone": self.phones[message.citizen],
            "body": body,
            "status": "received" if direction == "in" else "delivered",
            "purpose": purpose,
            "message_id": message.id,
            "created_at": at,
            "updated_at": at if direction == "in" else min(at + timedelta(seconds=8), self.now),
        }


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
