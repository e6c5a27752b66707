"""`/healthz`: what a load balancer or a monitor asks before sending traffic."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from ivr.infra.spool import Spool
from web import sessions

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """200 when the database answers; 503 otherwise. Reports calls waiting in the spool."""
    settings = current_app.config["IVR_SETTINGS"]
    spooled = len(Spool(settings.spool_dir).pending())
    try:
        with sessions(current_app)() as session:
            session.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "unreachable"
        return jsonify(status="degraded", database=reason, spooled_calls=spooled), 503
    return jsonify(status="ok", database="ok", spooled_calls=spooled), 200
