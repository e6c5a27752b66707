"""Administration pages: units and managers, users and roles, topics, working hours and holidays, prompts."""
from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy.orm import Session

from ivr.db import transaction
from ivr.models import utcnow
from ivr.services import admin as svc
from ivr.services import api_tokens
from ivr.speech.preview import PREVIEW_KINDS, PreviewError, compose_preview
from ivr.vocabulary import ROLES, UNIT_KINDS
from web import params
from web.auth import roles_required
from web.home import add_nav

bp = Blueprint("admin", __name__, url_prefix="/admin")

ADMINS = ("admin",)
WEEKDAYS = ((5, "شنبه"), (6, "یکشنبه"), (0, "دوشنبه"), (1, "سه‌شنبه"), (2, "چهارشنبه"), (3, "پنجشنبه"), (4, "جمعه"))


def _sessions() -> Any:
    from web import sessions

    return sessions(current_app)


def _settings() -> Any:
    return current_app.config["IVR_SETTINGS"]


def _change(back: str, work: Callable[[Session], object], done: str) -> ResponseReturnValue:
    """Run one audited change; an AdminError re-shows the page with the message and what was typed (400)."""
    try:
        with transaction(_sessions()) as session:
            work(session)
    except svc.NotFound:
        abort(404)
    except svc.AdminError as exc:
        return PAGES[back](error=str(exc), form=request.form), 400
    flash(done, "info")
    return redirect(url_for(back))


def _form(name: str) -> str:
    return request.form.get(name, "")


@bp.get("/")
@roles_required(*ADMINS)
def index() -> ResponseReturnValue:
    """The administrator's sections."""
    return render_template("admin/index.html")


@bp.get("/units")
@roles_required(*ADMINS)
def units() -> ResponseReturnValue:
    """The units tree with each unit's managers."""
    return _units_page()


def _units_page(error: str | None = None, form: Any = None) -> str:
    with transaction(_sessions(), readonly=True) as session:
        tree = svc.units_tree(session)
    return render_template("admin/units.html", tree=tree, kinds=UNIT_KINDS, error=error, form=form or {})


@bp.post("/units")
@roles_required(*ADMINS)
def add_unit() -> ResponseReturnValue:
    """Add a unit."""
    return _change("admin.units", lambda s: svc.add_unit(
        s, current_user.id, code=_form("code"), name=_form("name"), kind=_form("kind"),
        parent_id=params.field_id(request.form, "parent_id", "واحد بالادست"),
        district=params.field_district(request.form), ip=request.remote_addr,
        districts=current_app.config["IVR_SETTINGS"].districts,
    ), "واحد افزوده شد.")


@bp.post("/units/<int:unit_id>/active")
@roles_required(*ADMINS)
def unit_active(unit_id: int) -> ResponseReturnValue:
    """Activate or deactivate a unit."""
    active = _form("active") == "1"
    return _change("admin.units", lambda s: svc.set_unit_active(s, current_user.id, unit_id, active,
                                                                ip=request.remote_addr), "وضعیت واحد تغییر کرد.")


@bp.get("/users")
@roles_required(*ADMINS)
def users() -> ResponseReturnValue:
    """Users, their roles and units."""
    return _users_page()


def _users_page(error: str | None = None, form: Any = None) -> str:
    with transaction(_sessions(), readonly=True) as session:
        rows = svc.list_users(session)
        tree = svc.units_tree(session)
    return render_template("admin/users.html", users=rows, tree=tree, roles=ROLES, error=error, form=form or {})


@bp.post("/users")
@roles_required(*ADMINS)
def add_user() -> ResponseReturnValue:
    """Create a user."""
    return _change("admin.users", lambda s: svc.create_user(
        s, current_user.id, username=_form("username"), full_name=_form("full_name"), role=_form("role"),
        unit_id=params.field_id(request.form, "unit_id", "واحد"), password=_form("password"), ip=request.remote_addr,
    ), "کاربر افزوده شد.")


@bp.post("/users/<int:user_id>/active")
@roles_required(*ADMINS)
def user_active(user_id: int) -> ResponseReturnValue:
    """Deactivate or reactivate a user."""
    active = _form("active") == "1"
    return _change("admin.users", lambda s: svc.set_user_active(s, current_user.id, user_id, active,
                                                                ip=request.remote_addr), "وضعیت کاربر تغییر کرد.")


