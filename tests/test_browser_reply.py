"""A manager records a spoken reply in a real headless Chromium (fake microphone) and sends it."""
from __future__ import annotations

import wave

import pytest
from sqlalchemy import select

from ivr.identifiers import persian_digits
from ivr.infra.storage import AudioStore, has_speech
from ivr.models import Message, Reply, Unit, User
from ivr.services.users import hash_password
from tests.conftest import browser_login
from tests.test_web_inbox import referred_message

pytestmark = pytest.mark.slow


def test_browser_manager_records_and_sends_a_spoken_reply(page, live_server) -> None:
    with live_server.session_factory() as s:
        unit = Unit(code="district-07", name="شهرداری منطقه ۷", kind="district_office", district=7)
        s.add(unit)
        s.flush()
        s.add(User(username="reza", full_name="رضا کریمی", role="manager", unit_id=unit.id,
                   password_hash=hash_password("a long password")))
        msg = referred_message(s, live_server.settings, unit.id, line="137", kind="request")
        s.commit()
        message_id, code = msg.id, msg.tracking_code

    browser_login(page, live_server, "reza", "a long password")
    page.click("text=صندوق صوتی")
    page.click(f"a[href='/inbox/messages/{message_id}']")
    assert page.locator("h1").inner_text().endswith(persian_digits(code))
    # The message plays in the page (its audio is served to this manager).
    assert page.evaluate(
        """() => new Promise((ok) => { const a = document.querySelector('audio.message-audio');
             a.oncanplay = () => ok(a.duration); a.onerror = () => ok(-1); a.load(); })"""
    ) == pytest.approx(2.0, abs=0.1)

    # Record, listen, record again, send.
    page.click("#rec-start")
    page.wait_for_timeout(1500)
    page.click("#rec-stop")
    page.wait_for_selector("#rec-preview:not([hidden])")
    page.click("#rec-again")
    page.wait_for_selector("#rec-stop:not([disabled])")
    page.wait_for_timeout(4000)
    page.click("#rec-stop")
    page.wait_for_selector("#rec-preview:not([hidden])")
    assert page.evaluate("document.getElementById('audio').files.length") == 1
    page.fill("#text", "تیم فنی فردا اعزام می‌شود")
    page.click("#reply-send")
    page.wait_for_selector("text=پاسخ صوتی فرستاده شد")
    assert page.locator("audio.reply-audio").count() == 1

    with live_server.session_factory() as s:
        (reply,) = s.scalars(select(Reply).where(Reply.message_id == message_id)).all()
        assert reply.text == "تیم فنی فردا اعزام می‌شود"
        assert s.get(Message, message_id).status == "answered"
        phone = next(r for r in reply.recordings if r.format == "wav")
        path = AudioStore(live_server.settings.recordings_dir).path_of(phone.path)
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        seconds = w.getnframes() / w.getframerate()
    assert 3.0 <= seconds <= 6.0  # the second take only
    assert has_speech(path)
