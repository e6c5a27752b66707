"""Outgoing SMS: queued rows, the sms.send job against a local Twilio API, delivery reports."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ivr.config import Settings
from ivr.infra.notify import LocalNotifier, e164
from ivr.models import Sms
from ivr.ports import DownloadError, NotifierError
from ivr.services.sms import SmsError, apply_delivery_report, queue_sms, sms_send_job
from ivr.wiring import build_in_process_jobs, build_outbound, job_context
from tests.fake_twilio import FakeTwilioApi, QueuedJobs, fake_api_fixture, twilio_settings_fixture  # noqa: F401 - fixtures


def _queue(factory: sessionmaker[Session], jobs: Any, phone: str = "0912 123 4567", **kw: Any) -> int:
    with factory() as session:
        sms = queue_sms(session, jobs, phone=phone, body="سلام، پاسخ پیام شما آماده است.", purpose="notice", **kw)
        assert getattr(jobs, "queued", []) == []  # nothing before the commit
        session.commit()
        return sms.id


def _row(factory: sessionmaker[Session], sms_id: int) -> Sms:
    with factory() as session:
        row = session.get(Sms, sms_id)
        assert row is not None
        return row


def test_queue_sms_enqueues_the_send_job_only_after_commit(session_factory: sessionmaker[Session]) -> None:
    jobs = QueuedJobs()
    sms_id = _queue(session_factory, jobs)
    assert jobs.queued == [("sms.send", f"sms.send:{sms_id}", {"sms_id": sms_id})]
    row = _row(session_factory, sms_id)
    assert (row.direction, row.phone, row.status, row.purpose) == ("out", "09121234567", "queued", "notice")


def test_queue_sms_rolled_back_enqueues_nothing(session_factory: sessionmaker[Session]) -> None:
    jobs = QueuedJobs()
    with session_factory() as session:
        queue_sms(session, jobs, phone="09121234567", body="x", purpose="notice")
        session.rollback()
        session.commit()
    assert jobs.queued == []


def test_queue_sms_refuses_bad_number_and_empty_text(db: Session) -> None:
    with pytest.raises(SmsError, match="not a phone number"):
        queue_sms(db, QueuedJobs(), phone="abc", body="x", purpose="notice")
    with pytest.raises(SmsError, match="needs a text"):
        queue_sms(db, QueuedJobs(), phone="09121234567", body="  ", purpose="notice")
    assert db.scalars(select(Sms)).all() == []


def test_sms_send_job_sends_through_twilio_once(
    twilio_settings: Settings, session_factory: sessionmaker[Session], fake_api: FakeTwilioApi
) -> None:
    sms_id = _queue(session_factory, QueuedJobs())
    ctx = job_context(twilio_settings, session_factory, QueuedJobs())
    assert sms_send_job(ctx, sms_id) == "sent"
    assert sms_send_job(ctx, sms_id) == "skipped"  # a replayed job sends nothing
    [sent] = fake_api.messages()
    assert sent == {"To": "+989121234567", "From": "+982112345678", "Body": "سلام، پاسخ پیام شما آماده است.",
                    "StatusCallback": "https://ivr.example.org/twilio/sms/status"}
    row = _row(session_factory, sms_id)
    assert row.status == "sent" and row.provider_sid.startswith("SM") and row.error is None


def test_sms_send_job_invalid_number_is_failed_with_twilio_error(
    twilio_settings: Settings, session_factory: sessionmaker[Session], fake_api: FakeTwilioApi
) -> None:
    fake_api.invalid_numbers.add("+989120000000")
    sms_id = _queue(session_factory, QueuedJobs(), phone="09120000000")
    ctx = job_context(twilio_settings, session_factory, QueuedJobs())
    assert sms_send_job(ctx, sms_id) == "failed"
    row = _row(session_factory, sms_id)
    assert row.status == "failed"
    assert row.error == "Twilio error 21211: Unable to create record: The 'To' number +989120000000 is not a valid phone number."
    assert sms_send_job(ctx, sms_id) == "skipped"
    assert len(fake_api.messages()) == 1


def test_sms_send_job_transient_error_raises_for_retry_and_keeps_row_queued(
    twilio_settings: Settings, session_factory: sessionmaker[Session], fake_api: FakeTwilioApi
) -> None:
    fake_api.unavailable = 1
    sms_id = _queue(session_factory, QueuedJobs())
    ctx = job_context(twilio_settings, session_factory, QueuedJobs())
    with pytest.raises(NotifierError, match="Twilio error 20503: Unable to create record: Service Unavailable"):
        sms_send_job(ctx, sms_id)
    assert _row(session_factory, sms_id).status == "queued"
    assert sms_send_job(ctx, sms_id) == "sent"  # the retry
    assert len(fake_api.messages()) == 2


def test_sms_send_job_through_the_in_process_queue_retries(
    twilio_settings: Settings, session_factory: sessionmaker[Session], fake_api: FakeTwilioApi
) -> None:
    fake_api.unavailable = 1
    jobs = build_in_process_jobs(twilio_settings.with_(job_backoff=(0,)), session_factory, workers=1)
    sms_id = _queue(session_factory, jobs)
    assert jobs.drain(20)
    jobs.close()
    assert _row(session_factory, sms_id).status == "sent"
    assert len(fake_api.messages()) == 2


def test_local_notifier_is_the_default_and_sends_nothing_out(
    settings: Settings, session_factory: sessionmaker[Session], fake_api: FakeTwilioApi
) -> None:
    sms_id = _queue(session_factory, QueuedJobs())
    ctx = job_context(settings, session_factory, QueuedJobs())
    assert sms_send_job(ctx, sms_id) == "sent"
    row = _row(session_factory, sms_id)
    assert row.status == "sent" and row.provider_sid.startswith("local-")
    assert fake_api.requests == []
    assert LocalNotifier().send("09121234567", "x").startswith("local-")


def test_delivery_reports_move_status_forward_only(db: Session) -> None:
    db.add(Sms(direction="out", phone="09121234567", body="x", status="sent", provider_sid="SM1", purpose="notice"))
    db.flush()
    assert apply_delivery_report(db, "SM1", "delivered", None) is True
    assert apply_delivery_report(db, "SM1", "sent", None) is True  # late 'sent' after 'delivered'
    row = db.scalar(select(Sms).where(Sms.provider_sid == "SM1"))
    assert row.status == "delivered"
    assert apply_delivery_report(db, "SM-unknown", "delivered", None) is False


def test_e164_turns_iranian_numbers_international() -> None:
    assert e164("09121234567") == "+989121234567"
    assert e164("02188880000") == "+982188880000"
    with pytest.raises(NotifierError):
        e164("")


def test_recording_downloads_go_through_the_port_only_to_twilio(twilio_settings: Settings, fake_api: FakeTwilioApi) -> None:
    recordings = build_outbound(twilio_settings).recordings
    fake_api.recordings["RE" + "a" * 32] = b"RIFF-wav"
    assert recordings.download(fake_api.recording_url("RE" + "a" * 32)) == b"RIFF-wav"
    with pytest.raises(DownloadError, match="not a Twilio URL") as refused:
        recordings.download("https://example.org/2010-04-01/Recordings/RE1")
    assert refused.value.permanent
    with pytest.raises(DownloadError) as gone:
        recordings.download(fake_api.recording_url("RE" + "b" * 32))
    assert gone.value.permanent  # Twilio has no such recording: retrying cannot help
