"""Issue 14 rows 2-6 and 11: token and session lifecycle, safe `next`, sign-in behind a proxy,
sign-in timing, and the security headers (each test reproduces one row; all failed before the fix)."""
from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from ivr.models import ApiToken, AuditEntry, User, utcnow
from ivr.services import users as users_service
from ivr.services.api_tokens import create_token
from tests.conftest import csrf_token, login

TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates"
QUEUE = "/api/v1/screening/queue"


def _user_id(session_factory, username: str) -> int:
    with session_factory() as session:
        return session.scalars(select(User.id).where(User.username == username)).one()


def _token(session_factory, user_id: int, days: int = 90) -> str:
    with session_factory() as session:
        _row, plain = create_token(session, user_id, "test", days=days)
        session.commit()
    return plain


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _admin(client, make_user) -> str:
    username, password = make_user("admin")
    login(client, username, password)
    return csrf_token(client, "/admin/users")


# ---- row 2: API tokens can be revoked, expire, and do not outlive the password ---------------------


def test_api_token_password_reset_revokes_the_token(client, make_user, session_factory) -> None:
    operator, _ = make_user("operator")
    token = _token(session_factory, _user_id(session_factory, operator))
    assert client.get(QUEUE, headers=_bearer(token)).status_code == 200
    csrf = _admin(client, make_user)
    resp = client.post(f"/admin/users/{_user_id(session_factory, operator)}/password",
                       data={"csrf_token": csrf, "password": "a brand new password"})
    assert resp.status_code == 302
    assert client.get(QUEUE, headers=_bearer(token)).status_code == 401


def test_api_token_deactivate_then_reactivate_does_not_bring_it_back(client, make_user, session_factory) -> None:
    operator, _ = make_user("operator")
    operator_id = _user_id(session_factory, operator)
    token = _token(session_factory, operator_id)
    csrf = _admin(client, make_user)
    for active in ("0", "1"):
        resp = client.post(f"/admin/users/{operator_id}/active", data={"csrf_token": csrf, "active": active})
        assert resp.status_code == 302
    assert client.get(QUEUE, headers=_bearer(token)).status_code == 401
    with session_factory() as session:
        row = session.scalars(select(ApiToken).where(ApiToken.user_id == operator_id)).one()
        assert row.revoked_at is not None


def test_api_token_expires_after_its_days(client, make_user, session_factory) -> None:
    operator, _ = make_user("operator")
    operator_id = _user_id(session_factory, operator)
    token = _token(session_factory, operator_id, days=90)
    with session_factory() as session:
        row = session.scalars(select(ApiToken).where(ApiToken.user_id == operator_id)).one()
        assert timedelta(days=89) < row.expires_at - utcnow() <= timedelta(days=90)
        row.expires_at = utcnow() - timedelta(seconds=1)
        session.commit()
    assert client.get(QUEUE, headers=_bearer(token)).status_code == 401


def test_api_token_admin_lists_and_revokes_it(client, make_user, session_factory) -> None:
    operator, _ = make_user("operator")
    token = _token(session_factory, _user_id(session_factory, operator))
    csrf = _admin(client, make_user)
    page = client.get("/admin/tokens")
    assert page.status_code == 200 and operator in page.get_data(as_text=True)
    with session_factory() as session:
        token_id = session.scalars(select(ApiToken.id).where(ApiToken.token_hash.is_not(None))).all()[-1]
    assert client.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": csrf}).status_code == 302
    assert client.get(QUEUE, headers=_bearer(token)).status_code == 401
    assert client.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": csrf}).status_code == 404
    assert "باطل‌شده" in client.get("/admin/tokens").get_data(as_text=True)


def test_api_token_made_on_the_admin_page_shows_its_expiry(client, make_user, session_factory) -> None:
    operator, _ = make_user("operator")
    csrf = _admin(client, make_user)
    page = client.post(f"/admin/users/{_user_id(session_factory, operator)}/token",
                       data={"csrf_token": csrf, "name": "reports"}).get_data(as_text=True)
    assert "اعتبار تا" in page
    plain = re.search(r'id="token">([^<]+)<', page).group(1)
    assert client.get(QUEUE, headers=_bearer(plain)).status_code == 200


