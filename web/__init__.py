"""The web side: Flask app factory. The console (issue 5) and Twilio webhooks (issue 4) hang off it."""
from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from ivr.config import Settings, load_settings
from ivr.db import make_engine, make_sessionmaker
from ivr.jobs import Jobs, build_jobs


def create_app(
    settings: Settings | None = None,
    *,
    session_factory: sessionmaker[Session] | None = None,
    jobs: Jobs | None = None,
) -> Flask:
    """Build the web application for `settings` (default: from the environment).

    `jobs` is the background queue views hand slow work to (default: the one the settings ask for).
    """
    settings = settings or load_settings()
    app = Flask(__name__)
    app.config["IVR_SETTINGS"] = settings
    factory = session_factory or make_sessionmaker(make_engine(settings.database_url))
    app.extensions["ivr_sessions"] = factory
    app.extensions["ivr_jobs"] = jobs or build_jobs(settings, factory)

    from web.health import bp as health_bp

    app.register_blueprint(health_bp)

    from web.twilio import init_twilio

    init_twilio(app)  # keep last: it exempts its webhooks from CSRF if CSRFProtect is set up
    return app


def sessions(app: Any) -> sessionmaker[Session]:
    """The session factory the app was built with."""
    return app.extensions["ivr_sessions"]


def jobs_of(app: Any) -> Jobs:
    """The background job queue the app was built with."""
    return app.extensions["ivr_jobs"]
