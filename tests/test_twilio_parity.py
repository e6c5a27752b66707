"""Parity: the same caller journey through the AGI driver and the Twilio driver leaves the same rows."""
from __future__ import annotations

import threading
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ivr.config import Settings
from ivr.drivers.agi.handler import build_call_handler
from ivr.drivers.agi.server import AgiServer, build_agi_server
from ivr.flow.definition import load_flow
from ivr.flow.engine import Engine
from ivr.identifiers import TRACKING_CODE_LENGTH, is_valid_tracking_code
from ivr.infra.storage import AudioStore
from ivr.models import Call, Message
from ivr.runner import CallActions, CallRunner
from ivr.services.spooled import open_spool
from tests.fake_twilio import (  # noqa: F401 - fixtures
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC_BASE,
    FakeTwilioApi,
    QueuedJobs,
    TwilioPhone,
    fake_api_fixture,
    prompt_names,
    twilio_settings_fixture,
)
from tests.fakes import press, speak, type_digits, write_speech_wav
from tests.test_phone_journeys import WORKDAY_NOON, agi, call, city  # noqa: F401 - fixtures
from web import create_app

JOURNEYS = {
    # line: (AGI caller script, Twilio steps); both: leave a message, keep it, hear the code, hang up
    "1888": ([press("1"), press("3"), speak(3), press("#"), press("1")], [("press", "1"), ("press", "3")]),
    "137": ([press("1"), press("2"), type_digits("7#"), speak(3), press("#"), press("1")],
            [("press", "1"), ("press", "2"), ("digits", "7")]),
}


def message_facts(db: Session, call_row: Call) -> dict[str, Any]:
    """What both drivers must agree on about a call and the message it left."""
    (msg,) = db.scalars(select(Message).where(Message.call_id == call_row.id)).all()
    (rec,) = msg.recordings
    return {
        "call": (call_row.line_code, call_row.outcome, call_row.keys, call_row.citizen_id is not None),
        "message": (msg.line_code, msg.kind, msg.source, msg.status, msg.topic_id, msg.district, msg.unit_id,
                    msg.citizen_id == call_row.citizen_id),
        "code": (len(msg.tracking_code), is_valid_tracking_code(msg.tracking_code)),
        "recording": (rec.purpose, rec.format, round(rec.seconds), rec.message_id == msg.id),
        "stored": AudioStore(Path(str(db.info["recordings"]))).path_of(rec.path).is_file(),
    }


@pytest.mark.parametrize("line", ["1888", "137"])
def test_parity_agi_and_twilio_journeys_leave_the_same_rows(
    line: str, agi: AgiServer, settings: Settings, session_factory: sessionmaker[Session], db: Session,  # noqa: F811
    fake_api: FakeTwilioApi, twilio_settings: Settings, tmp_path: Path,
) -> None:
    db.info["recordings"] = settings.recordings_dir
    agi_script, twilio_steps = JOURNEYS[line]

    fake = call(agi, settings, agi_script, line=line, caller="09121234567")
    db.expire_all()
    agi_call = db.scalars(select(Call).where(Call.channel_id == fake.uniqueid)).one()

    jobs = QueuedJobs()
    app = create_app(twilio_settings, session_factory=session_factory, jobs=jobs)  # type: ignore[arg-type]
    app.extensions["ivr_twilio"].voice.runner.actions.clock = lambda: datetime.fromisoformat(WORKDAY_NOON)
    phone = TwilioPhone(app.test_client(), caller="+989121234567")
    sid = "RE" + uuid.uuid4().hex
    fake_api.recordings[sid] = write_speech_wav(tmp_path / "speech.wav", 3.0).read_bytes()
    url = fake_api.recording_url(sid)
    phone.start(f"/twilio/voice/{line}")
    for kind, keys in twilio_steps:
        if kind == "press":
            phone.press(keys)
        else:
            phone.press(keys, finished_on_key="#")
    phone.record(sid, url, 3)
    phone.recording_callback(sid, url, 3)
    assert jobs.run_all(twilio_settings, session_factory) == ["speech"]
    phone.follow()
    phone.press("1")
    phone.follow()
    phone.hang_up()
    db.expire_all()
    twilio_call = db.scalars(select(Call).where(Call.channel_id == phone.call_sid)).one()

    assert (agi_call.driver, twilio_call.driver) == ("agi", "twilio")
    agi_facts, twilio_facts = message_facts(db, agi_call), message_facts(db, twilio_call)
    assert agi_facts == twilio_facts
    assert agi_facts["code"] == (TRACKING_CODE_LENGTH, True)
    assert agi_call.citizen_id == twilio_call.citizen_id  # one citizen, whichever way they called
    assert list(settings.incoming_dir.glob("*")) == []