# ---- row 3: no open redirect after sign-in ---------------------------------------------------------


@pytest.mark.parametrize("target", [
    "/%09/evil.example", "/%0a/evil.example", "/%0d/evil.example", "//evil.example", "/\\evil.example",
    "https://evil.example/", "/%00/x", "\\\\evil.example", "%2F%2Fevil.example",
])
def test_login_next_with_control_characters_or_other_hosts_goes_home(client, make_user, target) -> None:
    username, password = make_user("operator")
    resp = client.post(f"/login?next={target}",
                       data={"username": username, "password": password, "csrf_token": csrf_token(client)})
    if "%00" in target:  # a NUL anywhere in a request is refused before any view (web/params.py)
        assert resp.status_code == 400 and "Location" not in resp.headers
        return
    assert resp.status_code == 302 and resp.headers["Location"] == "/"


def test_login_next_to_a_page_of_this_site_is_kept(client, make_user) -> None:
    username, password = make_user("operator")
    resp = client.post("/login?next=/screening/%3Fpage%3D2",
                       data={"username": username, "password": password, "csrf_token": csrf_token(client)})
    assert resp.headers["Location"] == "/screening/?page=2"


# ---- row 4: sign-in behind a reverse proxy ---------------------------------------------------------


@pytest.fixture
def proxied_client(settings, session_factory, jobs):
    from web import create_app

    app = create_app(settings.with_(trusted_proxies=1), session_factory=session_factory, jobs=jobs,
                     config={"TESTING": True})
    return app.test_client()


def _login_from(client, address: str, username: str, password: str):
    token = csrf_token(client)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token},
                       headers={"X-Forwarded-For": address})


def test_login_limit_behind_a_trusted_proxy_keys_on_the_client_address(proxied_client, make_user) -> None:
    names = [make_user("operator")[0] for _ in range(3)]
    # 30 failed attempts through one proxy from 3 clients (10 each, each on its own account): none limited.
    codes = [_login_from(proxied_client, f"203.0.113.{i}", names[i], "wrong password!").status_code
             for i in range(3) for _ in range(10)]
    assert codes == [401] * 30
    assert _login_from(proxied_client, "203.0.113.0", names[0] + "x", "wrong password!").status_code == 429


def test_login_audit_behind_a_trusted_proxy_records_the_client_address(
    proxied_client, make_user, session_factory
) -> None:
    username, password = make_user("operator")
    assert _login_from(proxied_client, "198.51.100.7", username, password).status_code == 302
    with session_factory() as session:
        ips = session.scalars(select(AuditEntry.ip).where(AuditEntry.action == "login")).all()
    assert ips == ["198.51.100.7"]


def test_login_forwarded_header_without_trusted_proxies_is_ignored(client, make_user, session_factory) -> None:
    username, password = make_user("operator")
    assert _login_from(client, "198.51.100.7", username, password).status_code == 302
    with session_factory() as session:
        ips = session.scalars(select(AuditEntry.ip).where(AuditEntry.action == "login")).all()
    assert ips == ["127.0.0.1"]


def test_login_failed_attempts_are_limited_per_account_from_any_address(proxied_client, make_user) -> None:
    username, password = make_user("operator")
    codes = [_login_from(proxied_client, f"192.0.2.{i}", username, "wrong password!").status_code for i in range(10)]
    assert codes == [401] * 10
    resp = _login_from(proxied_client, "192.0.2.200", username, password)
    assert resp.status_code == 429
    assert "تلاش‌های ورود بیش از حد مجاز بود" in resp.get_data(as_text=True)
    # Another account from the same addresses is not affected.
    other, other_password = make_user("operator")
    assert _login_from(proxied_client, "192.0.2.1", other, other_password).status_code == 302


