"""The single window: a phone number's whole history on both lines, and the operators' hand-off list."""
from __future__ import annotations

from flask import Blueprint, Flask, current_app, render_template, request
from flask.typing import ResponseReturnValue

from ivr.db import transaction
from ivr.services import window as window_service
from web.auth import roles_required
from web.home import add_nav

bp = Blueprint("window", __name__, url_prefix="/window")

VIEWERS = ("operator", "supervisor")


@bp.get("/")
@roles_required(*VIEWERS)
def lookup() -> ResponseReturnValue:
    """Open a number's history (?phone=...); without a number, just the search form."""
    from web import sessions

    phone = request.args.get("phone", "").strip()
    if not phone:
        return render_template("window/lookup.html", phone="", result=None, error=None)
    try:
        with transaction(sessions(current_app), readonly=True) as session:
            result = window_service.single_window(session, phone)
            return render_template("window/lookup.html", phone=phone, result=result, error=None)
    except window_service.WindowError as exc:
        return render_template("window/lookup.html", phone=phone, result=None, error=str(exc)), 400


@bp.get("/handoffs")
@roles_required(*VIEWERS)
def handoffs() -> ResponseReturnValue:
    """Callers the IVR handed to the operators' queue, newest first."""
    from web import sessions

    with transaction(sessions(current_app), readonly=True) as session:
        calls = window_service.operator_handoffs(session)
    return render_template("window/handoffs.html", calls=calls)


def init_window(app: Flask) -> None:
    """Register the single-window pages and nav links."""
    app.register_blueprint(bp)
    add_nav(app, "window.lookup", "پنجره واحد", VIEWERS)
    add_nav(app, "window.handoffs", "تماس‌های منتقل‌شده", VIEWERS)
