"""Follow-through pages: scorecard, escalations, 1888 dissatisfaction, field checks, failed jobs."""
from __future__ import annotations

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user

from ivr.config import Settings
from ivr.db import transaction
from ivr.followthrough.escalation import list_escalations
from ivr.followthrough.inspections import InspectionError, list_checks, record_check
from ivr.followthrough.reminders import dissatisfied_1888
from ivr.followthrough.scorecard import (
    all_scorecards,
    month_of,
    parse_month,
    recent_months,
    unit_trend,
)
from ivr.infra.spool import Spool, SpoolError
from ivr.jobqueue import JobError
from ivr.models import utcnow
from ivr.services import audit
from ivr.services.messages import MessageError
from ivr.services.screening import topics_for
from ivr.services.spooled import open_spool
from web import jobs_of, params, sessions
from web.auth import roles_required
from web.home import add_nav

bp = Blueprint("followthrough", __name__, url_prefix="/followthrough")

SCORECARD_ROLES = ("manager", "supervisor", "analyst", "admin")
ESCALATION_ROLES = ("manager", "supervisor", "analyst", "admin")
SUPERVISOR_ROLES = ("supervisor", "analyst", "admin")
CHECK_ROLES = ("inspector", "supervisor", "admin")
JOB_ROLES = ("supervisor", "admin")
TREND_MONTHS = 6


def _settings() -> Settings:
    return current_app.config["IVR_SETTINGS"]


@bp.get("/scorecard")
@roles_required(*SCORECARD_ROLES)
def scorecard() -> ResponseReturnValue:
    """A month's scorecards (managers: their own unit) and one unit's trend over Jalali months."""
    tz = _settings().timezone
    now = utcnow()
    try:
        month = parse_month(request.args["month"], tz) if request.args.get("month") else month_of(now, tz)
    except ValueError as exc:
        params.bad_parameter(str(exc))
    unit_id = params.query_id("unit", "واحد")
    if current_user.role == "manager":
        unit_id = current_user.unit_id
    months = recent_months(month.start, tz, TREND_MONTHS)
    with transaction(sessions(current_app), readonly=True) as session:
        cards = [] if current_user.role == "manager" else all_scorecards(session, month.start, month.end, now)
        trend = unit_trend(session, unit_id, months, now) if unit_id else []
    return render_template("followthrough/scorecard.html", month=month, months=months, cards=cards, trend=trend,
                           choices=recent_months(now, tz, 12))


@bp.get("/escalations")
@roles_required(*ESCALATION_ROLES)
def escalations() -> ResponseReturnValue:
    """Overdue referrals raised by the sweep (managers: those raised to their unit)."""
    to_unit = current_user.unit_id if current_user.role == "manager" else None
    with transaction(sessions(current_app), readonly=True) as session:
        rows = list_escalations(session, to_unit_id=to_unit)
    return render_template("followthrough/escalations.html", rows=rows)


@bp.get("/dissatisfied")
@roles_required(*SUPERVISOR_ROLES)
def dissatisfied() -> ResponseReturnValue:
    """1888 citizens dissatisfied with the answer: the supervisors' list."""
    with transaction(sessions(current_app), readonly=True) as session:
        rows = dissatisfied_1888(session)
    return render_template("followthrough/dissatisfied.html", rows=rows)


@bp.get("/checks")
@roles_required(*CHECK_ROLES)
def checks() -> ResponseReturnValue:
    """Field checks to make (pending first) and their results."""
    with transaction(sessions(current_app), readonly=True) as session:
        rows = list_checks(session)
    return render_template("followthrough/checks.html", rows=rows)


@bp.post("/checks/<int:check_id>")
@roles_required("inspector")
def record_check_result(check_id: int) -> ResponseReturnValue:
    """An inspector's result: passed or failed, a note and/or a photo."""
    result = request.form.get("result")
    if result not in ("passed", "failed"):
        flash("نتیجه بازرسی را انتخاب کنید.", "error")
        return redirect(url_for(".checks"))
    upload = request.files.get("photo")
    photo = upload.read() if upload is not None and upload.filename else None
    try:
        with transaction(sessions(current_app)) as session:
            record_check(session, check_id, inspector_id=current_user.id, passed=result == "passed",
                         note=request.form.get("note"), photo=photo, settings=_settings())
            audit.record(session, current_user.id, f"field_check_{result}", "field_check", check_id,
                         ip=request.remote_addr)
    except InspectionError as exc:
        flash(str(exc), "error")
        return redirect(url_for(".checks"))
    flash("نتیجه بازرسی ثبت شد.", "info")
    return redirect(url_for(".checks"))


@bp.get("/jobs/failed")
@roles_required(*JOB_ROLES)
def failed_jobs() -> ResponseReturnValue:
    """Background jobs that kept failing, with a retry button; messages the spool could not register."""
    with transaction(sessions(current_app), readonly=True) as session:
        topics = [(t.code, t.line_code, t.name) for t in topics_for(session)]
    return render_template("followthrough/failed_jobs.html", jobs=jobs_of(current_app).failed(),
                           spooled=_spool().rejected(), topics=topics)


@bp.post("/jobs/failed/retry")
@roles_required(*JOB_ROLES)
def retry_job() -> ResponseReturnValue:
    """Queue a failed job again."""
    job_id = (request.form.get("job_id") or "").strip()
    try:
        jobs_of(current_app).retry(job_id)
    except JobError:
        flash("این کار در فهرست کارهای ناموفق نیست.", "error")
        return redirect(url_for(".failed_jobs"))
    with transaction(sessions(current_app)) as session:
        audit.record(session, current_user.id, "job_retry", "job", detail=job_id[:500], ip=request.remote_addr)
    flash("کار دوباره در صف گذاشته شد.", "info")
    return redirect(url_for(".failed_jobs"))


@bp.post("/jobs/failed/spool")
@roles_required(*JOB_ROLES)
def register_spooled() -> ResponseReturnValue:
    """Register a spooled message by hand, with the topic the supervisor chose."""
    spool_id = (request.form.get("spool_id") or "").strip()
    topic = (request.form.get("topic") or "").strip() or None
    try:
        codes = _spool().register(spool_id, sessions(current_app), topic=topic)
    except (SpoolError, MessageError) as exc:
        flash(f"پیام ثبت نشد: {exc}", "error")
        return redirect(url_for(".failed_jobs"))
    with transaction(sessions(current_app)) as session:
        audit.record(session, current_user.id, "spool_register", "spool",
                     detail=f"{spool_id[:200]} topic={topic or '-'} codes={','.join(codes)}", ip=request.remote_addr)
    flash(f"پیام ثبت شد. کد رهگیری: {'، '.join(codes)}", "info")
    return redirect(url_for(".failed_jobs"))


def _spool() -> Spool:
    settings = _settings()
    return open_spool(settings)


def init_followthrough(app: Flask) -> None:
    """Register the follow-through pages and their links."""
    app.register_blueprint(bp)
    add_nav(app, "followthrough.scorecard", "ارزیابی عملکرد", SCORECARD_ROLES)
    add_nav(app, "followthrough.escalations", "ارجاع‌های معوق", ESCALATION_ROLES)
    add_nav(app, "followthrough.dissatisfied", "نارضایتی ۱۸۸۸", SUPERVISOR_ROLES)
    add_nav(app, "followthrough.checks", "بازرسی میدانی", CHECK_ROLES)
    add_nav(app, "followthrough.failed_jobs", "کارهای ناموفق", JOB_ROLES)
