"""The analysis desk at /analysis: dashboards, their JSON API, CSV/XLSX exports, the monthly report.

Analysts, supervisors and administrators see the whole city; a manager sees only the
messages of their own unit (the filter is applied here, server-side, never trusted from
the browser) and no call figures, which belong to no unit. Every figure comes from the
rollup tables through ivr.analysis.dashboard.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user

from ivr.analysis import dashboard as d
from ivr.analysis.exports import export_name, to_csv, to_xlsx
from ivr.db import transaction
from web.auth import roles_required
from web.home import add_nav

bp = Blueprint("analysis", __name__, url_prefix="/analysis")

CITY_ROLES = ("analyst", "supervisor", "admin")
DESK_ROLES = (*CITY_ROLES, "manager")
EXPORTS = {
    "csv": ("text/csv; charset=utf-8", to_csv),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", to_xlsx),
}
BREAKDOWN_ORDER = ("kind", "topic", "district", "unit")


def _today() -> date:
    return datetime.now(current_app.config["IVR_SETTINGS"].timezone).date()


def _districts() -> int:
    return int(current_app.config["IVR_SETTINGS"].districts)


def _unit_scope() -> int | None:
    """The unit a manager is limited to; None (the whole city) for the other desk roles."""
    return current_user.unit_id if current_user.role == "manager" else None


def _filters() -> d.Filters:
    return d.parse_filters(request.args, _today(), _unit_scope(), _districts())


def _bad_request(exc: d.FilterError) -> ResponseReturnValue:
    return jsonify({"error": str(exc), "status": 400}), 400


def _allowed(name: str) -> None:
    if name not in d.table_names():
        abort(404)
    if name in d.call_tables() and current_user.role not in CITY_ROLES:
        abort(403)


def _tables(names: list[str], filters: d.Filters) -> dict[str, d.Table]:
    from web import sessions

    with transaction(sessions(current_app), readonly=True) as session:
        return {name: d.build_table(session, name, filters) for name in names}


@bp.get("/")
@roles_required(*DESK_ROLES)
def dashboard() -> ResponseReturnValue:
    """The desk: calls (city roles), the message funnel and breakdowns, hotspots."""
    error = None
    try:
        filters = _filters()
    except d.FilterError as exc:
        # The typed values stay in the form; the default period is shown meanwhile.
        error = str(exc)
        filters = d.parse_filters({}, _today(), _unit_scope(), _districts())
    names = [
        *(d.call_tables() if current_user.role in CITY_ROLES else ()),
        "funnel",
        *(f"breakdown-{b}" for b in BREAKDOWN_ORDER),
        "hotspots",
    ]
    return render_template(
        "analysis/dashboard.html",
        filters=filters,
        tables=_tables(names, filters),
        query=request.query_string.decode(),
        form={**_form_values(filters), **(request.args.to_dict() if error else {})},
        error=error,
    ), (400 if error else 200)


@bp.get("/api/<name>")
@roles_required(*DESK_ROLES)
def api(name: str) -> ResponseReturnValue:
    """One table as JSON (the charts and the benchmark read these)."""
    _allowed(name)
    try:
        filters = _filters()
    except d.FilterError as exc:
        return _bad_request(exc)
    table = _tables([name], filters)[name]
    return jsonify(
        {
            "period": {"from": d.jalali(filters.period.start), "to": d.jalali(filters.period.end)},
            "line": filters.line,
            "unit_id": filters.unit_id,
            "table": table.as_dict(),
        }
    )


# Hotspots were called "critical" in these URLs until December 2026; bookmarks and scripts keep working.
@bp.get("/api/critical")
@roles_required(*DESK_ROLES)
def api_critical() -> ResponseReturnValue:
    """The old address of the hotspots table: a permanent redirect keeping the query."""
    return _moved(url_for("analysis.api", name="hotspots"))


@bp.get("/export/critical.<fmt>")
@roles_required(*DESK_ROLES)
def export_critical(fmt: str) -> ResponseReturnValue:
    """The old address of the hotspots export: a permanent redirect keeping the query."""
    return _moved(url_for("analysis.export", name="hotspots", fmt=fmt))


def _moved(location: str) -> ResponseReturnValue:
    query = request.query_string.decode()
    return redirect(location + (f"?{query}" if query else ""), 308)


@bp.get("/export/<name>.<fmt>")
@roles_required(*DESK_ROLES)
def export(name: str, fmt: str) -> ResponseReturnValue:
    """One table as CSV or XLSX, for the same filters as the page."""
    _allowed(name)
    if fmt not in EXPORTS:
        abort(404)
    try:
        filters = _filters()
    except d.FilterError as exc:
        return _bad_request(exc)
    table = _tables([name], filters)[name]
    mimetype, render = EXPORTS[fmt]
    return Response(
        render(table),
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="{export_name(table, filters, fmt)}"'},
    )


@bp.get("/report")
@roles_required(*DESK_ROLES)
def report() -> ResponseReturnValue:
    """The printable monthly report of a Jalali month (default: last month)."""
    month_text = request.args.get("month") or _last_month()
    try:
        month = d.jalali_month(month_text)
    except d.FilterError as exc:
        return render_template("analysis/report.html", error=str(exc), month_text=month_text, tables=[]), 400
    from web import sessions

    with transaction(sessions(current_app), readonly=True) as session:
        tables = d.monthly_report(session, month, _unit_scope(), _districts())
    return render_template(
        "analysis/report.html",
        month=month,
        month_text=month_text,
        tables=tables,
        generated=datetime.now(current_app.config["IVR_SETTINGS"].timezone),
    )


def _last_month() -> str:
    first = d.jalali(_today()).split("/")
    year, month = int(first[0]), int(first[1])
    year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return f"{year}/{month:02d}"


def _form_values(filters: d.Filters) -> dict[str, Any]:
    return {
        "from": d.jalali(filters.period.start),
        "to": d.jalali(filters.period.end),
        "line": filters.line or "",
        "days": filters.period.days,
        "previous_from": d.jalali(filters.period.previous().start),
        "previous_to": d.jalali(filters.period.start - timedelta(days=1)),
    }


def init_analysis(app: Flask) -> None:
    """Register the desk and its link in the navigation (called by the app factory)."""
    app.register_blueprint(bp)
    add_nav(app, "analysis.dashboard", "میز تحلیل", DESK_ROLES)
