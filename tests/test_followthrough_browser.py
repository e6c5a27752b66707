"""Follow-through pages in a real headless Chromium: an inspector's photo upload, the scorecard's chart."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from ivr.followthrough.inspections import sample_for_inspection
from ivr.models import FieldCheck, Reminder, User, utcnow
from ivr.services.users import hash_password
from tests.conftest import browser_login
from tests.fakes import photo_bytes
from tests.test_followthrough import answer, make_request, make_unit

pytestmark = pytest.mark.slow
PASSWORD = "a long password"


def _sign_in(page, live_server, username: str, role: str, unit_id: int | None = None) -> None:
    with live_server.session_factory() as session:
        session.add(User(username=username, full_name=f"کاربر {username}", role=role, unit_id=unit_id,
                         password_hash=hash_password(PASSWORD)))
        session.commit()
    browser_login(page, live_server, username, PASSWORD)


def test_browser_inspector_fails_a_check_with_a_photo(page, live_server, tmp_path: Path) -> None:
    now = utcnow()
    with live_server.session_factory() as s:
        unit = make_unit(s, "asphalt")
        msg, ref = make_request(s, unit, referred_at=now - timedelta(days=3), due_at=now + timedelta(days=3))
        reply = answer(s, msg, ref, now - timedelta(days=1))
        check = sample_for_inspection(s, reply.id, live_server.settings.with_(inspection_share=1.0), now)
        s.commit()
        check_id, msg_id = check.id, msg.id
    photo = tmp_path / "site.jpg"
    photo.write_bytes(photo_bytes((32, 24), "JPEG"))

    _sign_in(page, live_server, "inspector1", "inspector")
    page.click("text=بازرسی میدانی")
    form = page.locator(f"#check-{check_id} form")
    form.locator("input[value=failed]").check()
    form.locator("textarea").fill("چاله هنوز هست")
    form.locator("input[type=file]").set_input_files(str(photo))
    form.locator("button[type=submit]").click()
    page.wait_for_selector("text=نتیجه بازرسی ثبت شد")
    assert "رد شد؛ تذکر به واحد" in page.inner_text(f"#check-{check_id}")
    with live_server.session_factory() as s:
        done = s.get(FieldCheck, check_id)
        assert (done.status, done.note) == ("failed", "چاله هنوز هست")
        assert (live_server.settings.inspection_photos_dir / done.photo_path).read_bytes() == photo.read_bytes()
        assert s.scalars(select(Reminder.reason).where(Reminder.message_id == msg_id)).all() == ["field_check_failed"]


def test_browser_manager_sees_the_trend_chart(page, live_server) -> None:
    now = utcnow()
    with live_server.session_factory() as s:
        unit = make_unit(s, "parks")
        msg, ref = make_request(s, unit, referred_at=now - timedelta(hours=2), due_at=now + timedelta(days=3))
        answer(s, msg, ref, now - timedelta(hours=1))
        s.commit()
        unit_id = unit.id
    _sign_in(page, live_server, "manager1", "manager", unit_id)
    page.click("text=ارزیابی عملکرد")
    page.wait_for_selector("#trend-chart")
    # The chart is drawn by a script that may still be running when the canvas appears.
    page.wait_for_function("() => window.Chart && !!Chart.getChart(document.getElementById('trend-chart'))")
    assert page.evaluate("typeof Chart") == "function"
    assert page.evaluate("Chart.getChart(document.getElementById('trend-chart')).data.datasets[0].data.length") == 6
    rows = [row.split("\t")[1:] for row in page.locator("#trend tbody tr").all_inner_texts()]
    # received 1, answered 1, on time 100 %, 1 hour, no reminder, none overdue, no feedback, 0 % not referred,
    # 40 × 1 + 30 × 0.5 + 30 × (1 − 1/168) = 84.8
    assert ["۱", "۱", "۱۰۰٪", "۱", "۰", "۰", "—", "۰٪", "۸۴٫۸"] in rows
