"""Follow-through: reply notice, survey by SMS, reminders to the same unit, escalation, field checks."""
from __future__ import annotations

import grp
import itertools
import stat
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ivr.config import Settings
from ivr.followthrough.escalation import list_escalations, sweep_overdue
from ivr.followthrough.inspections import (
    InspectionError,
    draw,
    record_check,
    sample_for_inspection,
    sampling_weight,
)
from ivr.followthrough.notices import send_reply_notice
from ivr.followthrough.reminders import dissatisfied_1888
from ivr.followthrough.scorecard import unit_scorecard
from ivr.followthrough.surveys import is_quiet, next_allowed, schedule_survey, send_due_surveys
from ivr.identifiers import persian_digits
from ivr.infra import reply_calls
from ivr.infra.reply_calls import (
    AsteriskCallFiles,
    TwilioReplyCalls,
    call_file_text,
    write_call_file,
)
from ivr.models import (
    Citizen,
    Escalation,
    FieldCheck,
    Message,
    Recording,
    Referral,
    Reminder,
    Reply,
    ReplyNotice,
    Sms,
    Survey,
    Unit,
    User,
    utcnow,
)
from ivr.services.deadlines import answer_due_at
from ivr.services.feedback import record_feedback
from ivr.services.replies import answer_referral
from ivr.services.sms import receive_sms
from ivr.wiring import build_in_process_jobs
from tests.fake_twilio import QueuedJobs
from tests.fakes import photo_bytes

TZ_SETTINGS = {"quiet_hours": (time(0, 0), time(0, 0)), "survey_delay_minutes": 0}
PHONE = "09121234567"
_codes = itertools.count(100000001)


def make_unit(session: Session, code: str, parent_id: int | None = None) -> Unit:
    unit = Unit(code=f"{code}-{next(_codes)}", name=f"واحد {code}", kind="department", parent_id=parent_id)
    session.add(unit)
    session.flush()
    return unit


def make_request(
    session: Session, unit: Unit, *, referred_at: datetime, due_at: datetime, phone: str | None = PHONE,
    line: str = "137", status: str = "referred",
) -> tuple[Message, Referral]:
    citizen = None
    if phone:
        citizen = session.scalar(select(Citizen).where(Citizen.phone == phone))
        if citizen is None:
            citizen = Citizen(phone=phone)
            session.add(citizen)
            session.flush()
    msg = Message(tracking_code=str(next(_codes)), line_code=line, kind="request" if line == "137" else "complaint",
                  unit_id=unit.id, citizen_id=citizen.id if citizen else None, source="phone_voice",
                  status=status, body="چاله در خیابان", created_at=referred_at, updated_at=referred_at)
    session.add(msg)
    session.flush()
    ref = Referral(message_id=msg.id, unit_id=unit.id, referred_at=referred_at, due_at=due_at)
    session.add(ref)
    session.flush()
    return msg, ref


def answer(session: Session, msg: Message, ref: Referral, at: datetime, text: str = "درست شد") -> Reply:
    reply = Reply(message_id=msg.id, referral_id=ref.id, text=text, created_at=at)
    session.add(reply)
    ref.closed_at = at
    msg.status = "answered"
    session.flush()
    session.refresh(msg)
    return reply


def count(session: Session, model: Any, *where: Any) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


# ---- Must show: the whole loop -----------------------------------------------------------------