@bp.post("/users/<int:user_id>/password")
@roles_required(*ADMINS)
def user_password(user_id: int) -> ResponseReturnValue:
    """Reset a user's password."""
    return _change("admin.users", lambda s: svc.reset_password(s, current_user.id, user_id, _form("password"),
                                                               ip=request.remote_addr), "گذرواژه تغییر کرد.")


@bp.post("/users/<int:user_id>/role")
@roles_required(*ADMINS)
def user_role(user_id: int) -> ResponseReturnValue:
    """Change a user's role and unit."""
    return _change("admin.users", lambda s: svc.set_role(
        s, current_user.id, user_id, _form("role"), params.field_id(request.form, "unit_id", "واحد"), ip=request.remote_addr,
    ), "نقش کاربر تغییر کرد.")


@bp.post("/users/<int:user_id>/token")
@roles_required(*ADMINS)
def user_token(user_id: int) -> ResponseReturnValue:
    """Make an API token for a user and show it once."""
    try:
        with transaction(_sessions()) as session:
            token, plain = api_tokens.create_token(
                session, user_id, _form("name") or "api", days=_settings().api_token_days,
                actor_id=current_user.id, ip=request.remote_addr,
            )
            expires_at = token.expires_at
    except api_tokens.TokenError:
        abort(404)
    return render_template("admin/token.html", token=plain, expires_at=expires_at)


@bp.get("/tokens")
@roles_required(*ADMINS)
def tokens() -> ResponseReturnValue:
    """Every API token: whose, made and last used when, until when, revoked or not; a revoke button each."""
    with transaction(_sessions(), readonly=True) as session:
        rows = [
            {"token": token, "username": username, "live": api_tokens.is_live(token, utcnow())}
            for token, username in api_tokens.all_tokens(session)
        ]
    return render_template("admin/tokens.html", rows=rows)


@bp.post("/tokens/<int:token_id>/revoke")
@roles_required(*ADMINS)
def revoke_token(token_id: int) -> ResponseReturnValue:
    """Revoke one API token at once (already revoked or unknown: 404)."""
    with transaction(_sessions()) as session:
        done = api_tokens.revoke_token(session, token_id, actor_id=current_user.id, ip=request.remote_addr)
    if not done:
        abort(404)
    flash("توکن باطل شد.", "info")
    return redirect(url_for("admin.tokens"))


@bp.get("/topics")
@roles_required(*ADMINS)
def topics() -> ResponseReturnValue:
    """Topics and their deadlines in working days."""
    return _topics_page()


def _topics_page(error: str | None = None, form: Any = None) -> str:
    with transaction(_sessions(), readonly=True) as session:
        rows = svc.list_topics(session)
        tree = svc.units_tree(session)
        special = svc.kind_deadlines(session)
    return render_template(
        "admin/topics.html", topics=rows, tree=tree, special=special, error=error, form=form or {},
    )


@bp.post("/topics")
@roles_required(*ADMINS)
def add_topic() -> ResponseReturnValue:
    """Add a topic."""
    return _change("admin.topics", lambda s: svc.add_topic(
        s, current_user.id, code=_form("code"), line=_form("line"), name=_form("name"),
        due_working_days=params.form_int("due_working_days", what="مهلت") or 0,
        unit_id=params.field_id(request.form, "unit_id", "واحد"), ip=request.remote_addr,
    ), "موضوع افزوده شد.")


@bp.post("/topics/<int:topic_id>")
@roles_required(*ADMINS)
def update_topic(topic_id: int) -> ResponseReturnValue:
    """Change a topic's deadline, unit or whether it is active."""
    return _change("admin.topics", lambda s: svc.update_topic(
        s, current_user.id, topic_id, due_working_days=params.form_int("due_working_days", what="مهلت") or 0,
        unit_id=params.field_id(request.form, "unit_id", "واحد"), active=_form("active") == "1", ip=request.remote_addr,
    ), "موضوع به‌روز شد.")


