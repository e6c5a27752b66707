"""Dashboard figures, read from the rollup tables only (never a scan of calls or messages).

Every function takes a session and `Filters` (a period of Tehran days, optionally a line,
and the unit a manager is limited to) and returns a `Table`: columns with Persian labels
and rows of plain values, so the same result feeds the JSON API and its charts, the HTML
tables, CSV and XLSX exports and the printed monthly report.

Definitions (per message registered in the period, by its Tehran registration day):
referred = has a referral; not referred = status not_referred, by reason; answered =
has a reply; satisfied = feedback rows saying satisfied, out of all feedback rows;
reminders = reminder rows. Calls count by their start; key 4 = the first key pressed.

Hotspots (نقاط بحرانی, "critical points"): for each topic x district cell, the period's
message count is compared by a one-sided Poisson test with what the cell's own history
predicts: its count over the whole calendar months before the month the period starts in (6 times the period's
length, at least `HISTORY_PERIODS` and at most `MAX_HISTORY_MONTHS` months) scaled to the
period's length (at least `MIN_MEAN`). Its reminders are compared the same way with the
history's reminders per referred message (smoothed: +0.5 / +1) times the period's referred
messages. All p-values of a request go through Benjamini-Hochberg; a cell is a hotspot
when its adjusted p-value is at most `ALPHA` and the count is at least `MIN_COUNT`
(volume) or `MIN_REMINDERS` (reminders). History comes from the monthly rollup, so a
request reads a few thousand rows whatever the period.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import jdatetime
from sqlalchemy import Integer, Subquery, and_, func, literal_column, select, text, union_all
from sqlalchemy.orm import Session

from ivr import vocabulary
from ivr.analysis.rollups import MESSAGE_COUNTERS, NOT_REFERRED_COLUMNS
from ivr.analysis.stats import benjamini_hochberg, poisson_sf
from ivr.models import (
    ROLLUP_NO_OUTCOME,
    CallHourMonthRollup,
    CallHourRollup,
    CallOutcomeMonthRollup,
    CallOutcomeRollup,
    MessageMonthRollup,
    MessageRollup,
    Topic,
    Unit,
)
from ivr.parsing import ParseError, parse_jalali_date, parse_jalali_month
from ivr.vocabulary import (
    CALL_OUTCOMES,
    KIND_LABELS,
    LINE_LABELS,
    LINES,
    MESSAGE_KINDS,
    REASON_LABELS,
)

HISTORY_PERIODS = 6
ALPHA = 0.05
MIN_COUNT = 5
MIN_REMINDERS = 3
MIN_MEAN = 0.5
DEFAULT_DAYS = 30
MAX_PERIOD_DAYS = 3653  # ten years
MAX_HISTORY_MONTHS = 24
# The outcome labels, plus the rollups' cell for calls still in progress.
OUTCOME_LABELS = {**vocabulary.OUTCOME_LABELS, ROLLUP_NO_OUTCOME: "در جریان"}
# Persian week order: Saturday first. Python counts Monday = 0.
WEEKDAY_LABELS = ("شنبه", "یکشنبه", "دوشنبه", "سه‌شنبه", "چهارشنبه", "پنجشنبه", "جمعه")
UNKNOWN = "نامشخص"


class FilterError(ValueError):
    """A period, line or breakdown the dashboards cannot take (the message is Persian)."""


@dataclass(frozen=True)
class Period:
    """Tehran days from `start` to `end`, both included."""

    start: date
    end: date

    @property
    def days(self) -> int:
        """How many days the period holds."""
        return (self.end - self.start).days + 1

    def previous(self, count: int = 1) -> Period:
        """The `count` periods of equal length just before this one, as one period."""
        return Period(self.start - timedelta(days=self.days * count), self.start - timedelta(days=1))


@dataclass(frozen=True)
class Filters:
    """What a dashboard shows: a period, maybe one line, maybe one unit (a manager's own)."""

    period: Period
    line: str | None = None
    unit_id: int | None = None
    districts: int = vocabulary.DEFAULT_DISTRICTS  # the city's count (IVR_DISTRICTS): the hotspot grid


@dataclass(frozen=True)
class Column:
    """A table column: its key in the rows, its Persian label, and how to show it."""

    key: str
    label: str
    kind: str = "int"  # int | pct | text | num | p (a probability, shown in scientific notation)


@dataclass
class Table:
    """A titled table of plain rows; what every dashboard function returns."""

    name: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "name": self.name,
            "title": self.title,
            "columns": [{"key": c.key, "label": c.label, "kind": c.kind} for c in self.columns],
            "rows": self.rows,
            **self.extra,
        }


