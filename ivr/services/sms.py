"""SMS: queueing and sending citizens' SMS, delivery reports, and replies citizens text in.

Outgoing SMS are stored first (status `queued`) and sent by the background job `sms.send`.
`queue_sms` enqueues that job only once the caller's transaction has committed (a session
`after_commit` hook): a worker can never look for a row that is not there yet, and a
rolled-back transaction sends nothing. The job sends only rows still `queued`, so a
replayed or retried job never sends twice; transient errors are retried with backoff by
the job queue, permanent ones (a bad number) mark the row `failed` with Twilio's error.

Incoming SMS (`receive_sms`) are, in this order: an answer to the number's pending
feedback request (stored as feedback, a dissatisfied 137 citizen raising a reminder),
a tracking code (its status is sent back), or a new written message for screening
(its tracking code is sent back). Replays of one provider message id change nothing.
"""
from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ivr.db import transaction
from ivr.identifiers import (
    InvalidIdentifier,
    is_valid_tracking_code,
    latin_digits,
    normalize_phone,
    persian_digits,
)
from ivr.jobqueue import JobContext, Jobs, enqueue_after_commit
from ivr.models import Feedback, Message, Sms, Survey, utcnow
from ivr.ports import NotifierError
from ivr.services.feedback import FeedbackError, record_feedback
from ivr.services.messages import (
    MessageError,
    find_by_tracking_code,
    phone_status,
    register_message,
)

log = logging.getLogger(__name__)

SURVEY_PURPOSE = "survey"
SURVEY_WINDOW = timedelta(days=14)
MAX_BODY_CHARS = 4000  # Twilio joins at most 1600 characters; anything longer is not an SMS
_CODE_RE = re.compile(r"(?<!\d)\d{9}(?!\d)")

# Twilio's message statuses → ours; statuses not listed (accepted, sending, ...) change nothing.
_PROVIDER_STATUS = {
    "queued": "queued", "sent": "sent", "delivered": "delivered", "read": "delivered",
    "undelivered": "undelivered", "failed": "failed", "canceled": "failed",
}
_STATUS_RANK = {"queued": 0, "sent": 1, "delivered": 2, "undelivered": 2, "failed": 2}

SATISFIED_WORDS = frozenset({"1", "بله", "بلی", "آره", "راضی", "راضیم", "راضی هستم", "خوب", "yes", "y", "ok"})
DISSATISFIED_WORDS = frozenset(
    {"2", "خیر", "نه", "ناراضی", "ناراضیم", "ناراضی هستم", "راضی نیستم", "نیستم", "بد", "no", "n"}
)

TEXT_THANKS = "از پاسخ شما سپاسگزاریم. رضایت شما ثبت شد."
TEXT_SORRY = "نارضایتی شما ثبت شد و پیام شما دوباره پیگیری می‌شود. سپاسگزاریم."
TEXT_ASK_AGAIN = "لطفاً برای اعلام رضایت عدد ۱ و برای اعلام نارضایتی عدد ۲ را بفرستید."
TEXT_EMPTY = "پیامک شما خالی بود. لطفاً متن پیام خود را بفرستید."
TEXT_NO_SURVEY = (
    "نظرسنجی بازی برای این شماره نیست یا پیش‌تر پاسخ داده شده است. "
    "برای پیگیری، کد رهگیری را بفرستید؛ برای ثبت پیام تازه، متن آن را بنویسید."
)
TEXT_UNKNOWN_CODE = "کد رهگیری {code} پیدا نشد. لطفاً آن را دوباره بررسی کنید."
TEXT_REGISTERED = "پیام شما ثبت شد و پس از بررسی پیگیری می‌شود. کد رهگیری: {code}"
TEXT_STATUS = "وضعیت پیام با کد رهگیری {code}: {status}"


class SmsError(ValueError):
    """An SMS that cannot be queued as given (no number, empty text)."""


# ---- outgoing ---------------------------------------------------------------------------


def queue_sms(
    session: Session, jobs: Jobs, *, phone: str, body: str, purpose: str, message_id: int | None = None
) -> Sms:
    """Store an outgoing SMS as `queued`; job `sms.send` is enqueued once the session commits."""
    try:
        number = normalize_phone(phone)
    except InvalidIdentifier as exc:
        raise SmsError(str(exc)) from None
    body = (body or "").strip()
    if not body:
        raise SmsError("an SMS needs a text")
    now = utcnow()
    sms = Sms(direction="out", phone=number, body=body, status="queued", purpose=purpose,
              message_id=message_id, created_at=now, updated_at=now)
    session.add(sms)
    session.flush()
    enqueue_after_commit(session, jobs, "sms.send", job_id=f"sms.send:{sms.id}", sms_id=sms.id)
    return sms


@dataclass(frozen=True)
class OutgoingSms:
    """What the sender needs of a queued SMS."""

    id: int
    phone: str
    body: str
    line: str | None


