"""The Content-Security-Policy in a real headless Chromium: the console's own pages (charts, recording a
reply, the month picker, the print button) work with no inline script and report no violation."""
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from ivr.models import Unit, User, utcnow
from ivr.services.users import hash_password
from tests.conftest import browser_login
from tests.test_followthrough import answer, make_request, make_unit
from tests.test_web_inbox import referred_message

pytestmark = pytest.mark.slow
PASSWORD = "a long password"
# Every CSP violation the page reports, gathered before any page script runs; print() only noted.
WATCH = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline')));
window.print = () => { window.__printed = true; };
"""


def _watch(page) -> list[str]:
    messages: list[str] = []
    page.add_init_script(WATCH)
    page.on("console", lambda m: messages.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda e: messages.append(str(e)))
    return messages


def _shot(page, name: str) -> None:
    folder = os.environ.get("IVR_TEST_SCREENSHOTS")  # set it to look at the pages after a change
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def test_browser_csp_scorecard_chart_and_month_picker_work(page, live_server) -> None:
    now = utcnow()
    with live_server.session_factory() as s:
        unit = make_unit(s, "parks")
        msg, ref = make_request(s, unit, referred_at=now - timedelta(hours=2), due_at=now + timedelta(days=3))
        answer(s, msg, ref, now - timedelta(hours=1))
        s.add(User(username="manager1", full_name="مدیر", role="manager", unit_id=unit.id,
                   password_hash=hash_password(PASSWORD)))
        s.commit()
    problems = _watch(page)
    browser_login(page, live_server, "manager1", PASSWORD)
    page.click("text=ارزیابی عملکرد")
    page.wait_for_selector("#trend-chart")
    # The chart is drawn by a script that may still be running when the canvas appears.
    page.wait_for_function("() => window.Chart && !!Chart.getChart(document.getElementById('trend-chart'))")
    assert page.evaluate("!!Chart.getChart(document.getElementById('trend-chart'))")
    _shot(page, "scorecard")
    other = page.evaluate("document.querySelectorAll('#month option')[1].value")
    with page.expect_navigation():
        page.select_option("#month", other)  # submitted by console.js, not an inline onchange
    assert f"month={other}" in page.url
    assert page.evaluate("window.__csp") == [] and problems == []


def test_browser_csp_report_print_button_works(page, live_server) -> None:
    with live_server.session_factory() as s:
        s.add(User(username="analyst1", full_name="تحلیلگر", role="analyst", password_hash=hash_password(PASSWORD)))
        s.commit()
    problems = _watch(page)
    browser_login(page, live_server, "analyst1", PASSWORD)
    page.goto("/analysis/report")
    page.click("button[data-print]")
    assert page.evaluate("window.__printed") is True
    assert page.evaluate("window.__csp") == [] and problems == []


def test_browser_csp_recording_a_reply_works(page, live_server) -> None:
    with live_server.session_factory() as s:
        unit = Unit(code="district-07", name="شهرداری منطقه ۷", kind="district_office", district=7)
        s.add(unit)
        s.flush()
        s.add(User(username="reza", full_name="رضا کریمی", role="manager", unit_id=unit.id,
                   password_hash=hash_password(PASSWORD)))
        msg = referred_message(s, live_server.settings, unit.id, line="137", kind="request")
        s.commit()
        message_id = msg.id
    problems = _watch(page)
    browser_login(page, live_server, "reza", PASSWORD)
    page.goto(f"/inbox/messages/{message_id}")
    page.click("#rec-start")
    page.wait_for_timeout(1500)
    page.click("#rec-stop")
    page.wait_for_selector("#rec-preview:not([hidden])")  # the preview plays a blob: URL (media-src)
    assert page.evaluate("document.getElementById('audio').files.length") == 1
    _shot(page, "reply")
    assert page.evaluate("window.__csp") == [] and problems == []