# ---- dates -------------------------------------------------------------------------------


def jalali(day: date) -> str:
    """A Gregorian date as a Jalali 'YYYY/MM/DD' with Latin digits (the UI turns them Persian)."""
    return jdatetime.date.fromgregorian(date=day).strftime("%Y/%m/%d")


def parse_jalali(text: str) -> date:
    """A Jalali date typed as 1405/08/01 or 1405-08-01, Persian digits allowed."""
    try:
        return parse_jalali_date(text)
    except ParseError as exc:
        raise FilterError(str(exc)) from exc


def jalali_month(text: str) -> Period:
    """The Jalali month typed as 1405/08 (Persian digits allowed)."""
    try:
        year, month = parse_jalali_month(text)
    except ParseError as exc:
        raise FilterError(str(exc)) from exc
    start = jdatetime.date(year, month, 1)
    following = jdatetime.date(year + (month == 12), month % 12 + 1, 1)
    return Period(start.togregorian(), following.togregorian() - timedelta(days=1))


def parse_filters(
    args: Mapping[str, str], today: date, unit_id: int | None = None, districts: int = vocabulary.DEFAULT_DISTRICTS
) -> Filters:
    """Filters from query arguments: `from`, `to` (Jalali), `line`; default the last 30 days."""
    end = parse_jalali(args["to"]) if args.get("to") else today
    start = parse_jalali(args["from"]) if args.get("from") else end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise FilterError("تاریخ شروع بعد از تاریخ پایان است.")
    if (end - start).days >= MAX_PERIOD_DAYS:
        # Daily tables have a row per day: two centuries were a 16 MB page and a 14-second export.
        raise FilterError("بازه گزارش حداکثر ده سال است.")
    line = args.get("line") or None
    if line is not None and line not in LINES:
        raise FilterError(f"سامانه «{line}» وجود ندارد.")
    return Filters(Period(start, end), line, unit_id, districts)


# ---- helpers -----------------------------------------------------------------------------


def _share(part: int, whole: int) -> float | None:
    return None if not whole else round(100.0 * part / whole, 1)


def _change(now: int, before: int) -> float | None:
    return None if not before else round(100.0 * (now - before) / before, 1)


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def spans(period: Period) -> tuple[list[Period], Period | None]:
    """The period as edge days (read from the daily rollup) and whole months (monthly rollup).

    The month span runs from the first whole month's first day to the last whole month's first day.
    """
    first = period.start if period.start.day == 1 else _next_month(period.start)
    after = _next_month(period.end) if _next_month(period.end) - timedelta(days=1) == period.end else _month_start(period.end)
    if first >= after:
        return [period], None
    days = []
    if period.start < first:
        days.append(Period(period.start, first - timedelta(days=1)))
    if after <= period.end:
        days.append(Period(after, period.end))
    return days, Period(first, _month_start(after - timedelta(days=1)))


