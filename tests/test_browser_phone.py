"""The console's test phone (/phone/): journeys through the browser driver with Flask's test client.

`BrowserCaller` does what static/phone.js does: carry out each answer (play to the end,
press a key, type digits, upload a take) and post the event; the server runs the same
call runner as AGI and Twilio, and the rows are the same, with driver `test`.
"""
from __future__ import annotations

import io
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.config import Settings
from ivr.identifiers import is_valid_tracking_code
from ivr.infra.storage import AudioStore
from ivr.models import Call, Message, Recording, UrbanCase
from ivr.services import screening
from ivr.services.test_calls import purge_test_calls
from ivr.speech import persian
from tests.conftest import csrf_token, login, run_cli
from tests.fakes import press, speak, type_digits, write_speech_wav
from tests.test_phone_journeys import agi, call, city  # noqa: F401 - fixtures and the AGI caller


class BrowserCaller:
    """A signed-in console user calling from /phone/, as phone.js does it."""

    def __init__(self, client: FlaskClient, tmp: Path) -> None:
        self.client = client
        self.tmp = tmp
        self.csrf = csrf_token(client, "/phone/")
        self.answer: dict[str, Any] = {}
        self.heard: list[str] = []

    def _post(self, url: str, data: dict[str, Any]) -> dict[str, Any]:
        resp = self.client.post(url, data=data, headers={"X-CSRFToken": self.csrf},
                                content_type="multipart/form-data")
        assert resp.status_code == 200, resp.get_data(as_text=True)
        self.answer = resp.get_json()
        self.heard += [p["name"] for p in self.answer["prompts"]]
        return self.answer

    def start(self, line: str = "1888", caller: str = "09121234567") -> dict[str, Any]:
        self._post("/phone/calls", {"line": line, "caller": caller})
        return self.settle()

    def step(self, **fields: Any) -> dict[str, Any]:
        self._post(self.answer["step_url"], {"n": str(self.answer["n"]), **fields})
        return self.settle()

    def settle(self) -> dict[str, Any]:
        """Play prompts nobody answers to their end and wait out holds, like the browser."""
        while self.answer["do"] in ("play", "wait"):
            self._post(self.answer["step_url"], {"n": str(self.answer["n"]), "event": "done", "played_ms": "60000"})
        return self.answer

    def press(self, key: str, played_ms: int = 60000) -> dict[str, Any]:
        assert self.answer["do"] in ("play", "key"), self.answer
        return self.step(event="key", key=key, played_ms=str(played_ms))

    def type(self, digits: str, timed_out: bool = False) -> dict[str, Any]:
        assert self.answer["do"] == "digits", self.answer
        return self.step(event="digits", digits=digits, timed_out="1" if timed_out else "")

    def speak(self, seconds: float, ended_by: str = "dtmf") -> dict[str, Any]:
        assert self.answer["do"] == "record", self.answer
        wav = write_speech_wav(self.tmp / f"take-{len(self.heard)}.wav", seconds).read_bytes()
        return self.step(event="recorded", ended_by=ended_by, audio=(io.BytesIO(wav), "take.webm"))

    def hangup(self) -> dict[str, Any]:
        resp = self.client.post(self.answer["hangup_url"], headers={"X-CSRFToken": self.csrf})
        assert resp.status_code == 200
        self.answer = resp.get_json()
        return self.answer


@pytest.fixture
def caller(app: Flask, make_user: Any, city: dict[str, int], tmp_path: Path) -> BrowserCaller:  # noqa: F811
    client = app.test_client()
    username, password = make_user("operator")
    login(client, username, password)
    return BrowserCaller(client, tmp_path)


def heard_code(heard: list[str], code: str) -> int:
    spoken = list(persian.digits(code))
    heard = [name for name in heard if name != "code_gap"]  # the pauses between the code's groups
    return len([i for i in range(len(heard)) if heard[i:i + len(spoken)] == spoken])


def the_call(db: Session, answer: dict[str, Any]) -> Call:
    db.expire_all()
    row = db.scalar(select(Call).where(Call.channel_id == answer["call"]))
    assert row is not None
    return row


