"""The web side: Flask app factory. The console (issue 5) and Twilio webhooks (issue 4) hang off it."""
from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from ivr.config import Settings, load_settings
from ivr.db import make_engine, make_sessionmaker


def create_app(settings: Settings | None = None, *, session_factory: sessionmaker[Session] | None = None) -> Flask:
    """Build the web application for `settings` (default: from the environment)."""
    settings = settings or load_settings()
    app = Flask(__name__)
    app.config["IVR_SETTINGS"] = settings
    app.extensions["ivr_sessions"] = session_factory or make_sessionmaker(make_engine(settings.database_url))

    from web.health import bp as health_bp

    app.register_blueprint(health_bp)
    return app


def sessions(app: Any) -> sessionmaker[Session]:
    """The session factory the app was built with."""
    return app.extensions["ivr_sessions"]
