"""Unit performance evaluation (ارزیابی عملکرد): per unit and period, with a documented score.

For a unit and a period [start, end) (a Jalali month in the console), counted at `as_of`:
- received: referrals to the unit made in the period;
- answered: those with a reply (the first reply to the message at or after the referral);
- on time: answered no later than the referral's due date; on_time_pct = on time / received;
- overdue: received referrals answered late, or still unanswered past their due date at `as_of`;
- median_hours: median time from referral to first reply, in hours;
- reminders: reminders (تذکر) raised against the unit in the period (dissatisfied citizens and
  failed field checks);
- satisfaction_pct: satisfied / all feedback given in the period on the unit's referred messages;
- not_referred_pct: the unit's messages (by topic) registered in the period that screening did not refer.

Score (0-100, one decimal), satisfaction and speed count for, reminders and overdue count against:

    score = 40 × on_time_rate + 30 × satisfaction_rate + 30 × speed − 5 × reminders − 2 × overdue

with on_time_rate = on time / received, satisfaction_rate = satisfied / feedback (0.5, neutral, with
no feedback), speed = max(0, 1 − median_hours / 168) (0 with no answer), clamped to 0..100.
A unit with nothing received and no reminder in the period has no score.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median
from zoneinfo import ZoneInfo

import jdatetime
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from ivr.models import Feedback, Message, Referral, Reminder, Reply, Unit, utcnow
from ivr.parsing import parse_jalali_month

W_ON_TIME, W_SATISFACTION, W_SPEED = 40.0, 30.0, 30.0
PENALTY_REMINDER, PENALTY_OVERDUE = 5.0, 2.0
SPEED_HORIZON_HOURS = 168.0  # answering within a week scores some speed
NEUTRAL_SATISFACTION = 0.5


@dataclass(frozen=True)
class Scorecard:
    """One unit's figures for one period."""

    unit_id: int
    unit_name: str
    start: datetime
    end: datetime
    received: int
    answered: int
    on_time: int
    overdue: int
    median_hours: float | None
    reminders: int
    feedback: int
    satisfied: int
    messages: int
    not_referred: int

    @property
    def on_time_pct(self) -> float | None:
        """Answered on time, as a percentage of received."""
        return round(100.0 * self.on_time / self.received, 1) if self.received else None

    @property
    def satisfaction_pct(self) -> float | None:
        """Satisfied answers, as a percentage of all feedback."""
        return round(100.0 * self.satisfied / self.feedback, 1) if self.feedback else None

    @property
    def not_referred_pct(self) -> float | None:
        """The unit's messages screening did not refer, as a percentage."""
        return round(100.0 * self.not_referred / self.messages, 1) if self.messages else None

    @property
    def score(self) -> float | None:
        """The documented score (module docstring), or None with nothing to judge."""
        if not self.received and not self.reminders:
            return None
        on_time = self.on_time / self.received if self.received else 0.0
        satisfaction = self.satisfied / self.feedback if self.feedback else NEUTRAL_SATISFACTION
        speed = max(0.0, 1.0 - self.median_hours / SPEED_HORIZON_HOURS) if self.median_hours is not None else 0.0
        raw = (W_ON_TIME * on_time + W_SATISFACTION * satisfaction + W_SPEED * speed
               - PENALTY_REMINDER * self.reminders - PENALTY_OVERDUE * self.overdue)
        return round(min(100.0, max(0.0, raw)), 1)


