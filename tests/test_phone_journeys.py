"""Whole calls through the real FastAGI server over TCP, with a fake Asterisk and a real database.

These are the journeys a citizen makes: leave a message and hear its tracking code,
follow it up and hear the reply, ask about a case, and hang up anywhere.
"""
from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ivr.config import Settings
from ivr.db import make_engine, make_sessionmaker
from ivr.drivers.agi.handler import build_call_handler, line_from_env
from ivr.drivers.agi.server import AgiServer, build_agi_server
from ivr.flow.definition import load_flow
from ivr.flow.engine import Engine
from ivr.identifiers import is_valid_tracking_code
from ivr.infra.storage import AudioStore, StoredAudio
from ivr.models import Call, Feedback, Message, Recording, Reminder, Reply, Topic, Unit, UrbanCase
from ivr.runner import CallActions, CallRunner
from ivr.services.spooled import open_spool
from ivr.speech import persian
from tests.fakes import (
    FakeAsteriskCall,
    hangup,
    press,
    run_fake_call_tcp,
    speak,
    type_digits,
    wait,
    write_speech_wav,
)

WORKDAY_NOON = "2026-11-29T08:30:00+00:00"  # a Sunday, 12:00 in Tehran


@pytest.fixture
def city(db: Session) -> dict[str, int]:
    """The few reference rows the menus need: a unit and the 137 topics."""
    unit = Unit(code="district-07", name="شهرداری منطقه ۷", kind="district_office", district=7)
    db.add(unit)
    db.flush()
    for key, code in enumerate(["cleaning", "roads", "lighting", "green", "traffic", "other_137"], 1):
        db.add(Topic(code=code, line_code="137", name=code, menu_key=str(key), due_working_days=5, unit_id=unit.id))
    db.commit()
    return {"unit": unit.id}


def _server(settings: Settings, factory: sessionmaker[Session]) -> AgiServer:
    from datetime import datetime

    runner = CallRunner(
        Engine(load_flow()),
        CallActions(factory, settings, clock=lambda: datetime.fromisoformat(WORKDAY_NOON)),
    )
    return build_agi_server(settings, build_call_handler(settings, runner), port=0)


@pytest.fixture
def agi(settings: Settings, session_factory: sessionmaker[Session], city: dict[str, int]) -> Iterator[AgiServer]:
    server = _server(settings, session_factory)
    import threading

    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield server
    server.shutdown(5)


def call(server: AgiServer, settings: Settings, script: list, line: str = "1888", caller: str = "09121234567") -> FakeAsteriskCall:
    """Place one call and wait for it to end."""
    fake = FakeAsteriskCall(
        script,
        env={"agi_network_script": line, "agi_request": f"agi://127.0.0.1:4573/{line}", "agi_callerid": caller},
        incoming_root=settings.data_dir,
        idle_limit=60,
    )
    run_fake_call_tcp(*server.address, fake, timeout=20)
    assert server.wait_idle(10)  # the call log is written after the connection is closed
    return fake


def code_heard_twice(fake: FakeAsteriskCall, code: str) -> bool:
    spoken = list(persian.digits(code))
    heard = fake.heard
    hits = [i for i in range(len(heard)) if heard[i : i + len(spoken)] == spoken]
    return len(hits) == 2


def call_row(db: Session, fake: FakeAsteriskCall) -> Call:
    db.expire_all()
    row = db.scalar(select(Call).where(Call.channel_id == fake.uniqueid))
    assert row is not None, "the call was not logged"
    return row


def answer_by_voice(db: Session, settings: Settings, code: str, text: str) -> tuple[Message, Reply, StoredAudio]:
    """A manager's spoken reply to the message with `code`, as the console will store it."""
    msg = db.scalar(select(Message).where(Message.tracking_code == code))
    assert msg is not None
    reply = Reply(message_id=msg.id, text=text)
    db.add(reply)
    db.flush()
    stored = AudioStore(settings.recordings_dir).store(write_speech_wav(settings.data_dir / "reply.wav", 1.5))
    db.add(Recording(path=stored.rel_path, format="wav", seconds=stored.seconds, sha256=stored.sha256,
                     size_bytes=stored.size_bytes, purpose="reply", reply_id=reply.id))
    msg.status = "answered"
    db.commit()
    return msg, reply, stored


