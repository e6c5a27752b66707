"""The console in a real headless Chromium: signing in through the page."""
from __future__ import annotations

import pytest

from ivr.models import User
from ivr.services.users import hash_password

pytestmark = pytest.mark.slow


def test_browser_signs_in_and_sees_the_persian_console(page, live_server) -> None:
    with live_server.session_factory() as session:
        session.add(User(username="sara", full_name="سارا احمدی", role="supervisor",
                         password_hash=hash_password("a long password")))
        session.commit()
    page.goto("/")
    assert page.url.endswith("/login?next=%2F")
    page.fill("#username", "sara")
    page.fill("#password", "a long password")
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/")
    assert "سارا احمدی" in page.inner_text("header")
    assert page.evaluate("getComputedStyle(document.body).direction") == "rtl"
    assert page.evaluate("document.fonts.check('16px Vazirmatn')")
