"""The demo city with voices: waiting voice messages and the newest replies get real Persian audio.

Its own module: the demo module keeps a demo loaded in an open transaction for all its tests,
and loading a second one beside it would wait on that transaction's unique keys.
"""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from ivr.demo import load_demo
from ivr.models import Message, Reply

NOW = datetime(2025, 3, 10, 6, 0, tzinfo=UTC)

@pytest.mark.slow
def test_demo_with_voices_gives_waiting_voice_messages_and_newest_replies_real_persian_audio(
    session_factory, settings
) -> None:
    import wave

    from ivr.demo import REPLY_VOICES, espeak_voice
    from ivr.infra.storage import AudioStore, has_speech
    from ivr.models import Recording

    voice = espeak_voice(settings.recordings_dir, settings.incoming_dir)
    with session_factory() as db:
        load_demo(db, calls=120, now=NOW, voice=voice)
        db.flush()
        waiting = db.scalars(
            select(Message.id).where(Message.source == "phone_voice", Message.status.in_(("new", "referred")))
        ).all()
        voiced = db.scalars(select(Recording).where(Recording.purpose == "message")).all()
        assert waiting and sorted(r.message_id for r in voiced) == sorted(waiting)
        replies = db.scalar(select(func.count()).select_from(Reply))
        reply_audio = db.scalars(select(Recording).where(Recording.purpose == "reply")).all()
        assert len(reply_audio) == min(replies, REPLY_VOICES) > 0
        store = AudioStore(settings.recordings_dir)
        for rec in (voiced[0], reply_audio[-1]):
            path = store.path_of(rec.path)
            with wave.open(str(path)) as w:
                assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
            assert rec.format == "wav" and rec.seconds > 0.5
            assert has_speech(path, min_speech_ms=300, threshold_dbfs=-45.0)
        db.rollback()
    assert not any(settings.incoming_dir.iterdir())  # nothing left half-made
