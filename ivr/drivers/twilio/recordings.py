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

import logging
import os
from typing import TYPE_CHECKING

from ivr.db import transaction
from ivr.infra.storage import AudioError, AudioStore, has_speech
from ivr.infra.twilio_rest import RebasedHttpClient, TwilioError, is_twilio_url
from ivr.runner import CallActions
from ivr.services.twilio_calls import find_recording, set_status

if TYPE_CHECKING:
    from ivr.jobqueue import JobContext

log = logging.getLogger(__name__)

FETCH_JOB = "twilio.recording"


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
    if audio is not None and keep:  # the caller hung up before keeping it: the message is theirs
        CallActions(factory, settings).keep_late_take(recording_sid)
    return "speech" if audio else "empty"