def test_reply_notice_then_sms_answer_2_raises_reminder_at_same_unit_and_score_drops(
    settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    settings = settings.with_(**TZ_SETTINGS)
    now = utcnow()
    start, end = now - timedelta(days=30), now + timedelta(days=1)
    with session_factory() as s:
        unit = make_unit(s, "roads")
        msg, ref = make_request(s, unit, referred_at=now - timedelta(days=2), due_at=now + timedelta(days=3))
        reply = answer(s, msg, ref, now - timedelta(days=1))
        s.commit()
        unit_id, msg_id, ref_id, reply_id, code = unit.id, msg.id, ref.id, reply.id, msg.tracking_code
        before = unit_scorecard(s, unit_id, start, end)
        messages_before = count(s, Message)
    assert (before.received, before.answered, before.on_time, before.reminders, before.score) == (1, 1, 1, 0, 80.7)

    jobs = build_in_process_jobs(settings, session_factory, workers=1)
    try:
        jobs.enqueue("reply.followup", job_id=f"reply.followup:{reply_id}", reply_id=reply_id)
        assert jobs.drain(20)
        with session_factory() as s:
            [notice] = s.scalars(select(Sms).where(Sms.purpose == "reply_notice")).all()
            assert (notice.phone, notice.status, notice.message_id) == (PHONE, "sent", msg_id)
            assert notice.provider_sid.startswith("local-")  # LocalNotifier took it
            assert persian_digits(code) in notice.body
            assert "۱۳۷" in notice.body and "کلید ۲" in notice.body
            survey = s.scalars(select(Survey).where(Survey.reply_id == reply_id)).one()
            assert survey.status == "scheduled"
        jobs.enqueue("followthrough.sweep", job_id="followthrough.sweep:test")
        assert jobs.drain(20)
    finally:
        jobs.close()

    with session_factory() as s:
        [ask] = s.scalars(select(Sms).where(Sms.purpose == "survey")).all()
        assert (ask.status, ask.message_id, ask.phone) == ("sent", msg_id, PHONE)
        assert "۱ بله، ۲ خیر" in ask.body
        out = receive_sms(s, provider_sid="SM-answer-1", phone="+989121234567", line="137", body="۲", texts={})
        s.commit()
        assert out.handled_as == "feedback"

    with session_factory() as s:
        [reminder] = s.scalars(select(Reminder).where(Reminder.message_id == msg_id)).all()
        assert (reminder.unit_id, reminder.reason, reminder.resolved_at) == (unit_id, "dissatisfied", None)
        assert count(s, Message) == messages_before  # no new message, nothing to 1888
        assert count(s, Message, Message.line_code == "1888") == 0
        message = s.get(Message, msg_id)
        assert message.status == "referred"
        referral = s.get(Referral, ref_id)
        assert referral.closed_at is None and referral.unit_id == unit_id
        assert referral.due_at > utcnow()  # back in the unit's inbox with a new deadline
        assert s.scalars(select(Survey).where(Survey.reply_id == reply_id)).one().status == "answered"
        after = unit_scorecard(s, unit_id, start, end)
    assert (after.reminders, after.feedback, after.satisfied) == (1, 1, 0)
    assert after.score == 60.7
    assert after.score < before.score


def test_unit_answers_again_and_citizen_is_asked_again(settings: Settings, db: Session) -> None:
    settings = settings.with_(**TZ_SETTINGS)
    now = utcnow()
    unit = make_unit(db, "parks")
    msg, ref = make_request(db, unit, referred_at=now - timedelta(days=3), due_at=now + timedelta(days=3))
    first = answer(db, msg, ref, now - timedelta(days=2))
    jobs = QueuedJobs()
    schedule_survey(db, reply_id=first.id, message_id=msg.id, phone=PHONE, settings=settings, now=now)
    assert send_due_surveys(db, jobs, settings, now) == 1
    record_feedback(db, msg, satisfied=False, channel="sms")
    second = answer(db, msg, ref, now)
    schedule_survey(db, reply_id=second.id, message_id=msg.id, phone=PHONE, settings=settings, now=now)
    assert send_due_surveys(db, jobs, settings, now) == 1
    fb = record_feedback(db, msg, satisfied=True, channel="phone")
    statuses = dict(db.execute(select(Survey.reply_id, Survey.status)).all())
    assert statuses == {first.id: "answered", second.id: "answered"}
    assert fb.reply_id == second.id and db.get(Message, msg.id).status == "closed"
    assert count(db, Reminder, Reminder.message_id == msg.id) == 1


def test_reply_is_rated_once_first_answer_wins(db: Session) -> None:
    now = utcnow()
    unit = make_unit(db, "water")
    msg, ref = make_request(db, unit, referred_at=now - timedelta(days=2), due_at=now + timedelta(days=3))
    answer(db, msg, ref, now - timedelta(days=1))
    first = record_feedback(db, msg, satisfied=False, channel="sms", raw_text="2")
    again = record_feedback(db, msg, satisfied=True, channel="phone")
    assert again.id == first.id and again.satisfied is False
    assert count(db, Reminder, Reminder.message_id == msg.id) == 1


def test_1888_dissatisfaction_goes_to_supervisors_list_without_reminder(db: Session) -> None:
    now = utcnow()
    unit = make_unit(db, "inspection")
    msg, ref = make_request(db, unit, referred_at=now - timedelta(days=2), due_at=now + timedelta(days=3), line="1888")
    answer(db, msg, ref, now - timedelta(days=1))
    record_feedback(db, msg, satisfied=False, channel="sms", raw_text="ناراضی")
    assert count(db, Reminder) == 0
    [row] = dissatisfied_1888(db)
    assert (row.tracking_code, row.channel, row.raw_text, row.unit_name) == (msg.tracking_code, "sms", "ناراضی", unit.name)


def test_record_feedback_at_an_explicit_time_reopens_with_a_deadline_from_that_time(db: Session) -> None:
    then = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)  # a Saturday in Tehran
    unit = make_unit(db, "parks")
    msg, ref = make_request(db, unit, referred_at=then - timedelta(days=3), due_at=then - timedelta(days=1))
    answer(db, msg, ref, then - timedelta(days=2))
    fb = record_feedback(db, msg, satisfied=False, channel="phone", now=then)
    reminder = db.scalars(select(Reminder).where(Reminder.message_id == msg.id)).one()
    assert fb.created_at == then and reminder.created_at == then and msg.updated_at == then
    assert ref.closed_at is None and ref.due_at == answer_due_at(
        db, topic_id=msg.topic_id, kind=msg.kind, start=then, tz=ZoneInfo("Asia/Tehran")
    )


