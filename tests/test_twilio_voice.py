"""Calls over Twilio webhooks: the same menus, signed requests, TwiML asserted by exact values."""
from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ivr.config import Settings
from ivr.identifiers import is_valid_tracking_code
from ivr.infra.storage import AudioStore
from ivr.models import Call, Message, Recording, TwilioCall, TwilioRecording, UrbanCase
from ivr.speech import persian
from tests.fake_twilio import (  # noqa: F401 - fixtures
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC_BASE,
    FakeTwilioApi,
    QueuedJobs,
    TwilioPhone,
    fake_api_fixture,
    prompt_names,
    sign,
    twilio_settings_fixture,
)
from tests.fakes import silence_samples, write_speech_wav, write_wav
from tests.test_phone_journeys import WORKDAY_NOON, city  # noqa: F401 - the reference rows fixture
from web import create_app

STEP = PUBLIC_BASE + "/twilio/voice/step?n="
PROMPT = PUBLIC_BASE + "/twilio/prompts/"


@pytest.fixture
def jobs() -> QueuedJobs:
    return QueuedJobs()


@pytest.fixture
def app(twilio_settings: Settings, session_factory: sessionmaker[Session], jobs: QueuedJobs, city: dict[str, int]) -> Flask:  # noqa: F811
    app = create_app(twilio_settings, session_factory=session_factory, jobs=jobs)  # type: ignore[arg-type]
    app.extensions["ivr_twilio"].voice.runner.actions.clock = lambda: datetime.fromisoformat(WORKDAY_NOON)
    return app


@pytest.fixture
def phone(app: Flask) -> TwilioPhone:
    return TwilioPhone(app.test_client())


def rec_sid(n: int = 1) -> str:
    return "RE" + f"{n:032x}"


def speech_bytes(tmp_path: Path, seconds: float) -> bytes:
    return write_speech_wav(tmp_path / f"speech-{seconds}.wav", seconds).read_bytes()


def gather(root: Any) -> dict[str, str]:
    (g,) = root.findall("Gather")
    return dict(g.attrib)


def record_over_twilio(
    phone: TwilioPhone, api: FakeTwilioApi, sid: str, audio: bytes | None, *, kind_key: str = "1",
    seconds: int = 2, digits: str = "#",
) -> str:
    """Main menu 1, a kind, then speak: Twilio calls the <Record> action. The RecordingUrl."""
    if audio is not None:
        api.recordings[sid] = audio
    url = api.recording_url(sid)
    phone.start()
    phone.press("1")
    phone.press(kind_key)
    phone.record(sid, url, seconds, digits=digits)
    return url


def leave_message_over_twilio(
    phone: TwilioPhone, jobs: QueuedJobs, api: FakeTwilioApi, settings: Settings,
    factory: sessionmaker[Session], audio: bytes, sid: str, kind_key: str = "3",
) -> Any:
    """Menu 1, a kind, speak, '#', recording callback, the fetch job, keep (1): the TwiML reading the code."""
    url = record_over_twilio(phone, api, sid, audio, kind_key=kind_key, seconds=3)
    assert phone.recording_callback(sid, url, 3).status_code == 204
    assert jobs.run_all(settings, factory) == ["speech"]
    phone.follow()
    phone.press("1")
    return phone.follow()


# ---- the journeys the issue asks for ------------------------------------------------------------


