"""Telling a citizen their reply is ready: an SMS with the tracking code, or a call that plays it.

`IVR_NOTICE_CHANNEL=sms` (default): a Persian SMS with the tracking code and how to hear the reply
(call the line, press 2, type the code). `IVR_NOTICE_CHANNEL=call`: an outbound call that plays the
spoken reply - with Twilio (`IVR_SMS_BACKEND=twilio`) through its Calls API, otherwise as an
Asterisk call file written atomically into `IVR_CALL_SPOOL_DIR` (Asterisk's outgoing spool), which
dials `IVR_CALL_CHANNEL` and runs the dialplan context `ivr-reply-notice`; Asterisk itself retries
(`MaxRetries`, `RetryTime`). A reply with no recording (a written note only) falls back to the SMS.
Every attempt is a `reply_notices` row (`queued`: handed to the SMS queue or the spool; the `sms` row
then tracks delivery; `sent`: Twilio accepted the call; `failed`: with the error, and the job retries).
"""
from __future__ import annotations

import grp
import logging
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ivr.config import Settings
from ivr.identifiers import persian_digits
from ivr.models import Citizen, Message, Reply, ReplyNotice, utcnow
from ivr.services.messages import reply_phone_audio
from ivr.vocabulary import REPLY_AUDIO_VARIABLE, REPLY_ID_VARIABLE, TRACKING_CODE_VARIABLE

log = logging.getLogger(__name__)

NOTICE_PURPOSE = "reply_notice"
NOTICE_CONTEXT = "ivr-reply-notice"
CALL_FILE_MODE = 0o660  # Asterisk reads the file and appends its retries to it
FOLLOW_UP_KEY = "2"
NOTICE_TEXT = (
    "شهروند گرامی، پاسخ پیام شما با کد رهگیری {code} آماده است. برای شنیدن آن با سامانه {line} "
    "تماس بگیرید، کلید {key} را بزنید و کد رهگیری را وارد کنید."
)
TWILIO_NOTICE_PATH = "/twilio/voice/reply-notice"


class NoticeError(Exception):
    """A notice that cannot be sent (unknown reply)."""


def notice_text(tracking_code: str, line: str) -> str:
    """The reply notice SMS: tracking code, line and keys, in Persian digits."""
    return persian_digits(NOTICE_TEXT.format(code=tracking_code, line=line, key=FOLLOW_UP_KEY))


def reply_audio_path(reply: Reply, settings: Settings) -> Path | None:
    """The reply's WAV recording on disk, if it has one."""
    rel = reply_phone_audio(reply)
    return settings.recordings_dir / rel if rel is not None else None


def call_file_text(*, number: str, reply_id: int, tracking_code: str, audio: Path, line: str,
                   settings: Settings) -> str:
    """An Asterisk call file that dials the citizen and plays the reply in `ivr-reply-notice`."""
    sound = str(audio.with_suffix(""))  # Playback takes the name without the extension
    return "\n".join([
        f"Channel: {settings.call_channel.format(number=number)}",
        f'CallerID: "{line}" <{line}>',
        f"MaxRetries: {settings.call_max_retries}",
        f"RetryTime: {settings.call_retry_seconds}",
        "WaitTime: 45",
        f"Context: {NOTICE_CONTEXT}",
        "Extension: s",
        "Priority: 1",
        f"Setvar: {REPLY_ID_VARIABLE}={reply_id}",
        f"Setvar: {REPLY_AUDIO_VARIABLE}={sound}",
        f"Setvar: {TRACKING_CODE_VARIABLE}={tracking_code}",
        "Archive: yes",
        "",
    ])


def give_call_file_to_spool(fd: int, spool_dir: Path) -> None:
    """Give an open call file the spool folder's group (and owner, when running as root), mode 0660.

    Asterisk, running as its own user, must read the file and append its `StartRetry` lines to
    it: they are how it counts `MaxRetries`. A file it can read but not append to is retried for
    ever; one it cannot read (mkstemp's 0600) is deleted unplayed. Only the owner may set the file's
    time (Asterisk's retry clock), so as root the file also takes the folder's owner; otherwise
    Asterisk logs "Unable to set utime" on each attempt, which is harmless.
    Raises PermissionError when this user may not give the file that group (not a member).
    """
    folder = spool_dir.stat()
    os.fchmod(fd, CALL_FILE_MODE)
    try:
        os.fchown(fd, folder.st_uid if os.geteuid() == 0 else -1, folder.st_gid)
    except PermissionError:
        raise PermissionError(
            f"cannot give call files the group {_group_name(folder.st_gid)} of {spool_dir}: "
            "the server's user must be a member, or Asterisk cannot read them"
        ) from None


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def write_call_file(spool_dir: Path, name: str, text: str) -> Path:
    """Write a call file atomically: into a staging folder beside the spool, then renamed in.

    Asterisk reads a call file as soon as it appears, so it must never see a half-written one;
    the staging folder is on the same file system, so the rename is atomic. The file is made
    Asterisk's to read and append to (see `give_call_file_to_spool`).
    """
    spool_dir.mkdir(parents=True, exist_ok=True)
    staging = spool_dir.parent / f".{spool_dir.name}.staging"
    staging.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=staging, suffix=".call")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            give_call_file_to_spool(f.fileno(), spool_dir)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        target = spool_dir / name
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _twilio_call(settings: Settings, client: Any, *, phone: str, line: str, reply_id: int) -> str:
    from ivr.notify import e164

    if client is None:
        from ivr.drivers.twilio.rest import build_client

        client = build_client(settings)
    call = client.calls.create(
        to=e164(phone), from_=settings.twilio_number_of(line),
        url=f"{settings.public_base_url}{TWILIO_NOTICE_PATH}?reply_id={reply_id}", method="POST",
    )
    return str(call.sid)


