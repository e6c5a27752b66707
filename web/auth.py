"""Signing in and out, who the current user is, and which roles may open a page.

Flask-Login keeps the session; the session id carries a fingerprint of the password hash, so
changing a password (or deactivating a user) signs out every browser of that user. Login
attempts are rate-limited per address (Flask-Limiter) and every attempt is audited.
"""
from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from ivr.db import transaction
from ivr.models import User
from ivr.services.users import sign_in

F = TypeVar("F", bound=Callable[..., Any])

bp = Blueprint("auth", __name__)

LOGIN_LIMIT = "10 per minute"


@dataclass(frozen=True)
class ConsoleUser(UserMixin):
    """The signed-in user as views see it (plain data, no database session attached)."""

    id: int
    username: str
    full_name: str
    role: str
    unit_id: int | None
    fingerprint: str

    def get_id(self) -> str:
        """Session id: user id plus a fingerprint of the password hash."""
        return f"{self.id}.{self.fingerprint}"


def _fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def _console_user(user: User) -> ConsoleUser:
    return ConsoleUser(user.id, user.username, user.full_name, user.role, user.unit_id, _fingerprint(user.password_hash))


def _load_user(session_id: str) -> ConsoleUser | None:
    from web import sessions

    user_id, _, fingerprint = session_id.partition(".")
    if not user_id.isdigit():
        return None
    with transaction(sessions(current_app), readonly=True) as session:
        user = session.get(User, int(user_id))
        if user is None or not user.active or _fingerprint(user.password_hash) != fingerprint:
            return None
        return _console_user(user)


def roles_required(*roles: str) -> Callable[[F], F]:
    """Allow a view only to signed-in users with one of `roles` (others: sign in, or 403)."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        wrapped.allowed_roles = roles  # type: ignore[attr-defined]  # read by the permission tests
        return wrapped  # type: ignore[return-value]

    return decorate


class LoginForm(FlaskForm):
    """Username and password."""

    username = StringField("نام کاربری", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("گذرواژه", validators=[DataRequired(), Length(max=256)])


def _safe_next(target: str | None) -> str:
    # Only paths on this site: never an open redirect.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("console_home.home")


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """The sign-in form; a wrong username or password says so without telling which."""
    from web import sessions

    if current_user.is_authenticated:
        return redirect(url_for("console_home.home"))
    form = LoginForm()
    if form.validate_on_submit():
        with transaction(sessions(current_app)) as session:
            user = sign_in(session, form.username.data, form.password.data, ip=request.remote_addr)
            console_user = _console_user(user) if user is not None else None
        if console_user is not None:
            login_user(console_user)
            return redirect(_safe_next(request.args.get("next")))
        flash("نام کاربری یا گذرواژه درست نیست.", "error")
        return render_template("login.html", form=form), 401
    return render_template("login.html", form=form)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """Sign out (a POST with the CSRF token, so no link can sign a user out)."""
    logout_user()
    flash("از سامانه خارج شدید.", "info")
    return redirect(url_for("auth.login"))


def init_auth(app: Flask) -> None:
    """Attach Flask-Login and the login rate limit to `app`."""
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    manager = LoginManager()
    manager.login_view = "auth.login"
    manager.login_message = "برای دیدن این صفحه وارد شوید."
    manager.session_protection = "strong"
    manager.user_loader(_load_user)
    manager.init_app(app)
    settings = app.config["IVR_SETTINGS"]
    limiter = Limiter(
        get_remote_address,
        app=app,
        storage_uri=settings.redis_url or "memory://",
        key_prefix=f"ivr-limiter-{settings.queue_name}",
        default_limits=[],
        headers_enabled=True,
    )
    app.register_blueprint(bp)
    app.view_functions["auth.login"] = limiter.limit(LOGIN_LIMIT, methods=["POST"])(login)
    app.extensions["ivr_limiter"] = limiter
