"""Honest failure paths on both drivers: nobody hears "registered" unless the message row is committed.

Each failure is injected while a caller keeps a message (database error, unknown topic,
storage error); for AGI (the fake Asterisk over real TCP) and Twilio (signed webhooks
through the Flask test client) alike we assert what the caller hears, the call's outcome,
and where the audio is: a message row or the spool, never neither. Then the cause goes
away and `ivr spool replay` registers it once.
"""
from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ivr.cli import main
from ivr.config import Settings
from ivr.drivers.agi.handler import build_call_handler
from ivr.drivers.agi.server import AgiServer, build_agi_server
from ivr.flow.definition import load_flow
from ivr.flow.engine import Engine
from ivr.infra.storage import AudioError, AudioStore
from ivr.models import AuditEntry, Call, Message, Topic, Unit
from ivr.runner import CallActions, CallRunner
from ivr.services.spooled import open_spool
from tests.conftest import login
from tests.fake_twilio import (  # noqa: F401 - fixtures
    FakeTwilioApi,
    QueuedJobs,
    TwilioPhone,
    fake_api_fixture,
    prompt_names,
    twilio_settings_fixture,
)
from tests.fakes import (
    FakeAsteriskCall,
    hangup,
    press,
    run_fake_call_tcp,
    speak,
    type_digits,
    write_speech_wav,
)
from web import create_app

WORKDAY_NOON = "2026-11-29T08:30:00+00:00"  # a Sunday, 12:00 in Tehran: the operators are in
TOPICS_137 = ["cleaning", "roads", "lighting", "green", "traffic", "other_137"]


def noon() -> datetime:
    return datetime.fromisoformat(WORKDAY_NOON)


def add_topics(db: Session, codes: list[str] = TOPICS_137) -> None:
    unit = Unit(code=f"u-{uuid.uuid4().hex[:6]}", name="شهرداری منطقه ۷", kind="district_office", district=7)
    db.add(unit)
    db.flush()
    for key, code in enumerate(codes, 1):
        db.add(Topic(code=code, line_code="137", name=code, menu_key=str(key), due_working_days=5, unit_id=unit.id))
    db.commit()