def spooled_facts(settings: Settings, channel_id: str) -> tuple[Any, ...]:
    """What both drivers must agree on about a message that could not be registered."""
    (entry,) = [e for e in open_spool(settings).entries() if e.channel_id == channel_id]
    return entry.state, entry.line, entry.kinds, entry.topics, entry.reason.split(":", 1)[0]


@pytest.mark.parametrize("line", ["1888", "137"])
def test_parity_failed_registration_sounds_and_keeps_the_same_on_both_drivers(
    line: str, settings: Settings, session_factory: sessionmaker[Session], db: Session,
    fake_api: FakeTwilioApi, twilio_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """137 with no topics in the database (the issue's case), 1888 with the database failing at the insert."""
    if line == "1888":
        def down(*args: Any, **kwargs: Any) -> Any:
            raise OperationalError("INSERT INTO messages", {}, Exception("server closed the connection"))

        monkeypatch.setattr("ivr.runner.register_message", down)
    runner = CallRunner(Engine(load_flow()), CallActions(session_factory, settings,
                                                         clock=lambda: datetime.fromisoformat(WORKDAY_NOON)))
    server = build_agi_server(settings, build_call_handler(settings, runner), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        fake = call(server, settings, JOURNEYS[line][0], line=line, caller="09121234567")
    finally:
        server.shutdown(5)
    agi_heard = fake.heard[fake.heard.index("review_keep_or_rerecord") + 1:]

    jobs = QueuedJobs()
    app = create_app(twilio_settings, session_factory=session_factory, jobs=jobs)  # type: ignore[arg-type]
    app.extensions["ivr_twilio"].voice.runner.actions.clock = lambda: datetime.fromisoformat(WORKDAY_NOON)
    phone = TwilioPhone(app.test_client(), caller="+989121234567")
    sid = "RE" + uuid.uuid4().hex
    fake_api.recordings[sid] = write_speech_wav(tmp_path / "speech.wav", 3.0).read_bytes()
    url = fake_api.recording_url(sid)
    phone.start(f"/twilio/voice/{line}")
    for kind, keys in JOURNEYS[line][1]:
        phone.press(keys, **({"finished_on_key": "#"} if kind == "digits" else {}))
    phone.record(sid, url, 3)
    phone.recording_callback(sid, url, 3)
    assert jobs.run_all(twilio_settings, session_factory) == ["speech"]
    phone.follow()
    twilio_heard = prompt_names(phone.press("1")) + prompt_names(phone.follow())
    assert [c.tag for c in phone.follow()] == ["Enqueue"]
    phone.hang_up()

    assert agi_heard == twilio_heard == ["message_not_registered", "connecting_to_operator"]
    db.expire_all()
    rows = {c.driver: c for c in db.scalars(select(Call))}
    assert (rows["agi"].outcome, rows["agi"].keys) == (rows["twilio"].outcome, rows["twilio"].keys)
    assert rows["agi"].outcome == "failed"
    assert db.scalars(select(Message)).all() == []
    assert spooled_facts(settings, fake.uniqueid) == spooled_facts(twilio_settings, phone.call_sid)
    assert list(settings.incoming_dir.glob("*")) == []
