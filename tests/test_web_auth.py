"""Signing in and out, CSRF, session cookies, rate limits and role checks of the console."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from ivr.models import AuditEntry, User
from ivr.services.users import hash_password
from tests.conftest import csrf_token, login


def test_console_anonymous_user_is_sent_to_login(client) -> None:
    resp = client.get("/")
    assert resp.status_code == 302
    assert resp.headers["Location"] == "/login?next=%2F"


def test_login_page_is_persian_rtl_with_the_font_served_locally(client) -> None:
    page = client.get("/login").get_data(as_text=True)
    assert '<html lang="fa" dir="rtl">' in page
    assert "ورود به سامانه" in page
    with client.get("/static/console.css") as resp:
        css = resp.get_data(as_text=True)
    assert 'url("vendor/vazirmatn/Vazirmatn-Regular.woff2")' in css
    assert "http" not in css  # nothing from a CDN


def test_login_right_password_signs_in_and_is_audited(client, make_user, session_factory) -> None:
    username, password = make_user("operator")
    resp = login(client, username, password)
    assert resp.status_code == 302 and resp.headers["Location"] == "/"
    home = client.get("/").get_data(as_text=True)
    assert f"کاربر {username}" in home and "کارشناس پاسخگو" in home
    with session_factory() as session:
        user = session.scalars(select(User).where(User.username == username)).one()
        assert user.last_login_at is not None
        actions = session.scalars(select(AuditEntry.action).where(AuditEntry.user_id == user.id)).all()
        assert actions == ["login"]


def test_login_wrong_password_is_refused_without_saying_which_part(client, make_user, session_factory) -> None:
    username, _ = make_user("operator")
    resp = login(client, username, "wrong password!")
    assert resp.status_code == 401
    assert "نام کاربری یا گذرواژه درست نیست" in resp.get_data(as_text=True)
    assert client.get("/").status_code == 302
    unknown = login(client, "nobody", "wrong password!")
    assert unknown.status_code == 401
    with session_factory() as session:
        failed = session.scalars(select(AuditEntry).where(AuditEntry.action == "login_failed")).all()
        assert len(failed) == 2


def test_login_without_csrf_token_is_rejected(client, make_user) -> None:
    username, password = make_user("operator")
    resp = client.post("/login", data={"username": username, "password": password})
    assert resp.status_code == 400
    assert "برگه منقضی شده است" in resp.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_login_attempts_are_rate_limited_per_address(client, make_user) -> None:
    username, _ = make_user("operator")
    codes = [login(client, username, "wrong password!").status_code for _ in range(11)]
    assert codes[:10] == [401] * 10
    assert codes[10] == 429


def test_login_next_never_redirects_off_site(client, make_user) -> None:
    username, password = make_user("operator")
    token = csrf_token(client)
    resp = client.post(
        "/login?next=//evil.example/x", data={"username": username, "password": password, "csrf_token": token}
    )
    assert resp.headers["Location"] == "/"


def test_logout_needs_post_with_csrf_and_ends_the_session(client, make_user) -> None:
    username, password = make_user("supervisor")
    login(client, username, password)
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400  # no CSRF token
    token = csrf_token(client, "/")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 302


def test_password_change_signs_out_other_sessions(client, make_user, session_factory) -> None:
    username, password = make_user("manager")
    login(client, username, password)
    assert client.get("/").status_code == 200
    with session_factory() as session:
        user = session.scalars(select(User).where(User.username == username)).one()
        user.password_hash = hash_password("another good password")
        session.commit()
    assert client.get("/").status_code == 302


def test_inactive_user_cannot_sign_in(client, make_user, session_factory) -> None:
    username, password = make_user("operator")
    with session_factory() as session:
        session.scalars(select(User).where(User.username == username)).one().active = False
        session.commit()
    assert login(client, username, password).status_code == 401


def test_session_cookie_is_httponly_and_samesite(client, make_user) -> None:
    username, password = make_user("operator")
    resp = login(client, username, password)
    [cookie] = [c for c in resp.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


@pytest.mark.parametrize("secure", [True])
def test_session_cookie_is_secure_when_configured(settings, session_factory, jobs, make_user, secure) -> None:
    from web import create_app

    app = create_app(settings.with_(cookie_secure=secure), session_factory=session_factory, jobs=jobs)
    client = app.test_client()
    username, password = make_user("operator")
    resp = login(client, username, password)
    [cookie] = [c for c in resp.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert "Secure" in cookie


def test_secret_key_is_generated_once_and_kept(settings) -> None:
    from web import secret_key

    first = secret_key(settings)
    assert len(first) >= 48 and secret_key(settings) == first
    assert (settings.data_dir / "secret_key").stat().st_mode & 0o777 == 0o600


def test_filters_write_jalali_dates_and_persian_digits() -> None:
    from datetime import UTC, date, datetime
    from zoneinfo import ZoneInfo

    from web.format import fa_num, jdate, jdatetime_text

    tehran = ZoneInfo("Asia/Tehran")
    assert jdate(date(2026, 11, 29), tehran) == "۱۴۰۵/۰۹/۰۸"
    assert jdatetime_text(datetime(2026, 11, 29, 20, 45, tzinfo=UTC), tehran) == "۱۴۰۵/۰۹/۰۹ ۰۰:۱۵"
    assert fa_num(1234567) == "۱٬۲۳۴٬۵۶۷"
    assert fa_num(81.25) == "۸۱٫۲"
