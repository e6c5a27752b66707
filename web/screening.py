"""Screening pages for operators and supervisors: the queue, claim, classify and refer, typed messages."""
from __future__ import annotations

from typing import Any

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
from ivr.identifiers import persian_digits
from ivr.models import utcnow
from ivr.services import screening
from web import params
from web.auth import roles_required
from web.home import add_nav

bp = Blueprint("screening", __name__, url_prefix="/screening")

SCREENERS = ("operator", "supervisor")


def optional_int(value: str | int | None) -> int | None:
    """A form field as a whole number (Persian digits accepted); None when empty; a Persian 400 when not one."""
    return params.number(value)


def classification_from(form: Any) -> screening.Classification:
    """The classification fields of a submitted form (or JSON object)."""
    return screening.Classification(
        decision=str(form.get("decision") or ""),
        kind=str(form.get("kind") or ""),
        topic_id=params.field_id(form, "topic_id", "موضوع"),
        district=params.field_district(form),
        unit_id=params.field_id(form, "unit_id", "واحد"),
        summary=str(form.get("summary") or ""),
        reason=str(form.get("reason") or "") or None,
        duplicate_of=str(form.get("duplicate_of") or "") or None,
    )


def typed_from(form: Any) -> screening.TypedMessage:
    """The typed-message fields of a submitted form (or JSON object)."""
    return screening.TypedMessage(
        line=str(form.get("line") or ""),
        kind=str(form.get("kind") or ""),
        caller=str(form.get("caller") or ""),
        body=str(form.get("body") or ""),
        topic_id=params.field_id(form, "topic_id", "موضوع"),
        district=params.field_district(form),
        unit_id=params.field_id(form, "unit_id", "واحد"),
        summary=str(form.get("summary") or ""),
    )


