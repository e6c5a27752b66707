"""Signing in and out, who the current user is, and which roles may open a page.

Flask-Login keeps the session in the signed cookie; the session id carries the user's server-side
`session_version` and a fingerprint of the password hash, both checked on every request, so
logging out, a password reset or deactivation signs out every browser of that user (a copied
cookie stops working). Login attempts are rate-limited per address (the real client address
behind IVR_TRUSTED_PROXIES) and per account (failed attempts), and every attempt is audited.
"""
from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_limiter import Limiter, RequestLimit
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from ivr.db import transaction
from ivr.models import User
from ivr.services.users import end_sessions, sign_in

F = TypeVar("F", bound=Callable[..., Any])

bp = Blueprint("auth", __name__)

LOGIN_LIMIT = "10 per minute"  # per client address, every attempt
LOGIN_ACCOUNT_LIMIT = "10 per 5 minutes"  # per username, failed attempts only
LIMITED_TEXT = "تلاش‌های ورود بیش از حد مجاز بود. چند دقیقه صبر کنید و دوباره وارد شوید."
# Control characters (browsers drop tab and newline from URLs, turning "/\t/evil" into "//evil").
_UNSAFE_NEXT = re.compile(r"[\x00-\x1f\x7f\\]")


@dataclass(frozen=True)
class ConsoleUser(UserMixin):
    """The signed-in user as views see it (plain data, no database session attached)."""

    id: int
    username: str
    full_name: str
    role: str
    unit_id: int | None
    session_version: int
    fingerprint: str

    def get_id(self) -> str:
        """Session id: user id, the user's session version and a fingerprint of the password hash."""
        return f"{self.id}.{self.session_version}.{self.fingerprint}"


def _fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def _console_user(user: User) -> ConsoleUser:
    return ConsoleUser(
        user.id, user.username, user.full_name, user.role, user.unit_id, user.session_version,
        _fingerprint(user.password_hash),
    )


def _load_user(session_id: str) -> ConsoleUser | None:
    from web import sessions

    parts = session_id.split(".")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() and len(p) <= 18 for p in parts[:2]):
        return None  # includes ids from before session versions: those browsers sign in again
    user_id, version, fingerprint = int(parts[0]), int(parts[1]), parts[2]
    with transaction(sessions(current_app), readonly=True) as session:
        user = session.get(User, user_id)
        if (
            user is None or not user.active or user.session_version != version
            or _fingerprint(user.password_hash) != fingerprint
        ):
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


def safe_next(target: str | None) -> str:
    """`target` if it is a path on this site, else the home page: never an open redirect."""
    if (
        target and len(target) <= 2000 and target.startswith("/") and not target.startswith("//")
        and not _UNSAFE_NEXT.search(target)
    ):
        return target
    return url_for("console_home.home")


def _login_account_key() -> str:
    """The per-account limiter key: a hash of the username typed, so any text makes a short key."""
    username = (request.form.get("username") or "").strip().lower()[:64]
    return "login-account:" + hashlib.sha256(username.encode()).hexdigest()[:32]


def _login_limited(_limit: RequestLimit) -> Response:
    """The sign-in form again with a Persian message (429) when a login limit is reached."""
    flash(LIMITED_TEXT, "error")
    return make_response(render_template("login.html", form=LoginForm()), 429)


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
            return redirect(safe_next(request.args.get("next")))
        flash("نام کاربری یا گذرواژه درست نیست.", "error")
        return render_template("login.html", form=form), 401
    return render_template("login.html", form=form)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """Sign out every browser of this user (a POST with the CSRF token, so no link can sign a user out)."""
    from web import sessions

    if current_user.is_authenticated:
        with transaction(sessions(current_app)) as session:
            user = session.get(User, current_user.id)
            if user is not None:
                end_sessions(session, user, "logout")
    logout_user()
    flash("از سامانه خارج شدید.", "info")
    return redirect(url_for("auth.login"))


def init_auth(app: Flask) -> None:
    """Attach Flask-Login and the login rate limits to `app`."""
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
    per_account = limiter.limit(
        LOGIN_ACCOUNT_LIMIT, key_func=_login_account_key, methods=["POST"],
        deduct_when=lambda response: response.status_code == 401, on_breach=_login_limited,
    )
    per_address = limiter.limit(LOGIN_LIMIT, methods=["POST"], on_breach=_login_limited)
    app.view_functions["auth.login"] = per_address(per_account(login))
    app.extensions["ivr_limiter"] = limiter
