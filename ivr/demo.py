"""A demo city in Persian: Tehran's units, topics, staff, cases, callers and a month of calls.

The shapes follow PRODUCT.md: 45 % of calls press 4 for a case, 80 % of screened messages
are referred and 20 % are not (for the four reasons), most referrals are answered, 81 % of
citizens who rate a reply are satisfied, and a dissatisfied 137 caller re-opens the request
at the same unit as a reminder. Shares are drawn as exact quotas and then shuffled, so
they hold for any seed and any size, not only on average.

Everything except the passwords and tracking codes follows from `seed`: passwords come
from `secrets` (a demo server may face the internet), tracking codes from
`new_tracking_code()` like real ones. Voice messages have no audio files: the demo has
no recordings, only the screeners' written summaries.
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
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from ivr.identifiers import new_tracking_code, persian_digits
from ivr.infra.storage import StoredAudio
from ivr.models import (
    CASE_STAGES,
    Base,
    Call,
    Citizen,
    Feedback,
    Holiday,
    Message,
    Recording,
    Referral,
    Reminder,
    Reply,
    Sms,
    Topic,
    Unit,
    UrbanCase,
    User,
    WorkingHours,
    utcnow,
)
from ivr.services.cases import CaseRow, upsert_cases
from ivr.services.users import add_user

TEHRAN = ZoneInfo("Asia/Tehran")
DAYS = 30

# ---- the city ------------------------------------------------------------------------

DEPUTIES = (
    ("deputy-services", "معاونت خدمات شهری"),
    ("deputy-planning", "معاونت شهرسازی و معماری"),
    ("deputy-transport", "معاونت حمل و نقل و ترافیک"),
    ("deputy-technical", "معاونت فنی و عمران"),
    ("deputy-social", "معاونت اجتماعی و فرهنگی"),
    ("deputy-districts", "معاونت هماهنگی و امور مناطق"),
    ("deputy-hr", "معاونت توسعه منابع انسانی"),
    ("deputy-programs", "معاونت برنامه‌ریزی، توسعه شهری و امور شورا"),
)
# (code, name, kind, parent code)
BODIES = (
    ("waste", "سازمان مدیریت پسماند", "organisation", "deputy-services"),
    ("parks", "سازمان بوستان‌ها و فضای سبز", "organisation", "deputy-services"),
    ("roads", "سازمان مهندسی معابر", "organisation", "deputy-technical"),
    ("traffic", "سازمان حمل و نقل و ترافیک", "organisation", "deputy-transport"),
    ("culture", "سازمان فرهنگی هنری", "organisation", "deputy-social"),
    ("lighting", "اداره کل روشنایی معابر", "department", "deputy-technical"),
    ("article100", "دبیرخانه کمیسیون‌های ماده صد", "department", "deputy-planning"),
)
DISTRICTS = range(1, 23)
# Tehran's larger districts send more calls.
DISTRICT_WEIGHTS = tuple(1.6 if d in (2, 4, 5, 15) else 1.0 for d in DISTRICTS)

# (code, menu key, name, unit code, due working days, share of 137 requests)
TOPICS_137 = (
    ("cleaning", "1", "نظافت و پسماند", "waste", 3, 0.30),
    ("roads", "2", "معابر، آسفالت و آب‌های سطحی", "roads", 10, 0.22),
    ("lighting", "3", "روشنایی معابر", "lighting", 5, 0.12),
    ("green", "4", "درختان و فضای سبز", "parks", 7, 0.12),
    ("traffic", "5", "ترافیک و چراغ‌های راهنمایی", "traffic", 5, 0.14),
    ("other_137", "6", "سایر", "deputy-services", 7, 0.10),
)
# (code, name, unit code, due working days, share of 1888 messages)
TOPICS_1888 = (
    ("staff_conduct", "رفتار کارکنان", "deputy-hr", 10, 0.26),
    ("processes", "فرایندها و بوروکراسی", "deputy-programs", 10, 0.20),
    ("projects", "طرح‌ها و پروژه‌ها", "deputy-technical", 14, 0.12),
    ("urban_planning", "شهرسازی", "deputy-planning", 10, 0.24),
    ("city_services", "خدمات شهری", "deputy-services", 7, 0.18),
)
# District municipalities do street cleaning, permits and front-desk work themselves,
# so these topics go to the district office when the district is known.
DISTRICT_TOPICS = frozenset(
    {"cleaning", "other_137", "staff_conduct", "urban_planning", "city_services"}
)
KINDS_1888 = (
    ("1", "criticism", 0.30),
    ("2", "suggestion", 0.18),
    ("3", "complaint", 0.40),
    ("4", "appreciation", 0.12),
)

STAFF = (
    ("op1", "operator"),
    ("op2", "operator"),
    ("op3", "operator"),
    ("op4", "operator"),
    ("op5", "operator"),
    ("op6", "operator"),
    ("sup1", "supervisor"),
    ("sup2", "supervisor"),
    ("inspector1", "inspector"),
    ("analyst1", "analyst"),
    ("admin", "admin"),
)
# fmt: off
FIRST_NAMES = (
    "علی", "محمد", "حسین", "رضا", "مهدی", "امیر", "سعید", "حمید", "مجید", "بهرام",
    "فاطمه", "زهرا", "مریم", "سارا", "نرگس", "لیلا", "الهام", "شیرین", "مینا", "پریسا",
)
LAST_NAMES = (
    "محمدی", "حسینی", "احمدی", "رضایی", "کریمی", "موسوی", "جعفری", "صادقی", "رحیمی", "کاظمی",
    "قاسمی", "نوری", "تهرانی", "اکبری", "شریفی", "طاهری", "عباسی", "یزدانی", "فراهانی", "نجفی",
)
# fmt: on

# Saturday..Wednesday 07:00-19:00, Thursday 07:00-13:00, Friday closed (Python: Monday = 0).
WORKING_HOURS = {
    5: (time(7), time(19)),
    6: (time(7), time(19)),
    0: (time(7), time(19)),
    1: (time(7), time(19)),
    2: (time(7), time(19)),
    3: (time(7), time(13)),
}
FRIDAY = 4
# (Jalali month, day, name)
JALALI_HOLIDAYS = (
    (1, 1, "نوروز"),
    (1, 2, "نوروز"),
    (1, 3, "نوروز"),
    (1, 4, "نوروز"),
    (1, 12, "روز جمهوری اسلامی"),
    (1, 13, "روز طبیعت"),
    (3, 14, "رحلت امام خمینی"),
    (3, 15, "قیام ۱۵ خرداد"),
    (11, 22, "پیروزی انقلاب اسلامی"),
    (12, 29, "ملی شدن صنعت نفت"),
)

# ---- the traffic ---------------------------------------------------------------------

CALL_OUTCOME_SHARES = {
    "case_lookup": 0.45,
    "message_registered": 0.22,
    "follow_up": 0.10,
    "operator": 0.08,
    "guidance": 0.06,
    "dropped": 0.05,
    "nuisance": 0.02,
    "irrelevant": 0.02,
}
# Seconds from answer to hang-up, per outcome.
CALL_SECONDS = {
    "case_lookup": (45, 150),
    "message_registered": (90, 260),
    "follow_up": (40, 140),
    "operator": (60, 420),
    "guidance": (15, 70),
    "dropped": (2, 25),
    "nuisance": (3, 40),
    "irrelevant": (20, 120),
}
# Calls per Tehran hour of the day: a morning peak and an evening one.
# fmt: off
HOUR_WEIGHTS = (
    1.0, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 3.0, 6.0, 8.0, 9.0, 8.5,
    7.0, 5.5, 5.0, 5.5, 6.0, 6.5, 6.0, 5.0, 4.0, 3.0, 2.0, 1.5,
)
# fmt: on
WEEKDAY_WEIGHTS = {FRIDAY: 0.55, 3: 0.8}
REFERRED_SHARE = 0.80
NOT_REFERRED_SHARES = {
    "incomplete_message": 0.35,
    "incomplete_caller": 0.20,
    "duplicate": 0.25,
    "irrelevant": 0.20,
}
UNSCREENED_SHARE = 0.07
PENDING_SHARE = 0.15
FEEDBACK_SHARE = 0.60
SATISFIED_SHARE = 0.81
CLOSED_OF_SATISFIED = 0.30

REQUEST_TEXTS = {
    "cleaning": (
        "زباله‌های کوچه از سه روز پیش جمع‌آوری نشده و بوی بد همه جا را گرفته است.",
        "مخزن زباله سر کوچه شکسته و زباله‌ها در پیاده‌رو پخش شده است.",
        "نخاله‌های ساختمانی کنار جوی آب رها شده است.",
        "چند هفته است خیابان جارو نشده است.",
    ),
    "roads": (
        "چاله بزرگی وسط خیابان ایجاد شده که برای موتورسواران خطرناک است.",
        "آسفالت کوچه بعد از حفاری لوله‌کشی گاز ترمیم نشده است.",
        "دریچه آب‌های سطحی گرفته و با هر بارندگی آب در تقاطع جمع می‌شود.",
        "جدول کنار پیاده‌رو شکسته و عابران زمین می‌خورند.",
    ),
    "lighting": (
        "چراغ‌های پارک محله چند شب است خاموش است.",
        "چراغ تیر برق کوچه خاموش است و شب‌ها کوچه کاملاً تاریک است.",
        "روشنایی زیرگذر عابر پیاده قطع شده است.",
    ),
    "green": (
        "درخت کهنسال کنار خیابان کج شده و ممکن است روی خودروها بیفتد.",
        "فضای سبز بلوار آبیاری نمی‌شود و درختچه‌ها در حال خشک شدن هستند.",
        "شاخه‌های درختان به سیم‌های برق رسیده و نیاز به هرس دارد.",
    ),
    "traffic": (
        "چراغ راهنمایی تقاطع از صبح چشمک‌زن زرد است و ترافیک سنگینی ایجاد شده است.",
        "خط‌کشی عابر پیاده جلوی مدرسه پاک شده است.",
        "تابلوی ورود ممنوع سر خیابان افتاده است.",
    ),
    "other_137": (
        "نیمکت‌های ایستگاه اتوبوس شکسته است.",
        "دیوارنویسی روی دیوار مدرسه نیاز به پاک‌سازی دارد.",
        "سگ‌های بلاصاحب در پارک محله باعث ترس کودکان شده‌اند.",
    ),
}
MESSAGE_TEXTS = {
    "criticism": (
        "روند صدور پروانه ساختمانی بسیار طولانی است و باید چند بار به منطقه مراجعه کرد.",
        "کارمند باجه پاسخگویی با مراجعان برخورد مناسبی ندارد.",
        "پروژه پیاده‌روسازی خیابان ماه‌هاست نیمه‌کاره رها شده است.",
    ),
    "suggestion": (
        "پیشنهاد می‌کنم نوبت‌دهی دفاتر خدمات الکترونیک شهر اینترنتی شود.",
        "بهتر است برنامه جمع‌آوری زباله هر محله روی سایت شهرداری منطقه اعلام شود.",
        "پیشنهاد می‌کنم در بوستان محله وسایل ورزشی برای سالمندان نصب شود.",
    ),
    "complaint": (
        "سه ماه است برای پاسخ استعلام پرونده‌ام منتظرم و کسی پاسخگو نیست.",
        "مأموران اجرائیات منطقه بدون اخطار قبلی مغازه را پلمب کردند.",
        "پیمانکار شهرداری مصالح را در پیاده‌رو رها کرده و راه عبور بسته شده است.",
        "برای صدور گواهی پایان کار مبلغی خارج از تعرفه از من خواسته شد.",
    ),
    "appreciation": (
        "از رفتار محترمانه و پیگیری کارشناس شهرسازی منطقه تشکر می‌کنم.",
        "از نیروهای خدمات شهری که بعد از بارندگی معابر را سریع باز کردند قدردانی می‌کنم.",
        "از رسیدگی سریع به درخواستم سپاسگزارم.",
    ),
}
NOT_REFERRED_NOTES = {
    "incomplete_message": "پیام نیمه‌کاره قطع شده و موضوع آن مشخص نیست.",
    "incomplete_caller": "نشانی محل یا مشخصات تماس‌گیرنده کامل نیست.",
    "duplicate": "همان موضوع پیام قبلی است.",
    "irrelevant": "موضوع پیام به شهرداری مربوط نیست (قبض آب و برق).",
}
REPLY_TEXTS = {
    "137": (
        "درخواست شما بررسی شد و اکیپ اجرایی مشکل را برطرف کرد.",
        "کارشناسان ما از محل بازدید کردند و ترمیم در برنامه همین هفته قرار گرفت.",
        "مورد اعلام‌شده رفع شد. از همراهی شما سپاسگزاریم.",
    ),
    "1888": (
        "پیام شما بررسی شد و اصلاح روند به واحد مربوط ابلاغ شد.",
        "با همکار مربوط گفت‌وگو و تذکر لازم داده شد. از اطلاع‌رسانی شما متشکریم.",
        "پیشنهاد شما در کمیته بهبود فرایندها مطرح شد و در دست بررسی است.",
        "از قدردانی شما سپاسگزاریم؛ پیام شما به همکاران ابلاغ شد.",
    ),
}


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
    from ivr.infra.storage import AudioStore
    from ivr.prompts import synthesize_speech

    store = AudioStore(recordings_dir)
    work_dir.mkdir(parents=True, exist_ok=True)

    def speak(text: str) -> StoredAudio:
        return store.store(synthesize_speech(text, work_dir / f"demo-{secrets.token_hex(8)}.wav"))

    return speak
REPLY_VOICES = 60  # the newest spoken replies get audio (the phone follow-up plays them)


def plain_call_keys(outcome: str, rng: random.Random) -> str:
    """Keys of a call that left no message and looked nothing up, as callers press them for `outcome`."""
    if outcome == "operator":
        return rng.choice(("0", "0", "0", "10", "20"))
    if outcome == "guidance":
        return rng.choice(("", "9", "99", "*"))
    if outcome == "dropped":
        return rng.choice(("", "", "1", "2", "13"))
    if outcome == "nuisance":
        return rng.choice(("*", "7", "5555", "#*#", "123"))
    return rng.choice(("", "0", "1"))


def load_demo(
    session: Session,
    *,
    seed: int = 1888,
    calls: int = 2000,
    messages: int | None = None,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
    voice: Voice | None = None,
) -> DemoReport:
    """Load the demo city; refuse with DemoAlreadyLoaded if it is there. Does not commit.

    `calls` are spread over the 30 days before `now`. `messages` is the total number of
    messages wanted; it never drops below one per call that registered a message, and
    the default adds a quarter more typed by operators or sent by SMS. `progress`, if
    given, is called with the number of rows each step wrote (so `tqdm.update` fits).
    `voice`, if given, turns a Persian text into stored audio: the voice messages waiting
    for screening or for their unit's answer, and the newest spoken replies, then have it.
    """
    if now is None:
        now = utcnow()
    elif now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if calls < 0 or (messages is not None and messages < 0):
        raise ValueError("calls and messages cannot be negative")
    _refuse_if_loaded(session)
    return _DemoCity(session, random.Random(seed), now, progress, voice).load(calls, messages)


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
class _Call:
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
    updated: datetime | None = None
    id: int = 0


class _DemoCity:
    """Builds the demo in Python first, then writes each table in one bulk insert."""

    def __init__(
        self,
        session: Session,
        rng: random.Random,
        now: datetime,
        progress: Callable[[int], None] | None,
        voice: Voice | None = None,
    ) -> None:
        self.session = session
        self.voice = voice
        self.replies: list[tuple[int, str, datetime]] = []  # (id, text, created) of each reply
        self.rng = rng
        self.now = now
        self.start = now - timedelta(days=DAYS)
        self.today = now.astimezone(TEHRAN).date()
        self.progress = progress
        self.report = DemoReport()
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
        self.load_units()
        self.load_topics()
        self.load_users()
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
        self.write_messages(planned)
        self.write_follow_through(planned)
        if self.voice is not None:
            self.write_voices(planned)
        self.session.flush()
        return self.report

    # ---- the city ----------------------------------------------------------------

    def load_units(self) -> None:
        rows: list[dict[str, Any]] = [
            {"code": code, "name": name, "kind": "deputy", "parent_id": None, "district": None}
            for code, name in DEPUTIES
        ]
        ids = _insert(self.session, Unit, rows, key="code")
        self.units.update(zip((r["code"] for r in rows), ids, strict=True))
        rows = [
            {
                "code": code,
                "name": name,
                "kind": kind,
                "parent_id": self.units[parent],
                "district": None,
            }
            for code, name, kind, parent in BODIES
        ] + [
            {
                "code": _district_code(d),
                "name": f"شهرداری منطقه {_fa(d)}",
                "kind": "district_office",
                "parent_id": self.units["deputy-districts"],
                "district": d,
            }
            for d in DISTRICTS
        ]
        ids = _insert(self.session, Unit, rows, key="code")
        self.units.update(zip((r["code"] for r in rows), ids, strict=True))
        self.count("units", len(self.units))

    def load_topics(self) -> None:
        topics = [
            Topic(
                code=code,
                line_code="137",
                name=name,
                menu_key=key,
                unit_id=self.units[unit],
                due_working_days=days,
            )
            for code, key, name, unit, days, _ in TOPICS_137
        ] + [
            Topic(
                code=code,
                line_code="1888",
                name=name,
                menu_key=None,
                unit_id=self.units[unit],
                due_working_days=days,
            )
            for code, name, unit, days, _ in TOPICS_1888
        ]
        self.session.add_all(topics)
        self.session.flush()
        self.topics = {t.code: t for t in topics}
        self.count("topics", len(topics))

    def person(self) -> str:
        return f"{self.rng.choice(FIRST_NAMES)} {self.rng.choice(LAST_NAMES)}"

    def load_users(self) -> None:
        wanted = [(f"mgr-{code}", "manager", code) for code in self.units] + [
            (username, role, None) for username, role in STAFF
        ]
        for username, role, unit_code in wanted:
            # Passwords come from `secrets`, never from the seed: the demo may face the internet.
            password = secrets.token_urlsafe(12)
            phone = self.mobile() if role == "manager" else None
            user = add_user(
                self.session, username, self.person(), role, unit_code, password, phone=phone
            )
            if unit_code is not None:
                self.managers[self.units[unit_code]] = user.id
            elif role in ("operator", "supervisor"):
                self.screeners.append(user.id)
            self.report.logins.append((username, role, password))
            # One at a time: hashing makes users the slow step, so progress moves per user.
            self.count("users", 1)

    def load_calendar(self) -> None:
        existing_hours = set(self.session.scalars(select(WorkingHours.weekday)))
        hours = [
            WorkingHours(weekday=day, opens=opens, closes=closes)
            for day, (opens, closes) in WORKING_HOURS.items()
            if day not in existing_hours
        ]
        jy = jdatetime.date.fromgregorian(date=self.today).year
        days: dict[date, str] = {}
        for year in (jy - 1, jy, jy + 1):
            for month, day, name in JALALI_HOLIDAYS:
                days[jdatetime.date(year, month, day).togregorian()] = name
        # Last year's days only shape the demo's deadlines; the table gets this year and next.
        self.holidays = set(days)
        first_day = jdatetime.date(jy, 1, 1).togregorian()
        existing_days = set(
            self.session.scalars(select(Holiday.day).where(Holiday.day >= first_day))
        )
        holidays = [
            Holiday(day=d, name=name)
            for d, name in sorted(days.items())
            if d >= first_day and d not in existing_days
        ]
        self.session.add_all([*hours, *holidays])
        self.count("working_hours", len(hours))
        self.count("holidays", len(holidays))

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

    def due(self, referred: datetime, working_days: int) -> datetime:
        """`working_days` later, skipping Fridays and holidays, at the same time of day."""
        local = referred.astimezone(TEHRAN)
        day, left = local.date(), working_days
        while left:
            day += timedelta(days=1)
            if day.weekday() != FRIDAY and day not in self.holidays:
                left -= 1
        return datetime.combine(day, local.time(), TEHRAN).astimezone(self.now.tzinfo)

    def plan_referrals(self, planned: list[_Message]) -> None:
        """Referral unit, deadline, reply and feedback of each referred message."""
        rng = self.rng
        referred = sorted(
            (m for m in planned if m.status == "referred"), key=lambda m: m.screened_at or m.created
        )
        # The most recently referred are still waiting for their unit.
        answered = len(referred) - round(len(referred) * PENDING_SHARE)
        for n, message in enumerate(referred):
            assert message.screened_at is not None and message.topic is not None
            message.unit_id = self.referral_unit(message)
            message.due = self.due(message.screened_at, self.topics[message.topic].due_working_days)
            message.updated = message.screened_at
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
            message.status = "answered"
            message.updated = message.reply_at

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
            message.updated = message.feedback_at
            if message.satisfied and rng.random() < CLOSED_OF_SATISFIED:
                message.status = "closed"

    # ---- writing -----------------------------------------------------------------

    def write_messages(self, planned: list[_Message]) -> None:
        def row(m: _Message) -> dict[str, Any]:
            if m.reason is not None:
                summary: str | None = NOT_REFERRED_NOTES[m.reason]
            else:
                summary = m.text if m.screened_at is not None else None
            return {
                "tracking_code": m.code,
                "line_code": m.line,
                "kind": m.kind,
                "topic_id": None if m.topic is None else self.topics[m.topic].id,
                "district": m.district,
                "unit_id": m.unit_id,
                "citizen_id": None if m.citizen is None else self.citizen_ids[m.citizen],
                "call_id": None if m.call is None else m.call.id,
                "source": m.source,
                "status": m.status,
                "not_referred_reason": m.reason,
                "duplicate_of_id": None if m.duplicate_of is None else m.duplicate_of.id,
                "body": None if m.source == "phone_voice" else m.text,
                "summary": summary,
                "created_at": m.created,
                "updated_at": m.updated or m.screened_at or m.created,
                "screened_at": m.screened_at,
                "screened_by_id": m.screened_by,
            }

        # Duplicates go second: their originals need ids first.
        originals = [m for m in planned if m.duplicate_of is None]
        duplicates = [m for m in planned if m.duplicate_of is not None]
        for group in (originals, duplicates):
            ids = _insert(self.session, Message, [row(m) for m in group], key="tracking_code")
            for message, message_id in zip(group, ids, strict=True):
                message.id = message_id
        self.count("messages", len(planned))

    def write_voices(self, planned: list[_Message]) -> None:
        """Audio for the voice messages still waiting (screening queue, inboxes) and the newest replies."""
        assert self.voice is not None
        rows: list[dict[str, Any]] = []

        def add(text: str, created: datetime, purpose: str, **owner: int) -> None:
            audio = self.voice(text)  # type: ignore[misc]
            rows.append({
                "path": audio.rel_path, "format": audio.format, "seconds": audio.seconds, "sha256": audio.sha256,
                "size_bytes": audio.size_bytes, "purpose": purpose, "created_at": created, **owner,
            })

        for m in planned:
            if m.source == "phone_voice" and m.status in ("new", "referred") and m.text:
                add(m.text, m.created, "message", message_id=m.id)
        for reply_id, text, created in sorted(self.replies, key=lambda r: r[2])[-REPLY_VOICES:]:
            add(text, created, "reply", reply_id=reply_id)
        if rows:
            self.session.execute(insert(Recording), rows)
        self.count("recordings", len(rows))

    def write_follow_through(self, planned: list[_Message]) -> None:
        """Referrals, replies, feedback, reminders and the SMS that went with them."""
        rng = self.rng
        referred = [m for m in planned if m.unit_id is not None]
        referral_ids = _insert(
            self.session,
            Referral,
            [
                {
                    "message_id": m.id,
                    "unit_id": m.unit_id,
                    "manager_id": self.manager_of(m),
                    "referred_by_id": m.screened_by,
                    "referred_at": m.screened_at,
                    "due_at": m.due,
                    "closed_at": m.reply_at,
                    "escalated_at": (
                        m.due + timedelta(days=1)
                        if m.due is not None
                        and m.reply_at is None
                        and m.due + timedelta(days=1) < self.now
                        else None
                    ),
                }
                for m in referred
            ],
            key="message_id",
        )
        self.count("referrals", len(referral_ids))

        replied = [
            (m, rid)
            for m, rid in zip(referred, referral_ids, strict=True)
            if m.reply_at is not None
        ]
        reply_rows = []
        for message, referral_id in replied:
            assert message.reply_at is not None
            heard = message.reply_at + timedelta(hours=rng.uniform(1, 72))
            reply_rows.append(
                {
                    "message_id": message.id,
                    "referral_id": referral_id,
                    "author_id": self.manager_of(message),
                    "text": rng.choice(REPLY_TEXTS[message.line]),
                    "created_at": message.reply_at,
                    "heard_at": heard if heard < self.now and rng.random() < 0.5 else None,
                }
            )
        reply_ids = _insert(self.session, Reply, reply_rows, key="message_id")
        self.count("replies", len(reply_ids))
        self.replies = [(rid, r["text"], r["created_at"]) for r, rid in zip(reply_rows, reply_ids, strict=True)]

        rated = [
            (m, rid)
            for (m, _), rid in zip(replied, reply_ids, strict=True)
            if m.satisfied is not None
        ]
        feedback_ids = _insert(
            self.session,
            Feedback,
            [
                {
                    "message_id": m.id,
                    "reply_id": reply_id,
                    "satisfied": m.satisfied,
                    "channel": m.feedback_channel,
                    "raw_text": ("1" if m.satisfied else "2")
                    if m.feedback_channel == "sms"
                    else None,
                    "created_at": m.feedback_at,
                }
                for m, reply_id in rated
            ],
            key="message_id",
        )
        self.count("feedback", len(feedback_ids))

        # A dissatisfied 137 caller re-opens the request at the same unit, not a new message:
        # either the unit has answered again (a second reply closes the referral and the
        # reminder), or the request is back in its inbox with a new deadline.
        referral_of = {m.id: rid for m, rid in zip(referred, referral_ids, strict=True)}
        reminder_rows, again, reopened = [], [], []
        for (message, _), feedback_id in zip(rated, feedback_ids, strict=True):
            if message.satisfied or message.line != "137":
                continue
            assert message.feedback_at is not None and message.topic is not None
            resolved: datetime | None = message.feedback_at + timedelta(days=rng.uniform(1, 6))
            if not (resolved < self.now and rng.random() < 0.5):
                resolved = None
            reminder_rows.append(
                {
                    "message_id": message.id,
                    "unit_id": message.unit_id,
                    "reason": "dissatisfied",
                    "feedback_id": feedback_id,
                    "created_at": message.feedback_at,
                    "resolved_at": resolved,
                }
            )
            referral_id = referral_of[message.id]
            if resolved is not None:
                again.append({
                    "message_id": message.id, "referral_id": referral_id, "author_id": self.manager_of(message),
                    "text": rng.choice(REPLY_TEXTS[message.line]), "created_at": resolved, "heard_at": None,
                })
                self.session.execute(update(Referral).where(Referral.id == referral_id).values(closed_at=resolved))
            else:
                message.status = "referred"
                due = self.due(message.feedback_at, self.topics[message.topic].due_working_days)
                reopened.append(message.id)
                self.session.execute(
                    update(Referral).where(Referral.id == referral_id).values(closed_at=None, due_at=due, escalated_at=None)
                )
        _insert(self.session, Reminder, reminder_rows)
        self.count("reminders", len(reminder_rows))
        if again:
            again_ids = _insert(self.session, Reply, again, key="message_id")
            self.replies += [(rid, r["text"], r["created_at"]) for r, rid in zip(again, again_ids, strict=True)]
            self.count("replies", len(again_ids))
        if reopened:
            self.session.execute(update(Message).where(Message.id.in_(reopened)).values(status="referred"))
        self.write_sms(planned)

    def write_sms(self, planned: list[_Message]) -> None:
        rows = []
        for m in planned:
            if m.citizen is None:
                continue
            if m.source == "sms":
                rows.append(self.sms("in", m, m.text, "message", m.created))
                rows.append(
                    self.sms(
                        "out",
                        m,
                        f"پیام شما ثبت شد. کد رهگیری: {m.code}",
                        "tracking_code",
                        m.created + timedelta(seconds=20),
                    )
                )
            if m.reply_at is not None:
                ready = (
                    f"پاسخ پیام {m.code} آماده است؛ با سامانه {persian_digits(m.line)}"
                    " تماس بگیرید"
                    " و کد رهگیری را وارد کنید."
                )
                rows.append(
                    self.sms("out", m, ready, "reply_ready", m.reply_at + timedelta(minutes=1))
                )
            if m.feedback_channel == "sms" and m.reply_at is not None and m.feedback_at is not None:
                ask = m.reply_at + timedelta(minutes=2)
                rows.append(
                    self.sms(
                        "out", m, "آیا از پاسخ رضایت دارید؟ ۱: بله  ۲: خیر", "feedback_request", ask
                    )
                )
                rows.append(
                    self.sms(
                        "in",
                        m,
                        "1" if m.satisfied else "2",
                        "feedback",
                        max(m.feedback_at, ask + timedelta(seconds=30)),
                    )
                )
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