def test_twilio_journey_1888_leaves_the_message_and_speaks_the_code(
    phone: TwilioPhone, jobs: QueuedJobs, fake_api: FakeTwilioApi, twilio_settings: Settings,
    session_factory: sessionmaker[Session], db: Session, tmp_path: Path,
) -> None:
    sid = rec_sid()
    fake_api.recordings[sid] = speech_bytes(tmp_path, 3.0)
    url = fake_api.recording_url(sid)

    root = phone.start()
    assert gather(root) == {"action": STEP + "1", "method": "POST", "numDigits": "1", "finishOnKey": "",
                            "timeout": "5", "actionOnEmptyResult": "true"}
    assert [p.text for p in root.iter("Play")] == [
        PROMPT + "welcome_1888.wav", PROMPT + "call_may_be_recorded.wav", PROMPT + "menu_main_1888.wav"]

    root = phone.press("1")
    assert gather(root)["action"] == STEP + "2" and phone.heard[-1] == "menu_kind_1888"

    root = phone.press("3")  # complaint
    assert [child.tag for child in root] == ["Play", "Record", "Redirect"]
    assert root.find("Play").text == PROMPT + "record_after_beep.wav"
    assert dict(root.find("Record").attrib) == {
        "action": STEP + "3", "method": "POST", "maxLength": "120", "timeout": "5", "finishOnKey": "#",
        "playBeep": "true", "recordingStatusCallback": PUBLIC_BASE + "/twilio/recording",
        "recordingStatusCallbackMethod": "POST", "recordingStatusCallbackEvent": "completed absent"}
    assert root.find("Redirect").text == STEP + "3"

    root = phone.record(sid, url, 3)  # the audio is not fetched yet: hold on
    assert [(c.tag, c.attrib.get("length"), c.text) for c in root] == [("Pause", "1", None), ("Redirect", None, STEP + "4")]
    assert phone.follow().find("Redirect").text == STEP + "5"  # still not there: hold again

    assert phone.recording_callback(sid, url, 3).status_code == 204
    assert jobs.queued == [("twilio.recording", f"twilio.recording:{sid}",
                            {"recording_sid": sid, "call_sid": phone.call_sid, "url": url})]
    assert jobs.run_all(twilio_settings, session_factory) == ["speech"]

    root = phone.follow()
    assert gather(root)["action"] == STEP + "6" and phone.heard[-1] == "review_keep_or_rerecord"
    root = phone.press("1")
    assert [c.tag for c in root] == ["Play", "Redirect"] and phone.heard[-1] == "message_registered"
    root = phone.follow()

    msg = db.scalars(select(Message)).one()
    code = msg.tracking_code
    assert is_valid_tracking_code(code)
    digits = list(persian.digits(code, twilio_settings.code_groups))
    assert prompt_order(root) == ["your_tracking_code_is", *digits, "pause", "repeat_tracking_code", *digits,
                                  "after_message_options"]
    assert gather(root)["action"] == STEP + "8"
    assert (msg.line_code, msg.kind, msg.source, msg.status) == ("1888", "complaint", "phone_voice", "new")
    (rec,) = msg.recordings
    assert rec.format == "wav" and rec.seconds == pytest.approx(3.0, abs=0.4)
    assert AudioStore(twilio_settings.recordings_dir).path_of(rec.path).is_file()

    assert phone.hang_up().status_code == 204  # the caller hangs up while the code is read
    db.expire_all()
    row = db.scalars(select(Call)).one()
    assert (row.driver, row.channel_id, row.line_code, row.outcome, row.keys) == (
        "twilio", phone.call_sid, "1888", "message_registered", "13#1")
    assert row.caller_number == "+989121234567" and msg.call_id == row.id and row.ended_at is not None
    assert db.scalars(select(TwilioRecording)).one().message_id == msg.id
    assert list(twilio_settings.incoming_dir.glob("*")) == []


def prompt_order(root: Any) -> list[str]:
    return [(p.text or "").rsplit("/", 1)[-1].removesuffix(".wav") for p in root.iter("Play")]


def test_twilio_key_4_speaks_an_imported_case(phone: TwilioPhone, db: Session) -> None:
    db.add(UrbanCase(case_number="4455667", kind="article100", stage="hearing_scheduled",
                     next_date=date(2024, 10, 6), verdict="fine", fine_rials=25_000_000))
    db.commit()
    phone.start()
    assert phone.press("4") is not None and phone.heard[-1] == "menu_case_kind"
    root = phone.press("2")
    assert gather(root) == {"action": STEP + "3", "method": "POST", "numDigits": "15", "finishOnKey": "#",
                            "timeout": "7", "actionOnEmptyResult": "true"}
    root = phone.press("4455667", finished_on_key="#")
    year = list(persian.number(1403))
    fine = list(persian.amount(25_000_000, "rial"))
    assert prompt_order(root) == ["case_kind_article100", "stage_hearing_scheduled", "case_next_date",
                                  "day_15_e", "month_7", *year, "verdict_fine", "case_fine", *fine,
                                  "case_after_options"]
    phone.hang_up()
    db.expire_all()
    row = db.scalars(select(Call)).one()
    assert (row.outcome, row.keys) == ("case_lookup", "424455667#")


