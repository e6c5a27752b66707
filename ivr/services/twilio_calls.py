"""What the Twilio driver keeps about its own transport: call rows between webhooks, recording rows.

Every function takes a session and never commits (the caller owns the transaction).
A Twilio call's flow state lives in `twilio_calls` (keyed by CallSid, guarded by a
version so a retried or concurrent webhook never advances a call twice); each recording
Twilio makes has one `twilio_recordings` row (keyed by RecordingSid) that the fetch job
fills in. A take the caller hung up on has ONE path: `keep_take` notes what the message
needs; whoever sees the audio second (the hang-up or the fetch job) registers it.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ivr.infra.storage import StoredAudio
from ivr.models import TwilioCall, TwilioRecording, utcnow

RECORDING_SID_RE = re.compile(r"RE[0-9a-fA-F]{32}")
RECORDING_REF_PREFIX = "twilio:"
KEEP_VARS = ("line", "kind", "topic", "district")


def recording_ref(recording_sid: str) -> str:
    """What the flow keeps as the `recording` variable for a Twilio recording."""
    return RECORDING_REF_PREFIX + recording_sid


def sid_of(ref: str | None) -> str | None:
    """The RecordingSid in a `recording` variable, or None (no recording, or an Asterisk path)."""
    if ref and ref.startswith(RECORDING_REF_PREFIX):
        return ref[len(RECORDING_REF_PREFIX):]
    return None


def keep_args(vars: Mapping[str, Any]) -> dict[str, str]:
    """What registering a message needs from the call's variables."""
    return {k: str(vars[k]) for k in KEEP_VARS if vars.get(k) not in (None, "")}


# ---- calls ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SavedStep:
    """A call's row as the driver needs it: where it is and what it last answered."""

    call_sid: str
    version: int
    state: dict[str, Any]
    last_fingerprint: str | None
    last_twiml: str | None
    finished: bool


def find_call(session: Session, call_sid: str) -> SavedStep | None:
    """The saved step of a call, if Twilio called us about it before."""
    row = session.scalar(select(TwilioCall).where(TwilioCall.call_sid == call_sid))
    if row is None:
        return None
    return SavedStep(row.call_sid, row.version, json.loads(row.state), row.last_fingerprint, row.last_twiml,
                     row.finished_at is not None)


def add_call(session: Session, call_sid: str, line: str, state: dict[str, Any], fingerprint: str, twiml: str,
             *, finished: bool) -> bool:
    """The first step of a new call; False when the same webhook already created it."""
    now = utcnow()
    try:
        with session.begin_nested():
            session.add(TwilioCall(call_sid=call_sid, line_code=line, state=json.dumps(state), version=1,
                                   last_fingerprint=fingerprint, last_twiml=twiml, created_at=now, updated_at=now,
                                   finished_at=now if finished else None))
            session.flush()
    except IntegrityError:
        return False
    return True


def claim_step(session: Session, call_sid: str, version: int, state: dict[str, Any], *, fingerprint: str | None,
               twiml: str, finished: bool) -> bool:
    """Save the next step if the call is still at `version`; False when another webhook got there first."""
    now = utcnow()
    values: dict[str, Any] = {"state": json.dumps(state), "version": version + 1, "last_twiml": twiml,
                              "updated_at": now, "finished_at": now if finished else None}
    if fingerprint is not None:
        values["last_fingerprint"] = fingerprint
    result = cast(CursorResult[Any], session.execute(
        update(TwilioCall).where(TwilioCall.call_sid == call_sid, TwilioCall.version == version).values(values)
    ))
    return bool(result.rowcount)


# ---- recordings ---------------------------------------------------------------------------


def note_recording(session: Session, recording_sid: str, call_sid: str, duration_ms: int | None = None) -> TwilioRecording:
    """The row for a recording (created on first sight, by the step or the callback, whichever comes first)."""
    row = find_recording(session, recording_sid)
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


def recording_status(session: Session, recording_sid: str) -> str:
    """`pending` until the job has fetched it, then `speech`, `empty`, `absent` or `discarded`."""
    row = find_recording(session, recording_sid)
    return row.status if row is not None else "pending"


def take_audio(session: Session, recording_sid: str) -> StoredAudio | None:
    """The stored audio of a fetched take (registering it twice finds its message by origin key)."""
    row = find_recording(session, recording_sid)
    return stored_audio(row) if row is not None else None


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


def discard_take(session: Session, recording_sid: str) -> str | None:
    """The caller records again: the take is marked discarded; its stored path, to delete."""
    row = find_recording(session, recording_sid)
    if row is None or row.message_id is not None:
        return None
    audio = stored_audio(row)
    row.status, row.audio, row.updated_at = "discarded", None, utcnow()
    return audio.rel_path if audio is not None else None


def link_message(session: Session, recording_sid: str, message_id: int) -> None:
    """The take became this message (registering it again finds it by origin key)."""
    row = find_recording(session, recording_sid)
    if row is not None:
        row.message_id = message_id
        row.updated_at = utcnow()


@dataclass(frozen=True)
class LateTake:
    """A take the caller hung up on, fetched and ready to register: what the message needs."""

    recording_sid: str
    call_sid: str
    args: dict[str, str]
    audio: StoredAudio


def keep_take(session: Session, recording_sid: str, call_sid: str, args: Mapping[str, str]) -> LateTake | None:
    """The caller hung up after speaking: note the take is to be kept.

    The one path for a take left by a hang-up: the returned LateTake (audio already
    fetched) is registered by the caller now; None means the fetch job registers it
    when the audio arrives (or there is nothing to keep).
    """
    row = note_recording(session, recording_sid, call_sid)
    if row.message_id is not None or row.status not in ("pending", "speech"):
        return None
    spec = json.dumps(dict(args))
    # Only a still-pending row takes the note unseen; if the job finished first, register here.
    waiting = cast(CursorResult[Any], session.execute(
        update(TwilioRecording)
        .where(TwilioRecording.id == row.id, TwilioRecording.status == "pending")
        .values(keep=spec, updated_at=utcnow())
    )).rowcount
    session.expire(row)
    if waiting:
        return None
    row.keep = spec
    audio = stored_audio(row)
    return LateTake(recording_sid, call_sid, dict(args), audio) if audio is not None else None


def late_take(session: Session, recording_sid: str) -> LateTake | None:
    """After the fetch: a take the caller asked to keep (by hanging up), not yet a message."""
    row = find_recording(session, recording_sid)
    if row is None or row.message_id is not None or not row.keep:
        return None
    audio = stored_audio(row)
    if audio is None:
        return None
    return LateTake(recording_sid, row.call_sid, json.loads(row.keep), audio)
