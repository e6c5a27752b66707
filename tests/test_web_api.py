"""The JSON API: bearer tokens, role checks, screening, typed messages, single window, OpenAPI coverage."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from ivr.models import ApiToken, AuditEntry, Message, Referral, User
from ivr.services.api_tokens import create_token, hash_token, revoke_token
from tests.console_data import seed_committed


def _token(session_factory, role: str, username: str | None = None, make_user=None) -> str:
    name, _ = make_user(role, username=username)
    with session_factory() as session:
        user_id = session.scalars(select(User.id).where(User.username == name)).one()
        _row, plain = create_token(session, user_id, "test")
        session.commit()
    return plain


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def seeded(session_factory):
    return seed_committed(session_factory)


def test_api_without_or_with_a_bad_token_is_401_json(client, seeded) -> None:
    resp = client.get("/api/v1/screening/queue")
    assert resp.status_code == 401 and resp.headers["WWW-Authenticate"] == 'Bearer realm="ivr"'
    assert resp.get_json()["status"] == 401
    assert client.get("/api/v1/screening/queue", headers=_auth("ivr_nonsense")).status_code == 401
    assert client.get("/api/v1/screening/queue", headers={"Authorization": "Basic abc"}).status_code == 401


def test_api_token_is_stored_hashed_and_revocation_ends_it(client, session_factory, make_user, seeded) -> None:
    token = _token(session_factory, "operator", make_user=make_user)
    with session_factory() as session:
        row = session.scalars(select(ApiToken)).one()
        assert row.token_hash == hash_token(token) and token not in row.token_hash
    assert client.get("/api/v1/topics", headers=_auth(token)).status_code == 200
    with session_factory() as session:
        row = session.scalars(select(ApiToken)).one()
        assert row.last_used_at is not None
        assert revoke_token(session, row.id) is True
        session.commit()
    assert client.get("/api/v1/topics", headers=_auth(token)).status_code == 401


def test_api_token_of_a_deactivated_user_is_refused(client, session_factory, make_user, seeded) -> None:
    token = _token(session_factory, "operator", username="gone", make_user=make_user)
    with session_factory() as session:
        session.scalars(select(User).where(User.username == "gone")).one().active = False
        session.commit()
    assert client.get("/api/v1/topics", headers=_auth(token)).status_code == 401


def test_api_wrong_role_is_403(client, session_factory, make_user, seeded) -> None:
    token = _token(session_factory, "manager", make_user=make_user)
    resp = client.get("/api/v1/screening/queue", headers=_auth(token))
    assert resp.status_code == 403 and resp.get_json()["error"] == "این درخواست برای نقش شما مجاز نیست."
    assert client.get("/api/v1/units", headers=_auth(token)).status_code == 200


def test_api_screening_claim_conflict_and_referral(app, session_factory, make_user, seeded) -> None:
    client = app.test_client()
    first = _token(session_factory, "operator", make_user=make_user)
    second = _token(session_factory, "supervisor", make_user=make_user)
    queue = client.get("/api/v1/screening/queue?limit=2", headers=_auth(first)).get_json()
    assert queue["total"] == 3 and [i["tracking_code"] for i in queue["items"]] == ["100000016", "200000015"]
    assert queue["items"][0]["caller"] == "09121234567" and queue["items"][0]["seconds"] == 65.0
    mid = seeded.messages[0]
    claimed = client.post(f"/api/v1/messages/{mid}/claim", headers=_auth(first))
    assert claimed.status_code == 200 and claimed.get_json()["claim_expires_at"] is not None
    conflict = client.post(f"/api/v1/messages/{mid}/claim", headers=_auth(second))
    assert conflict.status_code == 409 and "در دست بررسی دارد" in conflict.get_json()["error"]
    body = {"decision": "refer", "kind": "complaint", "topic_id": seeded.topic_1888, "district": 5,
            "unit_id": seeded.unit_a, "summary": "خلاصه"}
    assert client.post(f"/api/v1/messages/{mid}/classify", json=body, headers=_auth(second)).status_code == 409
    bad = client.post(f"/api/v1/messages/{mid}/classify", json={**body, "unit_id": None}, headers=_auth(first))
    assert bad.status_code == 400 and bad.get_json()["error"] == "برای ارجاع، واحد مربوط را انتخاب کنید."
    done = client.post(f"/api/v1/messages/{mid}/classify", json=body, headers=_auth(first))
    assert done.status_code == 200
    data = done.get_json()
    assert data["status"] == "referred" and data["referral"]["manager_id"] == seeded.manager_a
    with session_factory() as session:
        assert session.scalars(select(Referral.message_id)).all() == [mid]
        assert "refer" in session.scalars(select(AuditEntry.action)).all()
    assert client.post(f"/api/v1/messages/{mid}/classify", data="x", headers=_auth(first)).status_code == 400
    assert client.post("/api/v1/messages/999999/claim", headers=_auth(first)).status_code == 404


def test_api_typed_message_returns_201_with_tracking_code(client, session_factory, make_user, seeded) -> None:
    token = _token(session_factory, "operator", make_user=make_user)
    resp = client.post("/api/v1/messages", headers=_auth(token), json={
        "line": "1888", "kind": "suggestion", "caller": "09127654321", "body": "پیشنهاد", "district": 3})
    assert resp.status_code == 201
    data = resp.get_json()
    with session_factory() as session:
        msg = session.get(Message, data["id"])
        assert (msg.tracking_code, msg.source, msg.district) == (data["tracking_code"], "operator", 3)
    bad = client.post("/api/v1/messages", headers=_auth(token), json={"line": "1888", "kind": "suggestion"})
    assert bad.status_code == 400 and bad.get_json()["error"] == "شماره تماس شهروند درست نیست."


def test_api_single_window_and_lists(client, session_factory, make_user, seeded) -> None:
    token = _token(session_factory, "operator", make_user=make_user)
    data = client.get("/api/v1/window?phone=00989121234567", headers=_auth(token)).get_json()
    assert data["phone"] == "09121234567"
    assert [m["tracking_code"] for m in data["messages"]] == ["300000019", "100000016"]
    assert [(c["keys"], c["outcome"]) for c in data["calls"]] == [("13", "message_registered")]
    assert client.get("/api/v1/window?phone=x", headers=_auth(token)).status_code == 400
    assert client.get("/api/v1/window/handoffs", headers=_auth(token)).get_json() == []
    topics = client.get("/api/v1/topics", headers=_auth(token)).get_json()
    assert sorted((t["code"], t["due_working_days"]) for t in topics) == [("conduct", 3), ("potholes", 5)]
    units = client.get("/api/v1/units", headers=_auth(token)).get_json()
    assert sorted(u["code"] for u in units) == ["district-5", "water"]


def test_api_needs_no_csrf_token(client, session_factory, make_user, seeded) -> None:
    token = _token(session_factory, "operator", make_user=make_user)
    assert client.post(f"/api/v1/messages/{seeded.messages[1]}/release", headers=_auth(token)).get_json() == {
        "released": False}


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule[len("/api/v1"):])


def test_openapi_document_describes_every_api_route_and_method(app, client) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    served = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            methods = {m.lower() for m in rule.methods or ()} - {"head", "options"}
            served.setdefault(_openapi_path(rule.rule), set()).update(methods)
    documented = {path: set(ops) for path, ops in doc["paths"].items()}
    assert documented == served


def test_openapi_roles_match_the_views(app, client) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if rule.rule.startswith("/api/v1/") and hasattr(view, "allowed_roles"):
            for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
                op = doc["paths"][_openapi_path(rule.rule)][method.lower()]
                assert op["description"] == f"Roles: {', '.join(view.allowed_roles)}.", rule.rule


def test_cli_users_token_prints_a_working_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from ivr.cli import main
    from ivr.db import make_engine, make_sessionmaker
    from ivr.models import utcnow
    from ivr.services.api_tokens import user_for_token

    monkeypatch.setenv("IVR_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("IVR_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.sqlite3'}")
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    added = runner.invoke(main, ["users", "add", "op_api", "--name", "اپراتور", "--role", "operator",
                                 "--password", "a-long-password"])
    assert added.exit_code == 0
    result = runner.invoke(main, ["users", "token", "op_api"])
    assert result.exit_code == 0
    token = result.output.strip()
    assert token.startswith("ivr_") and len(token) > 40
    with make_sessionmaker(make_engine(f"sqlite:///{tmp_path / 'cli.sqlite3'}"))() as session:
        assert user_for_token(session, token, utcnow()).username == "op_api"
    missing = runner.invoke(main, ["users", "token", "nobody"])
    assert missing.exit_code == 1 and "no active user named 'nobody'" in missing.output
