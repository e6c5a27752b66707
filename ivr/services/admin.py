"""Administration: the units tree and managers, users and roles, topics and deadlines,
working hours and holidays (entered in Jalali), and the prompt catalogue. Every change is audited.

Errors are AdminError with a Persian message for the administrator; nothing is changed then.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path

import jdatetime
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.config import Settings
from ivr.identifiers import latin_digits, persian_digits
from ivr.models import Holiday, Topic, TopicDeadline, Unit, User, WorkingHours
from ivr.prompts import PromptEntry, load_catalogue, prompts_out_dir
from ivr.services import audit
from ivr.services.users import MIN_PASSWORD_LENGTH, UserError, add_user, end_sessions, set_password
from ivr.vocabulary import DEFAULT_DISTRICTS, LINE_KINDS, LINES, ROLES, UNIT_KINDS, district_range

CODE_RE = re.compile(r"[a-z0-9_.-]{2,40}")
_JALALI_RE = re.compile(r"([0-9]{4})[/-]([0-9]{1,2})[/-]([0-9]{1,2})")  # after latin_digits: not `\d`, which takes any script
_TIME_RE = re.compile(r"([0-9]{1,2}):([0-9]{2})")


class AdminError(ValueError):
    """A change that cannot be made as asked; the message is Persian."""


class NotFound(LookupError):
    """No such unit, user, topic, holiday or prompt."""


@dataclass(frozen=True)
class TreeRow:
    """A unit in the tree, with its depth and its managers' names."""

    unit: Unit
    depth: int
    managers: tuple[str, ...]


def _get(session: Session, model: type, key: object) -> object:
    row = session.get(model, key)
    if row is None:
        raise NotFound(key)
    return row


# ---- units ---------------------------------------------------------------------------------


def units_tree(session: Session) -> list[TreeRow]:
    """Every unit, depth-first under its parent, with its active managers."""
    units = list(session.scalars(select(Unit).order_by(Unit.name)))
    managers: dict[int, list[str]] = {}
    for user in session.scalars(select(User).where(User.role == "manager", User.active.is_(True)).order_by(User.id)):
        managers.setdefault(user.unit_id or 0, []).append(user.full_name)
    children: dict[int | None, list[Unit]] = {}
    known = {u.id for u in units}
    for unit in units:
        parent = unit.parent_id if unit.parent_id in known else None
        children.setdefault(parent, []).append(unit)
    out: list[TreeRow] = []

    def walk(parent: int | None, depth: int) -> None:
        for unit in children.get(parent, []):
            out.append(TreeRow(unit, depth, tuple(managers.get(unit.id, ()))))
            if depth < 20:
                walk(unit.id, depth + 1)

    walk(None, 0)
    return out


def add_unit(
    session: Session, actor_id: int, *, code: str, name: str, kind: str, parent_id: int | None,
    district: int | None, ip: str | None = None, districts: int = DEFAULT_DISTRICTS,
) -> Unit:
    """Add a unit under `parent_id` (None: a top-level unit); `districts` is the city's count."""
    code = code.strip().lower()
    if not CODE_RE.fullmatch(code):
        raise AdminError("کد واحد باید ۲ تا ۴۰ نویسه از حروف کوچک لاتین، رقم، _ . - باشد.")
    if not name.strip():
        raise AdminError("نام واحد خالی است.")
    if kind not in UNIT_KINDS:
        raise AdminError("نوع واحد درست نیست.")
    if district is not None and district not in district_range(districts):
        raise AdminError(f"منطقه باید عددی از ۱ تا {persian_digits(str(districts))} باشد.")
    if parent_id is not None and session.get(Unit, parent_id) is None:
        raise AdminError("واحد بالادستی پیدا نشد.")
    if session.scalar(select(Unit.id).where(Unit.code == code)) is not None:
        raise AdminError("واحدی با این کد هست.")
    unit = Unit(code=code, name=name.strip(), kind=kind, parent_id=parent_id, district=district)
    session.add(unit)
    session.flush()
    audit.record(session, actor_id, "unit_added", "unit", unit.id, f"code={code}", ip)
    return unit