@pytest.fixture
def agi(settings: Settings, session_factory: sessionmaker[Session]) -> Iterator[AgiServer]:
    runner = CallRunner(Engine(load_flow()), CallActions(session_factory, settings, clock=noon))
    server = build_agi_server(settings, build_call_handler(settings, runner), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown(5)


def agi_call(server: AgiServer, settings: Settings, script: list[Any], line: str) -> FakeAsteriskCall:
    fake = FakeAsteriskCall(
        script, env={"agi_network_script": line, "agi_request": f"agi://127.0.0.1:4573/{line}",
                     "agi_callerid": "09121234567"},
        incoming_root=settings.data_dir, idle_limit=60,
    )
    run_fake_call_tcp(*server.address, fake, timeout=20)
    assert server.wait_idle(10)  # the call log is written after the connection is closed
    return fake


# 137, lighting (3), district 12, speak, '#', keep (1): the reproduction.
AGI_137 = [press("1"), press("3"), type_digits("12#"), speak(2), press("#"), press("1")]
AGI_1888 = [press("1"), press("3"), speak(2), press("#"), press("1")]

FAILURES = ["database", "unknown_topic", "storage"]


def inject(failure: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Break registering the way `failure` says; the line whose journey shows it."""
    if failure == "database":
        def down(*args: Any, **kwargs: Any) -> Any:
            raise OperationalError("INSERT INTO messages", {}, Exception("server closed the connection"))

        monkeypatch.setattr("ivr.runner.register_message", down)
        return "1888"
    if failure == "storage":
        def full(self: Any, *args: Any, **kwargs: Any) -> Any:
            raise AudioError("no space left on device")

        monkeypatch.setattr(CallActions, "_stored_take", full)
        return "1888"
    return "137"  # no topics in the database: "lighting" is unknown


def assert_audio_kept_then_replayed(
    settings: Settings, session_factory: sessionmaker[Session], db: Session, channel_id: str, failure: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No message row, the audio in the spool with the reason; registered once the cause is gone."""
    db.expire_all()
    assert db.scalars(select(Message)).all() == []
    spool = open_spool(settings)
    (entry,) = spool.entries()
    assert entry.channel_id == channel_id and entry.state == "waiting"
    assert {"database": "OperationalError", "unknown_topic": "unknown topic 'lighting'",
            "storage": "no space left on device"}[failure] in entry.reason
    assert list(settings.incoming_dir.glob("*")) == []
    monkeypatch.undo()
    if failure == "unknown_topic":
        add_topics(db)
    assert spool.replay(session_factory).ingested == 1
    assert spool.replay(session_factory).ingested == 0  # idempotent
    db.expire_all()
    (msg,) = db.scalars(select(Message)).all()
    (rec,) = msg.recordings
    assert AudioStore(settings.recordings_dir).path_of(rec.path).is_file()
    assert msg.call_id == db.scalars(select(Call.id).where(Call.channel_id == channel_id)).one()
    assert list((settings.spool_dir / "audio").glob("*")) == [] if (settings.spool_dir / "audio").is_dir() else True


@pytest.mark.parametrize("failure", FAILURES)
def test_agi_register_failure_apologises_offers_operators_and_keeps_the_audio(
    failure: str, agi: AgiServer, settings: Settings, session_factory: sessionmaker[Session], db: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if failure != "unknown_topic":
        add_topics(db)
    line = inject(failure, monkeypatch)
    fake = agi_call(agi, settings, AGI_137 if line == "137" else AGI_1888, line)

    assert "message_registered" not in fake.heard and "your_tracking_code_is" not in fake.heard
    assert fake.heard[-2:] == ["message_not_registered", "connecting_to_operator"]
    assert fake.variables.get("IVR_NEXT") == "operator" and "TRACKING_CODE" not in fake.variables
    db.expire_all()
    row = db.scalars(select(Call).where(Call.channel_id == fake.uniqueid)).one()
    assert row.outcome == "failed" and (row.error or "").startswith("message not registered:")
    assert_audio_kept_then_replayed(settings, session_factory, db, fake.uniqueid, failure, monkeypatch)


def twilio_leave_message(phone: TwilioPhone, jobs: QueuedJobs, api: FakeTwilioApi, settings: Settings,
                         factory: sessionmaker[Session], tmp_path: Path, line: str) -> Any:
    """Menu 1, a kind (or lighting and district 12), speak, '#', the fetch, keep (1): the TwiML after '1'."""
    sid = "RE" + uuid.uuid4().hex
    api.recordings[sid] = write_speech_wav(tmp_path / f"{sid}.wav", 2.0).read_bytes()
    url = api.recording_url(sid)
    phone.start(f"/twilio/voice/{line}")
    phone.press("1")
    phone.press("3")
    if line == "137":
        phone.press("12", finished_on_key="#")
    phone.record(sid, url, 2)
    phone.recording_callback(sid, url, 2)
    assert jobs.run_all(settings, factory) == ["speech"]
    phone.follow()
    return phone.press("1")


@pytest.mark.parametrize("failure", FAILURES)
def test_twilio_register_failure_apologises_offers_operators_and_keeps_the_audio(
    failure: str, settings: Settings, twilio_settings: Settings, session_factory: sessionmaker[Session],
    db: Session, fake_api: FakeTwilioApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    if failure != "unknown_topic":
        add_topics(db)
    jobs = QueuedJobs()
    app = create_app(twilio_settings, session_factory=session_factory, jobs=jobs)  # type: ignore[arg-type]
    app.extensions["ivr_twilio"].voice.runner.actions.clock = noon
    phone = TwilioPhone(app.test_client())
    line = inject(failure, monkeypatch)
    root = twilio_leave_message(phone, jobs, fake_api, twilio_settings, session_factory, tmp_path, line)

    assert prompt_names(root) == ["message_not_registered"]
    assert prompt_names(phone.follow()) == ["connecting_to_operator"]
    assert [c.tag for c in phone.follow()] == ["Enqueue"]
    phone.hang_up()
    db.expire_all()
    row = db.scalars(select(Call).where(Call.channel_id == phone.call_sid)).one()
    assert row.outcome == "failed" and (row.error or "").startswith("message not registered:")
    assert_audio_kept_then_replayed(twilio_settings, session_factory, db, phone.call_sid, failure, monkeypatch)


def test_repro_no_topics_137_message_is_not_announced_and_is_registered_by_hand(
    agi: AgiServer, settings: Settings, session_factory: sessionmaker[Session], db: Session, make_user: Any,
    client: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The issue's reproduction: schema only, 137, keys 1 3 12, speak, #, 1."""
    fake = agi_call(agi, settings, AGI_137, "137")
    assert "message_registered" not in fake.heard
    assert "message_not_registered" in fake.heard
    assert list(settings.recordings_dir.rglob("*.wav")) != []  # stored, and named by the spool file

    cli = CliRunner()
    obj = {"settings": settings}
    monkeypatch.setattr("ivr.cli._engine", lambda s: None)  # the CLI on the test's (rolled-back) database
    monkeypatch.setattr("ivr.db.make_sessionmaker", lambda engine: session_factory)
    replay = cli.invoke(main, ["spool", "replay"], obj=obj)
    assert replay.exit_code == 1 and "1 rejected" in replay.output  # the topic is still unknown
    listed = cli.invoke(main, ["spool", "list"], obj=obj)
    assert listed.exit_code == 0 and "rejected" in listed.output and "unknown topic 'lighting'" in listed.output
    spool_id = listed.output.split("\t", 1)[0]
    wrong = cli.invoke(main, ["spool", "register", spool_id, "--topic", "nope"], obj=obj)
    assert wrong.exit_code == 1 and "nope" in wrong.output
    assert db.scalars(select(Message)).all() == []
    assert db.scalars(select(Call).where(Call.channel_id == fake.uniqueid)).one().outcome == "failed"

    add_topics(db, ["cleaning", "roads", "street_lights"])
    login(client, *make_user("supervisor"))
    page = client.get("/followthrough/jobs/failed").get_data(as_text=True)
    assert spool_id in page and "unknown topic" in page and 'value="street_lights"' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert client.post("/followthrough/jobs/failed/spool", data={"spool_id": spool_id, "topic": "street_lights"}
                       ).status_code == 400  # no CSRF token
    done = client.post("/followthrough/jobs/failed/spool",
                       data={"csrf_token": token, "spool_id": spool_id, "topic": "street_lights"},
                       follow_redirects=True).get_data(as_text=True)
    assert "پیام ثبت شد" in done
    db.expire_all()
    (msg,) = db.scalars(select(Message)).all()
    assert (msg.kind, msg.district, msg.topic.code, len(msg.recordings)) == ("request", 12, "street_lights", 1)
    assert open_spool(settings).entries() == []
    (audit,) = db.scalars(select(AuditEntry).where(AuditEntry.action == "spool_register")).all()
    assert spool_id in (audit.detail or "") and msg.tracking_code in (audit.detail or "")


def test_every_action_node_of_the_menus_maps_failed() -> None:
    flow = load_flow()
    missing = sorted({f"{line}:{n.name}" for line, lf in flow.lines.items() for n in lf.nodes.values()
                      if n.type == "action" and "failed" not in n.results})
    assert missing == []


def test_after_queue_entry_is_named_in_the_menus_for_every_line() -> None:
    flow = load_flow()
    for lf in flow.lines.values():
        assert lf.entries["after_queue"] in lf.nodes


def test_agi_hang_up_while_registering_fails_still_logs_the_call_and_keeps_the_audio(
    agi: AgiServer, settings: Settings, session_factory: sessionmaker[Session], db: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The issue's "could not be logged": any error while keeping a message must not lose the call."""
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("unexpected")

    monkeypatch.setattr("ivr.runner.register_message", broken)
    fake = agi_call(agi, settings, [press("1"), press("4"), speak(2), hangup()], "1888")
    db.expire_all()
    row = db.scalars(select(Call).where(Call.channel_id == fake.uniqueid)).one()
    assert row.outcome == "failed" and "RuntimeError: unexpected" in (row.error or "")
    assert "TRACKING_CODE" not in fake.variables
    assert list(settings.incoming_dir.glob("*")) == []
    (entry,) = open_spool(settings).entries()
    assert entry.kinds == ("appreciation",) and "RuntimeError: unexpected" in entry.reason
    monkeypatch.undo()
    assert open_spool(settings).replay(session_factory).ingested == 1
    db.expire_all()
    assert [m.kind for m in db.scalars(select(Message))] == ["appreciation"]


def test_agi_call_log_that_cannot_be_saved_is_spooled_and_incoming_cleaned(
    agi: AgiServer, settings: Settings, session_factory: sessionmaker[Session], db: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("call log table renamed")

    monkeypatch.setattr("ivr.runner.save_call_row", broken)
    fake = agi_call(agi, settings, [press("1"), press("4"), speak(2), press("#"), hangup()], "1888")
    db.expire_all()
    assert db.scalars(select(Call)).all() == []
    assert list(settings.incoming_dir.glob("*")) == []
    spool = open_spool(settings)
    (entry,) = spool.entries()
    assert entry.channel_id == fake.uniqueid
    monkeypatch.undo()
    assert spool.replay(session_factory).ingested == 1
    db.expire_all()
    assert db.scalars(select(Call.channel_id)).all() == [fake.uniqueid]


def test_a_result_the_menus_do_not_map_ends_in_the_one_error_path_on_both_drivers(
    agi: AgiServer, settings: Settings, twilio_settings: Settings, session_factory: sessionmaker[Session],
    db: Session, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not an action failure but a flow one (a result no node maps): apology, operators, call failed."""
    from ivr.flow.engine import ActionResult

    monkeypatch.setattr(CallActions, "do_check_district", lambda self, args, ctx: ActionResult("weird"))
    fake = agi_call(agi, settings, [press("1"), press("3"), type_digits("12#")], "137")
    assert fake.heard[-1] == "sorry_technical" and fake.variables.get("IVR_NEXT") == "operator"

    app = create_app(twilio_settings, session_factory=session_factory, jobs=QueuedJobs())  # type: ignore[arg-type]
    phone = TwilioPhone(app.test_client())
    phone.start("/twilio/voice/137")
    phone.press("1")
    phone.press("3")
    root = phone.press("12", finished_on_key="#")
    assert prompt_names(root) == ["sorry_technical"] and [c.tag for c in root] == ["Play", "Enqueue"]
    db.expire_all()
    rows = db.scalars(select(Call)).all()
    assert sorted(c.driver for c in rows) == ["agi", "twilio"]
    assert all(c.outcome == "failed" and "FlowEngineError" in (c.error or "") for c in rows)