def test_answer_referral_at_an_explicit_time_closes_referral_and_resolves_reminders(db: Session) -> None:
    then = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
    unit = make_unit(db, "roads")
    msg, ref = make_request(db, unit, referred_at=then - timedelta(days=3), due_at=then + timedelta(days=1))
    answer(db, msg, ref, then - timedelta(days=2))
    record_feedback(db, msg, satisfied=False, channel="phone", now=then - timedelta(days=1))
    reply = answer_referral(db, msg, ref, author_id=None, text="دوباره رسیدگی شد", now=then)
    reminder = db.scalars(select(Reminder).where(Reminder.message_id == msg.id)).one()
    assert reply.created_at == ref.closed_at == reminder.resolved_at == msg.updated_at == then
    assert msg.status == "answered"


# ---- notices --------------------------------------------------------------------------------


def _reply_with_audio(db: Session, settings: Settings) -> tuple[Reply, Message]:
    now = utcnow()
    unit = make_unit(db, "lights")
    msg, ref = make_request(db, unit, referred_at=now - timedelta(days=2), due_at=now + timedelta(days=3))
    reply = answer(db, msg, ref, now)
    db.add(Recording(path=f"replies/{reply.id}.wav", format="wav", seconds=3.0, sha256="0" * 64, size_bytes=100,
                     purpose="reply", reply_id=reply.id, created_at=now))
    db.flush()
    db.refresh(reply)
    return reply, msg


def test_call_notice_writes_an_asterisk_call_file_atomically(settings: Settings, db: Session, tmp_path: Path) -> None:
    settings = settings.with_(notice_channel="call", call_spool_dir=tmp_path / "outgoing",
                              call_channel="PJSIP/{number}@telco", call_max_retries=3, call_retry_seconds=900)
    reply, msg = _reply_with_audio(db, settings)
    notice = send_reply_notice(db, QueuedJobs(), settings, reply.id, caller=AsteriskCallFiles(settings))
    assert (notice.channel, notice.status, notice.attempt) == ("call", "queued", 1)
    written = tmp_path / "outgoing" / f"reply-{reply.id}-1.call"
    assert notice.call_ref == written.name
    audio = settings.recordings_dir / f"replies/{reply.id}"
    assert written.read_text().splitlines() == [
        f"Channel: PJSIP/{PHONE}@telco", 'CallerID: "137" <137>', "MaxRetries: 3", "RetryTime: 900", "WaitTime: 45",
        "Context: ivr-reply-notice", "Extension: s", "Priority: 1", f"Setvar: IVR_REPLY_ID={reply.id}",
        f"Setvar: IVR_REPLY_AUDIO={audio}", f"Setvar: TRACKING_CODE={msg.tracking_code}", "Archive: yes",
    ]
    assert list((tmp_path / ".outgoing.staging").iterdir()) == []  # nothing half-written left behind
    assert send_reply_notice(db, QueuedJobs(), settings, reply.id, caller=AsteriskCallFiles(settings)).id == notice.id  # once per reply


