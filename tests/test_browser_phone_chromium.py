"""The test phone in a real headless Chromium (fake microphone): leave a 1888 message and read the code."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from ivr.identifiers import is_valid_tracking_code
from ivr.models import Call, Message, User
from ivr.services.users import hash_password
from tests.conftest import browser_login

pytestmark = pytest.mark.slow


def act(page, key: str, then: str, *, click: bool = False) -> None:
    """Press `key` (keyboard or keypad) and wait until the call is at a new step that asks for `then`."""
    n = page.get_attribute("#phone", "data-n")
    if click:
        page.click(f"#phone-keypad .key[data-key='{key}']")
    else:
        page.keyboard.press(key)
    page.wait_for_selector(f"#phone[data-do='{then}']:not([data-n='{n}'])")


def test_chromium_phone_leaves_a_1888_message_and_shows_the_tracking_code(page, live_server) -> None:
    with live_server.session_factory() as s:
        s.add(User(username="sara", full_name="سارا احمدی", role="operator", phone="09120000001",
                   password_hash=hash_password("a long password")))
        s.commit()
    browser_login(page, live_server, "sara", "a long password")
    page.click("text=تلفن آزمایشی")
    assert page.input_value("#phone-caller") == "09120000001"  # the user's own number by default
    page.select_option("#phone-line", "1888")
    page.click("#phone-call")
    page.wait_for_selector("#phone[data-do='key']")
    act(page, "1", "key")  # the keyboard's digits are the keypad
    act(page, "3", "record", click=True)
    page.wait_for_selector("#phone-status:has-text('در حال ضبط')")
    page.wait_for_timeout(2500)  # the fake microphone's tone is the caller speaking
    act(page, "#", "key")
    act(page, "1", "key")  # keep the message: the code is read, then the options
    assert "کد رهگیری شما" in page.inner_text("#phone-transcript")
    page.click("#phone-hangup")
    page.wait_for_selector("#phone-status:has-text('تماس را قطع کردید')")

    with live_server.session_factory() as s:
        (row,) = s.scalars(select(Call)).all()
        (msg,) = s.scalars(select(Message)).all()
        assert (row.driver, row.line_code, row.caller_number) == ("test", "1888", "09120000001")
        assert row.outcome == "message_registered" and msg.call_id == row.id and msg.kind == "complaint"
        assert is_valid_tracking_code(msg.tracking_code)
    transcript = page.inner_text("#phone-transcript")
    assert "کد رهگیری شما" in transcript