def _source(
    daily: Any,
    monthly: Any,
    columns: tuple[str, ...],
    filters: Filters,
    parts: list[tuple[int, Period]],
    daily_columns: Mapping[str, Any] | None = None,
) -> Subquery:
    """Rollup rows of each (label, period) part, labelled `part`: edge days from the daily
    table, whole months from the monthly one (same columns; `daily_columns` fills any the
    daily table computes instead). The line filter and a manager's unit apply to both."""
    selects = []
    for label, period in parts:
        days, months = spans(period)
        pieces: list[tuple[Any, Any, Period]] = [(daily, daily.day, span) for span in days]
        if months is not None:
            pieces.append((monthly, monthly.month, months))
        for model, when, span in pieces:
            where = [when >= span.start, when <= span.end]
            if filters.line:
                where.append(model.line_code == filters.line)
            if filters.unit_id is not None:
                if not hasattr(model, "unit_id"):
                    raise FilterError("این جدول برای یک واحد نیست.")
                where.append(model.unit_id == filters.unit_id)
            computed = daily_columns if model is daily and daily_columns else {}
            selects.append(
                select(
                    literal_column(str(int(label))).label("part"),
                    *(computed[c] if c in computed else getattr(model, c) for c in columns),
                ).where(and_(*where))
            )
    if len(selects) == 1:
        return selects[0].subquery()
    return union_all(*selects).subquery()


def _message_source(filters: Filters, parts: list[tuple[int, Period]]) -> Subquery:
    """Message rollup rows of each (label, period) part (see `_source`)."""
    columns = ("line_code", "kind", "topic_id", "district", "unit_id", *MESSAGE_COUNTERS)
    return _source(MessageRollup, MessageMonthRollup, columns, filters, parts)


# ---- calls -------------------------------------------------------------------------------


def _call_outcome_rows(session: Session, filters: Filters) -> list[tuple[bool, str, str, str, int]]:
    """(current?, line, outcome, first key, calls) over this period and the one before."""
    src = _source(
        CallOutcomeRollup,
        CallOutcomeMonthRollup,
        ("line_code", "outcome", "first_key", "calls"),
        filters,
        [(1, filters.period), (0, filters.period.previous())],
    )
    stmt = select(src.c.part, src.c.line_code, src.c.outcome, src.c.first_key, func.sum(src.c.calls)).group_by(
        src.c.part, src.c.line_code, src.c.outcome, src.c.first_key
    )
    return [(bool(c), line, o, k, int(n or 0)) for c, line, o, k, n in session.execute(stmt)]


def calls_summary(session: Session, filters: Filters) -> Table:
    """Calls per line: total, key 4 and its share, against the previous period."""
    rows = _call_outcome_rows(session, filters)
    totals: dict[tuple[bool, str], list[int]] = defaultdict(lambda: [0, 0])
    for current, row_line, _outcome, key, n in rows:
        totals[(current, row_line)][0] += n
        if key == "4":
            totals[(current, row_line)][1] += n
    out = []
    lines = [filters.line] if filters.line else list(LINES)
    for line in [*lines, None]:
        def pick(current: bool, line: str | None = line) -> list[int]:
            keys = [line] if line else lines
            return [sum(totals[(current, k)][i] for k in keys) for i in (0, 1)]

        (calls, key4), (prev_calls, prev_key4) = pick(True), pick(False)
        out.append(
            {
                "line": LINE_LABELS[line] if line else "جمع",
                "calls": calls,
                "key4": key4,
                "key4_share": _share(key4, calls),
                "previous_calls": prev_calls,
                "change": _change(calls, prev_calls),
                "previous_key4_share": _share(prev_key4, prev_calls),
            }
        )
    return Table(
        "calls-summary",
        "تماس‌ها و سهم کلید ۴",
        [
            Column("line", "سامانه", "text"),
            Column("calls", "تماس"),
            Column("key4", "کلید ۴"),
            Column("key4_share", "سهم کلید ۴ ٪", "pct"),
            Column("previous_calls", "تماس دوره قبل"),
            Column("change", "تغییر ٪", "pct"),
            Column("previous_key4_share", "سهم کلید ۴ دوره قبل ٪", "pct"),
        ],
        out,
    )


