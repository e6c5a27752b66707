"""The web side: Flask app factory for the console, its JSON API and the Twilio webhooks."""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import Session, sessionmaker

from ivr.config import Settings, load_settings
from ivr.db import make_engine, make_sessionmaker
from ivr.jobqueue import Jobs
from ivr.wiring import build_jobs
from web.admin import init_admin
from web.analysis import init_analysis
from web.api import init_api
from web.audio import init_audio
from web.audit_log import init_audit_log
from web.auth import init_auth
from web.extensions import jobs_of, sessions
from web.followthrough import init_followthrough
from web.format import register_filters, register_vocabulary
from web.health import bp as health_bp
from web.home import init_home
from web.inbox import init_inbox
from web.params import init_params
from web.phone import init_phone
from web.screening import init_screening
from web.security import init_security
from web.twilio import init_twilio
from web.window import init_window

__all__ = ["create_app", "jobs_of", "secret_key", "sessions"]

ERRORS = {
    400: ("درخواست نادرست", "درخواست فرستاده‌شده کامل یا درست نبود."),
    403: ("دسترسی ندارید", "این صفحه برای نقش شما باز نیست."),
    404: ("پیدا نشد", "صفحه‌ای با این نشانی وجود ندارد."),
    405: ("روش نادرست", "این صفحه این نوع درخواست را نمی‌پذیرد."),
    409: ("تداخل", "کس دیگری هم‌زمان همین مورد را تغییر داده است."),
    413: ("پرونده بزرگ است", "اندازه پرونده بیش از حد مجاز است."),
    429: ("تلاش بیش از حد", "چند دقیقه دیگر دوباره امتحان کنید."),
}


def secret_key(settings: Settings) -> str:
    """IVR_SECRET_KEY, or a random key kept in the data folder (0600) so sessions survive restarts."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.data_dir) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def create_app(
    settings: Settings | None = None,
    *,
    session_factory: sessionmaker[Session] | None = None,
    jobs: Jobs | None = None,
    config: dict[str, Any] | None = None,
) -> Flask:
    """Build the web application for `settings` (default: from the environment).

    `jobs` is the background queue views hand slow work to (default: the one the settings ask for);
    `config` overrides Flask settings (tests).
    """
    settings = settings or load_settings()
    app = Flask(__name__)
    init_params(app)  # first: its bounded `int` converter must be in place before any route is added
    app.config.update(
        IVR_SETTINGS=settings,
        SECRET_KEY=secret_key(settings),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=settings.cookie_secure,
        PERMANENT_SESSION_LIFETIME=12 * 3600,
        MAX_CONTENT_LENGTH=25 * 1024 * 1024,
        WTF_CSRF_TIME_LIMIT=12 * 3600,
    )
    app.config.update(config or {})
    factory = session_factory or make_sessionmaker(make_engine(settings.database_url))
    app.extensions["ivr_sessions"] = factory
    app.extensions["ivr_jobs"] = jobs or build_jobs(settings, factory)
    CSRFProtect(app)
    register_filters(app, settings.timezone)
    register_vocabulary(app, settings.district_numbers)
    app.register_blueprint(health_bp)
    init_auth(app)
    init_home(app)
    _init_features(app)
    _error_pages(app)
    init_security(app)  # CSP, no-store, nosniff, framing; the client address behind trusted proxies
    return app


def _error_pages(app: Flask) -> None:
    def render(error: Any) -> Any:
        code = getattr(error, "code", 500) or 500
        # A 405 keeps its Allow header (RFC 9110), which a plain body-and-code answer would drop.
        allow = {"Allow": ", ".join(sorted(error.valid_methods))} if getattr(error, "valid_methods", None) else {}
        if request.path.startswith(("/api/", "/twilio/")) or request.accept_mimetypes.best == "application/json":
            text = getattr(error, "description", None)
            if not text or text == getattr(type(error), "description", None):  # Werkzeug's English default
                text = ERRORS.get(code, ("", "خطایی رخ داد."))[1]
            return {"error": text, "status": code}, code, allow
        title, text = ERRORS.get(code, ("خطا", "خطایی رخ داد."))
        if code == 400 and "CSRF" in str(getattr(error, "description", "")):
            text = "برگه منقضی شده است؛ صفحه را دوباره باز کنید و دوباره بفرستید."
        return render_template("error.html", code=code, title=title, text=text), code, allow

    for code in ERRORS:
        app.register_error_handler(code, render)


def _init_features(app: Flask) -> None:
    """The console's areas, the analysis desk and the Twilio webhooks, in the order the nav bar lists them."""
    init_screening(app)  # operators: screening, typed messages
    init_window(app)  # the single window
    init_audio(app)  # signed audio links for every page with a player
    init_inbox(app)  # managers' audio inbox and spoken replies
    init_followthrough(app)  # scorecard, escalations, dissatisfaction, field checks, failed jobs
    init_analysis(app)  # the analysis desk
    init_audit_log(app)
    init_admin(app)
    init_phone(app)  # the test phone (/phone/)
    init_api(app)  # /api/v1 (bearer tokens, exempt from CSRF)
    init_twilio(app)  # after CSRFProtect: it exempts its signed webhooks from CSRF
