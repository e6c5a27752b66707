"""Bearer tokens for the JSON API: made for a user, shown once, stored only as a SHA-256.

A token lives `IVR_API_TOKEN_DAYS` days (0: no expiry), can be revoked one by one, and all
of a user's tokens are revoked when the password is reset or the user is deactivated, so
reactivating a user never brings an old token back.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.models import ApiToken, User, utcnow
from ivr.services import audit

PREFIX = "ivr_"


class TokenError(ValueError):
    """A token cannot be made as asked."""


def hash_token(plain: str) -> str:
    """The stored form of a token (tokens are long and random, so a plain SHA-256 suffices)."""
    return hashlib.sha256(plain.encode()).hexdigest()


def create_token(
    session: Session, user_id: int, name: str, *, days: int = 90, actor_id: int | None = None,
    ip: str | None = None,
) -> tuple[ApiToken, str]:
    """A new token for an active user living `days` days (0: no expiry); gives back the row and the plain token."""
    user = session.get(User, user_id)
    if user is None or not user.active:
        raise TokenError(f"no active user with id {user_id}")
    name = name.strip() or "api"
    if len(name) > 100:
        raise TokenError("the token name is longer than 100 characters")
    if days < 0:
        raise TokenError("a token's lifetime cannot be negative")
    plain = PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    token = ApiToken(
        user_id=user.id, token_hash=hash_token(plain), name=name, created_at=now,
        expires_at=now + timedelta(days=days) if days else None,
    )
    session.add(token)
    session.flush()
    audit.record(session, actor_id, "api_token_created", "user", user.id, f"token={token.id} name={name}", ip)
    return token, plain


def is_live(token: ApiToken, now: datetime) -> bool:
    """True while the token is neither revoked nor expired."""
    return token.revoked_at is None and (token.expires_at is None or token.expires_at > now)


def user_for_token(session: Session, plain: str, now: datetime) -> User | None:
    """The active user a live (unrevoked, unexpired) token belongs to (and note its use), else None."""
    if not plain.startswith(PREFIX) or len(plain) > 200:
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(plain)))
    if token is None or not is_live(token, now):
        return None
    user = session.get(User, token.user_id)
    if user is None or not user.active:
        return None
    token.last_used_at = now
    return user


def revoke_token(session: Session, token_id: int, *, actor_id: int | None = None, ip: str | None = None) -> bool:
    """Revoke a token; False if there is no such unrevoked token."""
    token = session.get(ApiToken, token_id)
    if token is None or token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    audit.record(session, actor_id, "api_token_revoked", "user", token.user_id, f"token={token.id}", ip)
    return True


def revoke_all(
    session: Session, user_id: int, reason: str, *, actor_id: int | None = None, ip: str | None = None
) -> int:
    """Revoke every unrevoked token of a user (password reset, deactivation); gives back how many."""
    now = utcnow()
    tokens = list(session.scalars(
        select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
    ))
    for token in tokens:
        token.revoked_at = now
    if tokens:
        ids = ",".join(str(t.id) for t in tokens)
        audit.record(session, actor_id, "api_token_revoked", "user", user_id, f"tokens={ids} reason={reason}", ip)
    return len(tokens)


def tokens_of(session: Session, user_id: int) -> list[ApiToken]:
    """A user's tokens, newest first."""
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id.desc())))


def all_tokens(session: Session) -> list[tuple[ApiToken, str]]:
    """Every token with its user's username, newest first (the admin's list and `ivr users tokens`)."""
    rows = session.execute(
        select(ApiToken, User.username).join(User, User.id == ApiToken.user_id).order_by(ApiToken.id.desc())
    )
    return [(token, username) for token, username in rows]
