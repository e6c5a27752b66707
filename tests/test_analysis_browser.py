"""The analysis desk in a real headless Chromium: every chart drawn from its table, Jalali axes, print."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from ivr.analysis import dashboard as d
from ivr.analysis.generator import generate
from ivr.demo import load_demo
from ivr.identifiers import persian_digits
from ivr.models import User
from ivr.services.users import hash_password
from tests.conftest import browser_login

pytestmark = pytest.mark.slow
PASSWORD = "a long password"
CHARTS = (
    "chart-calls-daily",
    "chart-calls-outcomes",
    "chart-calls-keys",
    "chart-funnel",
    "chart-breakdown-kind",
    "chart-breakdown-topic",
    "chart-breakdown-district",
    "chart-breakdown-unit",
)


def test_browser_analyst_sees_every_chart_with_its_numbers(page, live_server) -> None:
    today = datetime.now(live_server.settings.timezone).date()
    with live_server.session_factory() as s:
        generate(s, calls=3000, messages=300, days=60, end=today + timedelta(days=1), seed=3,
                 load_city=lambda s: load_demo(s, calls=0, messages=0))
        s.add(User(username="desk-analyst", full_name="تحلیلگر", role="analyst", password_hash=hash_password(PASSWORD)))
        s.commit()
        funnel = d.message_funnel(s, d.parse_filters({}, today)).rows[0]
    errors: list[str] = []
    # Chromium's own favicon request fails (the console has none) and says so without a URL:
    # page resources are checked through their responses instead.
    page.on(
        "console",
        lambda m: errors.append(m.text)
        if m.type == "error" and not m.text.startswith("Failed to load resource")
        else None,
    )
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(r.url) if r.status >= 400 else None)
    browser_login(page, live_server, "desk-analyst", PASSWORD)
    page.click("text=میز تحلیل")
    page.wait_for_selector("#chart-funnel")
    page.wait_for_load_state("load")  # the charts are drawn by scripts that run before `load`
    for chart in CHARTS:
        assert page.evaluate(f"!!Chart.getChart(document.getElementById('{chart}'))"), chart
    labels = page.evaluate("Chart.getChart(document.getElementById('chart-calls-daily')).data.labels")
    assert len(labels) == 30 and labels[-1] == persian_digits(d.jalali(today))
    bars = page.evaluate("Chart.getChart(document.getElementById('chart-funnel')).data.datasets[0].data")
    assert bars[:2] == [funnel["registered"], funnel["referred"]] and funnel["registered"] > 50
    assert errors == []
    page.emulate_media(media="print")
    assert page.evaluate("getComputedStyle(document.querySelector('figure')).display") == "none"
    assert page.evaluate("getComputedStyle(document.querySelector('.topbar')).display") == "none"
    assert page.evaluate("getComputedStyle(document.getElementById('table-funnel')).display") == "table"