def set_unit_active(session: Session, actor_id: int, unit_id: int, active: bool, *, ip: str | None = None) -> Unit:
    """Activate or deactivate a unit (deactivated units take no new referrals)."""
    unit = _get(session, Unit, unit_id)
    assert isinstance(unit, Unit)
    unit.active = active
    audit.record(session, actor_id, "unit_activated" if active else "unit_deactivated", "unit", unit.id, None, ip)
    return unit


# ---- users -----------------------------------------------------------------------------------


def list_users(session: Session) -> list[User]:
    """Every user by role and username."""
    return list(session.scalars(select(User).order_by(User.role, User.username)))


def create_user(
    session: Session, actor_id: int, *, username: str, full_name: str, role: str, unit_id: int | None,
    password: str, ip: str | None = None,
) -> User:
    """Add a user through ivr.services.users (rules checked, password hashed)."""
    unit_code = None
    if unit_id is not None:
        unit = session.get(Unit, unit_id)
        if unit is None:
            raise AdminError("واحد انتخاب‌شده پیدا نشد.")
        unit_code = unit.code
    try:
        user = add_user(session, username.strip(), full_name, role, unit_code, password)
    except UserError as exc:
        raise AdminError(_user_error_fa(str(exc))) from None
    audit.record(session, actor_id, "user_added", "user", user.id, f"username={user.username} role={role}", ip)
    return user


def _user_error_fa(text: str) -> str:
    if "username" in text and "taken" in text:
        return "این نام کاربری گرفته شده است."
    if "username" in text:
        return "نام کاربری باید ۳ تا ۶۴ نویسه از حروف کوچک لاتین، رقم، _ . - باشد."
    if "full name" in text:
        return "نام کامل خالی است."
    if "role" in text:
        return "نقش درست نیست."
    if "manager" in text:
        return "مدیر واحد باید واحدی داشته باشد."
    if "password" in text:
        return persian_digits(f"گذرواژه باید دست‌کم {MIN_PASSWORD_LENGTH} نویسه باشد.")
    return "کاربر را نمی‌توان با این مشخصات افزود."


def set_user_active(session: Session, actor_id: int, user_id: int, active: bool, *, ip: str | None = None) -> User:
    """Deactivate (signs the user out everywhere) or reactivate a user; an admin cannot deactivate themselves."""
    user = _get(session, User, user_id)
    assert isinstance(user, User)
    if not active and user.id == actor_id:
        raise AdminError("نمی‌توانید حساب خودتان را غیرفعال کنید.")
    if not active and user.active:
        # Every browser signed out and every API token revoked: reactivating brings none back.
        end_sessions(session, user, "deactivated", revoke_tokens=True, actor_id=actor_id, ip=ip)
    user.active = active
    audit.record(session, actor_id, "user_activated" if active else "user_deactivated", "user", user.id, None, ip)
    return user


def reset_password(session: Session, actor_id: int, user_id: int, password: str, *, ip: str | None = None) -> User:
    """Set a new password (hashed); the user's open sessions end."""
    user = _get(session, User, user_id)
    assert isinstance(user, User)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AdminError(_user_error_fa("password"))
    set_password(session, user, password, actor_id=actor_id, ip=ip)  # sessions end, API tokens revoked
    return user


def set_role(
    session: Session, actor_id: int, user_id: int, role: str, unit_id: int | None, *, ip: str | None = None
) -> User:
    """Change a user's role and unit (a manager needs a unit)."""
    user = _get(session, User, user_id)
    assert isinstance(user, User)
    if role not in ROLES:
        raise AdminError("نقش درست نیست.")
    if unit_id is not None and session.get(Unit, unit_id) is None:
        raise AdminError("واحد انتخاب‌شده پیدا نشد.")
    if role == "manager" and unit_id is None:
        raise AdminError("مدیر واحد باید واحدی داشته باشد.")
    if user.id == actor_id and role != "admin":
        raise AdminError("نمی‌توانید نقش مدیر سامانه را از خودتان بگیرید.")
    user.role, user.unit_id = role, unit_id
    audit.record(session, actor_id, "role_changed", "user", user.id, f"role={role} unit={unit_id}", ip)
    return user


# ---- topics ----------------------------------------------------------------------------------


def list_topics(session: Session) -> list[Topic]:
    """Every topic by line and name."""
    return list(session.scalars(select(Topic).order_by(Topic.line_code, Topic.name)))


def _check_days(days: int) -> None:
    if not 1 <= days <= 365:
        raise AdminError("مهلت پاسخ باید از ۱ تا ۳۶۵ روز کاری باشد.")