def test_journey_1888_complaint_leaves_message_and_hears_code(agi: AgiServer, settings: Settings, db: Session) -> None:
    fake = call(agi, settings, [press("1"), press("3"), speak(3), press("#"), press("1")])
    code = fake.variables["TRACKING_CODE"]
    assert is_valid_tracking_code(code)
    assert code_heard_twice(fake, code)
    msg = db.scalar(select(Message).where(Message.tracking_code == code))
    assert msg is not None
    assert (msg.line_code, msg.kind, msg.source, msg.status) == ("1888", "complaint", "phone_voice", "new")
    (rec,) = db.scalars(select(Recording).where(Recording.message_id == msg.id)).all()
    stored = AudioStore(settings.recordings_dir).path_of(rec.path)
    assert stored.is_file() and rec.seconds == pytest.approx(3.0, abs=0.4) and rec.format == "wav"
    row = call_row(db, fake)
    assert (row.line_code, row.outcome, row.keys) == ("1888", "message_registered", "13#1")
    assert row.ended_at is not None and row.ended_at >= row.started_at
    assert msg.call_id == row.id and msg.citizen_id == row.citizen_id is not None
    assert list(settings.incoming_dir.glob("*")) == []


def test_journey_137_request_with_topic_and_district(agi: AgiServer, settings: Settings, db: Session) -> None:
    fake = call(agi, settings, [press("1"), press("2"), type_digits("7#"), speak(2), press("#"), press("1")], line="137")
    code = fake.variables["TRACKING_CODE"]
    msg = db.scalar(select(Message).where(Message.tracking_code == code))
    assert msg is not None and msg.line_code == "137" and msg.kind == "request" and msg.district == 7
    assert msg.topic is not None and msg.topic.code == "roads" and msg.unit_id is not None
    assert call_row(db, fake).keys == "127#" + "#1"


def test_journey_137_district_out_of_range_is_asked_again(agi: AgiServer, settings: Settings, db: Session) -> None:
    fake = call(agi, settings, [press("1"), press("1"), type_digits("23#"), wait(), type_digits("5#"), speak(2), press("#"), press("1")], line="137")
    assert "district_invalid" in fake.heard
    msg = db.scalar(select(Message).where(Message.tracking_code == fake.variables["TRACKING_CODE"]))
    assert msg is not None and msg.district == 5


def test_journey_record_again_keeps_only_second_take(agi: AgiServer, settings: Settings, db: Session) -> None:
    fake = call(agi, settings, [press("1"), press("2"), speak(2), press("#"), press("2"), speak(4), press("#"), press("1")])
    msg = db.scalar(select(Message).where(Message.tracking_code == fake.variables["TRACKING_CODE"]))
    assert msg is not None and msg.kind == "suggestion"
    (rec,) = msg.recordings
    assert rec.seconds == pytest.approx(4.0, abs=0.4)
    assert list(settings.incoming_dir.glob("*")) == []


def test_journey_silent_caller_leaves_no_message(agi: AgiServer, settings: Settings, db: Session) -> None:
    from tests.fakes import silence

    fake = call(agi, settings, [press("1"), press("1"), silence(), hangup()])
    assert "TRACKING_CODE" not in fake.variables
    assert "no_voice_recorded" in fake.heard
    assert db.scalars(select(Message)).all() == []
    assert call_row(db, fake).outcome == "dropped"
    assert list(settings.incoming_dir.glob("*")) == []


