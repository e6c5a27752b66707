"""Spoken replies: a manager answers a referred message with their voice (and an optional note).

`record_reply` does the database work inside the caller's transaction. `send_reply` is the
console's whole unit of work around it, because three things must follow the transaction's
fate: the upload is checked and converted before it (a bad file stores nothing), the stored
files are deleted again if it rolls back, and the citizen's notice is queued only after it commits.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ivr.db import transaction
from ivr.infra.audio_convert import (
    ConversionSlots,
    ConvertedAudio,
    ReplyAudioError,
    ReplyAudioLimits,
    convert_reply_audio,
)
from ivr.infra.storage import AudioStore, StoredAudio
from ivr.jobqueue import JobError, Jobs
from ivr.models import Message, Recording, Referral, Reminder, Reply, utcnow
from ivr.services import audit
from ivr.services.inbox import InboxForbidden, Viewer, message_in_reach

log = logging.getLogger(__name__)

FOLLOWUP_JOB = "reply.followup"
MAX_TEXT = 2000


class ReplyError(ValueError):
    """A reply that cannot be accepted; `text` is the Persian message, `status` the HTTP code."""

    def __init__(self, text: str, status: int = 400, reason: str = "invalid") -> None:
        super().__init__(text)
        self.text = text
        self.status = status
        self.reason = reason


@dataclass
class StoredReplyAudio:
    """The two stored files of one reply (the phone WAV and the browser copy)."""

    phone: StoredAudio
    browser: StoredAudio
    seconds: float


def store_converted(store: AudioStore, converted: ConvertedAudio, now: datetime | None = None) -> StoredReplyAudio:
    """Move the converted files into storage (the browser copy is removed again if the WAV fails)."""
    browser = store.store(converted.browser, now=now)
    try:
        phone = store.store(converted.phone_wav, now=now)
    except BaseException:
        store.path_of(browser.rel_path).unlink(missing_ok=True)
        raise
    return StoredReplyAudio(phone=phone, browser=browser, seconds=converted.seconds)


def discard_stored(store: AudioStore, stored: StoredReplyAudio | None) -> None:
    """Delete stored reply files (their rows were rolled back)."""
    if stored is None:
        return
    for item in (stored.phone, stored.browser):
        store.path_of(item.rel_path).unlink(missing_ok=True)


def record_reply(
    session: Session,
    viewer: Viewer,
    message_id: int,
    *,
    audio: StoredReplyAudio | None,
    text: str | None = None,
    ip: str | None = None,
    now: datetime | None = None,
) -> Reply:
    """Record a manager's reply: the Reply and its recordings, the referral closed, reminders resolved.

    The message becomes `answered`. Only the manager of the message's current unit may answer,
    and only while it waits for an answer. No commit.
    """
    if viewer.role != "manager":
        raise InboxForbidden("only managers answer messages")
    msg, referral = message_in_reach(session, viewer, message_id)
    if referral is None or msg.status != "referred":
        raise ReplyError("این پیام در انتظار پاسخ نیست.", 409, "not_open")
    text = (text or "").strip() or None
    if text is not None and len(text) > MAX_TEXT:
        raise ReplyError("یادداشت بیش از حد بلند است.", 400, "text_too_long")
    if audio is None:
        raise ReplyError("پاسخ صوتی ضبط یا بارگذاری نشده است.", 400, "missing")
    now = now or utcnow()
    reply = answer_referral(session, msg, referral, author_id=viewer.user_id, text=text, now=now)
    # The phone WAV first: the phone follow-up plays the reply's `wav` recording.
    for item, fmt in ((audio.phone, "wav"), (audio.browser, audio.browser.format)):
        session.add(
            Recording(
                path=item.rel_path,
                format=fmt,
                seconds=audio.seconds,
                sha256=item.sha256,
                size_bytes=item.size_bytes,
                purpose="reply",
                reply_id=reply.id,
                created_at=now,
            )
        )
    audit.record(session, viewer.user_id, "answer", "message", msg.id, f"reply={reply.id}", ip)
    session.flush()
    return reply


def answer_referral(
    session: Session, msg: Message, referral: Referral, *, author_id: int | None, text: str | None, now: datetime
) -> Reply:
    """The rule of answering: a Reply at `now`, the referral closed, open reminders resolved, the message `answered`.

    No checks and no audio: `record_reply` checks who may answer and stores the recordings. No commit.
    """
    reply = Reply(message_id=msg.id, referral_id=referral.id, author_id=author_id, text=text, created_at=now)
    session.add(reply)
    if referral.closed_at is None:
        referral.closed_at = now
    for reminder in session.scalars(
        select(Reminder).where(Reminder.message_id == msg.id, Reminder.resolved_at.is_(None))
    ):
        reminder.resolved_at = now
    msg.status = "answered"
    msg.updated_at = now
    session.flush()
    return reply


def queue_followup(jobs: Jobs, reply_id: int) -> str | None:
    """Queue the citizen's notice of a committed reply (SMS, survey); once per reply."""
    try:
        return jobs.enqueue(FOLLOWUP_JOB, job_id=f"{FOLLOWUP_JOB}:{reply_id}", reply_id=reply_id)
    except JobError as exc:
        # The reply is stored and plays on the phone; only the notice is missing.
        log.error("reply %d: the citizen's notice could not be queued: %s", reply_id, exc)
        return None