def test_twilio_forged_and_unsigned_requests_are_refused_and_store_nothing(phone: TwilioPhone, db: Session) -> None:
    params = phone.params()
    url = PUBLIC_BASE + "/twilio/voice/1888"
    assert phone.client.post("/twilio/voice/1888", data=params).status_code == 403  # unsigned
    assert phone.post("/twilio/voice/1888", params, signature="bm90IGEgc2lnbmF0dXJl").status_code == 403
    assert phone.post("/twilio/voice/1888", params, signature=sign(url, params, "another-token")).status_code == 403
    assert phone.post("/twilio/voice/1888", params,
                      signature=sign("https://elsewhere.example.org/twilio/voice/1888", params)).status_code == 403
    tampered = sign(url, params)
    assert phone.post("/twilio/voice/1888", {**params, "From": "+989990000000"}, signature=tampered).status_code == 403
    sms = {"MessageSid": "SM" + "1" * 32, "From": "+989121234567", "To": "+982112345678", "Body": "سلام"}
    assert phone.client.post("/twilio/sms", data=sms).status_code == 403
    assert phone.client.post("/twilio/recording", data={"CallSid": phone.call_sid}).status_code == 403
    assert phone.client.post("/twilio/status", data=phone.params(CallStatus="completed")).status_code == 403
    assert db.scalars(select(TwilioCall)).all() == []
    assert db.scalars(select(Call)).all() == [] and db.scalars(select(Message)).all() == []


def test_twilio_without_auth_token_refuses_every_webhook(
    settings: Settings, session_factory: sessionmaker[Session], jobs: QueuedJobs
) -> None:
    app = create_app(settings.with_(public_base_url=PUBLIC_BASE), session_factory=session_factory, jobs=jobs)  # type: ignore[arg-type]
    phone = TwilioPhone(app.test_client())
    assert phone.post("/twilio/voice/1888", phone.params()).status_code == 403


def test_twilio_replayed_recording_callback_stores_one_recording(
    phone: TwilioPhone, jobs: QueuedJobs, fake_api: FakeTwilioApi, twilio_settings: Settings,
    session_factory: sessionmaker[Session], db: Session, tmp_path: Path,
) -> None:
    sid = rec_sid(7)
    url = record_over_twilio(phone, fake_api, sid, speech_bytes(tmp_path, 2.0), kind_key="2", seconds=2)
    for _ in range(3):  # Twilio retried the callback
        assert phone.recording_callback(sid, url, 2).status_code == 204
    assert jobs.run_all(twilio_settings, session_factory) == ["speech", "skipped", "skipped"]
    assert phone.recording_callback(sid, url, 2).status_code == 204  # late replay after the fetch
    assert jobs.queued == []
    phone.follow()
    phone.press("1")
    phone.follow()
    phone.hang_up()
    db.expire_all()
    (msg,) = db.scalars(select(Message)).all()
    assert len(db.scalars(select(Recording)).all()) == 1 and msg.recordings[0].message_id == msg.id
    stored = [p for p in twilio_settings.recordings_dir.rglob("*.wav")]
    assert len(stored) == 1
    downloads = [r for r in fake_api.requests if r["method"] == "GET"]
    assert [r["path"] for r in downloads] == [f"/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{sid}.wav"]


def test_twilio_replayed_step_answers_the_same_and_counts_the_key_once(phone: TwilioPhone, db: Session) -> None:
    phone.start()
    first = phone.post("/twilio/voice/step?n=1", phone.params(Digits="1"))
    again = phone.post("/twilio/voice/step?n=1", phone.params(Digits="1"))
    assert first.status_code == again.status_code == 200 and first.data == again.data
    assert phone.post("/twilio/voice/1888", phone.params(CallStatus="ringing")).status_code == 200  # start replayed
    phone.hang_up()
    phone.hang_up()
    db.expire_all()
    (row,) = db.scalars(select(Call)).all()
    assert (row.keys, row.outcome) == ("1", "dropped")