def add_topic(
    session: Session, actor_id: int, *, code: str, line: str, name: str, due_working_days: int,
    unit_id: int | None, ip: str | None = None,
) -> Topic:
    """Add a topic on a line with its deadline in working days and its usual unit."""
    code = code.strip().lower()
    if not CODE_RE.fullmatch(code):
        raise AdminError("کد موضوع باید ۲ تا ۴۰ نویسه از حروف کوچک لاتین، رقم، _ . - باشد.")
    if line not in LINES:
        raise AdminError("سامانه را انتخاب کنید.")
    if not name.strip():
        raise AdminError("نام موضوع خالی است.")
    _check_days(due_working_days)
    if unit_id is not None and session.get(Unit, unit_id) is None:
        raise AdminError("واحد انتخاب‌شده پیدا نشد.")
    if session.scalar(select(Topic.id).where(Topic.code == code)) is not None:
        raise AdminError("موضوعی با این کد هست.")
    topic = Topic(code=code, line_code=line, name=name.strip(), due_working_days=due_working_days, unit_id=unit_id)
    session.add(topic)
    session.flush()
    audit.record(session, actor_id, "topic_added", "topic", topic.id, f"code={code} days={due_working_days}", ip)
    return topic


def update_topic(
    session: Session, actor_id: int, topic_id: int, *, due_working_days: int, unit_id: int | None, active: bool,
    ip: str | None = None,
) -> Topic:
    """Change a topic's deadline, usual unit or whether it is offered."""
    topic = _get(session, Topic, topic_id)
    assert isinstance(topic, Topic)
    _check_days(due_working_days)
    if unit_id is not None and session.get(Unit, unit_id) is None:
        raise AdminError("واحد انتخاب‌شده پیدا نشد.")
    before = f"days={topic.due_working_days} unit={topic.unit_id} active={topic.active}"
    topic.due_working_days, topic.unit_id, topic.active = due_working_days, unit_id, active
    after = f"days={due_working_days} unit={unit_id} active={active}"
    audit.record(session, actor_id, "topic_changed", "topic", topic.id, f"{before} -> {after}", ip)
    return topic


def kind_deadlines(session: Session) -> dict[int, dict[str, int]]:
    """Deadlines set for one kind of message on a topic: topic id -> kind -> working days."""
    out: dict[int, dict[str, int]] = {}
    for row in session.scalars(select(TopicDeadline).order_by(TopicDeadline.topic_id, TopicDeadline.kind)):
        out.setdefault(row.topic_id, {})[row.kind] = row.due_working_days
    return out


def set_kind_deadline(
    session: Session, actor_id: int, topic_id: int, *, kind: str, due_working_days: int | None,
    ip: str | None = None,
) -> None:
    """Give one kind of message on a topic its own deadline, or (None) let it follow the topic's again."""
    topic = _get(session, Topic, topic_id)
    assert isinstance(topic, Topic)
    kinds = LINE_KINDS[topic.line_code]
    if kind not in kinds:
        raise AdminError("این نوع پیام در این سامانه نیست.")
    row = session.get(TopicDeadline, (topic_id, kind))
    if due_working_days is None:
        if row is not None:
            session.delete(row)
            audit.record(session, actor_id, "topic_deadline_removed", "topic", topic_id, f"kind={kind}", ip)
        return
    _check_days(due_working_days)
    if row is None:
        session.add(TopicDeadline(topic_id=topic_id, kind=kind, due_working_days=due_working_days))
    else:
        row.due_working_days = due_working_days
    audit.record(session, actor_id, "topic_deadline_set", "topic", topic_id, f"kind={kind} days={due_working_days}", ip)


# ---- working hours and holidays ---------------------------------------------------------------


def parse_jalali(text: str) -> date:
    """'۱۴۰۵/۰۱/۰۱' or '1405-1-1' (Jalali) -> the Gregorian date; AdminError if not a real day."""
    match = _JALALI_RE.fullmatch(latin_digits(text.strip()))
    if not match:
        raise AdminError("تاریخ را به شکل ۱۴۰۵/۰۱/۰۱ (خورشیدی) وارد کنید.")
    try:
        return jdatetime.date(*map(int, match.groups())).togregorian()
    except ValueError:
        raise AdminError("این تاریخ در تقویم خورشیدی وجود ندارد.") from None


