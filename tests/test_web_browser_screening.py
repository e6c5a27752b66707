"""Screening in a real headless Chromium: sign in, open the queue, claim, classify, refer; the DB has the referral."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from ivr.models import AuditEntry, Message, Referral, User, utcnow
from ivr.services.users import hash_password
from tests.conftest import browser_login
from tests.console_data import seed

pytestmark = pytest.mark.slow


def test_browser_operator_claims_classifies_and_refers_a_message(page, live_server) -> None:
    with live_server.session_factory() as session:
        s = seed(session)
        # Recent messages, so the referral's due date is in the future.
        for offset, message_id in enumerate(s.messages):
            msg = session.get(Message, message_id)
            msg.created_at = utcnow() - timedelta(hours=3 - offset)
        session.add(User(username="neda", full_name="ندا کارشناس", role="operator",
                         password_hash=hash_password("a long password")))
        session.commit()
    browser_login(page, live_server, "neda", "a long password")
    page.click("text=پالایش پیام‌ها")
    page.wait_for_url(live_server.url + "/screening/")
    rows = page.locator("table.queue tbody tr")
    assert rows.count() == 3
    assert "۱۰۰۰۰۰۰۱۶" in rows.nth(0).inner_text()  # oldest first
    rows.nth(0).locator("button.claim").click()
    page.wait_for_url(live_server.url + f"/screening/{s.messages[0]}")
    page.select_option("#kind", "complaint")
    page.select_option("#topic_id", str(s.topic_1888))
    assert page.input_value("#unit_id") == str(s.unit_a)  # the topic proposes its unit
    page.select_option("#district", "5")
    page.fill("#summary", "برخورد نامناسب کارمند باجه")
    page.check("input[name=decision][value=refer]")
    page.click("#classify button[type=submit]")
    page.wait_for_url(live_server.url + "/screening/")
    assert "پیام ۱۰۰۰۰۰۰۱۶ ارجاع شد." in page.inner_text("main")
    assert page.locator("table.queue tbody tr").count() == 2
    with live_server.session_factory() as session:
        referral = session.scalars(select(Referral)).one()
        msg = session.get(Message, s.messages[0])
        assert (referral.message_id, referral.unit_id, referral.manager_id) == (msg.id, s.unit_a, s.manager_a)
        assert referral.due_at > utcnow()
        assert (msg.status, msg.district, msg.summary) == ("referred", 5, "برخورد نامناسب کارمند باجه")
        actions = session.scalars(select(AuditEntry.action).where(AuditEntry.object_type == "message")).all()
        assert actions == ["claim", "claim", "refer"]


def test_browser_duplicate_suggestion_fills_the_original(page, live_server) -> None:
    with live_server.session_factory() as session:
        s = seed(session)
        session.add(User(username="omid", full_name="امید", role="supervisor",
                         password_hash=hash_password("a long password")))
        session.commit()
    browser_login(page, live_server, "omid", "a long password")
    page.goto(f"/screening/{s.messages[2]}")
    page.click("#claim")
    page.click("button.use-original")
    assert page.input_value("#duplicate_of") == "100000016"
    assert page.input_value("#reason") == "duplicate"
    page.click("#classify button[type=submit]")
    page.wait_for_url(live_server.url + "/screening/")
    with live_server.session_factory() as session:
        msg = session.get(Message, s.messages[2])
        assert (msg.status, msg.not_referred_reason, msg.duplicate_of_id) == ("not_referred", "duplicate", s.messages[0])
