"""The audit log viewer: who listened to, screened, referred, answered or changed what, and when."""
from __future__ import annotations

from datetime import date

from flask import Blueprint, Flask, current_app, render_template, request
from flask.typing import ResponseReturnValue

from ivr.db import transaction
from ivr.services.audit_search import AuditFilter, actions, search, users
from web import params
from web.auth import roles_required
from web.home import add_nav

bp = Blueprint("audit_log", __name__, url_prefix="/audit")

ACTION_NAMES = {
    "login": "ورود",
    "login_failed": "ورود ناموفق",
    "listen": "شنیدن",
    "claim": "برداشتن برای پالایش",
    "screen": "پالایش",
    "refer": "ارجاع",
    "not_referred": "ارجاع نشد",
    "answer": "پاسخ",
    "update": "تغییر",
    "create": "ایجاد",
    "delete": "حذف",
}


def parse_jalali(text: str | None) -> date | None:
    """'۱۴۰۵/۰۹/۰۸' (or 1405-09-08) as a Gregorian date; None when empty or not a date."""
    return params.jalali_or_none(text)


@bp.get("/")
@roles_required("supervisor", "admin")
def index() -> ResponseReturnValue:
    """The audit log, newest first, filtered by user, action and Jalali days."""
    from web import sessions

    since_text, until_text = request.args.get("since", ""), request.args.get("until", "")
    flt = AuditFilter(
        user_id=params.query_id("user", "کاربر"),
        action=request.args.get("action") or None,
        since=parse_jalali(since_text),
        until=parse_jalali(until_text),
    )
    bad_dates = [t for t, d in ((since_text, flt.since), (until_text, flt.until)) if t.strip() and d is None]
    page = params.query_page()
    settings = current_app.config["IVR_SETTINGS"]
    with transaction(sessions(current_app), readonly=True) as session:
        result = search(session, flt, settings.timezone, page=page)
        action_list, user_list = actions(session), users(session)
    return render_template(
        "audit/index.html", result=result, flt=flt, actions=action_list, users=user_list,
        since=since_text, until=until_text, bad_dates=bad_dates, action_names=ACTION_NAMES,
        args={k: v for k, v in request.args.items() if k != "page"},
    )


def init_audit_log(app: Flask) -> None:
    """Register the audit log viewer and its link for supervisors and administrators."""
    app.register_blueprint(bp)
    add_nav(app, "audit_log.index", "گزارش رویدادها", ("supervisor", "admin"))
