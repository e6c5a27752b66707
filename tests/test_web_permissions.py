"""The permission matrix: every URL of the app × every role × anonymous, against the declared allowed set.

A view declares its roles with `roles_required` (pages) or `api_roles` (JSON API); both set
`view.allowed_roles`. Views without it must appear in EXPLICIT below, so a new route that
declares no permission fails this test. Each route is requested with sample arguments (ids
that do not exist); "allowed" means the role got past the permission check (no 401, no 403,
no redirect to the sign-in page); a denied role gets 403 (pages and API), and an anonymous
visitor the sign-in redirect (pages) or 401 (API).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from werkzeug.routing.converters import NumberConverter

from ivr.models import User
from ivr.services.api_tokens import create_token
from ivr.vocabulary import ROLES
from tests.conftest import login

ANONYMOUS = "anonymous"
EVERYONE = frozenset((*ROLES, ANONYMOUS))
SIGNED_IN = frozenset(ROLES)

# Routes whose view has no `allowed_roles`: who may use them, and why.
EXPLICIT: dict[str, frozenset[str]] = {
    "static": EVERYONE,  # CSS, fonts, scripts
    "health.healthz": EVERYONE,  # load balancers and monitors
    "auth.login": EVERYONE,
    "auth.logout": EVERYONE,  # signing out is harmless (and CSRF-protected)
    "console_home.home": SIGNED_IN,  # login_required: every role sees its own links
    "api.openapi": EVERYONE,  # the API description holds no data
}

# Routes with their own authentication instead of roles (e.g. Twilio webhooks, checked by signature):
# endpoint -> how they authenticate. They must answer every role and anonymous alike.
OTHER_AUTH: dict[str, str] = {
    "twilio.voice_by_number": "Twilio signature",
    "twilio.voice": "Twilio signature",
    "twilio.voice_step": "Twilio signature",
    "twilio.reply_notice": "Twilio signature",
    "twilio.reply_notice_heard": "Twilio signature",
    "twilio.recording_status": "Twilio signature",
    "twilio.call_status": "Twilio signature",
    "twilio.sms_in": "Twilio signature",
    "twilio.sms_status": "Twilio signature",
    "twilio.prompt": "public: catalogue prompts by name only, the same files Asterisk plays",
    "twilio.stored_audio": "a signed, expiring token naming one recording",
}

# Endpoints that need particular URL arguments (others get ids that do not exist).
SAMPLE_ARGS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "static": lambda app: {"filename": "console.css"},
}


def _sample_url(app: Any, rule: Any) -> str:
    if rule.endpoint in SAMPLE_ARGS:
        values = SAMPLE_ARGS[rule.endpoint](app)
    else:
        values = {}
        for arg in rule.arguments:
            converter = rule._converters[arg]  # noqa: SLF001 - which kind of argument
            values[arg] = 999999 if isinstance(converter, NumberConverter) else "zzz-none"
    with app.test_request_context():
        from flask import url_for

        return url_for(rule.endpoint, **values)


def _csrf(client: Any, url: str) -> str:
    page = client.get(url).get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert match, f"no CSRF token on {url}"
    return match.group(1)


def _denied(role: str, path: str, resp: Any) -> bool:
    location = resp.headers.get("Location", "")
    if resp.status_code in (401, 403):
        return True
    return role == ANONYMOUS and resp.status_code == 302 and location.startswith("/login?next=")


def _expected_denial(role: str, path: str, resp: Any) -> bool:
    if path.startswith("/api/"):
        return resp.status_code == (401 if role == ANONYMOUS else 403)
    if role == ANONYMOUS:
        return resp.status_code == 302 and resp.headers["Location"].startswith("/login?next=")
    return resp.status_code == 403


def matrix_problems(app: Any, make_user: Any, session_factory: Any, other_auth: dict[str, str]) -> list[str]:
    """Request every route as every role and anonymous; list each answer that breaks the declared permissions."""
    app.extensions["ivr_limiter"].enabled = False  # the matrix signs in more often than a person would
    clients: dict[str, Any] = {}
    tokens: dict[str, str] = {}
    for role in ROLES:
        username, password = make_user(role)
        client = app.test_client()
        login(client, username, password)
        clients[role] = client
        with session_factory() as session:
            user_id = session.scalars(select(User.id).where(User.username == username)).one()
            tokens[role] = create_token(session, user_id, "matrix")[1]
            session.commit()
    clients[ANONYMOUS] = app.test_client()
    csrf = {role: _csrf(c, "/" if role != ANONYMOUS else "/login") for role, c in clients.items()}

    problems: list[str] = []
    rules = sorted(app.url_map.iter_rules(), key=lambda r: (r.endpoint == "auth.logout", r.rule))
    assert len(rules) > 40
    for rule in rules:
        view = app.view_functions[rule.endpoint]
        declared = getattr(view, "allowed_roles", None)
        if rule.endpoint in other_auth:
            url = _sample_url(app, rule)
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                codes = set()
                for role, client in clients.items():
                    data = {"csrf_token": csrf[role]} if method != "GET" else None
                    with client.open(url, method=method, data=data) as resp:
                        codes.add(resp.status_code)
                if len(codes) != 1:
                    problems.append(f"{method} {url}: answers roles differently ({sorted(codes)})")
            continue
        if declared is not None:
            allowed = frozenset(declared)
        elif rule.endpoint in EXPLICIT:
            allowed = EXPLICIT[rule.endpoint]
        else:
            problems.append(f"{rule.rule} ({rule.endpoint}) declares no permission")
            continue
        url = _sample_url(app, rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            for role, client in clients.items():
                headers = {"Authorization": f"Bearer {tokens[role]}"} if role in tokens else {}
                data = {"csrf_token": csrf[role]} if method != "GET" else None
                resp = client.open(url, method=method, data=data, headers=headers)
                if role in allowed and _denied(role, url, resp):
                    problems.append(f"{method} {url}: {role} should be allowed, got {resp.status_code}")
                elif role not in allowed and not _expected_denial(role, url, resp):
                    problems.append(f"{method} {url}: {role} should be denied, got {resp.status_code}")
                resp.close()
    return problems


def test_permission_matrix_every_route_every_role(app, make_user, session_factory) -> None:
    assert matrix_problems(app, make_user, session_factory, OTHER_AUTH) == []


def test_permission_matrix_routes_with_other_auth_must_answer_every_role_alike(app, make_user, session_factory) -> None:
    from flask_login import current_user

    app.add_url_rule("/hook", "hook", lambda: ("bad signature", 403))
    app.add_url_rule("/leaky", "leaky", lambda: ("", 200 if current_user.is_authenticated else 403))
    problems = matrix_problems(app, make_user, session_factory, {**OTHER_AUTH, "hook": "sig", "leaky": "sig"})
    assert problems == ["GET /leaky: answers roles differently ([200, 403])"]


def test_permission_matrix_fails_for_a_route_without_declared_permission(app) -> None:
    app.add_url_rule("/undeclared", "undeclared", lambda: "open to all")
    undeclared = [
        r.endpoint for r in app.url_map.iter_rules()
        if not hasattr(app.view_functions[r.endpoint], "allowed_roles")
        and r.endpoint not in EXPLICIT and r.endpoint not in OTHER_AUTH
    ]
    assert undeclared == ["undeclared"]


def test_every_console_page_allows_exactly_its_audience(app) -> None:
    expected = {
        "screening.": ("operator", "supervisor"),
        "window.": ("operator", "supervisor"),
        "admin.": ("admin",),
        "phone.": ("admin", "supervisor", "operator"),  # the test phone (issue 16)
    }
    for endpoint, view in app.view_functions.items():
        for prefix, roles in expected.items():
            if endpoint.startswith(prefix):
                assert view.allowed_roles == roles, endpoint


def test_spooled_message_form_is_for_supervisors_and_admins_only(app) -> None:
    for endpoint in ("followthrough.failed_jobs", "followthrough.register_spooled"):
        assert app.view_functions[endpoint].allowed_roles == ("supervisor", "admin"), endpoint