def test_twilio_silent_recording_is_asked_again_and_makes_no_message(
    phone: TwilioPhone, jobs: QueuedJobs, fake_api: FakeTwilioApi, twilio_settings: Settings,
    session_factory: sessionmaker[Session], db: Session, tmp_path: Path,
) -> None:
    sid = rec_sid(2)
    silent = tmp_path / "silent.wav"
    write_wav(silent, silence_samples(3.0))
    url = record_over_twilio(phone, fake_api, sid, silent.read_bytes(), kind_key="1", seconds=3)
    phone.recording_callback(sid, url, 3)
    assert jobs.run_all(twilio_settings, session_factory) == ["empty"]
    root = phone.follow()
    assert prompt_order(root)[0] == "no_voice_recorded" and root.find("Redirect").text.startswith(STEP)
    root = phone.follow()
    assert root.find("Record") is not None  # recording again
    phone.hang_up()
    db.expire_all()
    assert db.scalars(select(Message)).all() == [] and db.scalars(select(Recording)).all() == []
    assert db.scalars(select(Call)).one().outcome == "dropped"
    assert list(twilio_settings.incoming_dir.glob("*")) == [] and list(twilio_settings.recordings_dir.rglob("*.wav")) == []


def test_twilio_nothing_recorded_at_all_is_asked_again(phone: TwilioPhone, db: Session) -> None:
    phone.start()
    phone.press("1")
    phone.press("4")
    root = phone.follow()  # <Record> heard nothing: Twilio goes on to the <Redirect>
    assert prompt_order(root) == ["no_voice_recorded"]


def test_twilio_recording_missing_at_twilio_makes_no_message(
    phone: TwilioPhone, jobs: QueuedJobs, fake_api: FakeTwilioApi, twilio_settings: Settings,
    session_factory: sessionmaker[Session], db: Session,
) -> None:
    sid = rec_sid(3)  # the fake answers 404 with Twilio's error JSON
    url = record_over_twilio(phone, fake_api, sid, None, kind_key="1", seconds=3)
    phone.recording_callback(sid, url, 3)
    assert jobs.run_all(twilio_settings, session_factory) == ["absent"]
    assert prompt_order(phone.follow()) == ["no_voice_recorded"]
    row = db.scalars(select(TwilioRecording)).one()
    assert (row.status, row.error) == ("absent", f"download of {url}.wav: HTTP 404, Twilio error 20404")


def test_twilio_recording_download_retried_on_server_error(
    phone: TwilioPhone, jobs: QueuedJobs, fake_api: FakeTwilioApi, twilio_settings: Settings,
    session_factory: sessionmaker[Session], tmp_path: Path,
) -> None:
    from ivr.infra.twilio_rest import TwilioError

    sid = rec_sid(4)
    fake_api.recordings[sid] = speech_bytes(tmp_path, 2.0)
    fake_api.unavailable = 1
    url = record_over_twilio(phone, fake_api, sid, None, kind_key="1", seconds=2)
    phone.recording_callback(sid, url, 2)
    (job,) = list(jobs.queued)
    with pytest.raises(TwilioError, match="HTTP 503"):
        jobs.run_all(twilio_settings, session_factory)
    jobs.queued.append(job)  # the queue's retry
    assert jobs.run_all(twilio_settings, session_factory) == ["speech"]


def test_twilio_hangup_while_recording_keeps_the_message_when_the_job_finishes(
    phone: TwilioPhone, jobs: QueuedJobs, fake_api: FakeTwilioApi, twilio_settings: Settings,
    session_factory: sessionmaker[Session], db: Session, tmp_path: Path,
) -> None:
    sid = rec_sid(5)
    url = record_over_twilio(phone, fake_api, sid, speech_bytes(tmp_path, 2.0), kind_key="4", seconds=2, digits="hangup")
    phone.hang_up()
    db.expire_all()
    assert db.scalars(select(Call)).one().outcome == "dropped"  # nothing kept yet: the audio is at Twilio
    phone.recording_callback(sid, url, 2)
    assert jobs.run_all(twilio_settings, session_factory) == ["speech"]
    db.expire_all()
    msg = db.scalars(select(Message)).one()
    assert (msg.kind, len(msg.recordings)) == ("appreciation", 1)
    call = db.scalars(select(Call)).one()
    assert (call.outcome, call.keys, msg.call_id) == ("message_registered", "14", call.id)


