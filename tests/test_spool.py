"""A recording is never lost: with the database down, a call's message waits on disk."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ivr.config import Settings
from ivr.db import make_engine, make_sessionmaker
from ivr.identifiers import is_valid_tracking_code
from ivr.models import Call, Message, Recording, utcnow
from ivr.runner import CallActions, CallContext
from ivr.services.call_log import CallRecord
from ivr.services.spooled import open_spool
from tests.fakes import write_speech_wav


@pytest.fixture
def down_factory() -> Iterator[sessionmaker[Session]]:
    """Sessions on a PostgreSQL that does not answer (nothing listens on port 1)."""
    engine = make_engine(
        "postgresql+psycopg://postgres@127.0.0.1:1/test", connect_args={"connect_timeout": 2}
    )
    yield make_sessionmaker(engine)
    engine.dispose()


def _call(channel_id: str = "1700000000.42") -> CallRecord:
    now = utcnow()
    return CallRecord(channel_id=channel_id, line="1888", driver="agi", caller="09121234567", started_at=now, answered_at=now)


def _leave_message(actions: CallActions, settings: Settings, ctx: CallContext) -> Path:
    """A message left with the database down: not registered (no code told), kept in the spool."""
    wav = settings.incoming_dir / f"{ctx.record.channel_id}-1.wav"
    write_speech_wav(wav, seconds=2.0)
    assert actions.keep_message({"kind": "complaint", "recording": str(wav)}, ctx) is None
    return wav


def test_spool_database_down_message_kept_on_disk_and_replayed_once(
    settings: Settings, down_factory: sessionmaker[Session], session_factory: sessionmaker[Session], db: Session
) -> None:
    actions = CallActions(down_factory, settings)
    ctx = CallContext(record=_call())
    wav = _leave_message(actions, settings, ctx)
    ctx.record.keys = "13#1"
    actions.finish(ctx)

    assert not wav.exists()  # moved into storage, not left in incoming
    spool = open_spool(settings)
    (spooled,) = spool.pending()
    payload = json.loads(spooled.read_text(encoding="utf-8"))
    stored = settings.recordings_dir / payload["messages"][0]["audio"]["rel_path"]
    assert stored.is_file() and stored.stat().st_size > 8000
    assert payload["messages"][0]["reason"].startswith("OperationalError")

    report = spool.replay(session_factory)
    assert (report.ingested, report.waiting, report.rejected) == (1, 0, [])
    assert spool.pending() == []
    msg = db.scalar(select(Message).where(Message.origin_key == "agi:1700000000.42:1"))
    assert msg is not None and msg.kind == "complaint" and msg.source == "phone_voice"
    assert is_valid_tracking_code(msg.tracking_code)
    call = db.scalar(select(Call).where(Call.channel_id == "1700000000.42"))
    assert call is not None and call.outcome == "failed" and call.keys == "13#1"
    assert call.error is not None and call.error.startswith("message not registered: OperationalError")
    assert msg.call_id == call.id
    rec = db.scalar(select(Recording).where(Recording.message_id == msg.id))
    assert rec is not None and rec.path == payload["messages"][0]["audio"]["rel_path"]


def test_spool_replay_twice_never_duplicates(
    settings: Settings, down_factory: sessionmaker[Session], session_factory: sessionmaker[Session], db: Session
) -> None:
    actions = CallActions(down_factory, settings)
    ctx = CallContext(record=_call("dup-1"))
    _leave_message(actions, settings, ctx)
    actions.finish(ctx)
    spool = open_spool(settings)
    (path,) = spool.pending()
    copy = path.read_text(encoding="utf-8")
    spool.replay(session_factory)
    (settings.spool_dir / "again.json").write_text(copy, encoding="utf-8")  # a crash before unlink
    assert spool.replay(session_factory).ingested == 1
    assert db.scalar(select(func.count()).select_from(Message).where(Message.origin_key == "agi:dup-1:1")) == 1
    assert db.scalar(select(func.count()).select_from(Call).where(Call.channel_id == "dup-1")) == 1


def test_spool_replay_with_database_still_down_keeps_files(
    settings: Settings, down_factory: sessionmaker[Session]
) -> None:
    actions = CallActions(down_factory, settings)
    ctx = CallContext(record=_call("down-2"))
    _leave_message(actions, settings, ctx)
    actions.finish(ctx)
    spool = open_spool(settings)
    report = spool.replay(down_factory)
    assert (report.ingested, report.waiting) == (0, 1)
    assert len(spool.pending()) == 1


def test_spool_unusable_file_is_set_aside_not_deleted(
    settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    spool = open_spool(settings)
    spool.put(_call("bad-3"), [{"line": "1888", "kind": "request", "origin_key": "agi:bad-3:1", "body": "x"}])
    report = spool.replay(session_factory)
    assert report.ingested == 0 and len(report.rejected) == 1
    rejected = settings.spool_dir / "rejected"
    assert (rejected / report.rejected[0]).is_file()
    assert "does not belong on line 1888" in (rejected / (report.rejected[0] + ".reason")).read_text()


def test_spool_call_log_only_when_database_down(
    settings: Settings, down_factory: sessionmaker[Session], session_factory: sessionmaker[Session], db: Session
) -> None:
    actions = CallActions(down_factory, settings)
    ctx = CallContext(record=_call("log-4"))
    ctx.record.outcome = "dropped"
    actions.finish(ctx)
    assert open_spool(settings).replay(session_factory).ingested == 1
    call = db.scalar(select(Call).where(Call.channel_id == "log-4"))
    assert call is not None and call.outcome == "dropped" and call.ended_at is not None
