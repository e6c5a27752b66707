"""Telling a citizen their reply is ready: an SMS with the tracking code, or a call that plays it.

`IVR_NOTICE_CHANNEL=sms` (default): a Persian SMS with the tracking code and how to hear the reply
(call the line, press 2, type the code). `IVR_NOTICE_CHANNEL=call`: an outbound call that plays the
spoken reply, placed by the `ReplyCaller` the caller hands in (ivr/ports.py; the composition root picks
Twilio's Calls API when `IVR_SMS_BACKEND=twilio`, otherwise an Asterisk call file, ivr/infra/reply_calls.py).
A reply with no recording (a written note only) falls back to the SMS.
Every attempt is a `reply_notices` row (`queued`: handed to the SMS queue or the spool; the `sms` row
then tracks delivery; `sent`: Twilio accepted the call; `failed`: with the error, and the job retries).
"""
from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ivr.config import Settings
from ivr.identifiers import persian_digits
from ivr.jobqueue import Jobs
from ivr.models import Citizen, Message, Reply, ReplyNotice, utcnow
from ivr.ports import ReplyCaller
from ivr.services.messages import reply_phone_audio
from ivr.services.sms import SmsError, queue_sms

log = logging.getLogger(__name__)

NOTICE_PURPOSE = "reply_notice"
FOLLOW_UP_KEY = "2"
NOTICE_TEXT = (
    "شهروند گرامی، پاسخ پیام شما با کد رهگیری {code} آماده است. برای شنیدن آن با سامانه {line} "
    "تماس بگیرید، کلید {key} را بزنید و کد رهگیری را وارد کنید."
)


class NoticeError(Exception):
    """A notice that cannot be sent (unknown reply)."""


def notice_text(tracking_code: str, line: str) -> str:
    """The reply notice SMS: tracking code, line and keys, in Persian digits."""
    return persian_digits(NOTICE_TEXT.format(code=tracking_code, line=line, key=FOLLOW_UP_KEY))


def reply_audio_path(reply: Reply, settings: Settings) -> Path | None:
    """The reply's WAV recording on disk, if it has one."""
    rel = reply_phone_audio(reply)
    return settings.recordings_dir / rel if rel is not None else None


def send_reply_notice(
    session: Session, jobs: Jobs, settings: Settings, reply_id: int, *, caller: ReplyCaller,
    now: datetime | None = None,
) -> ReplyNotice | None:
    """Tell the citizen the reply is ready (once per reply); None when the citizen has no phone.

    `caller` places the call when notices go by phone (`IVR_NOTICE_CHANNEL=call`).
    """
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
            placed = caller.call(phone=citizen.phone, line=message.line_code, reply_id=reply_id,
                                 tracking_code=message.tracking_code, audio=audio, attempt=attempt)
            notice.call_ref, notice.status = placed.ref, placed.status
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
