"""Every route of the app, as every role and anonymous, with hostile values everywhere: never a 5xx.

Routes come from `app.url_map` (like the permission matrix), so a new view is crawled without
being listed. Each value goes at once into the path arguments, every query argument and every
form field the views read (and, on the API, a JSON body); the server must answer 4xx or 2xx/3xx.
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy import select

from ivr.models import User
from ivr.services.api_tokens import create_token
from ivr.vocabulary import ROLES
from tests.conftest import login

HOSTILE = [
    "²", "-1", "9" * 20, "9" * 400, "0/01", "99999/01", "1/01/01", "0-01", "99999/01/01", "1405/13/40", "",
    "x" * 5000, "a\x00b", "\u200f۱۲\u200e", "٣²", "1e9", "0",
]
# Every name the views read from a query string or a form (grep of web/**).
FIELDS = [
    "action", "active", "body", "caller", "closes", "code", "day", "decision", "due_working_days", "duplicate_of",
    "from", "full_name", "job_id", "kind", "limit", "line", "month", "n", "name", "next", "note", "offset", "opens",
    "page", "parent_id", "password", "phone", "reason", "reply_id", "result", "role", "since", "state", "summary",
    "text", "to", "topic_id", "unit", "unit_id", "until", "user", "username", "weekday", "district",
]
ANONYMOUS = "anonymous"
_ARG = re.compile(r"<(?:[a-z]+(?:\([^)]*\))?:)?([a-z_]+)>")


def _path(rule: str, value: str) -> str:
    return _ARG.sub(lambda _m: quote(value or "x", safe=""), rule)


def _clients(app: Any, make_user: Any, session_factory: Any) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    app.extensions["ivr_limiter"].enabled = False
    clients, tokens, csrf = {}, {}, {}
    for role in ROLES:
        username, password = make_user(role)
        client = app.test_client()
        login(client, username, password)
        clients[role] = client
        with session_factory() as session:
            user_id = session.scalars(select(User.id).where(User.username == username)).one()
            tokens[role] = create_token(session, user_id, "crawl")[1]
            session.commit()
    clients[ANONYMOUS] = app.test_client()
    for role, client in clients.items():
        page = client.get("/" if role != ANONYMOUS else "/login").get_data(as_text=True)
        csrf[role] = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    return clients, tokens, csrf


def test_every_route_every_role_hostile_values_never_5xx(app, make_user, session_factory) -> None:
    clients, tokens, csrf = _clients(app, make_user, session_factory)
    rules = sorted(app.url_map.iter_rules(), key=lambda r: (r.endpoint == "auth.logout", r.rule))
    assert len(rules) > 40
    failures: list[str] = []
    requests = 0
    for rule in rules:
        if rule.endpoint == "static":
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            for value in HOSTILE:
                url = _path(rule.rule, value) + "?" + urlencode({name: value for name in FIELDS})
                for role, client in clients.items():
                    headers = {"Authorization": f"Bearer {tokens[role]}"} if role in tokens else {}
                    kwargs: dict[str, Any] = {}
                    if method != "GET" and rule.rule.startswith("/api/"):
                        kwargs["json"] = {name: value for name in FIELDS}
                    elif method != "GET":
                        kwargs["data"] = {**{name: value for name in FIELDS}, "csrf_token": csrf[role]}
                    requests += 1
                    try:
                        resp = client.open(url, method=method, headers=headers, **kwargs)
                    except Exception as exc:  # noqa: BLE001 - a propagated exception is a 500 in production
                        failures.append(f"{role} {method} {rule.rule} {value[:30]!r}: {exc!r}"[:300])
                        continue
                    if resp.status_code >= 500:
                        failures.append(f"{role} {method} {rule.rule} {value[:30]!r}: {resp.status_code}")
                    resp.close()
    assert requests > 1000
    assert failures == []
