"""Recordings Twilio makes: noted by the webhooks, fetched and checked by a background job.

The recording status callback only notes the recording and queues `twilio.recording`
(no outbound HTTP or audio work inside a webhook). The job downloads `RecordingUrl.wav`
with the account credentials, keeps it only if it holds speech (`has_speech`, the same
rule as Asterisk recordings) and moves it into the same `AudioStore`. The call flow,
waiting at `check_recording`, then goes on; the message is registered from the stored
audio when the caller keeps it, or by the job itself if the caller hung up first.
Idempotent: one row per RecordingSid, and the job only works on rows still `pending`.
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ivr.db import transaction
from ivr.infra.storage import AudioError, AudioStore, StoredAudio, has_speech
from ivr.infra.twilio_rest import RebasedHttpClient, TwilioError, is_twilio_url
from ivr.models import TwilioRecording, utcnow

if TYPE_CHECKING:
    from ivr.jobqueue import JobContext

log = logging.getLogger(__name__)

RECORDING_SID_RE = re.compile(r"RE[0-9a-fA-F]{32}")
RECORDING_REF_PREFIX = "twilio:"
FETCH_JOB = "twilio.recording"


def recording_ref(recording_sid: str) -> str:
    """What the flow keeps as the `recording` variable for a Twilio recording."""
    return RECORDING_REF_PREFIX + recording_sid


def sid_of(ref: str | None) -> str | None:
    """The RecordingSid in a `recording` variable, or None (no recording, or an Asterisk path)."""
    if ref and ref.startswith(RECORDING_REF_PREFIX):
        return ref[len(RECORDING_REF_PREFIX):]
    return None


def note_recording(session: Session, recording_sid: str, call_sid: str, duration_ms: int | None = None) -> TwilioRecording:
    """The row for a recording (created on first sight, by the step or the callback, whichever comes first)."""
    row = session.scalar(select(TwilioRecording).where(TwilioRecording.recording_sid == recording_sid))
    if row is None:
        now = utcnow()
        try:
            with session.begin_nested():
                row = TwilioRecording(recording_sid=recording_sid, call_sid=call_sid, status="pending",
                                      duration_ms=duration_ms, created_at=now, updated_at=now)
                session.add(row)
                session.flush()
        except IntegrityError:  # the other webhook noted it a moment ago
            row = session.scalars(select(TwilioRecording).where(TwilioRecording.recording_sid == recording_sid)).one()
    if duration_ms is not None and row.duration_ms is None:
        row.duration_ms = duration_ms
    return row


def find_recording(session: Session, recording_sid: str) -> TwilioRecording | None:
    """The row of a recording, if noted."""
    return session.scalar(select(TwilioRecording).where(TwilioRecording.recording_sid == recording_sid))


def stored_audio(row: TwilioRecording) -> StoredAudio | None:
    """The stored file's facts of a fetched recording."""
    return StoredAudio(**json.loads(row.audio)) if row.audio else None


def set_status(session: Session, recording_sid: str, status: str, *, error: str | None = None,
               audio: StoredAudio | None = None) -> TwilioRecording | None:
    """Record what the fetch found (only a pending recording changes)."""
    row = find_recording(session, recording_sid)
    if row is None or row.status != "pending":
        return None
    row.status = status
    row.error = error
    if audio is not None:
        row.audio = json.dumps(asdict(audio))
    row.updated_at = utcnow()
    return row


def fetch_recording_job(ctx: JobContext, recording_sid: str, call_sid: str, url: str) -> str:
    """Job `twilio.recording`: download, check for speech, store; a caller who hung up keeps the message.

    Transient download errors raise (the queue retries); a recording Twilio does not have
    (404) or that is silent makes no message.
    """
    settings, factory = ctx.settings, ctx.session_factory
    with transaction(factory, readonly=True) as s:
        row = find_recording(s, recording_sid)
        if row is None or row.status != "pending":
            return "skipped"
    if not is_twilio_url(settings, url):
        with transaction(factory) as s:
            set_status(s, recording_sid, "absent", error=f"not a Twilio URL: {url[:200]}")
        return "absent"
    client = RebasedHttpClient(settings.twilio_api_base)
    try:
        data = client.download(url + ".wav", (settings.twilio_account_sid, settings.twilio_auth_token))
    except TwilioError as exc:
        if not exc.permanent:
            raise
        log.warning("recording %s of call %s not fetched: %s", recording_sid, call_sid, exc)
        with transaction(factory) as s:
            set_status(s, recording_sid, "absent", error=str(exc))
        return "absent"
    incoming = settings.incoming_dir
    incoming.mkdir(parents=True, exist_ok=True)
    path = incoming / f"twilio-{recording_sid}.wav"
    part = path.with_suffix(".part")
    part.write_bytes(data)
    os.replace(part, path)
    speech = has_speech(path, min_speech_ms=settings.min_speech_ms, threshold_dbfs=settings.silence_threshold_dbfs)
    audio = None
    if speech:
        try:
            audio = AudioStore(settings.recordings_dir).store(path)
        except AudioError as exc:
            log.warning("recording %s is not audio we can store: %s", recording_sid, exc)
    path.unlink(missing_ok=True)
    with transaction(factory) as s:
        row = set_status(s, recording_sid, "speech" if audio else "empty", audio=audio)
        keep = row.keep if row is not None else None
    if row is None and audio is not None:  # another run finished first: this copy is surplus
        AudioStore(settings.recordings_dir).path_of(audio.rel_path).unlink(missing_ok=True)
        return "skipped"
    if audio is not None and keep:
        from ivr.drivers.twilio.voice import build_twilio_voice

        build_twilio_voice(settings, factory).keep_after_hangup(call_sid, recording_sid)
    return "speech" if audio else "empty"