def age_text(created_at: Any, now: Any) -> str:
    """How long ago, in Persian: '۳ روز', '۵ ساعت', '۱۲ دقیقه'."""
    from web.format import fa_num

    minutes = max(0, int((now - created_at).total_seconds() // 60))
    if minutes >= 1440:
        return f"{fa_num(minutes // 1440)} روز"
    if minutes >= 60:
        return f"{fa_num(minutes // 60)} ساعت"
    return f"{fa_num(minutes)} دقیقه"


def duration_text(seconds: float | None) -> str:
    """An audio length as m:ss with Persian digits ('۱:۰۵'); empty when unknown."""
    from web.format import fa_digits

    if seconds is None:
        return ""
    whole = int(round(seconds))
    return fa_digits(f"{whole // 60}:{whole % 60:02d}")


def audio_url(recording_id: int) -> str:
    """The signed URL of a recording (the inbox's audio.play endpoint; only called when it exists)."""
    from web.audio import audio_token

    return url_for("audio.play", token=audio_token(recording_id))


def audio_enabled() -> bool:
    """True once the inbox's signed audio endpoint (audio.play) is part of the app."""
    return "audio.play" in current_app.view_functions


def _sessions() -> Any:
    from web import sessions

    return sessions(current_app)


@bp.get("/")
@roles_required(*SCREENERS)
def queue() -> ResponseReturnValue:
    """The screening queue, oldest first."""
    page = params.query_page()
    include_test = request.args.get("test") == "1"  # messages left from the test phone, only when asked
    with transaction(_sessions(), readonly=True) as session:
        rows = screening.screening_queue(session, limit=50, offset=(page - 1) * 50, include_test=include_test)
        total = screening.queue_size(session, include_test=include_test)
    return render_template(
        "screening/queue.html", rows=rows, total=total, page=page, now=utcnow(), cap=screening.QUEUE_COUNT_CAP
    )


def _conflict_page(exc: Exception, message_id: int) -> ResponseReturnValue:
    return render_template("screening/conflict.html", text=str(exc), message_id=message_id), 409


@bp.post("/<int:message_id>/claim")
@roles_required(*SCREENERS)
def claim(message_id: int) -> ResponseReturnValue:
    """Claim a message for screening; a conflict is a 409 page that says who holds it."""
    try:
        with transaction(_sessions()) as session:
            screening.claim(session, message_id, current_user.id, utcnow(), ip=request.remote_addr)
    except screening.MessageNotFound:
        abort(404)
    except screening.ClaimConflict as exc:
        return _conflict_page(exc, message_id)
    return redirect(url_for("screening.message", message_id=message_id))


@bp.post("/<int:message_id>/release")
@roles_required(*SCREENERS)
def release(message_id: int) -> ResponseReturnValue:
    """Give the message back to the queue."""
    try:
        with transaction(_sessions()) as session:
            screening.release(session, message_id, current_user.id, ip=request.remote_addr)
    except screening.MessageNotFound:
        abort(404)
    return redirect(url_for("screening.queue"))


def _render_message(message_id: int, error: str | None = None, form: Any = None, status: int = 200) -> ResponseReturnValue:
    settings = current_app.config["IVR_SETTINGS"]
    try:
        with transaction(_sessions(), readonly=True) as session:
            view = screening.message_view(session, message_id, settings.duplicate_window_days)
    except screening.MessageNotFound:
        abort(404)
    message = view.message
    now = utcnow()
    mine = message.claimed_by_id == current_user.id and message.claim_expires_at is not None and message.claim_expires_at > now
    return render_template(
        "screening/message.html", view=view, message=message, error=error, form=form or {}, mine=mine, now=now,
        window_days=settings.duplicate_window_days,
    ), status


@bp.get("/<int:message_id>")
@roles_required(*SCREENERS)
def message(message_id: int) -> ResponseReturnValue:
    """One message with its audio, the classification form and likely originals."""
    return _render_message(message_id)


@bp.post("/<int:message_id>/classify")
@roles_required(*SCREENERS)
def classify(message_id: int) -> ResponseReturnValue:
    """Save the classification: refer to a unit, or close as not referred."""
    settings = current_app.config["IVR_SETTINGS"]
    c = classification_from(request.form)
    try:
        with transaction(_sessions()) as session:
            msg = screening.classify(
                session, message_id, current_user.id, c, utcnow(), settings.timezone, ip=request.remote_addr,
                districts=settings.districts,
            )
            code = msg.tracking_code
    except screening.MessageNotFound:
        abort(404)
    except screening.ClaimConflict as exc:
        return _conflict_page(exc, message_id)
    except screening.ScreeningError as exc:
        return _render_message(message_id, str(exc), request.form, 400)
    done = "ارجاع شد" if c.decision == "refer" else "بدون ارجاع بسته شد"
    flash(persian_digits(f"پیام {code} {done}."), "info")
    return redirect(url_for("screening.queue"))


@bp.route("/typed", methods=["GET", "POST"])
@roles_required(*SCREENERS)
def typed() -> ResponseReturnValue:
    """Register a message typed during a live call; shows its tracking code."""
    error = None
    if request.method == "POST":
        t = typed_from(request.form)
        try:
            with transaction(_sessions()) as session:
                msg = screening.register_typed(
                    session, current_user.id, t, utcnow(), ip=request.remote_addr,
                    districts=current_app.config["IVR_SETTINGS"].districts,
                )
                code, message_id = msg.tracking_code, msg.id
        except screening.ScreeningError as exc:
            error = str(exc)
        else:
            return render_template("screening/typed_done.html", code=code, message_id=message_id)
    with transaction(_sessions(), readonly=True) as session:
        topics = screening.topics_for(session)
        units = screening.active_units(session)
    return render_template(
        "screening/typed.html", topics=topics, units=units, error=error, form=request.form
    ), (400 if error else 200)


def init_screening(app: Flask) -> None:
    """Register the screening pages, their template helpers and nav links."""
    app.register_blueprint(bp)
    app.jinja_env.globals.update(fa_age=age_text, audio_url=audio_url, audio_enabled=audio_enabled)
    app.jinja_env.filters["fa_duration"] = duration_text
    add_nav(app, "screening.queue", "پالایش پیام‌ها", SCREENERS)
    add_nav(app, "screening.typed", "ثبت پیام تلفنی", SCREENERS)