def test_journey_followup_hears_status_then_reply_and_rates_it(agi: AgiServer, settings: Settings, db: Session, city: dict[str, int]) -> None:
    first = call(agi, settings, [press("1"), press("1"), speak(2), press("#"), press("1")])
    code = first.variables["TRACKING_CODE"]

    second = call(agi, settings, [press("2"), type_digits(code + "#"), press("#"), hangup()])
    assert "status_new" in second.heard and "satisfaction_question" not in second.heard
    assert call_row(db, second).outcome == "follow_up"

    msg, reply, stored = answer_by_voice(db, settings, code, "رسیدگی شد")

    third = call(agi, settings, [press("2"), type_digits(code + "#"), wait(), wait(), wait(), press("2")])
    reply_file = str(settings.recordings_dir / stored.rel_path).rsplit(".", 1)[0]
    assert third.heard[third.heard.index("status_answered") :][:4] == ["status_answered", "reply_follows", reply_file, "satisfaction_question"]
    db.expire_all()
    (fb,) = db.scalars(select(Feedback).where(Feedback.message_id == msg.id)).all()
    assert fb.satisfied is False and fb.channel == "phone" and fb.reply_id == reply.id
    assert db.scalars(select(Reminder)).all() == []  # 1888: recorded, no reminder


def test_journey_137_dissatisfied_caller_reopens_request_at_same_unit(agi: AgiServer, settings: Settings, db: Session, city: dict[str, int]) -> None:
    first = call(agi, settings, [press("1"), press("3"), type_digits("7#"), speak(2), press("#"), press("1")], line="137")
    code = first.variables["TRACKING_CODE"]
    msg, _, _ = answer_by_voice(db, settings, code, "لامپ تعویض شد")
    call(agi, settings, [press("2"), type_digits(code + "#"), wait(), wait(), wait(), press("2")], line="137")
    db.expire_all()
    (reminder,) = db.scalars(select(Reminder).where(Reminder.message_id == msg.id)).all()
    assert reminder.unit_id == msg.unit_id == city["unit"] and reminder.reason == "dissatisfied"
    assert db.scalar(select(Message).where(Message.id == msg.id)).status == "referred"
    assert len(db.scalars(select(Message)).all()) == 1  # no new message


def test_journey_followup_wrong_check_digit_gets_one_more_try(agi: AgiServer, settings: Settings, db: Session) -> None:
    fake = call(agi, settings, [press("2"), type_digits("123456789#"), wait(), type_digits("123456788#"), wait(), hangup()])
    assert fake.heard.count("tracking_code_invalid") + fake.heard.count("tracking_code_unknown") == 2
    assert fake.heard.count("enter_tracking_code") == 2
    assert fake.heard[-1] == "menu_main_1888"


def test_journey_case_lookup_speaks_stage_and_jalali_date(agi: AgiServer, settings: Settings, db: Session) -> None:
    db.add(UrbanCase(case_number="4455667", kind="article100", stage="hearing_scheduled", next_date=date(2024, 10, 6), verdict="fine", fine_rials=25_000_000))
    db.commit()
    fake = call(agi, settings, [press("4"), press("2"), type_digits("4455667#")])
    i = fake.heard.index("case_kind_article100")
    assert fake.heard[i : i + 3] == ["case_kind_article100", "stage_hearing_scheduled", "case_next_date"]
    assert fake.heard[i + 3 : i + 5] == ["day_15_e", "month_7"]  # 15 Mehr 1403, with ezafe
    year = list(persian.number(1403))
    assert fake.heard[i + 5 : i + 5 + len(year)] == year
    assert "verdict_fine" in fake.heard and "case_fine" in fake.heard
    assert call_row(db, fake).outcome == "case_lookup"


def test_journey_unknown_case_is_said_and_can_be_typed_again(agi: AgiServer, settings: Settings, db: Session) -> None:
    db.add(UrbanCase(case_number="777", kind="urban_planning", stage="paid"))
    db.commit()
    fake = call(agi, settings, [press("4"), press("1"), type_digits("778#"), press("1"), type_digits("777#")], line="137")
    assert "case_not_found" in fake.heard and "stage_paid" in fake.heard