def parse_time(text: str) -> time:
    """'۰۷:۳۰' or '7:30' -> a time; AdminError otherwise."""
    match = _TIME_RE.fullmatch(latin_digits(text.strip()))
    if not match:
        raise AdminError("ساعت را به شکل ۰۷:۳۰ وارد کنید.")
    try:
        return time(int(match.group(1)), int(match.group(2)))
    except ValueError:
        raise AdminError("این ساعت درست نیست.") from None


def working_hours(session: Session) -> dict[int, WorkingHours]:
    """Configured hours by weekday (0 = Monday)."""
    return {h.weekday: h for h in session.scalars(select(WorkingHours))}


def set_working_hours(
    session: Session, actor_id: int, weekday: int, opens: time | None, closes: time | None, *, ip: str | None = None
) -> None:
    """Set one weekday's hours; both None closes that day."""
    if not 0 <= weekday <= 6:
        raise AdminError("روز هفته درست نیست.")
    row = session.get(WorkingHours, weekday)
    if opens is None and closes is None:
        if row is not None:
            session.delete(row)
        audit.record(session, actor_id, "hours_cleared", "working_hours", weekday, None, ip)
        return
    if opens is None or closes is None or not opens < closes:
        raise AdminError("ساعت شروع باید پیش از ساعت پایان باشد.")
    if row is None:
        session.add(WorkingHours(weekday=weekday, opens=opens, closes=closes))
    else:
        row.opens, row.closes = opens, closes
    session.flush()
    audit.record(session, actor_id, "hours_set", "working_hours", weekday, f"{opens:%H:%M}-{closes:%H:%M}", ip)


def list_holidays(session: Session, since: date | None = None) -> list[Holiday]:
    """Holidays (from `since`, if given) in date order."""
    query = select(Holiday).order_by(Holiday.day)
    if since is not None:
        query = query.where(Holiday.day >= since)
    return list(session.scalars(query))


def add_holiday(session: Session, actor_id: int, jalali_day: str, name: str, *, ip: str | None = None) -> Holiday:
    """Add a holiday given in Jalali."""
    day = parse_jalali(jalali_day)
    if not name.strip():
        raise AdminError("نام تعطیلی خالی است.")
    if session.get(Holiday, day) is not None:
        raise AdminError("این روز پیش‌تر تعطیل ثبت شده است.")
    holiday = Holiday(day=day, name=name.strip()[:200])
    session.add(holiday)
    session.flush()
    audit.record(session, actor_id, "holiday_added", "holiday", None, f"day={day.isoformat()} name={holiday.name}", ip)
    return holiday


def remove_holiday(session: Session, actor_id: int, day: date, *, ip: str | None = None) -> None:
    """Remove a holiday."""
    holiday = _get(session, Holiday, day)
    session.delete(holiday)
    audit.record(session, actor_id, "holiday_removed", "holiday", None, f"day={day.isoformat()}", ip)


# ---- prompts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptRow:
    """A catalogue entry and whether its audio file exists."""

    entry: PromptEntry
    has_audio: bool


def prompt_catalogue(settings: Settings) -> list[PromptRow]:
    """Every catalogue entry in catalogue order, with whether recordings/<lang>/<name>.wav exists."""
    out = prompts_out_dir(settings)
    return [PromptRow(entry, (out / f"{name}.wav").is_file()) for name, entry in load_catalogue().items()]


def prompt_file(settings: Settings, name: str) -> Path:
    """The audio file of a catalogue prompt, found by its catalogue name only; NotFound otherwise."""
    entries = load_catalogue()
    if name not in entries:  # the name must be a catalogue key: no path ever comes from the request
        raise NotFound(name)
    path = prompts_out_dir(settings) / f"{entries[name].name}.wav"
    if not path.is_file():
        raise NotFound(name)
    return path


def holiday_rows(session: Session, today: date) -> list[tuple[Holiday, str]]:
    """Holidays from a year ago on, with their Jalali dates."""
    since = date(today.year - 1, today.month, 1)
    return [(h, jdatetime.date.fromgregorian(date=h.day).strftime("%Y/%m/%d")) for h in list_holidays(session, since)]


def now_local(settings: Settings) -> datetime:
    """The current time in the city's time zone."""
    return datetime.now(settings.timezone)