def send_reply(
    factory: sessionmaker[Session],
    store: AudioStore,
    jobs: Jobs,
    viewer: Viewer,
    message_id: int,
    *,
    upload: IO[bytes] | None,
    text: str | None = None,
    work_root: Path,
    limits: ReplyAudioLimits | None = None,
    slots: ConversionSlots | None = None,
    ip: str | None = None,
) -> int:
    """The console's reply: check and convert the upload, store it with the reply, then queue the notice.

    `slots` bounds how many conversions run at once (the app keeps one for all requests).
    Returns the reply id. Any error (ReplyError, InboxError) leaves no file and no row behind.
    """
    limits = limits or ReplyAudioLimits()
    work_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="reply-", dir=work_root))
    stored: StoredReplyAudio | None = None
    try:
        with transaction(factory, readonly=True) as session:
            # Refuse early (before any conversion) when this viewer may not answer this message.
            msg, referral = message_in_reach(session, viewer, message_id)
            if viewer.role != "manager":
                raise InboxForbidden("only managers answer messages")
            if referral is None or msg.status != "referred":
                raise ReplyError("این پیام در انتظار پاسخ نیست.", 409, "not_open")
        src = work / "upload"  # no extension: the content decides what it is
        _copy_limited(upload, src, limits.max_bytes)
        try:
            converted = convert_reply_audio(src, work, limits, slots)
        except ReplyAudioError as exc:
            raise ReplyError(exc.text, exc.status, exc.reason) from None
        stored = store_converted(store, converted)
        with transaction(factory) as session:
            reply = record_reply(session, viewer, message_id, audio=stored, text=text, ip=ip)
            reply_id = reply.id
    except BaseException:
        discard_stored(store, stored)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    queue_followup(jobs, reply_id)
    return reply_id


def _copy_limited(upload: IO[bytes] | None, dest: Path, max_bytes: int) -> None:
    # One byte past the limit is enough for the size check to refuse it; the rest is never read.
    left = max_bytes + 1
    with dest.open("wb") as out:
        while upload is not None and left > 0 and (chunk := upload.read(min(1 << 16, left))):
            out.write(chunk)
            left -= len(chunk)


def reply_of_phone_audio(session: Session, rel_path: str) -> int | None:
    """The id of the reply whose phone WAV is stored at `rel_path` (None for any other recording)."""
    return session.scalar(
        select(Recording.reply_id).where(
            Recording.path == rel_path, Recording.purpose == "reply", Recording.format == "wav"
        )
    )


def phone_audio_of_reply(session: Session, reply_id: int) -> str | None:
    """Where (under the recordings folder) the phone WAV of reply `reply_id` is, if it has one."""
    return session.scalar(
        select(Recording.path)
        .where(Recording.reply_id == reply_id, Recording.purpose == "reply", Recording.format == "wav")
        .order_by(Recording.id.desc())
        .limit(1)
    )