def claim_queued(session: Session, sms_id: int) -> OutgoingSms | None:
    """The SMS to send, or None when it is gone or no longer queued (sent already, failed)."""
    sms = session.get(Sms, sms_id)
    if sms is None or sms.direction != "out" or sms.status != "queued":
        return None
    line = None
    if sms.message_id is not None:
        msg = session.get(Message, sms.message_id)
        line = msg.line_code if msg else None
    return OutgoingSms(sms.id, sms.phone, sms.body, line)


def mark_sent(session: Session, sms_id: int, provider_sid: str) -> None:
    """The provider took the SMS; a delivery report may already have moved it further."""
    sms = session.get(Sms, sms_id)
    if sms is None:
        return
    sms.provider_sid = provider_sid
    if sms.status == "queued":
        sms.status = "sent"
    sms.updated_at = utcnow()


def mark_failed(session: Session, sms_id: int, error: str) -> None:
    """The SMS cannot be sent (permanent error): keep why."""
    sms = session.get(Sms, sms_id)
    if sms is None:
        return
    sms.status = "failed"
    sms.error = error[:2000]
    sms.updated_at = utcnow()


def apply_delivery_report(session: Session, provider_sid: str, provider_status: str, error_code: str | None) -> bool:
    """A delivery report from the provider; statuses never go backwards. False if the SMS is unknown."""
    sms = session.scalar(select(Sms).where(Sms.provider_sid == provider_sid))
    if sms is None:
        return False
    status = _PROVIDER_STATUS.get(provider_status.lower())
    if status is not None and _STATUS_RANK.get(status, 0) > _STATUS_RANK.get(sms.status, 0):
        sms.status = status
        if error_code and status in ("failed", "undelivered"):
            sms.error = f"Twilio error {error_code}"
        sms.updated_at = utcnow()
    return True


def sms_send_job(ctx: JobContext, sms_id: int) -> str:
    """Job `sms.send`: send one queued SMS through the context's notifier. Transient errors raise (the queue retries)."""
    with transaction(ctx.session_factory, readonly=True) as session:
        out = claim_queued(session, sms_id)
    if out is None:
        return "skipped"
    try:
        sid = ctx.adapters.notifier.send(out.phone, out.body, sender_line=out.line)
    except NotifierError as exc:
        if not exc.permanent:
            raise
        log.warning("SMS %s to %s failed for good: %s", sms_id, out.phone, exc)
        with transaction(ctx.session_factory) as session:
            mark_failed(session, sms_id, str(exc))
        return "failed"
    with transaction(ctx.session_factory) as session:
        mark_sent(session, sms_id, sid)
    return "sent"


# ---- incoming ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SmsReply:
    """What an incoming SMS did (`feedback`, `status`, `message`, `ask`, `empty`, `unknown_code`) and the answer."""

    handled_as: str
    text: str
    message_id: int | None = None


def clean_body(raw: str | None) -> str:
    """The text of an SMS without control characters (NUL breaks PostgreSQL), trimmed and capped."""
    text = "".join(
        ch for ch in (raw or "") if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs")
    )
    return text.strip()[:MAX_BODY_CHARS]


def normalize_answer(text: str) -> str:
    """A short answer in one form: Latin digits, Persian letters, no punctuation, single spaces."""
    text = latin_digits(text).lower().replace("ي", "ی").replace("ك", "ک").replace("\u200c", " ")
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


def parse_satisfaction(text: str) -> bool | None:
    """True for a satisfied answer ("1", "۱", "راضی", "بله"), False for "2", "ناراضی", "خیر"; else None."""
    answer = normalize_answer(text)
    if answer in SATISFIED_WORDS:
        return True
    if answer in DISSATISFIED_WORDS:
        return False
    return None


def pending_survey(session: Session, phone: str, now: datetime) -> Sms | None:
    """The number's pending feedback request: its newest survey SMS of the last 14 days, not yet answered."""
    survey = session.scalars(
        select(Sms)
        .where(
            Sms.direction == "out", Sms.phone == phone, Sms.purpose == SURVEY_PURPOSE,
            Sms.message_id.is_not(None), Sms.created_at >= now - SURVEY_WINDOW,
            Sms.status.in_(("queued", "sent", "delivered")),
        )
        .order_by(Sms.created_at.desc(), Sms.id.desc())
        .limit(1)
    ).first()
    if survey is None:
        return None
    # Answered already, by SMS or on the phone follow-up (a reply is rated once), or the survey was
    # superseded by a newer reply's.
    answered = session.scalar(
        select(Feedback.id).where(
            Feedback.message_id == survey.message_id, Feedback.created_at >= survey.created_at,
        ).limit(1)
    )
    closed = session.scalar(
        select(Survey.id).where(Survey.sms_id == survey.id, Survey.status.in_(("answered", "superseded"))).limit(1)
    )
    return None if answered is not None or closed is not None else survey


def status_text(message: Message, texts: dict[str, str]) -> str:
    """A message's status in Persian, from the same status the phone speaks (catalogue texts)."""
    words = [texts.get(name, "") for name in phone_status(message).prompts]
    return TEXT_STATUS.format(
        code=persian_digits(message.tracking_code), status=" ".join(w for w in words if w)
    )


