"""Managers' audio inbox: their unit's referred messages, each page with its audio and a spoken reply."""
from __future__ import annotations

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
from flask_login import current_user

from ivr.db import transaction
from ivr.infra.audio_convert import ConversionSlots
from ivr.infra.storage import AudioStore
from ivr.services.inbox import (
    InboxForbidden,
    InboxNotFound,
    list_inbox,
    message_view,
    units_for_filter,
)
from ivr.services.replies import ReplyError, send_reply
from web import params
from web.audio import viewer_of
from web.auth import roles_required
from web.format import fa_digits
from web.home import add_nav

bp = Blueprint("inbox", __name__, url_prefix="/inbox")
CONVERSION_SLOTS = "ivr_conversion_slots"

STATE_NAMES = {"all": "همه", "open": "بی‌پاسخ", "answered": "پاسخ‌داده"}


@bp.get("/")
@roles_required("manager", "supervisor")
def index() -> ResponseReturnValue:
    """The inbox: a manager's own unit; a supervisor chooses the unit."""
    from web import sessions

    viewer = viewer_of(current_user)
    unit_id = params.query_id("unit", "واحد")
    page = params.query_page()
    with transaction(sessions(current_app), readonly=True) as session:
        units = units_for_filter(session) if viewer.role == "supervisor" else []
        if viewer.role == "supervisor" and unit_id is None:
            return render_template("inbox/index.html", inbox=None, units=units, unit_id=None, **_names())
        try:
            inbox = list_inbox(session, viewer, unit_id, state=request.args.get("state", "all"),
                               page=page)
        except InboxNotFound:
            abort(404)
    return render_template("inbox/index.html", inbox=inbox, units=units, unit_id=unit_id, **_names())


def _names() -> dict[str, dict[str, str]]:
    return {"state_names": STATE_NAMES}


def _message_page(message_id: int, status: int = 200) -> ResponseReturnValue:
    from web import sessions

    with transaction(sessions(current_app), readonly=True) as session:
        try:
            view = message_view(session, viewer_of(current_user), message_id)
        except InboxNotFound:
            abort(404)
        except InboxForbidden:
            abort(403)
    return render_template("inbox/message.html", m=view, **_names()), status


@bp.get("/messages/<int:message_id>")
@roles_required("manager", "supervisor")
def message(message_id: int) -> ResponseReturnValue:
    """One message: its audio, its details, its replies, and the reply recorder."""
    return _message_page(message_id)


@bp.post("/messages/<int:message_id>/reply")
@roles_required("manager")
def reply(message_id: int) -> ResponseReturnValue:
    """Send a spoken reply (recorded in the browser or uploaded) with an optional note."""
    from web import jobs_of, sessions

    settings = current_app.config["IVR_SETTINGS"]
    upload = request.files.get("audio")
    try:
        send_reply(
            sessions(current_app),
            AudioStore(settings.recordings_dir),
            jobs_of(current_app),
            viewer_of(current_user),
            message_id,
            upload=upload.stream if upload else None,
            text=request.form.get("text"),
            work_root=settings.data_dir / "uploads",
            limits=current_app.config.get("REPLY_AUDIO_LIMITS"),
            slots=current_app.extensions[CONVERSION_SLOTS],
            ip=request.remote_addr,
        )
    except InboxNotFound:
        abort(404)
    except InboxForbidden:
        abort(403)
    except ReplyError as exc:
        flash(fa_digits(exc.text), "error")
        return _message_page(message_id, exc.status)
    finally:
        if upload is not None:
            upload.close()
    flash("پاسخ صوتی فرستاده شد و به شهروند خبر داده می‌شود.", "info")
    return redirect(url_for("inbox.message", message_id=message_id))


def init_inbox(app: Flask) -> None:
    """Register the inbox pages and their link in the navigation."""
    app.register_blueprint(bp)
    # One bound for every request of this app: each conversion is an ffmpeg process on a core.
    app.extensions[CONVERSION_SLOTS] = ConversionSlots(app.config["IVR_SETTINGS"].audio_conversions)
    add_nav(app, "inbox.index", "صندوق صوتی", ("manager", "supervisor"))