def calls_outcomes(session: Session, filters: Filters) -> Table:
    """Calls per outcome, with shares, against the previous period."""
    counts: dict[tuple[bool, str], int] = defaultdict(int)
    for current, _line, outcome, _key, n in _call_outcome_rows(session, filters):
        counts[(current, outcome)] += n
    total = sum(n for (c, _), n in counts.items() if c)
    prev_total = sum(n for (c, _), n in counts.items() if not c)
    rows = []
    for outcome in (*CALL_OUTCOMES, ROLLUP_NO_OUTCOME):
        now, before = counts[(True, outcome)], counts[(False, outcome)]
        if now or before:
            rows.append(
                {
                    "outcome": OUTCOME_LABELS[outcome],
                    "code": outcome,
                    "calls": now,
                    "share": _share(now, total),
                    "previous_calls": before,
                    "previous_share": _share(before, prev_total),
                }
            )
    return Table(
        "calls-outcomes",
        "نتیجه تماس‌ها",
        [
            Column("outcome", "نتیجه", "text"),
            Column("calls", "تماس"),
            Column("share", "سهم ٪", "pct"),
            Column("previous_calls", "دوره قبل"),
            Column("previous_share", "سهم دوره قبل ٪", "pct"),
        ],
        rows,
    )


def calls_keys(session: Session, filters: Filters) -> Table:
    """Calls per first key pressed (key choices), with shares."""
    counts: dict[str, int] = defaultdict(int)
    for current, _line, _outcome, key, n in _call_outcome_rows(session, filters):
        if current:
            counts[key] += n
    total = sum(counts.values())
    rows = [
        {"key": key if key else "بدون کلید", "calls": n, "share": _share(n, total)}
        for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return Table(
        "calls-keys",
        "نخستین کلید فشرده‌شده",
        [Column("key", "کلید", "text"), Column("calls", "تماس"), Column("share", "سهم ٪", "pct")],
        rows,
    )


def calls_daily(session: Session, filters: Filters) -> Table:
    """Calls per Tehran day and line, and key 4 per day."""
    r = CallHourRollup
    where = [r.day >= filters.period.start, r.day <= filters.period.end]
    if filters.line:
        where.append(r.line_code == filters.line)
    stmt = (
        select(r.day, r.line_code, func.sum(r.calls), func.sum(r.key4))
        .where(and_(*where))
        .group_by(r.day, r.line_code)
    )
    per_day: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for day, line, calls, key4 in session.execute(stmt):
        day = day if isinstance(day, date) else date.fromisoformat(day)
        per_day[day][line] += int(calls or 0)
        per_day[day]["key4"] += int(key4 or 0)
    rows = []
    for k in range(filters.period.days):
        day = filters.period.start + timedelta(days=k)
        counts = per_day.get(day, {})
        calls_137, calls_1888 = counts.get("137", 0), counts.get("1888", 0)
        rows.append(
            {
                "day": jalali(day),
                "calls_137": calls_137,
                "calls_1888": calls_1888,
                "calls": calls_137 + calls_1888,
                "key4": counts.get("key4", 0),
            }
        )
    return Table(
        "calls-daily",
        "تماس‌ها در هر روز",
        [
            Column("day", "روز", "text"),
            Column("calls_137", "۱۳۷"),
            Column("calls_1888", "۱۸۸۸"),
            Column("calls", "جمع"),
            Column("key4", "کلید ۴"),
        ],
        rows,
    )


def calls_heatmap(session: Session, filters: Filters) -> Table:
    """Calls per weekday (Saturday first) and Tehran hour over the period."""
    if session.get_bind().dialect.name == "postgresql":
        dow: Any = func.cast(func.extract("dow", CallHourRollup.day), Integer)
    else:
        dow = func.cast(func.strftime("%w", CallHourRollup.day), Integer)
    src = _source(
        CallHourRollup,
        CallHourMonthRollup,
        ("weekday", "hour", "calls"),
        filters,
        [(1, filters.period)],
        daily_columns={"weekday": dow.label("weekday")},
    )
    stmt = select(src.c.weekday, src.c.hour, func.sum(src.c.calls)).group_by(src.c.weekday, src.c.hour)
    grid = [[0] * 24 for _ in WEEKDAY_LABELS]
    for weekday, hour, calls in session.execute(stmt):
        # SQL counts Sunday = 0; the Persian week starts on Saturday.
        grid[(int(weekday) + 1) % 7][int(hour)] += int(calls or 0)
    rows = [
        {"weekday": label, **{f"h{h:02d}": grid[w][h] for h in range(24)}}
        for w, label in enumerate(WEEKDAY_LABELS)
    ]
    return Table(
        "calls-heatmap",
        "نقشه گرمایی تماس‌ها (روز هفته × ساعت)",
        [Column("weekday", "روز هفته", "text"), *(Column(f"h{h:02d}", f"{h:02d}") for h in range(24))],
        rows,
    )


# ---- messages ----------------------------------------------------------------------------

FUNNEL_COLUMNS = [
    Column("registered", "ثبت‌شده"),
    Column("referred", "ارجاع‌شده"),
    Column("referred_share", "ارجاع ٪", "pct"),
    Column("not_referred", "ارجاع‌نشده"),
    *(Column(f"not_referred_{r}", f"ارجاع‌نشده: {label}") for r, label in REASON_LABELS.items()),
    Column("answered", "پاسخ‌داده‌شده"),
    Column("answered_share", "پاسخ از ارجاع‌شده‌ها ٪", "pct"),
    Column("feedback", "نظرسنجی"),
    Column("satisfied", "راضی"),
    Column("satisfied_share", "رضایت ٪", "pct"),
    Column("reminders", "تذکر"),
]


def _funnel_row(sums: Mapping[str, int]) -> dict[str, Any]:
    not_referred = sum(sums[c] for c in NOT_REFERRED_COLUMNS.values())
    return {
        "registered": sums["registered"],
        "referred": sums["referred"],
        "referred_share": _share(sums["referred"], sums["registered"]),
        "not_referred": not_referred,
        **{f"not_referred_{r}": sums[c] for r, c in NOT_REFERRED_COLUMNS.items()},
        "answered": sums["answered"],
        "answered_share": _share(sums["answered"], sums["referred"]),
        "feedback": sums["feedback"],
        "satisfied": sums["satisfied"],
        "satisfied_share": _share(sums["satisfied"], sums["feedback"]),
        "reminders": sums["reminders"],
    }


def _sums(row: Any, offset: int) -> dict[str, int]:
    return {c: int(row[offset + i] or 0) for i, c in enumerate(MESSAGE_COUNTERS)}


def message_funnel(session: Session, filters: Filters) -> Table:
    """Registered → referred / not referred by reason → answered → satisfied, now and before."""
    src = _message_source(filters, [(1, filters.period), (0, filters.period.previous())])
    stmt = select(src.c.part, *(func.sum(src.c[c]) for c in MESSAGE_COUNTERS)).group_by(src.c.part)
    found = {bool(row[0]): _sums(row, 1) for row in session.execute(stmt)}
    empty = dict.fromkeys(MESSAGE_COUNTERS, 0)
    rows = [
        {"period": "دوره", **_funnel_row(found.get(True, empty))},
        {"period": "دوره قبل", **_funnel_row(found.get(False, empty))},
    ]
    return Table(
        "funnel", "قیف پیام‌ها", [Column("period", "", "text"), *FUNNEL_COLUMNS], rows
    )


BREAKDOWNS = {
    "kind": "نوع پیام",
    "topic": "موضوع",
    "district": "منطقه",
    "unit": "واحد",
    "line": "سامانه",
}


def _names(session: Session, by: str) -> Callable[[Any], str]:
    if by == "kind":
        return lambda k: KIND_LABELS.get(k, k)
    if by == "line":
        return lambda k: LINE_LABELS.get(k, k)
    if by == "district":
        return lambda d: f"منطقه {d}" if d else UNKNOWN
    model = Topic if by == "topic" else Unit
    names = dict(session.execute(select(model.id, model.name)).all())
    return lambda i: names.get(i, UNKNOWN) if i else UNKNOWN


def message_breakdown(session: Session, filters: Filters, by: str) -> Table:
    """The funnel per kind, topic, district, unit or line, with the previous period's volume."""
    if by not in BREAKDOWNS:
        raise FilterError(f"تفکیک «{by}» وجود ندارد.")
    src = _message_source(filters, [(1, filters.period), (0, filters.period.previous())])
    key = src.c[{"kind": "kind", "topic": "topic_id", "district": "district", "unit": "unit_id", "line": "line_code"}[by]]
    stmt = select(key, src.c.part, *(func.sum(src.c[c]) for c in MESSAGE_COUNTERS)).group_by(key, src.c.part)
    now: dict[Any, dict[str, int]] = {}
    before: dict[Any, int] = defaultdict(int)
    for row in session.execute(stmt):
        if row[1]:
            now[row[0]] = _sums(row, 2)
        else:
            before[row[0]] += int(row[2] or 0)
    name = _names(session, by)
    order = list(MESSAGE_KINDS) if by == "kind" else None
    keys = sorted(
        set(now) | set(before),
        key=lambda k: (order.index(k) if order and k in order else 99, -(now.get(k) or {}).get("registered", 0), str(k)),
    )
    empty = dict.fromkeys(MESSAGE_COUNTERS, 0)
    rows = []
    for k in keys:
        funnel = _funnel_row(now.get(k, empty))
        rows.append(
            {
                "group": name(k),
                "code": k,
                **funnel,
                "previous_registered": before.get(k, 0),
                "change": _change(funnel["registered"], before.get(k, 0)),
            }
        )
    return Table(
        f"breakdown-{by}",
        f"پیام‌ها به تفکیک {BREAKDOWNS[by]}",
        [
            Column("group", BREAKDOWNS[by], "text"),
            *FUNNEL_COLUMNS,
            Column("previous_registered", "ثبت‌شده دوره قبل"),
            Column("change", "تغییر ٪", "pct"),
        ],
        rows,
    )


# ---- hotspots ----------------------------------------------------------------------------


def history_months(period: Period) -> Period:
    """The whole calendar months a period's cells are compared with: those just before the month
    the period starts in, six times as long as the period (at least 6 months, at most 24),
    as a period of days."""
    months = min(MAX_HISTORY_MONTHS, max(HISTORY_PERIODS, HISTORY_PERIODS * math.ceil(period.days / 30)))
    end = _month_start(period.start) - timedelta(days=1)
    start = _month_start(period.start)
    for _ in range(months):
        start = _month_start(start - timedelta(days=1))
    return Period(start, end)


def _cell_counts(
    session: Session, filters: Filters, period: Period, history: Period
) -> tuple[dict[tuple[int, int], list[int]], dict[tuple[int, int], list[int]]]:
    """[registered, referred, reminders] per (topic, district) cell over `period` and `history` (one query)."""
    src = _message_source(filters, [(1, period), (0, history)])
    stmt = (
        select(src.c.part, src.c.topic_id, src.c.district, func.sum(src.c.registered),
               func.sum(src.c.referred), func.sum(src.c.reminders))
        .where(src.c.district > 0, src.c.topic_id > 0)
        .group_by(src.c.part, src.c.topic_id, src.c.district)
    )
    now: dict[tuple[int, int], list[int]] = {}
    past: dict[tuple[int, int], list[int]] = {}
    for part, t, dd, a, b, c in session.execute(stmt):
        (now if part else past)[(int(t), int(dd))] = [int(a or 0), int(b or 0), int(c or 0)]
    return now, past


def hotspots(session: Session, filters: Filters) -> Table:
    """Topic x district cells unusually high against their own history (see the module doc)."""
    period = filters.period
    history = history_months(period)
    now, past = _cell_counts(session, filters, period, history)
    scale = period.days / history.days
    tests: list[tuple[tuple[int, int], str, int, float, float]] = []
    cells = now.keys() | past.keys()
    for cell in sorted(cells):
        count, referred, reminders = now.get(cell, [0, 0, 0])
        past_registered, past_referred, past_reminders = past.get(cell, [0, 0, 0])
        mean = max(past_registered * scale, MIN_MEAN)
        tests.append((cell, "volume", count, mean, poisson_sf(count, mean)))
        if referred:
            rate = (past_reminders + 0.5) / (past_referred + 1)
            expected = referred * rate
            tests.append((cell, "reminders", reminders, expected, poisson_sf(reminders, expected)))
    adjusted = benjamini_hochberg([t[4] for t in tests])
    names = _names(session, "topic")
    rows: list[dict[str, Any]] = []
    for (cell, test, observed, expected, p), q in zip(tests, adjusted, strict=True):
        minimum = MIN_COUNT if test == "volume" else MIN_REMINDERS
        if q <= ALPHA and observed >= minimum:
            rows.append(
                {
                    "topic": names(cell[0]),
                    "topic_id": cell[0],
                    "district": cell[1],
                    "test": "حجم پیام" if test == "volume" else "تذکر",
                    "kind": test,
                    "observed": observed,
                    "expected": round(expected, 1),
                    "ratio": round(observed / expected, 1) if expected else None,
                    "p_value": float(f"{p:.3g}"),
                    "q_value": float(f"{q:.3g}"),
                    "score": round(-math.log10(max(q, 1e-300)), 1),
                }
            )
    rows.sort(key=lambda row: (-row["score"], row["district"], row["topic"]))
    grid = [
        {
            "district": d,
            "hotspots": sum(1 for row in rows if row["district"] == d),
            "score": max((row["score"] for row in rows if row["district"] == d), default=0.0),
            "registered": sum(v[0] for (_, dd), v in now.items() if dd == d),
        }
        for d in vocabulary.district_range(filters.districts)
    ]
    return Table(
        "hotspots",
        "نقاط بحرانی (موضوع × منطقه)",
        [
            Column("topic", "موضوع", "text"),
            Column("district", "منطقه"),
            Column("test", "آزمون", "text"),
            Column("observed", "مشاهده‌شده"),
            Column("expected", "مورد انتظار", "num"),
            Column("ratio", "نسبت", "num"),
            Column("p_value", "p", "p"),
            Column("q_value", "q (BH)", "p"),
        ],
        rows,
        extra={
            "grid": grid,
            "tests": len(tests),
            "alpha": ALPHA,
            "history_from": jalali(history.start),
            "history_to": jalali(history.end),
        },
    )


# ---- the catalogue -----------------------------------------------------------------------


def table_names() -> tuple[str, ...]:
    """Every table a dashboard can show or export."""
    return (
        "calls-summary",
        "calls-outcomes",
        "calls-keys",
        "calls-daily",
        "calls-heatmap",
        "funnel",
        *(f"breakdown-{b}" for b in BREAKDOWNS),
        "hotspots",
    )


def call_tables() -> tuple[str, ...]:
    """Tables about calls (city-wide: no unit can be attributed to a call)."""
    return ("calls-summary", "calls-outcomes", "calls-keys", "calls-daily", "calls-heatmap")


def _small_queries(session: Session) -> None:
    """No parallel workers for this transaction on PostgreSQL: starting them costs more than
    reading a few thousand rollup rows (tens of milliseconds on a busy two-core machine)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))


def build_table(session: Session, name: str, filters: Filters) -> Table:
    """The table called `name` for these filters."""
    _small_queries(session)
    simple: dict[str, Callable[[Session, Filters], Table]] = {
        "calls-summary": calls_summary,
        "calls-outcomes": calls_outcomes,
        "calls-keys": calls_keys,
        "calls-daily": calls_daily,
        "calls-heatmap": calls_heatmap,
        "funnel": message_funnel,
        "hotspots": hotspots,
    }
    if name in simple:
        return simple[name](session, filters)
    if name.startswith("breakdown-"):
        return message_breakdown(session, filters, name.removeprefix("breakdown-"))
    raise FilterError(f"جدول «{name}» وجود ندارد.")


def monthly_report(
    session: Session, month: Period, unit_id: int | None, districts: int = vocabulary.DEFAULT_DISTRICTS
) -> list[Table]:
    """Every table of one month, for the printable report (calls only when not limited to a unit)."""
    filters = Filters(month, None, unit_id, districts)
    names = [n for n in table_names() if unit_id is None or n not in call_tables()]
    return [build_table(session, n, filters) for n in names]