def test_twilio_hangup_at_review_keeps_the_fetched_message(
    phone: TwilioPhone, jobs: QueuedJobs, fake_api: FakeTwilioApi, twilio_settings: Settings,
    session_factory: sessionmaker[Session], db: Session, tmp_path: Path,
) -> None:
    sid = rec_sid(6)
    url = record_over_twilio(phone, fake_api, sid, speech_bytes(tmp_path, 2.0), kind_key="2", seconds=2)
    phone.recording_callback(sid, url, 2)
    jobs.run_all(twilio_settings, session_factory)
    phone.follow()  # the review menu
    phone.hang_up()
    db.expire_all()
    msg = db.scalars(select(Message)).one()
    assert msg.kind == "suggestion" and len(msg.recordings) == 1
    assert db.scalars(select(Call)).one().outcome == "message_registered"


def test_twilio_record_again_discards_the_first_take(
    phone: TwilioPhone, jobs: QueuedJobs, fake_api: FakeTwilioApi, twilio_settings: Settings,
    session_factory: sessionmaker[Session], db: Session, tmp_path: Path,
) -> None:
    first, second = rec_sid(8), rec_sid(9)
    fake_api.recordings[first] = speech_bytes(tmp_path, 2.0)
    fake_api.recordings[second] = speech_bytes(tmp_path, 4.0)
    phone.start()
    phone.press("1")
    phone.press("1")
    for sid, seconds, key in ((first, 2, "2"), (second, 4, "1")):
        url = fake_api.recording_url(sid)
        phone.record(sid, url, seconds)
        phone.recording_callback(sid, url, seconds)
        jobs.run_all(twilio_settings, session_factory)
        phone.follow()
        phone.press(key)
    phone.follow()
    phone.hang_up()
    db.expire_all()
    (msg,) = db.scalars(select(Message)).all()
    assert msg.recordings[0].seconds == pytest.approx(4.0, abs=0.4)
    assert len(list(twilio_settings.recordings_dir.rglob("*.wav"))) == 1
    assert db.scalars(select(TwilioRecording).where(TwilioRecording.recording_sid == first)).one().status == "discarded"


@pytest.mark.parametrize(("status", "outcome", "error"), [
    ("completed", "dropped", None),
    ("busy", "dropped", "Twilio call status: busy"),
    ("no-answer", "dropped", "Twilio call status: no-answer"),
    ("failed", "failed", "Twilio call status: failed"),
])
def test_twilio_call_status_closes_the_call_with_its_outcome(
    phone: TwilioPhone, db: Session, status: str, outcome: str, error: str | None
) -> None:
    phone.start()
    phone.press("1")  # mid-menu
    assert phone.hang_up(status).status_code == 204
    db.expire_all()
    row = db.scalars(select(Call)).one()
    assert (row.outcome, row.error, row.keys) == (outcome, error, "1")
    assert row.ended_at is not None


def test_twilio_operator_in_working_hours_is_enqueued_or_dialled(
    app: Flask, phone: TwilioPhone, db: Session
) -> None:
    phone.start()
    root = phone.press("0")
    assert prompt_order(root) == ["connecting_to_operator"]
    root = phone.follow()
    assert [(c.tag, c.text) for c in root] == [("Enqueue", "operator")]
    db.expire_all()
    assert db.scalars(select(Call)).one().outcome == "operator"

    app.extensions["ivr_twilio"].voice.twiml.operator = "+982100001111"
    other = TwilioPhone(phone.client)
    other.start()
    other.press("0")
    assert [(c.tag, c.text) for c in other.follow()] == [("Dial", "+982100001111")]


def test_twilio_line_chosen_by_the_dialled_number(app: Flask) -> None:
    phone = TwilioPhone(app.test_client(), to="+982112345678")
    phone.start("/twilio/voice")
    assert phone.heard[0] == "welcome_137"
    unknown = TwilioPhone(app.test_client(), to="+15550001111")
    resp = unknown.post("/twilio/voice", unknown.params())
    assert (resp.status_code, resp.get_data(as_text=True)) == (404, "the dialled number belongs to no line (IVR_TWILIO_NUMBERS)")


