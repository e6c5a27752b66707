"""The satisfaction survey: one SMS per reply ("1 yes, 2 no"), at most one resend, never at night.

A survey is scheduled when a reply's notice goes out (`IVR_SURVEY_DELAY_MINUTES` later) and sent by
the periodic sweep once due. If nobody answers within `IVR_SURVEY_RESEND_HOURS` it is sent once
more, and that is all. A survey that falls due in the quiet hours (`IVR_QUIET_HOURS`, local time in
`IVR_TIMEZONE`, e.g. 21:00-08:00) waits for the morning. The answer comes back by SMS (the inbound
SMS service matches it to the newest survey SMS for that phone) or on the phone follow-up; either
way `record_feedback` (ivr/services/feedback.py) marks the survey answered. A reply is rated once: the first answer wins.
When a unit answers again after a reminder, the older unanswered survey of that message is
superseded by the new reply's survey.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ivr.config import Settings
from ivr.db import execute_dml
from ivr.identifiers import persian_digits
from ivr.jobqueue import Jobs
from ivr.models import Message, Survey, utcnow
from ivr.services.sms import SURVEY_PURPOSE, SmsError, queue_sms

SURVEY_TEXT = (
    "شهروند گرامی، از پاسخی که به پیام شما با کد رهگیری {code} داده شد راضی هستید؟ "
    "لطفاً پاسخ دهید: ۱ بله، ۲ خیر"
)


def is_quiet(moment: datetime, quiet: tuple[time, time], tz: ZoneInfo) -> bool:
    """Whether `moment` falls in the quiet hours (which may wrap past midnight)."""
    start, end = quiet
    local = moment.astimezone(tz).time()
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def next_allowed(moment: datetime, quiet: tuple[time, time], tz: ZoneInfo) -> datetime:
    """`moment` itself, or the end of the quiet hours it falls in (the morning after a night)."""
    if not is_quiet(moment, quiet, tz):
        return moment
    local = moment.astimezone(tz)
    morning = datetime.combine(local.date(), quiet[1], tzinfo=tz)
    if morning <= local:
        morning += timedelta(days=1)
    return morning


def survey_text(tracking_code: str) -> str:
    """The survey SMS for a message (Persian digits)."""
    return SURVEY_TEXT.format(code=persian_digits(tracking_code))


def schedule_survey(
    session: Session, *, reply_id: int, message_id: int, phone: str, settings: Settings, now: datetime | None = None
) -> Survey:
    """The reply's survey, scheduled after the configured delay (out of quiet hours); idempotent per reply."""
    existing = session.scalar(select(Survey).where(Survey.reply_id == reply_id))
    if existing is not None:
        return existing
    now = now or utcnow()
    session.execute(
        update(Survey)
        .where(Survey.message_id == message_id, Survey.status.in_(("scheduled", "sent")))
        .values(status="superseded", due_at=None)
        .execution_options(synchronize_session=False)
    )
    due = next_allowed(now + timedelta(minutes=settings.survey_delay_minutes), settings.quiet_hours, settings.timezone)
    survey = Survey(reply_id=reply_id, message_id=message_id, phone=phone, status="scheduled",
                    due_at=due, sent_count=0, created_at=now)
    session.add(survey)
    session.flush()
    return survey


def send_due_surveys(session: Session, jobs: Jobs, settings: Settings, now: datetime | None = None) -> int:
    """Send every survey that is due (first send or the one resend); how many SMS were queued.

    Each send is claimed with a conditional UPDATE on `sent_count`, so two sweeps running at
    once never send the same survey twice.
    """
    now = now or utcnow()
    due = session.execute(
        select(Survey.id, Survey.sent_count, Survey.phone, Survey.message_id, Message.tracking_code)
        .join(Message, Message.id == Survey.message_id)
        .where(Survey.status.in_(("scheduled", "sent")), Survey.due_at.is_not(None), Survey.due_at <= now)
        .order_by(Survey.due_at, Survey.id)
    ).all()
    sent = 0
    for survey_id, count, phone, message_id, code in due:
        if is_quiet(now, settings.quiet_hours, settings.timezone):
            session.execute(
                update(Survey).where(Survey.id == survey_id, Survey.sent_count == count)
                .values(due_at=next_allowed(now, settings.quiet_hours, settings.timezone))
                .execution_options(synchronize_session=False)
            )
            continue
        resend_at = next_allowed(now + timedelta(hours=settings.survey_resend_hours), settings.quiet_hours,
                                 settings.timezone)
        claimed = execute_dml(
            session,
            update(Survey)
            .where(Survey.id == survey_id, Survey.sent_count == count, Survey.status.in_(("scheduled", "sent")))
            .values(status="sent", sent_count=count + 1, last_sent_at=now,
                    due_at=resend_at if count == 0 else None)
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed != 1:
            continue
        try:
            sms = queue_sms(session, jobs, phone=phone, body=survey_text(code), purpose=SURVEY_PURPOSE,
                            message_id=message_id)
        except SmsError:
            session.execute(update(Survey).where(Survey.id == survey_id).values(due_at=None)
                            .execution_options(synchronize_session=False))
            continue
        session.execute(update(Survey).where(Survey.id == survey_id).values(sms_id=sms.id)
                        .execution_options(synchronize_session=False))
        sent += 1
    session.expire_all()
    return sent