def test_journey_operator_in_working_hours_hands_call_to_queue(agi: AgiServer, settings: Settings, db: Session) -> None:
    fake = call(agi, settings, [press("0")])
    assert fake.variables.get("IVR_NEXT") == "operator"
    assert call_row(db, fake).outcome == "operator"


HANGUP_STEPS = [
    ("welcome", [hangup()], "dropped", ""),
    ("kind menu", [press("1"), hangup()], "dropped", "1"),
    ("after speaking, at review", [press("1"), press("4"), speak(2), press("#"), hangup()], "message_registered", "14#"),
    ("while speaking", [press("1"), press("4"), speak(2), hangup()], "message_registered", "14"),
    ("typing a code", [press("2"), hangup()], "dropped", "2"),
    ("case menu", [press("4"), hangup()], "dropped", "4"),
    ("while told it is registered", [press("1"), press("3"), speak(2), press("#"), press("1"), hangup()], "message_registered", "13#1"),
    ("while hearing the code", [press("1"), press("3"), speak(2), press("#"), press("1"), wait(), hangup()], "message_registered", "13#1"),
]


@pytest.mark.parametrize(("step", "script", "outcome", "keys"), HANGUP_STEPS, ids=[s[0] for s in HANGUP_STEPS])
def test_journey_hangup_at_every_step_leaves_closed_call_record(
    agi: AgiServer, settings: Settings, db: Session, step: str, script: list, outcome: str, keys: str
) -> None:
    fake = call(agi, settings, script)
    row = call_row(db, fake)
    assert (row.outcome, row.keys) == (outcome, keys)
    assert row.ended_at is not None
    messages = db.scalars(select(Message)).all()
    assert len(messages) == (1 if outcome == "message_registered" else 0)
    for m in messages:
        assert len(m.recordings) == 1
        assert fake.variables.get("TRACKING_CODE") == m.tracking_code
    assert list(settings.incoming_dir.glob("*")) == []


def test_journey_database_down_caller_hears_not_registered_and_message_is_replayed(
    settings: Settings, session_factory: sessionmaker[Session], db: Session, city: dict[str, int]
) -> None:
    import threading

    down = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/test", connect_args={"connect_timeout": 2})
    server = _server(settings, make_sessionmaker(down))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        fake = call(server, settings, [press("1"), press("1"), speak(2), press("#"), press("1")])
    finally:
        server.shutdown(5)
        down.dispose()
    assert "TRACKING_CODE" not in fake.variables
    assert "message_registered" not in fake.heard
    assert fake.heard[-2:] == ["message_not_registered", "connecting_to_operator"]  # working hours
    spool = open_spool(settings)
    assert len(spool.pending()) == 1
    assert spool.replay(session_factory).ingested == 1
    msg = db.scalar(select(Message).where(Message.origin_key == f"agi:{fake.uniqueid}:1"))
    assert msg is not None and len(msg.recordings) == 1
    assert call_row(db, fake).outcome == "failed"
    assert list(settings.incoming_dir.glob("*")) == []


def test_journey_many_concurrent_callers_each_get_their_own_message(settings: Settings, tmp_path: Path) -> None:
    """Concurrent calls on their own database (the rolled-back test connection is a single one)."""
    import threading

    from ivr.migrate import upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'concurrent.sqlite3'}")
    upgrade(engine)
    factory = make_sessionmaker(engine)
    server = _server(settings, factory)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    scripts = [[press("1"), press(str(1 + i % 4)), speak(1.5), press("#"), press("1")] for i in range(12)]
    try:
        with ThreadPoolExecutor(max_workers=12) as pool:
            fakes = list(pool.map(lambda s: call(server, settings, s), scripts))
    finally:
        server.shutdown(5)
    codes = {f.variables["TRACKING_CODE"] for f in fakes}
    assert len(codes) == 12
    with factory() as s:
        assert len(s.scalars(select(Message)).all()) == 12
        assert len(s.scalars(select(Call)).all()) == 12
    engine.dispose()