def unit_scorecard(session: Session, unit_id: int, start: datetime, end: datetime,
                   as_of: datetime | None = None) -> Scorecard:
    """The scorecard of one unit for [start, end), counted at `as_of` (default now)."""
    as_of = as_of or utcnow()
    unit = session.get(Unit, unit_id)
    referrals = session.scalars(
        select(Referral).where(Referral.unit_id == unit_id, Referral.referred_at >= start, Referral.referred_at < end)
    ).all()
    answered = on_time = overdue = 0
    hours: list[float] = []
    for ref in referrals:
        first = session.scalar(
            select(func.min(Reply.created_at)).where(
                Reply.message_id == ref.message_id, Reply.created_at >= ref.referred_at, Reply.created_at <= as_of,
                or_(Reply.referral_id.is_(None), Reply.referral_id == ref.id),
            )
        )
        if first is not None:
            first = first if first.tzinfo else first.replace(tzinfo=ref.referred_at.tzinfo)
            answered += 1
            hours.append((first - ref.referred_at).total_seconds() / 3600)
            if first <= ref.due_at:
                on_time += 1
            else:
                overdue += 1
        elif ref.due_at < as_of:
            overdue += 1
    reminders = session.scalar(select(func.count()).select_from(Reminder).where(
        Reminder.unit_id == unit_id, Reminder.created_at >= start, Reminder.created_at < end)) or 0
    referred_messages = select(Referral.message_id).where(Referral.unit_id == unit_id)
    fb = session.execute(
        select(Feedback.satisfied, func.count()).where(
            Feedback.message_id.in_(referred_messages), Feedback.created_at >= start, Feedback.created_at < end
        ).group_by(Feedback.satisfied)
    ).all()
    by_answer = {bool(satisfied): n for satisfied, n in fb}
    counts = dict(session.execute(
        select(Message.status, func.count()).where(
            Message.unit_id == unit_id, Message.created_at >= start, Message.created_at < end
        ).group_by(Message.status)
    ).all())
    return Scorecard(
        unit_id=unit_id, unit_name=unit.name if unit else "", start=start, end=end,
        received=len(referrals), answered=answered, on_time=on_time, overdue=overdue,
        median_hours=round(median(hours), 1) if hours else None, reminders=reminders,
        feedback=sum(by_answer.values()), satisfied=by_answer.get(True, 0),
        messages=sum(counts.values()), not_referred=counts.get("not_referred", 0),
    )


def all_scorecards(session: Session, start: datetime, end: datetime, as_of: datetime | None = None) -> list[Scorecard]:
    """Every active unit's scorecard for the period, best score first (units with no score last)."""
    ids = session.scalars(select(Unit.id).where(Unit.active.is_(True)).order_by(Unit.name)).all()
    cards = [unit_scorecard(session, unit_id, start, end, as_of) for unit_id in ids]
    return sorted(cards, key=lambda c: (c.score is None, -(c.score or 0.0)))


# ---- Jalali months ----------------------------------------------------------------------------


@dataclass(frozen=True)
class JalaliMonth:
    """A Jalali month with its bounds as aware datetimes in the city's time zone."""

    year: int
    month: int
    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        """"1405-09", as the console's month picker sends it."""
        return f"{self.year:04d}-{self.month:02d}"


def jalali_month(year: int, month: int, tz: ZoneInfo) -> JalaliMonth:
    """The bounds of a Jalali month (midnight local to midnight local)."""
    if not 1 <= month <= 12:
        raise ValueError(f"a Jalali month is 1 to 12, got {month}")
    first = jdatetime.date(year, month, 1).togregorian()
    nxt = jdatetime.date(year + (month == 12), month % 12 + 1, 1).togregorian()
    return JalaliMonth(year, month, datetime(first.year, first.month, first.day, tzinfo=tz),
                       datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz))


def month_of(moment: datetime, tz: ZoneInfo) -> JalaliMonth:
    """The Jalali month a moment falls in (local time)."""
    j = jdatetime.date.fromgregorian(date=moment.astimezone(tz).date())
    return jalali_month(j.year, j.month, tz)


def parse_month(key: str, tz: ZoneInfo) -> JalaliMonth:
    """A month from "1405-09"; ValueError (a ParseError with a Persian message) when malformed."""
    return jalali_month(*parse_jalali_month(key), tz)


def recent_months(now: datetime, tz: ZoneInfo, count: int = 6) -> list[JalaliMonth]:
    """The last `count` Jalali months up to the current one, oldest first."""
    months = [month_of(now, tz)]
    while len(months) < count:
        months.insert(0, month_of(months[0].start - timedelta(days=1), tz))
    return months


def unit_trend(session: Session, unit_id: int, months: list[JalaliMonth], as_of: datetime | None = None) -> list[Scorecard]:
    """One unit's scorecard for each month."""
    return [unit_scorecard(session, unit_id, m.start, m.end, as_of) for m in months]