def test_twilio_bad_parameters_get_a_clear_4xx(phone: TwilioPhone, db: Session) -> None:
    def status(path: str, params: dict[str, str]) -> tuple[int, str]:
        resp = phone.post(path, params)
        return resp.status_code, resp.get_data(as_text=True)

    assert status("/twilio/voice/1888", {"From": "+989121234567"}) == (400, "missing or malformed CallSid")
    assert status("/twilio/voice/999", phone.params()) == (404, "unknown line '999'")
    assert status("/twilio/voice/step?n=1", phone.params(Digits="1")) == (404, "unknown CallSid")
    phone.start()
    assert status("/twilio/voice/step?n=x", phone.params(Digits="1")) == (400, "missing or malformed step number n")
    assert status("/twilio/voice/step?n=1", phone.params(Digits="12")) == (400, "Digits must be one key, got '12'")
    assert status("/twilio/voice/step?n=7", phone.params(Digits="1")) == (409, f"step out of order for call {phone.call_sid}")
    phone.press("4")
    phone.press("1")
    assert status("/twilio/voice/step?n=3", phone.params(Digits="1" * 16)) == (
        400, "Digits must be up to 15 keys, got '1111111111111111'")
    assert status("/twilio/recording", {"CallSid": phone.call_sid, "RecordingSid": "nope"}) == (
        400, "missing or malformed RecordingSid")
    assert status("/twilio/recording", {"CallSid": phone.call_sid, "RecordingSid": rec_sid(), "RecordingStatus": "completed"}) == (
        400, "a completed recording needs its RecordingUrl")
    assert status("/twilio/sms", {"From": "+989121234567", "Body": "x"}) == (400, "missing or malformed MessageSid")
    assert db.scalars(select(TwilioRecording)).all() == []


def test_twilio_followup_plays_the_spoken_reply_by_signed_link_and_stores_feedback(
    app: Flask, phone: TwilioPhone, jobs: QueuedJobs, fake_api: FakeTwilioApi, twilio_settings: Settings,
    session_factory: sessionmaker[Session], db: Session, tmp_path: Path,
) -> None:
    from ivr.models import Feedback, Reminder
    from tests.test_phone_journeys import answer_by_voice

    leave_message_over_twilio(phone, jobs, fake_api, twilio_settings, session_factory,
                              speech_bytes(tmp_path, 2.0), rec_sid(11))
    phone.hang_up()
    code = db.scalars(select(Message)).one().tracking_code
    msg, reply, stored = answer_by_voice(db, twilio_settings, code, "رسیدگی شد")

    second = TwilioPhone(phone.client)
    second.start()
    second.press("2")
    root = second.press(code, finished_on_key="#")
    assert prompt_order(root) == ["status_answered", "reply_follows"]
    assert root.find("Gather") is None  # no key is an answer during the status
    root = second.follow()
    [token] = prompt_order(root)
    assert app.extensions["ivr_twilio"].voice.twiml.tokens.rel_path(token) == stored.rel_path
    assert root.find("Gather") is None and stored.rel_path not in (root.find("Play").text or "")  # never a path
    db.expire_all()
    assert db.get(type(reply), reply.id).heard_at is None  # looked up, not yet heard
    root = second.follow()  # the <Play> of the reply reached its end: heard, then the question
    assert prompt_order(root) == ["satisfaction_question"] and root.find("Gather/Play") is not None
    db.expire_all()
    assert db.get(type(reply), reply.id).heard_at is not None
    root = second.press("2")
    assert prompt_order(root) == ["feedback_dissatisfied", "goodbye"]
    assert [c.tag for c in second.follow()] == ["Hangup"]
    db.expire_all()
    (fb,) = db.scalars(select(Feedback)).all()
    assert (fb.message_id, fb.satisfied, fb.channel, fb.reply_id) == (msg.id, False, "phone", reply.id)
    assert fb.origin_key == f"twilio:{second.call_sid}:feedback"
    assert db.scalars(select(Reminder)).all() == []  # 1888
    call = db.scalars(select(Call).where(Call.channel_id == second.call_sid)).one()
    assert (call.outcome, call.keys) == ("follow_up", "2" + code + "#2")