def test_line_from_env_prefers_script_then_args_then_dnid() -> None:
    assert line_from_env({"agi_network_script": "137?x=1"}) == ("137", [])
    assert line_from_env({"agi_request": "agi://h:4573/1888", "agi_arg_1": "after_queue"}) == ("1888", ["after_queue"])
    assert line_from_env({"agi_request": "ivr-agi", "agi_arg_1": "137", "agi_arg_2": "z"}) == ("137", ["z"])
    assert line_from_env({"agi_request": "ivr-agi", "agi_dnid": "1888"}) == ("1888", [])
    with pytest.raises(LookupError):
        line_from_env({"agi_request": "agi://h/elsewhere", "agi_dnid": "unknown", "agi_extension": "s"})


def test_journey_classic_agi_same_flow_over_pipes(settings: Settings, tmp_path: Path) -> None:
    """Classic AGI (a process per call, over stdin/stdout) runs the same menus."""
    import os
    import sys

    from tests.fakes import run_fake_call_pipes

    env = dict(os.environ, IVR_DATA_DIR=str(settings.data_dir), IVR_DATABASE_URL=f"sqlite:///{tmp_path / 'c.sqlite3'}")
    from ivr.migrate import upgrade

    upgrade(make_engine(env["IVR_DATABASE_URL"]))
    fake = FakeAsteriskCall([press("4"), press("1"), type_digits("1#"), wait(), hangup()],
                            env={"agi_arg_1": "137"}, incoming_root=settings.data_dir, classic=True, idle_limit=30)
    run_fake_call_pipes([str(Path(sys.executable).with_name("ivr-agi"))], fake, env=env)
    assert fake.returncode == 0, fake.stderr_text
    assert fake.heard[:3] == ["welcome_137", "menu_case_kind", "enter_case_number"]
    assert "case_not_found" in fake.heard


def test_journey_unexpected_error_apologises_hands_to_operator_and_logs_failed(
    agi: AgiServer, settings: Settings, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: CallActions, args: dict[str, str], ctx: object) -> None:
        raise RuntimeError("case index corrupt")

    monkeypatch.setattr(CallActions, "do_lookup_case", broken)
    fake = call(agi, settings, [press("4"), press("1"), type_digits("12#")])
    assert fake.heard[-1] == "sorry_technical"
    assert fake.variables["IVR_NEXT"] == "operator"
    row = call_row(db, fake)
    assert row.outcome == "failed" and row.error == "RuntimeError: case index corrupt"
    assert row.keys == "4112#"


def test_journey_second_session_after_unanswered_queue_keeps_both_messages(agi: AgiServer, settings: Settings, db: Session) -> None:
    first = call(agi, settings, [press("1"), press("3"), speak(2), press("#"), press("1")])
    again = FakeAsteriskCall(
        [press("1"), press("2"), speak(2), press("#"), press("1")],
        env={"agi_uniqueid": first.uniqueid, "agi_arg_1": "after_queue"},
        incoming_root=settings.data_dir,
        idle_limit=60,
    )
    run_fake_call_tcp(*agi.address, again, timeout=20)
    assert agi.wait_idle(10)
    assert again.heard[0] == "operator_closed_leave_message"
    codes = {first.variables["TRACKING_CODE"], again.variables["TRACKING_CODE"]}
    assert len(codes) == 2
    msgs = db.scalars(select(Message).order_by(Message.id)).all()
    assert [m.kind for m in msgs] == ["complaint", "suggestion"]
    assert all(len(m.recordings) == 1 for m in msgs)
    row = call_row(db, first)
    assert row.keys == "13#1" + "12#1" and row.outcome == "message_registered"
    assert {m.call_id for m in msgs} == {row.id}


def test_journey_message_kept_after_hangup_still_sets_tracking_code(agi: AgiServer, settings: Settings, db: Session) -> None:
    fake = call(agi, settings, [press("1"), press("4"), speak(2), hangup()])
    code = fake.variables.get("TRACKING_CODE")
    assert code is not None and is_valid_tracking_code(code)
    assert db.scalar(select(Message).where(Message.tracking_code == code)) is not None