def test_login_successful_attempts_do_not_count_against_the_account(proxied_client, make_user) -> None:
    username, password = make_user("operator")
    for i in range(12):
        proxied_client.environ_base["HTTP_X_FORWARDED_FOR"] = f"192.0.2.{i}"
        assert login(proxied_client, username, password).status_code == 302
        proxied_client.post("/logout", data={"csrf_token": csrf_token(proxied_client, "/")})


# ---- row 5: the same work for unknown and known users ----------------------------------------------


def test_sign_in_unknown_or_inactive_user_still_checks_a_hash(db, monkeypatch) -> None:
    users_service.add_user(db, "known_user", "کاربر", "operator", None, "a long password")
    inactive = users_service.add_user(db, "gone_user", "کاربر", "operator", None, "a long password")
    inactive.active = False
    calls: list[str] = []
    real = users_service.verify_password
    monkeypatch.setattr(users_service, "verify_password", lambda h, p: calls.append(h) or real(h, p))
    for name in ("known_user", "nobody_here", "gone_user"):
        assert users_service.sign_in(db, name, "wrong password!") is None
    assert len(calls) == 3
    assert calls[1] == calls[2] == users_service.DUMMY_HASH
    assert calls[0].split("$")[0] == users_service.DUMMY_HASH.split("$")[0]  # same scrypt cost


def test_sign_in_unknown_user_takes_as_long_as_a_known_one(db) -> None:
    users_service.add_user(db, "known_user", "کاربر", "operator", None, "a long password")

    def fastest(name: str) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            users_service.sign_in(db, name, "wrong password!")
            times.append(time.perf_counter() - start)
        return min(times)

    known, unknown = fastest("known_user"), fastest("nobody_here")
    assert unknown > 0.5 * known, (known, unknown)


# ---- row 6: logout, password reset and deactivation end every session ------------------------------


def _copied(app, client):
    """A second browser holding a copy of `client`'s session cookie."""
    thief = app.test_client()
    cookie = client.get_cookie("session")
    thief.set_cookie("session", cookie.value)
    return thief


def test_logout_ends_a_copied_session_cookie(app, client, make_user) -> None:
    username, password = make_user("operator")
    login(client, username, password)
    thief = _copied(app, client)
    assert thief.get("/screening/").status_code == 200
    assert client.post("/logout", data={"csrf_token": csrf_token(client, "/")}).status_code == 302
    resp = thief.get("/screening/")
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/login")


@pytest.mark.parametrize("change", ["password", "deactivate"])
def test_admin_password_reset_or_deactivation_ends_the_users_sessions(app, make_user, session_factory, change) -> None:
    username, password = make_user("operator")
    user_browser = app.test_client()
    login(user_browser, username, password)
    assert user_browser.get("/screening/").status_code == 200
    admin_browser = app.test_client()
    csrf = _admin(admin_browser, make_user)
    user_id = _user_id(session_factory, username)
    if change == "password":
        admin_browser.post(f"/admin/users/{user_id}/password", data={"csrf_token": csrf, "password": password})
    else:
        admin_browser.post(f"/admin/users/{user_id}/active", data={"csrf_token": csrf, "active": "0"})
        admin_browser.post(f"/admin/users/{user_id}/active", data={"csrf_token": csrf, "active": "1"})
    # Even with the same password set again, or the user reactivated, the old session is over.
    assert user_browser.get("/screening/").status_code == 302
    assert login(user_browser, username, password).status_code == 302


# ---- row 11: security headers ----------------------------------------------------------------------