def test_phone_137_message_is_left_and_the_tracking_code_heard(
    caller: BrowserCaller, db: Session, settings: Settings
) -> None:
    caller.start("137")
    caller.press("1")
    caller.press("2")
    caller.type("7")
    caller.speak(3)
    caller.press("1")
    end = caller.hangup()
    row = the_call(db, end)
    (msg,) = db.scalars(select(Message).where(Message.call_id == row.id)).all()
    assert is_valid_tracking_code(msg.tracking_code) and heard_code(caller.heard, msg.tracking_code) == 2
    assert (msg.line_code, msg.kind, msg.source, msg.district) == ("137", "request", "phone_voice", 7)
    assert (row.driver, row.line_code, row.outcome, row.keys) == ("test", "137", "message_registered", "127##1")  # as on AGI
    assert row.caller_number == "09121234567" and row.ended_at is not None
    (rec,) = db.scalars(select(Recording).where(Recording.message_id == msg.id)).all()
    assert rec.format == "wav" and rec.seconds == pytest.approx(3.0, abs=0.4)
    assert [p for p in settings.incoming_dir.glob("*")] == []


def test_phone_follow_up_with_key_2_hears_the_status(caller: BrowserCaller, db: Session) -> None:
    caller.start("1888")
    caller.press("1")
    caller.press("3")
    caller.speak(2)
    caller.press("1")
    (msg,) = db.scalars(select(Message)).all()
    caller.heard.clear()
    caller.start("1888")
    caller.press("2")
    caller.type(msg.tracking_code)
    assert "status_new" in caller.heard
    if caller.answer["do"] != "end":
        caller.hangup()
    assert the_call(db, caller.answer).outcome == "follow_up"


def test_phone_hangup_while_recording_keeps_the_message(caller: BrowserCaller, db: Session, settings: Settings) -> None:
    caller.start("1888")
    caller.press("1")
    caller.press("4")
    caller.speak(2, ended_by="hangup")
    assert caller.hangup()["do"] == "end"
    row = the_call(db, caller.answer)
    (msg,) = db.scalars(select(Message).where(Message.call_id == row.id)).all()
    assert is_valid_tracking_code(msg.tracking_code) and row.outcome == "message_registered"
    assert [p for p in settings.incoming_dir.glob("*")] == []


def test_phone_silent_take_is_asked_again_and_keys_outside_the_step_are_refused(caller: BrowserCaller, db: Session) -> None:
    caller.start("1888")
    caller.press("1")
    caller.press("3")
    wav = write_speech_wav(caller.tmp / "short.wav", 0.1).read_bytes()  # too short to be speech
    again = caller.step(event="recorded", ended_by="dtmf", audio=(io.BytesIO(wav), "take.webm"))
    assert again["do"] == "record"
    resp = caller.client.post(again["step_url"], data={"n": str(again["n"]), "event": "key", "key": "5"},
                              headers={"X-CSRFToken": caller.csrf})
    assert resp.status_code == 400
    caller.hangup()
    assert db.scalars(select(Message)).all() == []


def test_phone_replayed_step_answers_the_same_and_other_users_cannot_drive_the_call(
    caller: BrowserCaller, app: Flask, make_user: Any, db: Session
) -> None:
    first = caller.start("1888")
    n = str(first["n"])
    a = caller.client.post(first["step_url"], data={"n": n, "event": "key", "key": "1", "played_ms": "9000"},
                           headers={"X-CSRFToken": caller.csrf}).get_json()
    b = caller.client.post(first["step_url"], data={"n": n, "event": "key", "key": "1", "played_ms": "9000"},
                           headers={"X-CSRFToken": caller.csrf}).get_json()
    assert a == b
    other = app.test_client()
    login(other, *make_user("supervisor"))
    token = csrf_token(other, "/phone/")
    resp = other.post(a["step_url"], data={"n": str(a["n"]), "event": "key", "key": "1"},
                      headers={"X-CSRFToken": token})
    assert resp.status_code == 404
    caller.answer = a
    caller.hangup()
    assert the_call(db, a).keys == "1"


def test_phone_page_is_for_operators_supervisors_and_admins(app: Flask, make_user: Any) -> None:
    for role, status in (("operator", 200), ("admin", 200), ("manager", 403), ("analyst", 403)):
        client = app.test_client()
        login(client, *make_user(role))
        assert client.get("/phone/").status_code == status, role


def row_facts(db: Session, row: Call) -> dict[str, Any]:
    """What every driver must agree on about a call and the message it left."""
    (msg,) = db.scalars(select(Message).where(Message.call_id == row.id)).all()
    (rec,) = msg.recordings
    return {
        "call": (row.line_code, row.outcome, row.keys, row.caller_number, row.citizen_id is not None),
        "message": (msg.line_code, msg.kind, msg.source, msg.status, msg.topic_id, msg.district, msg.unit_id,
                    msg.citizen_id == row.citizen_id),
        "code": is_valid_tracking_code(msg.tracking_code),
        "recording": (rec.purpose, rec.format, round(rec.seconds)),
    }


