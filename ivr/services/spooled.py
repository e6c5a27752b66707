"""Spooled calls into the database: what `ivr spool replay` and `register` write, idempotently.

The spool itself (`ivr.infra.spool`) is files on disk; it sits below the services, so it is
given `ingest` from here (`open_spool`).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ivr.config import Settings
from ivr.infra.spool import Spool, SpoolError
from ivr.infra.storage import StoredAudio
from ivr.services import twilio_calls
from ivr.services.call_log import CallRecord, save_call
from ivr.services.messages import register_message


def open_spool(settings: Settings) -> Spool:
    """This deployment's spool, able to replay into the database."""
    return Spool(settings.spool_dir, settings.recordings_dir, ingest=ingest)


def ingest(
    session: Session, payload: dict[str, Any], store_raw: Any = None, *, call_only: bool = False
) -> list[str]:
    """Write one spooled call (and its messages, unless `call_only`) to the database; the tracking codes."""
    record = CallRecord.from_dict(payload["call"])
    call = save_call(session, record)
    if call_only:
        return []
    codes = []
    for m in payload.get("messages", []):
        if m.get("audio"):
            audio: StoredAudio | None = StoredAudio(**m["audio"])
        elif m.get("file"):
            if store_raw is None:
                raise SpoolError("raw spooled audio needs a storage to go to")
            audio = store_raw(m["file"])
        elif m.get("recording_sid"):  # a Twilio take, fetched into storage by its job
            audio = twilio_calls.take_audio(session, m["recording_sid"])
            if audio is None:
                raise SpoolError(f"the Twilio recording {m['recording_sid']} is not in storage")
        else:
            audio = None
        msg = register_message(
            session,
            line=m["line"],
            kind=m["kind"],
            source=m.get("source", "phone_voice"),
            caller=record.caller,
            topic_code=m.get("topic") or None,
            district=int(m["district"]) if m.get("district") else None,
            call_id=call.id,
            audio=audio,
            body=m.get("body"),
            origin_key=m["origin_key"],
            tracking_code=m.get("tracking_code"),
        )
        if m.get("recording_sid"):
            twilio_calls.link_message(session, m["recording_sid"], msg.id)
        codes.append(msg.tracking_code)
    return codes