@bp.post("/topics/<int:topic_id>/deadlines")
@roles_required(*ADMINS)
def set_topic_deadline(topic_id: int) -> ResponseReturnValue:
    """Give one kind of message on a topic its own deadline (empty: follow the topic's again)."""
    days = params.form_int("due_working_days", what="مهلت")  # empty: None; not a number: 400
    return _change("admin.topics", lambda s: svc.set_kind_deadline(
        s, current_user.id, topic_id, kind=_form("kind"), due_working_days=days, ip=request.remote_addr,
    ), "مهلت به‌روز شد.")


@bp.get("/calendar")
@roles_required(*ADMINS)
def calendar() -> ResponseReturnValue:
    """Working hours per weekday and the holidays (Jalali)."""
    return _calendar_page()


def _calendar_page(error: str | None = None, form: Any = None) -> str:
    with transaction(_sessions(), readonly=True) as session:
        hours = svc.working_hours(session)
        holidays = svc.holiday_rows(session, svc.now_local(_settings()).date())
    return render_template(
        "admin/calendar.html", hours=hours, holidays=holidays, weekdays=WEEKDAYS, error=error, form=form or {}
    )


@bp.post("/hours")
@roles_required(*ADMINS)
def set_hours() -> ResponseReturnValue:
    """Set (or clear) one weekday's working hours."""
    weekday = params.form_int("weekday", what="روز هفته", maximum=6)
    if weekday is None:
        params.bad_parameter("روز هفته را انتخاب کنید.")

    def work(session: Session) -> None:
        opens = svc.parse_time(_form("opens")) if _form("opens").strip() else None
        closes = svc.parse_time(_form("closes")) if _form("closes").strip() else None
        svc.set_working_hours(session, current_user.id, weekday, opens, closes, ip=request.remote_addr)

    return _change("admin.calendar", work, "ساعت کاری ذخیره شد.")


@bp.post("/holidays")
@roles_required(*ADMINS)
def add_holiday() -> ResponseReturnValue:
    """Add a holiday given in Jalali."""
    return _change("admin.calendar", lambda s: svc.add_holiday(s, current_user.id, _form("day"), _form("name"),
                                                               ip=request.remote_addr), "تعطیلی افزوده شد.")


@bp.post("/holidays/<day>/delete")
@roles_required(*ADMINS)
def remove_holiday(day: str) -> ResponseReturnValue:
    """Remove a holiday (the URL carries its Gregorian ISO date)."""
    try:
        when = date.fromisoformat(day)
    except ValueError:
        abort(404)
    return _change("admin.calendar", lambda s: svc.remove_holiday(s, current_user.id, when, ip=request.remote_addr),
                   "تعطیلی حذف شد.")


@bp.get("/prompts")
@roles_required(*ADMINS)
def prompts() -> ResponseReturnValue:
    """The prompt catalogue with a play button per prompt."""
    return render_template("admin/prompts.html", rows=svc.prompt_catalogue(_settings()), preview_kinds=PREVIEW_KINDS)


@bp.get("/prompts/<name>.wav")
@roles_required(*ADMINS)
def prompt_audio(name: str) -> ResponseReturnValue:
    """One prompt's audio, found by catalogue name (never a path from the request)."""
    try:
        path = svc.prompt_file(_settings(), name)
    except svc.NotFound:
        abort(404)
    return send_file(path, mimetype="audio/wav", conditional=True, max_age=300)


@bp.get("/prompt-preview.wav")
@roles_required(*ADMINS)
def prompt_preview() -> ResponseReturnValue:
    """A typed number, amount, date or code said with the current fragments, as one WAV."""
    try:
        preview = compose_preview(request.args.get("kind", ""), request.args.get("value", ""), _settings())
    except PreviewError as exc:
        return Response(str(exc), status=400, mimetype="text/plain")
    resp = Response(preview.wav, mimetype="audio/wav")
    resp.headers["X-Fragments"] = " ".join(preview.names)  # catalogue names: ASCII
    resp.headers["Cache-Control"] = "no-store"  # fragments change when they are rebuilt or recorded
    return resp


# Where a failed change is shown again, by the endpoint it returns to.
PAGES: dict[str, Callable[..., str]] = {
    "admin.units": _units_page, "admin.users": _users_page, "admin.topics": _topics_page,
    "admin.calendar": _calendar_page,
}


def init_admin(app: Flask) -> None:
    """Register the administration pages and their nav link."""
    app.register_blueprint(bp)
    add_nav(app, "admin.index", "مدیریت سامانه", ADMINS)