def send_reply_notice(
    session: Session, jobs: Any, settings: Settings, reply_id: int, *, now: datetime | None = None,
    twilio_client: Any = None,
) -> ReplyNotice | None:
    """Tell the citizen the reply is ready (once per reply); None when the citizen has no phone."""
    from ivr.services.sms import SmsError, queue_sms

    reply = session.get(Reply, reply_id)
    if reply is None:
        raise NoticeError(f"no reply {reply_id}")
    done = session.scalar(select(ReplyNotice).where(
        ReplyNotice.reply_id == reply_id, ReplyNotice.status.in_(("queued", "sent"))).limit(1))
    if done is not None:
        return done
    message: Message = reply.message
    citizen = session.get(Citizen, message.citizen_id) if message.citizen_id else None
    if citizen is None:
        return None
    now = now or utcnow()
    attempt = (session.scalar(select(func.count()).select_from(ReplyNotice)
                              .where(ReplyNotice.reply_id == reply_id)) or 0) + 1
    audio = reply_audio_path(reply, settings)
    notice = ReplyNotice(reply_id=reply_id, message_id=message.id, attempt=attempt, created_at=now,
                         channel="sms", status="queued")
    if settings.notice_channel == "call" and audio is not None:
        notice.channel = "call"
        try:
            if settings.sms_backend == "twilio":
                notice.call_ref = _twilio_call(settings, twilio_client, phone=citizen.phone,
                                               line=message.line_code, reply_id=reply_id)
                notice.status = "sent"
            else:
                name = f"reply-{reply_id}-{attempt}.call"
                write_call_file(settings.outgoing_call_dir, name, call_file_text(
                    number=citizen.phone, reply_id=reply_id, tracking_code=message.tracking_code,
                    audio=audio, line=message.line_code, settings=settings))
                notice.call_ref = name
        except Exception as exc:  # recorded, then the job fails and is retried with backoff
            notice.status, notice.error = "failed", str(exc)[:2000]
            session.add(notice)
            session.flush()
            return notice
    else:
        try:
            sms = queue_sms(session, jobs, phone=citizen.phone, body=notice_text(message.tracking_code,
                            message.line_code), purpose=NOTICE_PURPOSE, message_id=message.id)
            notice.sms_id = sms.id
        except SmsError as exc:
            notice.status, notice.error = "failed", str(exc)
    session.add(notice)
    session.flush()
    return notice


# Asterisk's pbx_spool appends "Status: <outcome>" to a call file it archives (Archive: yes).
_CALL_OUTCOMES = {"Completed": ("sent", None), "Expired": ("failed", "Asterisk: no answer after every retry"),
                  "Failed": ("failed", "Asterisk: the call could not be placed")}


def collect_call_outcomes(session: Session, settings: Settings) -> int:
    """Record what Asterisk did with each notice call file it has archived; the number of notices updated."""
    done_dir = settings.finished_call_dir
    if not done_dir.is_dir():
        return 0
    waiting = session.scalars(
        select(ReplyNotice).where(
            ReplyNotice.channel == "call", ReplyNotice.status == "queued", ReplyNotice.call_ref.is_not(None)
        )
    ).all()
    updated = 0
    for notice in waiting:
        path = done_dir / Path(notice.call_ref or "").name  # only a file name, never a path from elsewhere
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except (FileNotFoundError, IsADirectoryError):
            continue
        except OSError as exc:
            log.warning("notice %s: cannot read %s: %s", notice.id, path, exc)
            continue
        statuses = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Status:")]
        if not statuses or statuses[-1] not in _CALL_OUTCOMES:
            continue
        notice.status, notice.error = _CALL_OUTCOMES[statuses[-1]]
        updated += 1
    session.flush()
    return updated