def test_call_notice_outcome_is_read_from_the_file_asterisk_archived(
    settings: Settings, db: Session, tmp_path: Path
) -> None:
    from ivr.followthrough.notices import collect_call_outcomes

    settings = settings.with_(notice_channel="call", call_spool_dir=tmp_path / "outgoing")
    reply, _ = _reply_with_audio(db, settings)
    notice = send_reply_notice(db, QueuedJobs(), settings, reply.id, caller=AsteriskCallFiles(settings))
    done = tmp_path / "outgoing_done"
    assert settings.finished_call_dir == done
    assert collect_call_outcomes(db, settings) == 0  # Asterisk has not finished it: still queued
    done.mkdir()
    text = (tmp_path / "outgoing" / notice.call_ref).read_text()
    # What pbx_spool appends before archiving: one StartRetry per attempt, then the outcome.
    (done / notice.call_ref).write_text(text + "StartRetry: 100 1 (1764400000)\nStatus: Expired\n")
    assert collect_call_outcomes(db, settings) == 1
    assert (notice.status, notice.error) == ("failed", "Asterisk: no answer after every retry")
    assert collect_call_outcomes(db, settings) == 0  # settled once

    answered = ReplyNotice(reply_id=reply.id, message_id=notice.message_id, channel="call", attempt=2,
                           status="queued", call_ref="../../etc/reply-x-2.call")
    db.add(answered)
    db.flush()
    (done / "reply-x-2.call").write_text("Channel: x\nStatus: Completed\n")  # read by its file name only
    assert collect_call_outcomes(db, settings) == 1
    assert (answered.status, answered.error) == ("sent", None)


def test_call_notice_through_twilio_records_the_call_sid(settings: Settings, db: Session) -> None:
    settings = settings.with_(notice_channel="call", sms_backend="twilio", public_base_url="https://ivr.example.org",
                              twilio_numbers=(("+982112345678", "137"),))
    reply, _ = _reply_with_audio(db, settings)

    class Calls:
        made: list[dict[str, Any]] = []

        def create(self, **kw: Any) -> Any:
            self.made.append(kw)
            return type("Call", (), {"sid": "CA123"})()

    client = type("Client", (), {"calls": Calls()})()
    notice = send_reply_notice(db, QueuedJobs(), settings, reply.id, caller=TwilioReplyCalls(settings, client))
    assert (notice.channel, notice.status, notice.call_ref) == ("call", "sent", "CA123")
    assert Calls.made == [{"to": "+989121234567", "from_": "+982112345678", "method": "POST",
                           "url": f"https://ivr.example.org/twilio/voice/reply-notice?reply_id={reply.id}"}]


