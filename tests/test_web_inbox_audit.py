"""The audit log viewer: filters by user, action and Jalali day; pages; supervisors and admins only."""
from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from ivr.models import AuditEntry
from tests.conftest import login
from tests.test_web_inbox import user_id
from web.audit_log import parse_jalali


@pytest.fixture
def logged(session_factory, make_user) -> dict[str, int]:
    """A supervisor signed-in later, plus entries by two users on two days (Tehran time)."""
    ali, _ = make_user("operator", username="ali")
    mina, _ = make_user("manager", username="mina")
    with session_factory() as s:
        ids = {"ali": user_id(s, ali), "mina": user_id(s, mina)}
        # 1405/09/07 is 2026-11-28; 23:00 UTC on the 27th is already the 28th in Tehran (UTC+3:30).
        for who, action, when in (
            ("ali", "listen", datetime(2026, 11, 27, 23, 0, tzinfo=UTC)),
            ("ali", "refer", datetime(2026, 11, 28, 10, 0, tzinfo=UTC)),
            ("mina", "answer", datetime(2026, 11, 29, 9, 0, tzinfo=UTC)),
            ("mina", "listen", datetime(2026, 11, 29, 9, 5, tzinfo=UTC)),
        ):
            s.add(AuditEntry(user_id=ids[who], action=action, object_type="message", object_id=7, created_at=when))
        s.commit()
    return ids


def _rows(page: str) -> list[str]:
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip() for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def test_audit_viewer_filters_by_user_action_and_jalali_days(client, make_user, logged) -> None:
    name, password = make_user("supervisor")
    login(client, name, password)
    everything = _rows(client.get("/audit/").get_data(as_text=True))
    actions = [re.findall(r"<td>([^<]*)</td>", row) for row in re.findall(
        r"<tr>(.*?)</tr>", client.get("/audit/").get_data(as_text=True).split("<tbody>", 1)[1], re.S)]
    assert [cells[1] for cells in actions] == ["ورود", "شنیدن", "پاسخ", "ارجاع", "شنیدن"]  # newest first
    assert len(everything) == 5  # four entries and the supervisor's own sign-in
    by_user = _rows(client.get(f"/audit/?user={logged['mina']}").get_data(as_text=True))
    assert len(by_user) == 2 and all("mina" in r for r in by_user)
    listens = _rows(client.get("/audit/?action=listen").get_data(as_text=True))
    assert len(listens) == 2 and all("شنیدن" in r for r in listens)
    day = _rows(client.get("/audit/?since=۱۴۰۵/۰۹/۰۷&until=۱۴۰۵/۰۹/۰۷").get_data(as_text=True))
    assert len(day) == 2 and all("۱۴۰۵/۰۹/۰۷" in r for r in day)
    assert "ارجاع" in day[0] and "شنیدن" in day[1]  # newest first


def test_audit_viewer_bad_date_is_said_and_ignored(client, make_user, logged) -> None:
    name, password = make_user("admin")
    login(client, name, password)
    page = client.get("/audit/?since=۱۴۰۵/۱۳/۴۰").get_data(as_text=True)
    assert "تاریخ «۱۴۰۵/۱۳/۴۰» درست نیست" in page and len(_rows(page)) == 5


def test_audit_viewer_paginates(client, session_factory, make_user) -> None:
    name, password = make_user("supervisor")
    with session_factory() as s:
        for i in range(60):
            s.add(AuditEntry(action="listen", object_type="message", object_id=i))
        s.commit()
    login(client, name, password)
    first = client.get("/audit/?action=listen").get_data(as_text=True)
    second = client.get("/audit/?action=listen&page=2").get_data(as_text=True)
    assert len(_rows(first)) == 50 and len(_rows(second)) == 10
    assert "صفحه ۱ از ۲" in first and 'href="/audit/?page=2&amp;action=listen"' in first


def test_parse_jalali_accepts_persian_and_latin_digits() -> None:
    assert parse_jalali("۱۴۰۵/۰۹/۰۸") == datetime(2026, 11, 29).date()
    assert parse_jalali("1405-09-08") == datetime(2026, 11, 29).date()
    assert parse_jalali("1405/13/01") is None and parse_jalali("") is None and parse_jalali("abc") is None