def receive_sms(
    session: Session,
    *,
    provider_sid: str,
    phone: str,
    line: str,
    body: str | None,
    texts: dict[str, str],
    now: datetime | None = None,
) -> SmsReply:
    """Handle an SMS a citizen sent to `line`; the Persian reply. Idempotent on `provider_sid`.

    `texts` are the prompt catalogue's texts (the status wording the phone uses too).
    """
    now = now or utcnow()
    existing = session.scalar(select(Sms).where(Sms.provider_sid == provider_sid))
    if existing is not None:
        return _reply_for(session, existing, texts)
    try:
        number = normalize_phone(phone)
    except InvalidIdentifier:
        number = (re.sub(r"\s", "", phone or "") or "unknown")[:16]
    text = clean_body(body)
    incoming = Sms(direction="in", phone=number, body=text, status="received", provider_sid=provider_sid,
                   created_at=now, updated_at=now)
    try:
        with session.begin_nested():
            session.add(incoming)
            session.flush()
    except IntegrityError:  # the same SMS delivered twice at once
        replayed = session.scalar(select(Sms).where(Sms.provider_sid == provider_sid))
        if replayed is None:
            raise
        return _reply_for(session, replayed, texts)
    _handle(session, incoming, line, text, texts, now)
    reply = _reply_for(session, incoming, texts)
    session.add(Sms(direction="out", phone=number, body=reply.text, status="sent", purpose="reply",
                    message_id=reply.message_id, created_at=now, updated_at=now))
    session.flush()
    return reply


def _handle(session: Session, incoming: Sms, line: str, text: str, texts: dict[str, str], now: datetime) -> None:
    """Decide what an incoming SMS is and do it; the outcome is kept on the row (purpose, message_id)."""
    if not text:
        incoming.purpose = "empty"
        return
    survey = pending_survey(session, incoming.phone, now)
    if survey is not None:
        satisfied = parse_satisfaction(text)
        msg = session.get(Message, survey.message_id)
        if satisfied is not None and msg is not None:
            try:
                with session.begin_nested():
                    record_feedback(session, msg, satisfied=satisfied, channel="sms", raw_text=text,
                                    origin_key=_feedback_key(incoming))
                incoming.purpose, incoming.message_id = "feedback", msg.id
                return
            except FeedbackError as exc:
                log.warning("SMS %s: feedback not stored: %s", incoming.provider_sid, exc)
        elif re.fullmatch(r"\d", normalize_answer(text)):
            incoming.purpose, incoming.message_id = "ask", survey.message_id
            return
    elif parse_satisfaction(text) is not None:
        # A bare "1"/"2"/"راضی" with no survey open (already answered, or never asked) is not a new message.
        incoming.purpose = "no_survey"
        return
    codes = _CODE_RE.findall(latin_digits(text))
    for code in codes:
        if is_valid_tracking_code(code):
            msg = find_by_tracking_code(session, code)
            if msg is not None:
                incoming.purpose, incoming.message_id = "status", msg.id
                return
    if codes and re.fullmatch(r"[\d\s]+", latin_digits(text)):
        incoming.purpose = "unknown_code"
        return
    try:
        msg = register_message(
            session, line=line, kind="request" if line == "137" else "complaint", source="sms",
            caller=incoming.phone, body=text, origin_key=f"sms:{incoming.provider_sid}"[:100], created_at=now,
        )
    except MessageError as exc:  # cannot happen for a non-empty text on a known line; never crash on it
        log.error("SMS %s: not registered: %s", incoming.provider_sid, exc)
        incoming.purpose = "empty"
        return
    incoming.purpose, incoming.message_id = "message", msg.id


def _feedback_key(incoming: Sms) -> str:
    return f"sms:{incoming.provider_sid}:feedback"[:100]


def _reply_for(session: Session, incoming: Sms, texts: dict[str, str]) -> SmsReply:
    """The reply to an incoming SMS already handled (the same for a replay)."""
    kind = incoming.purpose or "empty"
    msg = session.get(Message, incoming.message_id) if incoming.message_id else None
    if kind == "feedback" and msg is not None:
        fb = session.scalar(select(Feedback).where(Feedback.origin_key == _feedback_key(incoming)))
        return SmsReply(kind, TEXT_THANKS if fb is not None and fb.satisfied else TEXT_SORRY, msg.id)
    if kind == "status" and msg is not None:
        return SmsReply(kind, status_text(msg, texts), msg.id)
    if kind == "message" and msg is not None:
        return SmsReply(kind, TEXT_REGISTERED.format(code=persian_digits(msg.tracking_code)), msg.id)
    if kind == "ask":
        return SmsReply(kind, TEXT_ASK_AGAIN, incoming.message_id)
    if kind == "no_survey":
        return SmsReply(kind, TEXT_NO_SURVEY)
    if kind == "unknown_code":
        codes = _CODE_RE.findall(latin_digits(incoming.body))
        return SmsReply(kind, TEXT_UNKNOWN_CODE.format(code=persian_digits(codes[0] if codes else "")))
    return SmsReply("empty", TEXT_EMPTY)