def test_call_notice_that_cannot_be_written_is_recorded_and_the_job_retries(
    settings: Settings, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    settings = settings.with_(notice_channel="call", call_spool_dir=blocker / "outgoing", job_backoff=(0,))
    with session_factory() as s:
        reply, _ = _reply_with_audio(s, settings)
        s.commit()
        reply_id = reply.id
    jobs = build_in_process_jobs(settings, session_factory, workers=1)
    jobs.enqueue("reply.followup", job_id=f"reply.followup:{reply_id}", reply_id=reply_id)
    assert jobs.drain(20)
    [kept] = jobs.failed()
    jobs.close()
    assert (kept.name, kept.payload, kept.attempts) == ("reply.followup", {"reply_id": reply_id}, 2)
    with session_factory() as s:
        attempts = s.execute(select(ReplyNotice.attempt, ReplyNotice.status).where(ReplyNotice.reply_id == reply_id)
                             .order_by(ReplyNotice.attempt)).all()
        assert attempts == [(1, "failed"), (2, "failed")]
        assert count(s, Survey, Survey.reply_id == reply_id) == 0  # no survey before the citizen was told


def test_text_only_reply_falls_back_to_sms_notice(settings: Settings, db: Session) -> None:
    settings = settings.with_(notice_channel="call")
    now = utcnow()
    unit = make_unit(db, "trees")
    msg, ref = make_request(db, unit, referred_at=now - timedelta(days=1), due_at=now + timedelta(days=3))
    reply = answer(db, msg, ref, now)
    notice = send_reply_notice(db, QueuedJobs(), settings, reply.id, caller=AsteriskCallFiles(settings))
    assert (notice.channel, notice.status) == ("sms", "queued")
    assert db.get(Sms, notice.sms_id).purpose == "reply_notice"


# ---- surveys --------------------------------------------------------------------------------

TEHRAN_NIGHT = datetime(2026, 11, 29, 19, 0, tzinfo=UTC)  # 22:30 in Tehran


def test_quiet_hours_wrap_past_midnight(settings: Settings) -> None:
    tz, quiet = settings.timezone, (time(21, 0), time(8, 0))
    assert is_quiet(TEHRAN_NIGHT, quiet, tz) is True
    assert is_quiet(datetime(2026, 11, 29, 9, 0, tzinfo=UTC), quiet, tz) is False  # 12:30
    assert next_allowed(TEHRAN_NIGHT, quiet, tz) == datetime(2026, 11, 30, 8, 0, tzinfo=tz)
    assert next_allowed(datetime(2026, 11, 29, 2, 0, tzinfo=UTC), quiet, tz) == datetime(2026, 11, 29, 8, 0, tzinfo=tz)


def test_survey_due_at_night_waits_for_the_morning_and_is_resent_once(settings: Settings, db: Session) -> None:
    settings = settings.with_(quiet_hours=(time(21, 0), time(8, 0)), survey_delay_minutes=60, survey_resend_hours=24)
    tz = settings.timezone
    unit = make_unit(db, "waste")
    msg, ref = make_request(db, unit, referred_at=TEHRAN_NIGHT - timedelta(days=2), due_at=TEHRAN_NIGHT)
    reply = answer(db, msg, ref, TEHRAN_NIGHT - timedelta(hours=2))
    survey = schedule_survey(db, reply_id=reply.id, message_id=msg.id, phone=PHONE, settings=settings,
                             now=TEHRAN_NIGHT - timedelta(hours=2))  # 20:30 + 1h = 21:30: quiet
    morning = datetime(2026, 11, 30, 8, 0, tzinfo=tz)
    assert survey.due_at == morning
    jobs = QueuedJobs()
    assert send_due_surveys(db, jobs, settings, TEHRAN_NIGHT + timedelta(hours=3)) == 0  # 01:30: not due
    assert send_due_surveys(db, jobs, settings, morning) == 1
    assert send_due_surveys(db, jobs, settings, morning) == 0  # twice: sent once
    db.refresh(survey)
    assert (survey.status, survey.sent_count, survey.due_at) == ("sent", 1, morning + timedelta(hours=24))
    assert send_due_surveys(db, jobs, settings, morning + timedelta(hours=24)) == 1  # the one resend
    assert send_due_surveys(db, jobs, settings, morning + timedelta(days=9)) == 0  # never a third
    db.refresh(survey)
    assert (survey.sent_count, survey.due_at) == (2, None)
    bodies = db.scalars(select(Sms.body).where(Sms.purpose == "survey", Sms.message_id == msg.id)).all()
    assert len(bodies) == 2
    assert schedule_survey(db, reply_id=reply.id, message_id=msg.id, phone=PHONE, settings=settings).id == survey.id


def test_survey_falling_due_in_quiet_hours_is_postponed(settings: Settings, db: Session) -> None:
    settings = settings.with_(quiet_hours=(time(21, 0), time(8, 0)), survey_delay_minutes=0)
    unit = make_unit(db, "bus")
    msg, ref = make_request(db, unit, referred_at=TEHRAN_NIGHT - timedelta(days=2), due_at=TEHRAN_NIGHT)
    reply = answer(db, msg, ref, TEHRAN_NIGHT - timedelta(hours=10))
    survey = schedule_survey(db, reply_id=reply.id, message_id=msg.id, phone=PHONE, settings=settings,
                             now=TEHRAN_NIGHT - timedelta(hours=10))
    assert send_due_surveys(db, QueuedJobs(), settings, TEHRAN_NIGHT) == 0
    db.refresh(survey)
    assert (survey.status, survey.due_at) == ("scheduled", datetime(2026, 11, 30, 8, 0, tzinfo=settings.timezone))


# ---- Must show: escalation once -------------------------------------------------------------


def test_overdue_referral_is_escalated_once_even_when_the_sweep_runs_twice(db: Session) -> None:
    now = utcnow()
    parent = make_unit(db, "deputy")
    unit = make_unit(db, "district", parent_id=parent.id)
    db.add(User(username=f"boss{unit.id}", full_name="مدیر", role="manager", unit_id=parent.id, password_hash="x",
                phone="09127654321"))
    msg, ref = make_request(db, unit, referred_at=now - timedelta(days=10), due_at=now - timedelta(hours=1))
    on_time, _ = make_request(db, unit, referred_at=now - timedelta(days=1), due_at=now + timedelta(days=2))
    jobs = QueuedJobs()
    made = sweep_overdue(db, jobs, now)
    again = sweep_overdue(db, jobs, now + timedelta(minutes=5))
    assert len(made) == 1 and again == []
    [esc] = db.scalars(select(Escalation)).all()
    assert (esc.referral_id, esc.unit_id, esc.to_unit_id) == (ref.id, unit.id, parent.id)
    db.refresh(ref)
    assert ref.escalated_at == now
    [sms] = db.scalars(select(Sms).where(Sms.purpose == "escalation")).all()
    assert sms.phone == "09127654321" and persian_digits(msg.tracking_code) in sms.body
    [row] = list_escalations(db, to_unit_id=parent.id)
    assert (row.tracking_code, row.unit_name, row.to_unit_name, row.still_open, row.notified) == (
        msg.tracking_code, unit.name, parent.name, True, True)
    assert list_escalations(db, to_unit_id=unit.id) == []


def test_reminder_reopens_with_new_deadline_that_can_escalate_again(db: Session) -> None:
    now = utcnow()
    unit = make_unit(db, "district")
    msg, ref = make_request(db, unit, referred_at=now - timedelta(days=20), due_at=now - timedelta(days=5))
    assert len(sweep_overdue(db, QueuedJobs(), now)) == 1
    answer(db, msg, ref, now)
    record_feedback(db, msg, satisfied=False, channel="phone")
    db.refresh(ref)
    assert ref.closed_at is None and ref.escalated_at is None and ref.due_at > now
    assert sweep_overdue(db, QueuedJobs(), now + timedelta(minutes=1)) == []
    assert len(sweep_overdue(db, QueuedJobs(), ref.due_at + timedelta(seconds=1))) == 1
    assert count(db, Escalation, Escalation.referral_id == ref.id) == 2


# ---- field checks -----------------------------------------------------------------------------


def test_sampling_weight_favours_units_with_reminders_and_low_satisfaction() -> None:
    assert sampling_weight(0.0, 1.0) == 1.0
    assert sampling_weight(0.5, 0.5) == 2.5
    assert sampling_weight(3.0, 0.0) == 4.0
    assert draw("seed", 7) == draw("seed", 7) != draw("seed", 8)


def test_sampling_is_deterministic_and_weighted(settings: Settings, db: Session) -> None:
    settings = settings.with_(inspection_share=0.25, inspection_seed="test-seed")
    now = utcnow()
    good, bad = make_unit(db, "good"), make_unit(db, "bad")
    picked: dict[str, int] = {"good": 0, "bad": 0}
    for name, unit in (("good", good), ("bad", bad)):
        for _ in range(40):
            msg, ref = make_request(db, unit, referred_at=now - timedelta(days=3), due_at=now + timedelta(days=3))
            reply = answer(db, msg, ref, now - timedelta(days=2))
            if name == "bad":
                db.add(Reminder(message_id=msg.id, unit_id=unit.id, reason="dissatisfied", created_at=now))
            if sample_for_inspection(db, reply.id, settings, now) is not None:
                picked[name] += 1
    expected = {"good": 0, "bad": 0}
    for check in db.scalars(select(FieldCheck)).all():
        expected["good" if check.unit_id == good.id else "bad"] += 1
    assert picked == expected
    assert picked["bad"] > picked["good"]
    weights = {c.unit_id: c.weight for c in db.scalars(select(FieldCheck)).all()}
    assert weights.get(good.id, 1.0) == 1.0
    assert weights[bad.id] == 3.0  # every reply got a reminder: 1 + 2 × 1 + (1 − 1)


def _pending_check(db: Session, settings: Settings) -> tuple[FieldCheck, Message, Referral]:
    now = utcnow()
    unit = make_unit(db, "asphalt")
    msg, ref = make_request(db, unit, referred_at=now - timedelta(days=3), due_at=now + timedelta(days=3))
    reply = answer(db, msg, ref, now - timedelta(days=1))
    check = sample_for_inspection(db, reply.id, settings.with_(inspection_share=1.0), now)
    assert check is not None
    return check, msg, ref


def test_failed_field_check_reopens_request_at_same_unit(settings: Settings, db: Session) -> None:
    check, msg, ref = _pending_check(db, settings)
    inspector = User(username="insp", full_name="بازرس", role="inspector", password_hash="x")
    db.add(inspector)
    db.flush()
    done = record_check(db, check.id, inspector_id=inspector.id, passed=False, note="هنوز چاله هست", photo=photo_bytes(),
                        settings=settings)
    assert (done.status, done.inspector_id) == ("failed", inspector.id)
    reminder = db.get(Reminder, done.reminder_id)
    assert (reminder.reason, reminder.unit_id, reminder.message_id) == ("field_check_failed", ref.unit_id, msg.id)
    assert (settings.inspection_photos_dir / done.photo_path).read_bytes() == photo_bytes()
    db.refresh(ref)
    assert ref.closed_at is None and db.get(Message, msg.id).status == "referred"
    with pytest.raises(InspectionError, match="پیش‌تر ثبت شده"):
        record_check(db, check.id, inspector_id=inspector.id, passed=True, note="x", photo=None, settings=settings)


def test_field_check_rejects_fake_or_large_photos_and_empty_results(settings: Settings, db: Session) -> None:
    check, _, _ = _pending_check(db, settings)
    with pytest.raises(InspectionError, match="تصویر معتبری نیست"):
        record_check(db, check.id, inspector_id=None, passed=True, note=None, photo=b"\x89PNG\r\n\x1a\nnot really",
                     settings=settings)
    with pytest.raises(InspectionError, match="بزرگ‌تر"):
        record_check(db, check.id, inspector_id=None, passed=True, note=None, photo=photo_bytes(),
                     settings=settings.with_(inspection_photo_max_bytes=10))
    with pytest.raises(InspectionError, match="توضیح یا عکس"):
        record_check(db, check.id, inspector_id=None, passed=True, note="  ", photo=None, settings=settings)
    assert db.get(FieldCheck, check.id).status == "pending"
    passed = record_check(db, check.id, inspector_id=None, passed=True, note="انجام شده", photo=None, settings=settings)
    assert (passed.status, passed.reminder_id) == ("passed", None)


def test_call_file_text_uses_the_trunk_pattern(settings: Settings, tmp_path: Path) -> None:
    text = call_file_text(number="09120000000", reply_id=5, tracking_code="123456789", audio=Path("/r/5.wav"),
                          line="1888", settings=settings.with_(call_channel="SIP/trunk/{number}"))
    assert text.splitlines()[:2] == ["Channel: SIP/trunk/09120000000", 'CallerID: "1888" <1888>']
    path = write_call_file(tmp_path / "spool", "x.call", text)
    assert path.read_text() == text


def _spool_for_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, euid: int) -> tuple[Path, list]:
    """A spool folder and the server's user id `euid`; the file ownership changes are recorded."""
    spool = tmp_path / "outgoing"
    spool.mkdir()
    changed: list[tuple[int, int]] = []
    monkeypatch.setattr(reply_calls.os, "geteuid", lambda: euid)
    monkeypatch.setattr(reply_calls.os, "fchown", lambda fd, uid, gid: changed.append((uid, gid)))
    return spool, changed


