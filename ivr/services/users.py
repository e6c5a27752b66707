"""Console users: adding them with their rules checked, and hashing their passwords.

Passwords are hashed with Werkzeug's scrypt (salted, memory-hard); the plain text is
never stored. `ivr users add` and the demo loader both go through `add_user`.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from ivr.models import Unit, User, utcnow
from ivr.services import audit
from ivr.vocabulary import ROLES

USERNAME_RE = re.compile(r"[a-z0-9_.-]{3,64}")
MIN_PASSWORD_LENGTH = 10


class UserError(ValueError):
    """A user cannot be added as asked; the message says why, in words an administrator reads."""


def hash_password(plain: str) -> str:
    """A salted scrypt hash of `plain`, safe to store."""
    return generate_password_hash(plain, method="scrypt")


def verify_password(password_hash: str, plain: str) -> bool:
    """True when `plain` is the password `password_hash` was made from."""
    return check_password_hash(password_hash, plain)


def _check_new_user(
    session: Session,
    username: str,
    full_name: str,
    role: str,
    unit_code: str | None,
    password: str,
) -> Unit | None:
    """Raise UserError if these details cannot make a user; give back the unit named, if any."""
    if not USERNAME_RE.fullmatch(username):
        raise UserError(
            f"username {username!r} must be 3 to 64 characters of a-z, 0-9, '_', '.' or '-'"
        )
    if not full_name.strip():
        raise UserError("the full name is empty")
    if role not in ROLES:
        raise UserError(f"role {role!r} is not one of {', '.join(ROLES)}")
    unit: Unit | None = None
    if unit_code:
        unit = session.scalars(select(Unit).where(Unit.code == unit_code)).one_or_none()
        if unit is None:
            raise UserError(f"there is no unit with code {unit_code!r}")
    elif role == "manager":
        raise UserError("a manager must belong to a unit (give its unit code)")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters long")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise UserError(f"username {username!r} is already taken")
    return unit


def add_user(
    session: Session,
    username: str,
    full_name: str,
    role: str,
    unit_code: str | None,
    password: str,
    *,
    phone: str | None = None,
) -> User:
    """Add a console user after checking the rules; the password is stored hashed. No commit."""
    unit = _check_new_user(session, username, full_name, role, unit_code, password)
    user = User(
        username=username,
        full_name=full_name.strip(),
        role=role,
        unit_id=unit.id if unit is not None else None,
        password_hash=hash_password(password),
        phone=phone,
    )
    session.add(user)
    session.flush()
    return user


def sign_in(session: Session, username: str, password: str, *, ip: str | None = None) -> User | None:
    """The active user with this username and password, or None; every attempt is audited. No commit."""
    user = session.scalars(select(User).where(User.username == username.strip())).one_or_none()
    ok = user is not None and user.active and verify_password(user.password_hash, password)
    audit.record(
        session, user.id if user else None, "login" if ok else "login_failed", "user",
        user.id if user else None, None if ok else f"username={username[:64]!r}", ip,
    )
    if not ok:
        return None
    assert user is not None
    user.last_login_at = utcnow()
    return user
