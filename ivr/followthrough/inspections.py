"""Field verification ("smart inspection"): a weighted sample of answered requests is checked on site.

When a unit answers a 137 request, the reply is sampled for a field inspector's check with
probability

    p = min(1, IVR_INSPECTION_SHARE × weight),  weight = 1 + 2 × reminder_rate + (1 − satisfaction)

over the unit's last 90 days: reminder_rate = reminders / replies (capped at 1), satisfaction =
satisfied / feedback (1 with no feedback). A unit with no reminders and only satisfied citizens has
weight 1 (the base share); the worst has weight 4. The draw is deterministic: a number in [0, 1)
from `random.Random(f"{IVR_INSPECTION_SEED}:{reply_id}")`, sampled when below p (so a job run twice
decides the same, and tests are reproducible; keep the seed secret in production so units cannot
predict the sample). The inspector records passed/failed with a note or a photo (checked as a real
JPEG/PNG/WebP by Pillow, size-limited); a failed check re-opens the request at the same unit like a
dissatisfied citizen (Reminder reason `field_check_failed`), which counts against the unit.
"""
from __future__ import annotations

import hashlib
import io
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from PIL import Image, UnidentifiedImageError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ivr.config import Settings
from ivr.models import Feedback, FieldCheck, Message, Referral, Reminder, Reply, Unit, utcnow
from ivr.services.reminders import reopen_at_unit

STATS_WINDOW = timedelta(days=90)
PHOTO_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


class InspectionError(ValueError):
    """A check result that cannot be recorded (already recorded, bad photo, nothing said)."""


def sampling_weight(reminder_rate: float, satisfaction: float) -> float:
    """1 + 2 × reminder rate (capped at 1) + (1 − satisfaction): from 1 (best) to 4 (worst)."""
    return 1.0 + 2.0 * min(1.0, max(0.0, reminder_rate)) + (1.0 - min(1.0, max(0.0, satisfaction)))


def unit_weight(session: Session, unit_id: int, now: datetime) -> float:
    """The sampling weight of a unit from its last 90 days of replies, reminders and feedback."""
    since = now - STATS_WINDOW
    unit_messages = select(Referral.message_id).where(Referral.unit_id == unit_id)
    replies = session.scalar(select(func.count()).select_from(Reply).where(
        Reply.message_id.in_(unit_messages), Reply.created_at >= since)) or 0
    reminders = session.scalar(select(func.count()).select_from(Reminder).where(
        Reminder.unit_id == unit_id, Reminder.created_at >= since)) or 0
    answers = dict(session.execute(select(Feedback.satisfied, func.count()).where(
        Feedback.message_id.in_(unit_messages), Feedback.created_at >= since).group_by(Feedback.satisfied)).all())
    total = sum(answers.values())
    satisfaction = answers.get(True, 0) / total if total else 1.0
    return sampling_weight(reminders / replies if replies else 0.0, satisfaction)


def draw(seed: str, reply_id: int) -> float:
    """The reply's deterministic draw in [0, 1)."""
    return random.Random(f"{seed}:{reply_id}").random()


def sample_for_inspection(session: Session, reply_id: int, settings: Settings,
                          now: datetime | None = None) -> FieldCheck | None:
    """Sample an answered 137 request for a field check (weighted, deterministic); the check or None."""
    existing = session.scalar(select(FieldCheck).where(FieldCheck.reply_id == reply_id))
    if existing is not None:
        return existing
    reply = session.get(Reply, reply_id)
    if reply is None or reply.message.line_code != "137":
        return None
    now = now or utcnow()
    referral = session.scalars(select(Referral).where(Referral.message_id == reply.message_id)
                               .order_by(Referral.id.desc()).limit(1)).first()
    unit_id = referral.unit_id if referral is not None else reply.message.unit_id
    if unit_id is None:
        return None
    weight = unit_weight(session, unit_id, now)
    if draw(settings.inspection_seed, reply_id) >= min(1.0, settings.inspection_share * weight):
        return None
    check = FieldCheck(reply_id=reply_id, message_id=reply.message_id, unit_id=unit_id, weight=round(weight, 3),
                       status="pending", sampled_at=now)
    session.add(check)
    session.flush()
    return check


@dataclass(frozen=True)
class CheckRow:
    """A field check as the inspectors' page lists it."""

    id: int
    tracking_code: str
    district: int | None
    unit_name: str
    reply_text: str | None
    body: str | None
    status: str
    note: str | None
    has_photo: bool
    sampled_at: datetime
    checked_at: datetime | None


def list_checks(session: Session, *, pending_only: bool = False, limit: int = 300) -> list[CheckRow]:
    """Field checks, pending first then newest."""
    query = (
        select(FieldCheck, Message, Unit.name, Reply.text)
        .join(Message, Message.id == FieldCheck.message_id)
        .join(Unit, Unit.id == FieldCheck.unit_id)
        .join(Reply, Reply.id == FieldCheck.reply_id)
        .order_by((FieldCheck.status == "pending").desc(), FieldCheck.sampled_at.desc(), FieldCheck.id.desc())
        .limit(limit)
    )
    if pending_only:
        query = query.where(FieldCheck.status == "pending")
    return [
        CheckRow(c.id, m.tracking_code, m.district, unit_name, reply_text, m.body or m.summary, c.status, c.note,
                 c.photo_path is not None, c.sampled_at, c.checked_at)
        for c, m, unit_name, reply_text in session.execute(query).all()
    ]


def check_photo(data: bytes, max_bytes: int) -> str:
    """The file extension of a real JPEG/PNG/WebP image; InspectionError otherwise."""
    if len(data) > max_bytes:
        raise InspectionError(f"عکس بزرگ‌تر از حد مجاز است ({max_bytes // 1024} کیلوبایت).")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise InspectionError("پرونده فرستاده‌شده تصویر معتبری نیست.") from None
    if fmt not in PHOTO_FORMATS:
        raise InspectionError("فقط عکس JPEG، PNG یا WebP پذیرفته می‌شود.")
    return PHOTO_FORMATS[fmt]


def record_check(
    session: Session,
    check_id: int,
    *,
    inspector_id: int,
    passed: bool,
    note: str | None,
    photo: bytes | None,
    settings: Settings,
    now: datetime | None = None,
    tz: ZoneInfo | None = None,
) -> FieldCheck:
    """Record an inspector's result; a failed check re-opens the request at the same unit."""
    check = session.get(FieldCheck, check_id)
    if check is None:
        raise InspectionError("این بازرسی پیدا نشد.")
    if check.status != "pending":
        raise InspectionError("نتیجه این بازرسی پیش‌تر ثبت شده است.")
    note = (note or "").strip() or None
    if note is None and not photo:
        raise InspectionError("یک توضیح یا عکس لازم است.")
    now = now or utcnow()
    if photo:
        ext = check_photo(photo, settings.inspection_photo_max_bytes)
        name = f"{check.id}-{hashlib.sha256(photo).hexdigest()[:16]}.{ext}"
        settings.inspection_photos_dir.mkdir(parents=True, exist_ok=True)
        (settings.inspection_photos_dir / name).write_bytes(photo)
        check.photo_path = name
    check.status, check.note, check.inspector_id, check.checked_at = ("passed" if passed else "failed"), note, inspector_id, now
    if not passed:
        message = session.get(Message, check.message_id)
        if message is not None:
            reminder = reopen_at_unit(session, message, reason="field_check_failed", now=now,
                                      tz=tz or settings.timezone)
            check.reminder_id = reminder.id if reminder is not None else None
    session.flush()
    return check