def test_twilio_key_1_during_the_status_is_no_answer_and_the_reply_unheard_until_played(
    phone: TwilioPhone, jobs: QueuedJobs, fake_api: FakeTwilioApi, twilio_settings: Settings,
    session_factory: sessionmaker[Session], db: Session, tmp_path: Path,
) -> None:
    from ivr.models import Feedback, Reply
    from tests.test_phone_journeys import answer_by_voice

    leave_message_over_twilio(phone, jobs, fake_api, twilio_settings, session_factory,
                              speech_bytes(tmp_path, 2.0), rec_sid(12))
    phone.hang_up()
    code = db.scalars(select(Message)).one().tracking_code
    _, reply, _ = answer_by_voice(db, twilio_settings, code, "رسیدگی شد")

    second = TwilioPhone(phone.client)
    second.start()
    second.press("2")
    status = second.press(code, finished_on_key="#")
    assert status.find("Gather") is None and status.find("Redirect") is not None
    # Twilio hears no key outside a <Gather>; even a `1` posted with the status's redirect is no answer.
    redirect = status.find("Redirect").text.removeprefix(PUBLIC_BASE)
    root = second._twiml(redirect, second.params(Digits="1"))
    assert root.find("Gather") is None and len(prompt_order(root)) == 1  # the reply, not the thanks
    second.hang_up()  # before the reply's <Play> reached its end
    db.expire_all()
    assert db.scalars(select(Feedback)).all() == []
    assert db.get(Reply, reply.id).heard_at is None
    call = db.scalars(select(Call).where(Call.channel_id == second.call_sid)).one()
    assert call.outcome == "follow_up"


def test_twilio_webhooks_are_exempt_from_the_consoles_csrf_protection(
    twilio_settings: Settings, session_factory: sessionmaker[Session], jobs: QueuedJobs
) -> None:
    from flask_wtf.csrf import CSRFProtect

    from web.twilio import init_twilio

    app = Flask("console")
    app.config.update(IVR_SETTINGS=twilio_settings, SECRET_KEY="console-secret")
    app.extensions["ivr_sessions"], app.extensions["ivr_jobs"] = session_factory, jobs
    CSRFProtect(app)
    init_twilio(app)
    phone = TwilioPhone(app.test_client())
    assert phone.start()[0].tag == "Gather"
    assert phone.client.post("/twilio/voice/1888", data=phone.params()).status_code == 403  # still signed-only