def test_security_headers_signed_in_pages_are_no_store_with_a_strict_csp(client, make_user) -> None:
    username, password = make_user("operator")
    login(client, username, password)
    resp = client.get("/screening/")
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    csp = dict(part.strip().split(" ", 1) for part in resp.headers["Content-Security-Policy"].split(";"))
    assert csp["script-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'" and csp["object-src"] == "'none'"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Referrer-Policy"] == "same-origin"


def test_security_headers_api_answers_are_no_store(client, make_user, session_factory) -> None:
    operator, _ = make_user("operator")
    token = _token(session_factory, _user_id(session_factory, operator))
    for headers in (_bearer(token), {}):
        resp = client.get(QUEUE, headers=headers)
        assert resp.headers["Cache-Control"] == "no-store"
        assert "Content-Security-Policy" in resp.headers


def test_security_headers_static_files_keep_their_caching(client) -> None:
    resp = client.get("/static/console.css")
    assert resp.status_code == 200 and resp.headers.get("Cache-Control") != "no-store"
    resp.close()


def test_templates_have_no_inline_script_or_event_handler() -> None:
    problems = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"<script\b([^>]*)>", text):
            attrs = match.group(1)
            if "src=" not in attrs and 'type="application/json"' not in attrs:
                problems.append(f"{path.name}: inline <script{attrs}>")
        for match in re.finditer(r"\s(on[a-z]+)\s*=", text):
            problems.append(f"{path.name}: inline handler {match.group(1)}")
        if "javascript:" in text:
            problems.append(f"{path.name}: javascript: URL")
    assert problems == []


# ---- the migration: tokens made before it expire 90 days after they were made -----------------------


def test_migration_0009_gives_existing_tokens_an_expiry_and_users_a_session_version(tmp_path) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import text

    from ivr.db import make_engine
    from ivr.migrate import upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    upgrade(engine, "0008_topic_deadlines")
    made = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO users (id, username, full_name, role, password_hash, active, created_at) "
            "VALUES (1, 'old_user', 'x', 'operator', 'h', 1, :t)"), {"t": made})
        conn.execute(text(
            "INSERT INTO api_tokens (user_id, token_hash, name, created_at) VALUES (1, 'abc', 'old', :t)"),
            {"t": made})
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT session_version FROM users")).scalar_one() == 0
        expires = conn.execute(text("SELECT expires_at FROM api_tokens")).scalar_one()
    assert str(expires).startswith("2026-04-01 12:00:00")
    engine.dispose()


def test_trusted_proxies_by_address_take_the_first_untrusted_forwarded_address(
    settings, session_factory, jobs, make_user
) -> None:
    from ivr.config import load_settings
    from web import create_app

    parsed = load_settings({"IVR_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8"}, dotenv=False)
    assert (parsed.trusted_proxies, parsed.trusted_proxy_networks) == (0, ("127.0.0.1/32", "10.0.0.0/8"))
    app = create_app(settings.with_(trusted_proxy_networks=parsed.trusted_proxy_networks),
                     session_factory=session_factory, jobs=jobs, config={"TESTING": True})
    client = app.test_client()
    username, password = make_user("operator")
    # The client claims 1.2.3.4; the outer proxy (10.0.0.7) saw 203.0.113.9 and the inner one 10.0.0.7.
    client.environ_base["HTTP_X_FORWARDED_FOR"] = "1.2.3.4, 203.0.113.9, 10.0.0.7"
    assert login(client, username, password).status_code == 302
    with session_factory() as session:
        assert session.scalars(select(AuditEntry.ip).where(AuditEntry.action == "login")).all() == ["203.0.113.9"]


def test_trusted_proxies_malformed_setting_is_one_clear_error() -> None:
    from ivr.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="IVR_TRUSTED_PROXIES: expected a number of proxies or their addresses"):
        load_settings({"IVR_TRUSTED_PROXIES": "proxy.example"}, dotenv=False)
    with pytest.raises(ConfigError, match="IVR_TRUSTED_PROXIES: must be between 0 and 5"):
        load_settings({"IVR_TRUSTED_PROXIES": "9"}, dotenv=False)


def test_trusted_proxies_by_address_ignore_forwarded_headers_from_other_peers(
    settings, session_factory, jobs, make_user
) -> None:
    from web import create_app

    app = create_app(settings.with_(trusted_proxy_networks=("10.0.0.0/8",)), session_factory=session_factory,
                     jobs=jobs, config={"TESTING": True})
    client = app.test_client()  # connects from 127.0.0.1: not a trusted proxy
    username, password = make_user("operator")
    client.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.9"
    assert login(client, username, password).status_code == 302
    with session_factory() as session:
        assert session.scalars(select(AuditEntry.ip).where(AuditEntry.action == "login")).all() == ["127.0.0.1"]