def test_phone_parity_with_agi_on_the_137_journey(
    caller: BrowserCaller, agi: Any, settings: Settings, db: Session  # noqa: F811
) -> None:
    fake = call(agi, settings, [press("1"), press("2"), type_digits("7#"), speak(3), press("#"), press("1")],
                line="137", caller="09121234567")
    caller.start("137")
    caller.press("1")
    caller.press("2")
    caller.type("7")
    caller.speak(3)
    caller.press("1")
    caller.hangup()
    db.expire_all()
    agi_row = db.scalar(select(Call).where(Call.channel_id == fake.uniqueid))
    web_row = the_call(db, caller.answer)
    assert agi_row is not None and (agi_row.driver, web_row.driver) == ("agi", "test")
    assert row_facts(db, web_row) == row_facts(db, agi_row)


def test_phone_test_calls_stay_out_of_the_screening_queue_and_are_purged_with_what_they_left(
    caller: BrowserCaller, agi: Any, settings: Settings, db: Session  # noqa: F811
) -> None:
    real = call(agi, settings, [press("1"), press("3"), speak(2), press("#"), press("1")])
    caller.start("1888")
    caller.press("1")
    caller.press("3")
    caller.speak(2)
    caller.press("1")
    caller.hangup()
    db.expire_all()
    test_row = the_call(db, caller.answer)
    (test_msg,) = db.scalars(select(Message).where(Message.call_id == test_row.id)).all()
    (test_rec,) = test_msg.recordings
    test_audio = AudioStore(settings.recordings_dir).path_of(test_rec.path)
    assert test_audio.is_file()
    queued = {r.id for r in screening.screening_queue(db)}
    assert test_msg.id not in queued and len(queued) == 1 == screening.queue_size(db)
    assert test_msg.id in {r.id for r in screening.screening_queue(db, include_test=True)}
    assert screening.queue_size(db, include_test=True) == 2

    purged = purge_test_calls(db)
    db.commit()
    assert purged.rows["calls"] == 1 and purged.rows["messages"] == 1 and purged.rows["recordings"] == 1
    assert purged.audio == [test_rec.path]
    db.expire_all()
    assert db.scalars(select(Call.channel_id)).all() == [real.uniqueid]
    assert len(db.scalars(select(Message)).all()) == 1
    assert purge_test_calls(db).rows == {}


def test_cli_calls_purge_test_on_an_empty_database(env: Path) -> None:
    assert run_cli("db", "upgrade")[0] == 0
    code, out, _ = run_cli("calls", "purge-test")
    assert code == 0 and "test calls purged: nothing" in out


def test_phone_key_4_speaks_an_imported_case(caller: BrowserCaller, db: Session) -> None:
    db.add(UrbanCase(case_number="4455667", kind="article100", stage="hearing_scheduled", next_date=date(2024, 10, 6),
                     verdict="fine", fine_rials=25_000_000))
    db.commit()
    caller.start("1888")
    caller.press("4")
    caller.press("2")
    caller.type("4455667")
    i = caller.heard.index("case_kind_article100")
    assert caller.heard[i:i + 5] == ["case_kind_article100", "stage_hearing_scheduled", "case_next_date",
                                     "day_15_e", "month_7"]
    if caller.answer["do"] != "end":
        caller.hangup()
    assert the_call(db, caller.answer).outcome == "case_lookup"


def test_phone_prompts_by_catalogue_name_only(caller: BrowserCaller) -> None:
    assert caller.client.get("/phone/prompts/..%2Fsecret.wav").status_code == 404
    assert caller.client.get("/phone/prompts/not_a_prompt.wav").status_code == 404
    assert caller.client.get("/phone/audio/forged.wav").status_code == 404


def test_migration_0010_keeps_the_rollup_triggers_on_calls_on_sqlite(tmp_path: Path) -> None:
    from sqlalchemy import text

    from ivr.db import make_engine
    from ivr.migrate import upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    upgrade(engine)
    with engine.connect() as conn:
        names = set(conn.scalars(text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'calls'")))
    engine.dispose()
    assert names == {"rollup_calls_insert", "rollup_calls_delete", "rollup_calls_update"}


def test_phone_leaving_the_page_hangs_up_with_the_token_in_the_form(caller: BrowserCaller, db: Session) -> None:
    answer = caller.start("1888")
    resp = caller.client.post(answer["hangup_url"], data={"csrf_token": caller.csrf})  # what sendBeacon sends
    assert resp.status_code == 200 and resp.get_json()["do"] == "end"
    row = the_call(db, answer)
    assert row.driver == "test" and row.ended_at is not None and row.outcome == "dropped"
