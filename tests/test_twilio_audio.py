"""Twilio's audio: prompts by catalogue name, a manager's reply by a token naming it by id (issue 14, row 7)."""
from __future__ import annotations

import time
from pathlib import Path
from unittest.mock import patch

from flask import Flask
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.orm import Session, sessionmaker

from ivr.config import Settings
from ivr.drivers.twilio.twiml import AUDIO_TOKEN_MAX_AGE, AudioTokens
from ivr.infra.storage import AudioStore, StoredAudio
from ivr.models import Message, Recording, Reply
from ivr.services.messages import register_message
from tests.fake_twilio import QueuedJobs, fake_api_fixture, twilio_settings_fixture  # noqa: F401 - fixtures
from tests.fakes import write_speech_wav
from tests.test_phone_journeys import answer_by_voice, city  # noqa: F401 - the reference rows fixture
from tests.test_twilio_voice import app, jobs  # noqa: F401,F811 - fixtures
from web import create_app


def test_twilio_prompts_only_by_catalogue_name_and_audio_only_by_signed_token(
    twilio_settings: Settings, session_factory: sessionmaker[Session], jobs: QueuedJobs,  # noqa: F811
    tmp_path: Path, db: Session,
) -> None:
    prompts = tmp_path / "prompts"
    write_speech_wav(prompts / "fa" / "welcome_1888.wav", 0.5)
    write_speech_wav(prompts / "fa" / "not_in_catalogue.wav", 0.5)
    settings = twilio_settings.with_(prompts_dir=prompts, secret_key="s3cret")
    own = create_app(settings, session_factory=session_factory, jobs=jobs)  # type: ignore[arg-type]
    client = own.test_client()
    with client.get("/twilio/prompts/welcome_1888.wav") as resp:
        assert (resp.status_code, resp.mimetype, resp.data) == (
            200, "audio/wav", (prompts / "fa" / "welcome_1888.wav").read_bytes())
    assert client.get("/twilio/prompts/not_in_catalogue.wav").status_code == 404
    assert client.get("/twilio/prompts/..%2F..%2Fetc%2Fpasswd.wav").status_code == 404
    msg, reply, stored = reply_with_audio(db, settings)
    tokens = own.extensions["ivr_twilio"].voice.twiml.tokens
    good = tokens.token(stored.rel_path)
    assert good is not None and stored.rel_path not in good and tokens.reply_id(good) == reply.id
    with client.get(f"/twilio/audio/{good}.wav") as resp:
        assert (resp.status_code, resp.data) == (200, AudioStore(settings.recordings_dir).path_of(stored.rel_path).read_bytes())
    # Tamper inside the signature: its last base64 character has spare bits that decode alike.
    pos = len(good) - 6
    forged = good[:pos] + ("A" if good[pos] != "A" else "B") + good[pos + 1:]
    with client.get(f"/twilio/audio/{forged}.wav") as resp:
        assert resp.status_code == 404
    assert tokens.token("../../etc/passwd") is None
    assert client.get("/twilio/audio/none.wav").status_code == 404


def reply_with_audio(db: Session, settings: Settings) -> tuple[Message, Reply, StoredAudio]:
    """A registered message (with its caller's recording) answered by a spoken reply."""
    msg = register_message(db, line="1888", kind="complaint", source="operator", caller="09121234567", body="x")
    message_audio = AudioStore(settings.recordings_dir).store(write_speech_wav(tmp_wav(settings), 1.0))
    db.add(Recording(path=message_audio.rel_path, format="wav", seconds=message_audio.seconds,
                     sha256=message_audio.sha256, size_bytes=message_audio.size_bytes, purpose="message",
                     message_id=msg.id))
    db.commit()
    return answer_by_voice(db, settings, msg.tracking_code, "رسیدگی شد")


def tmp_wav(settings: Settings) -> Path:
    return settings.data_dir / "message.wav"


def test_twilio_audio_tokens_name_only_replies_signed_with_the_app_secret_and_expire(
    app: Flask, twilio_settings: Settings, db: Session  # noqa: F811
) -> None:
    """Issue 14 row 7: a token made with the Twilio auth token over a recording's path opened it."""
    client = app.test_client()
    msg, reply, stored = reply_with_audio(db, twilio_settings)
    (message_rec,) = [r for r in msg.recordings if r.purpose == "message"]
    tokens = app.extensions["ivr_twilio"].voice.twiml.tokens
    assert tokens.token(message_rec.path) is None  # a citizen's recording can never be named
    # The old scheme (the Twilio auth token, the salt, a path) opens nothing, whichever recording it names.
    for secret in (twilio_settings.twilio_auth_token, app.config["SECRET_KEY"]):
        for salt in ("ivr-twilio-audio", AudioTokens.SALT):
            forged = URLSafeTimedSerializer(secret, salt=salt)
            for payload in (message_rec.path, stored.rel_path, {"path": message_rec.path}, {"reply": str(reply.id)}):
                assert client.get(f"/twilio/audio/{forged.dumps(payload)}.wav").status_code == 404
    by_twilio_token = URLSafeTimedSerializer(twilio_settings.twilio_auth_token, salt=AudioTokens.SALT)
    assert client.get(f"/twilio/audio/{by_twilio_token.dumps({'reply': reply.id})}.wav").status_code == 404
    # Signed with the app's secret and naming the reply by id: plays, until it expires.
    app_signed = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=AudioTokens.SALT)
    with client.get(f"/twilio/audio/{app_signed.dumps({'reply': reply.id})}.wav") as resp:
        assert resp.status_code == 200 and resp.data.startswith(b"RIFF")
    with patch("time.time", return_value=time.time() - AUDIO_TOKEN_MAX_AGE - 60):
        expired = tokens.for_reply(reply.id)
    assert tokens.reply_id(expired) is None
    assert client.get(f"/twilio/audio/{expired}.wav").status_code == 404
    assert client.get(f"/twilio/audio/{tokens.for_reply(reply.id + 1000)}.wav").status_code == 404
    assert client.get("/twilio/audio/%C2%B2.wav").status_code == 404
    # Without a factory (or a secret) no token is made or accepted.
    assert AudioTokens(twilio_settings.with_(secret_key="k")).token(stored.rel_path) is None
    assert AudioTokens(twilio_settings.with_(secret_key="k")).reply_id(tokens.for_reply(reply.id)) is None
