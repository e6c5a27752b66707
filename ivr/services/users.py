"""Console users: adding them with their rules checked, and hashing their passwords.

Passwords are hashed with Werkzeug's scrypt (salted, memory-hard); the plain text is
never stored. `ivr users add` and the demo loader both go through `add_user`.

A user's console sessions carry `session_version`; raising it (`end_sessions`) signs the user
out of every browser at the next request. Signing in checks a hash even for unknown users, so
the answer takes as long whether or not the username exists.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from ivr.models import Unit, User, utcnow
from ivr.services import api_tokens, audit
from ivr.vocabulary import ROLES

USERNAME_RE = re.compile(r"[a-z0-9_.-]{3,64}")
MIN_PASSWORD_LENGTH = 10
# The scrypt hash of a random password nobody knows, with the same cost as real hashes: checked
# when the username is unknown (or inactive) so that a failed sign-in takes as long either way.
DUMMY_HASH = (
    "scrypt:32768:8:1$sXQlZUoWRDzKNWQQ$2ecfdc529225066a3b116fe8dacbc99c03670f624b480be6bf34c42fe8ddfc2a"
    "6a2d639039910ef8faf7d11d987c3655bb4193757d107174c424b84b22397651"
)


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
    # Always one scrypt check, against a dummy hash when there is no usable user (no timing oracle).
    usable = user is not None and user.active
    matches = verify_password(user.password_hash if usable and user is not None else DUMMY_HASH, password)
    ok = usable and matches
    audit.record(
        session, user.id if user else None, "login" if ok else "login_failed", "user",
        user.id if user else None, None if ok else f"username={username[:64]!r}", ip,
    )
    if not ok or user is None:
        return None
    user.last_login_at = utcnow()
    return user


def end_sessions(
    session: Session, user: User, reason: str, *, revoke_tokens: bool = False, actor_id: int | None = None,
    ip: str | None = None,
) -> None:
    """Sign the user out of every browser (and revoke every API token when asked). No commit."""
    user.session_version = (user.session_version or 0) + 1
    if revoke_tokens:
        api_tokens.revoke_all(session, user.id, reason, actor_id=actor_id, ip=ip)


def set_password(
    session: Session, user: User, password: str, *, actor_id: int | None = None, ip: str | None = None
) -> None:
    """Give `user` a new password: its sessions end and its API tokens are revoked. No commit."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters long")
    user.password_hash = hash_password(password)
    end_sessions(session, user, "password_reset", revoke_tokens=True, actor_id=actor_id, ip=ip)
    audit.record(session, actor_id, "password_reset", "user", user.id, None, ip)


def user_named(session: Session, username: str) -> User:
    """The user with this username; UserError if there is none."""
    user = session.scalars(select(User).where(User.username == username)).one_or_none()
    if user is None:
        raise UserError(f"there is no user named {username!r}")
    return user