def test_twilio_unexpected_error_apologises_hands_to_operators_and_logs_failed(
    phone: TwilioPhone, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ivr.runner import CallActions

    def broken(self: CallActions, args: dict[str, str], ctx: object) -> None:
        raise RuntimeError("case index corrupt")

    monkeypatch.setattr(CallActions, "do_lookup_case", broken)
    phone.start()
    phone.press("4")
    phone.press("1")
    root = phone.press("12", finished_on_key="#")  # the action's failure is its `failed` result: the apology node
    assert [(c.tag, c.text) for c in root] == [("Play", PROMPT + "sorry_technical.wav"), ("Redirect", STEP + "4")]
    assert [(c.tag, c.text) for c in phone.follow()] == [("Enqueue", "operator")]
    db.expire_all()
    row = db.scalars(select(Call)).one()
    assert (row.outcome, row.error, row.keys) == ("failed", "RuntimeError: case index corrupt", "4112#")
    assert phone.hang_up().status_code == 204
    db.expire_all()
    assert db.scalars(select(Call)).one().outcome == "failed"


def test_twilio_settings_read_numbers_and_refuse_bad_values() -> None:
    from ivr.config import ConfigError, load_settings

    s = load_settings({"IVR_TWILIO_NUMBERS": "+982112345678=137, +982188880000=1888",
                       "IVR_PUBLIC_BASE_URL": "https://ivr.city.ir/", "IVR_SMS_BACKEND": "Twilio"}, dotenv=False)
    assert s.twilio_numbers == (("+982112345678", "137"), ("+982188880000", "1888"))
    assert (s.public_base_url, s.sms_backend, s.twilio_operator) == ("https://ivr.city.ir", "twilio", "operator")
    assert (s.twilio_line_for("+98 21 8888 0000"), s.twilio_line_for("+15550001111")) == ("1888", None)
    assert (s.twilio_number_of("137"), s.twilio_number_of(None)) == ("+982112345678", "+982112345678")
    bad = {"IVR_TWILIO_NUMBERS": "+982112345678=999", "IVR_PUBLIC_BASE_URL": "ivr.city.ir", "IVR_SMS_BACKEND": "kavenegar"}
    for name, value in bad.items():
        with pytest.raises(ConfigError, match=f"^{name}: "):
            load_settings({name: value}, dotenv=False)


def test_twilio_database_down_caller_hears_the_apology_and_goes_to_the_operators(
    twilio_settings: Settings, jobs: QueuedJobs
) -> None:
    from ivr.db import make_engine, make_sessionmaker

    down = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/test", connect_args={"connect_timeout": 2})
    app = create_app(twilio_settings, session_factory=make_sessionmaker(down), jobs=jobs)  # type: ignore[arg-type]
    phone = TwilioPhone(app.test_client())
    root = phone.start()
    assert [(c.tag, c.text) for c in root] == [("Play", PROMPT + "sorry_technical.wav"), ("Enqueue", "operator")]
    sms = {"MessageSid": "SM" + "2" * 32, "From": "+989121234567", "To": "+982112345678", "Body": "سلام"}
    resp = phone.post("/twilio/sms", sms)
    down.dispose()
    assert (resp.status_code, resp.get_data(as_text=True)) == (503, "database unavailable")


def test_twilio_record_action_after_the_hang_up_callback_still_keeps_the_take(
    phone: TwilioPhone, jobs: QueuedJobs, fake_api: FakeTwilioApi, twilio_settings: Settings,
    session_factory: sessionmaker[Session], db: Session, tmp_path: Path,
) -> None:
    sid = rec_sid(12)
    fake_api.recordings[sid] = speech_bytes(tmp_path, 2.0)
    url = fake_api.recording_url(sid)
    phone.start()
    phone.press("1")
    phone.press("3")
    record = phone.last.find("Record").get("action")
    phone.hang_up()  # the status callback won the race
    late = phone.params(RecordingSid=sid, RecordingUrl=url, RecordingDuration="2", Digits="hangup")
    resp = phone.post(record[len(PUBLIC_BASE):], late)
    assert resp.status_code == 200 and b"<Hangup" in resp.data
    phone.recording_callback(sid, url, 2)
    assert jobs.run_all(twilio_settings, session_factory) == ["speech"]
    db.expire_all()
    msg = db.scalars(select(Message)).one()
    assert (msg.kind, len(msg.recordings)) == ("complaint", 1)
    assert db.scalars(select(Call)).one().outcome == "message_registered"


def test_twilio_reply_notice_call_marks_the_reply_heard_only_after_it_played(
    app: Flask, phone: TwilioPhone, twilio_settings: Settings, db: Session
) -> None:
    import xml.etree.ElementTree as ET

    from ivr.services.messages import register_message
    from tests.test_phone_journeys import answer_by_voice

    msg = register_message(db, line="1888", kind="complaint", source="operator", caller="09121234567", body="خیابان خراب است")
    db.commit()
    _, reply, stored = answer_by_voice(db, twilio_settings, msg.tracking_code, "رسیدگی شد")
    path = f"/twilio/voice/reply-notice?reply_id={reply.id}"
    params = phone.params(Direction="outbound-api")
    resp = phone.post(path, params)
    assert resp.status_code == 200 and resp.mimetype == "text/xml"
    root = ET.fromstring(resp.data)
    assert [c.tag for c in root] == ["Play", "Play", "Redirect"]
    names = prompt_names(root)
    assert names[0] == "reply_follows"
    token = names[1].removeprefix("audio:")
    assert app.extensions["ivr_twilio"].voice.twiml.tokens.rel_path(token) == stored.rel_path
    db.expire_all()
    assert db.get(type(reply), reply.id).heard_at is None  # answered is not heard
    heard = root[2].text or ""
    assert heard.endswith(f"/twilio/voice/reply-notice/heard?reply_id={reply.id}")
    parts = urlsplit(heard)
    resp = phone.post(f"{parts.path}?{parts.query}", params)
    assert resp.status_code == 200
    end = ET.fromstring(resp.data)
    assert [c.tag for c in end] == ["Play", "Hangup"] and prompt_names(end) == ["goodbye"]
    db.expire_all()
    assert db.get(type(reply), reply.id).heard_at is not None
    assert phone.post("/twilio/voice/reply-notice?reply_id=999999", params).status_code == 404
    assert phone.post("/twilio/voice/reply-notice?reply_id=x", params).status_code == 400
    assert phone.post(path, params, signature="forged").status_code == 403