def test_call_file_as_root_is_given_to_the_spool_folder_owner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Seen on Asterisk 22 running as its own user: a 0600 call file of another user is "Unable to
    # open ... Permission denied, deleting", and one it cannot append StartRetry to rings for ever.
    spool, changed = _spool_for_user(tmp_path, monkeypatch, euid=0)
    path = write_call_file(spool, "x.call", "Channel: Local/1@x\n")
    assert changed == [(spool.stat().st_uid, spool.stat().st_gid)]
    assert stat.S_IMODE(path.stat().st_mode) == 0o660
    assert path.read_text() == "Channel: Local/1@x\n"


def test_call_file_as_another_user_takes_the_spool_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool, changed = _spool_for_user(tmp_path, monkeypatch, euid=1000)
    path = write_call_file(spool, "x.call", "x\n")
    assert changed == [(-1, spool.stat().st_gid)]  # the group only: a non-root user cannot give files away
    assert stat.S_IMODE(path.stat().st_mode) == 0o660


def test_call_file_that_asterisk_could_not_read_is_refused_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool, _ = _spool_for_user(tmp_path, monkeypatch, euid=1000)

    def refuse(fd: int, uid: int, gid: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(reply_calls.os, "fchown", refuse)
    with pytest.raises(PermissionError) as err:
        write_call_file(spool, "x.call", "x\n")
    group = grp.getgrgid(spool.stat().st_gid).gr_name
    assert str(err.value) == (f"cannot give call files the group {group} of {spool}: "
                              "the server's user must be a member, or Asterisk cannot read them")
    assert list(spool.iterdir()) == []
    assert list((tmp_path / ".outgoing.staging").iterdir()) == []  # nothing half-written left behind


# ---- settings, the scheduler and the command ------------------------------------------------


@pytest.mark.parametrize(("name", "value", "message"), [
    ("IVR_NOTICE_CHANNEL", "fax", "IVR_NOTICE_CHANNEL: expected one of sms, call"),
    ("IVR_QUIET_HOURS", "late", "IVR_QUIET_HOURS: expected HH:MM-HH:MM"),
    ("IVR_QUIET_HOURS", "25:00-08:00", "IVR_QUIET_HOURS: not a valid time range"),
    ("IVR_CALL_CHANNEL", "PJSIP/trunk", "IVR_CALL_CHANNEL: expected a dial string with one {number}"),
    ("IVR_INSPECTION_SHARE", "1.5", "IVR_INSPECTION_SHARE: expected a share between 0 and 1"),
    ("IVR_SWEEP_SECONDS", "1", "IVR_SWEEP_SECONDS: must be between 5 and 86400"),
])
def test_followthrough_settings_reject_bad_values(name: str, value: str, message: str) -> None:
    from ivr.config import ConfigError, load_settings

    with pytest.raises(ConfigError) as err:
        load_settings({name: value}, dotenv=False)
    assert str(err.value).startswith(message)


def test_followthrough_settings_are_read(tmp_path: Path) -> None:
    from ivr.config import load_settings

    s = load_settings({"IVR_NOTICE_CHANNEL": "call", "IVR_QUIET_HOURS": "22:30-07:15", "IVR_INSPECTION_SHARE": "0.3",
                       "IVR_CALL_SPOOL_DIR": str(tmp_path / "out"), "IVR_SURVEY_DELAY_MINUTES": "30"}, dotenv=False)
    assert (s.notice_channel, s.quiet_hours, s.inspection_share, s.outgoing_call_dir, s.survey_delay_minutes) == (
        "call", (time(22, 30), time(7, 15)), 0.3, tmp_path / "out", 30)


def test_scheduler_thread_runs_the_sweep_in_process(settings: Settings, session_factory: sessionmaker[Session]) -> None:
    import time as clock

    from ivr.followthrough.scheduler import PeriodicScheduler

    now = utcnow()
    with session_factory() as s:
        unit = make_unit(s, "late")
        _, ref = make_request(s, unit, referred_at=now - timedelta(days=9), due_at=now - timedelta(hours=1))
        s.commit()
        ref_id = ref.id
    jobs = build_in_process_jobs(settings, session_factory, workers=1)
    scheduler = PeriodicScheduler(jobs, 0.3)
    scheduler.start()
    try:
        clock.sleep(1.2)  # several slots (the test's connection is the jobs' too: no polling meanwhile)
    finally:
        scheduler.stop()
        assert jobs.drain(20)
        jobs.close()
    with session_factory() as s:
        assert count(s, Escalation, Escalation.referral_id == ref_id) == 1


def test_sweep_command_escalates_and_reports(settings: Settings, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ivr.cli import main
    from ivr.db import make_engine, make_sessionmaker
    from ivr.migrate import upgrade

    settings = settings.with_(database_url=f"sqlite:///{tmp_path / 'cli.sqlite3'}")
    engine = make_engine(settings.database_url)
    upgrade(engine)
    now = utcnow()
    with make_sessionmaker(engine)() as s:
        unit = make_unit(s, "cli")
        make_request(s, unit, referred_at=now - timedelta(days=9), due_at=now - timedelta(hours=1))
        s.commit()
    first = CliRunner().invoke(main, ["followthrough", "sweep"], obj={"settings": settings})
    second = CliRunner().invoke(main, ["followthrough", "sweep"], obj={"settings": settings})
    engine.dispose()
    assert (first.exit_code, first.output) == (0, "1 escalated, 0 surveys sent, 0 notice calls settled\n")
    assert (second.exit_code, second.output) == (0, "0 escalated, 0 surveys sent, 0 notice calls settled\n")