def test_journey_reply_played_on_phone_is_marked_heard(agi: AgiServer, settings: Settings, db: Session) -> None:
    first = call(agi, settings, [press("1"), press("1"), speak(2), press("#"), press("1")])
    code = first.variables["TRACKING_CODE"]
    _, reply, _ = answer_by_voice(db, settings, code, "پاسخ")
    assert reply.heard_at is None
    call(agi, settings, [press("2"), type_digits(code + "#"), wait(), wait(), wait(), press("1")])
    db.expire_all()
    assert db.get(Reply, reply.id).heard_at is not None


# ---- answers after hearing ---------------------------------------------------------------


def _followup(agi: AgiServer, settings: Settings, code: str, script: list, reply_seconds: float = 1.0) -> FakeAsteriskCall:
    """A follow-up call on 1888 for `code`; the reply (played by absolute path) lasts `reply_seconds`."""
    fake = FakeAsteriskCall(
        [press("2"), type_digits(code + "#"), *script],
        env={"agi_network_script": "1888", "agi_request": "agi://127.0.0.1:4573/1888", "agi_callerid": "0912"},
        incoming_root=settings.data_dir,
        prompt_seconds=lambda name: reply_seconds if name.startswith("/") else 1.0,
        idle_limit=60,
    )
    run_fake_call_tcp(*agi.address, fake, timeout=20)
    assert agi.wait_idle(10)
    return fake


def _left_message(agi: AgiServer, settings: Settings, db: Session) -> tuple[str, Reply]:
    first = call(agi, settings, [press("1"), press("1"), speak(2), press("#"), press("1")])
    code = first.variables["TRACKING_CODE"]
    _, reply, _ = answer_by_voice(db, settings, code, "پاسخ")
    return code, reply


def _heard_at(db: Session, reply: Reply) -> object:
    db.expire_all()
    return db.get(Reply, reply.id).heard_at  # type: ignore[union-attr]


def test_journey_key_1_during_status_stores_no_feedback_and_marks_nothing_heard(
    agi: AgiServer, settings: Settings, db: Session
) -> None:
    code, reply = _left_message(agi, settings, db)
    # `1` during the status is not an answer; the caller hangs up before the reply ends.
    fake = _followup(agi, settings, code, [press("1"), wait(), hangup()])
    assert "1" in fake.lost_keys and "satisfaction_question" not in fake.heard
    assert db.scalars(select(Feedback)).all() == []
    assert _heard_at(db, reply) is None  # looked up is not heard
    assert call_row(db, fake).outcome == "follow_up"


def test_journey_key_during_status_then_the_reply_heard_and_the_question_asked(
    agi: AgiServer, settings: Settings, db: Session
) -> None:
    code, reply = _left_message(agi, settings, db)
    fake = _followup(agi, settings, code, [press("1"), wait(), wait(), hangup()])
    heard = fake.heard[fake.heard.index("status_answered"):]
    assert heard[1] == "reply_follows" and heard[2].startswith("/") and heard[3] == "satisfaction_question"
    assert db.scalars(select(Feedback)).all() == []  # the question was asked, never answered
    assert _heard_at(db, reply) is not None  # played to its end


@pytest.mark.parametrize(("reply_seconds", "heard"), [(2.0, False), (20.0, True)])
def test_journey_reply_skipped_is_heard_only_after_a_few_seconds_and_the_question_follows(
    agi: AgiServer, settings: Settings, db: Session, reply_seconds: float, heard: bool
) -> None:
    code, reply = _left_message(agi, settings, db)
    # A key during the reply skips it (halfway) and is not an answer; `2` answers the question.
    fake = _followup(agi, settings, code, [wait(), wait(), press("1"), press("2")], reply_seconds=reply_seconds)
    assert "satisfaction_question" in fake.heard
    (fb,) = db.scalars(select(Feedback)).all()
    assert fb.satisfied is False and fb.reply_id == reply.id
    assert (_heard_at(db, reply) is not None) is heard
