"""Managers' audio inbox: who sees which messages, in what order, and whose numbers are hidden."""
from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ivr.config import Settings
from ivr.infra.storage import AudioStore
from ivr.models import Message, Referral, Reminder, Unit, User, utcnow
from ivr.services.messages import register_message
from tests.conftest import login
from tests.fakes import write_speech_wav
from web.format import fa_digits

CALLER = "09121234567"


def new_unit(session: Session, code: str, name: str | None = None) -> int:
    """A department of its own."""
    unit = Unit(code=code, name=name or f"واحد {code}", kind="department")
    session.add(unit)
    session.flush()
    return unit.id


def referred_message(
    session: Session,
    settings: Settings,
    unit_id: int,
    *,
    line: str = "1888",
    kind: str = "complaint",
    caller: str = CALLER,
    due_in: timedelta = timedelta(days=5),
    seconds: float = 2.0,
) -> Message:
    """A voice message already screened and referred to `unit_id` (as screening leaves it)."""
    tmp = settings.data_dir / "fixture-audio"
    stored = AudioStore(settings.recordings_dir).store(write_speech_wav(tmp / f"{utcnow().timestamp()}.wav", seconds))
    msg = register_message(session, line=line, kind=kind, source="phone_voice", caller=caller, audio=stored)
    now = utcnow()
    msg.status, msg.unit_id, msg.screened_at = "referred", unit_id, now
    session.add(Referral(message_id=msg.id, unit_id=unit_id, referred_at=now, due_at=now + due_in))
    session.flush()
    return msg


def user_id(session: Session, username: str) -> int:
    """The id of a console user."""
    return session.scalar(select(User.id).where(User.username == username))


def unit_of(session: Session, username: str) -> int:
    """The unit of a console user."""
    return session.scalar(select(User.unit_id).where(User.username == username))


def shown_phone(page: str, phone: str = CALLER) -> bool:
    """Is the number on the page, in Latin or Persian digits?"""
    return phone in page or fa_digits(phone) in page


@pytest.fixture
def two_units(session_factory: sessionmaker[Session], settings: Settings, make_user) -> dict[str, object]:
    """Two managers of two units, each unit with one referred complaint."""
    mine, _ = make_user("manager")
    other, _ = make_user("manager")
    with session_factory() as s:
        a = referred_message(s, settings, unit_of(s, mine))
        b = referred_message(s, settings, unit_of(s, other), caller="09350001122")
        s.commit()
        return {"mine": mine, "other": other, "msg_a": a.id, "code_a": a.tracking_code,
                "msg_b": b.id, "code_b": b.tracking_code, "unit_a": a.unit_id, "unit_b": b.unit_id,
                "rec_a": a.recordings[0].id, "rec_b": b.recordings[0].id}


# ---- permissions --------------------------------------------------------------------------

EXPECTED_ROLES = {
    "inbox.index": ("manager", "supervisor"),
    "inbox.message": ("manager", "supervisor"),
    "inbox.reply": ("manager",),
    "audit_log.index": ("supervisor", "admin"),
    "audio.play": ("operator", "manager", "supervisor", "inspector", "analyst", "admin"),
}


def test_inbox_views_each_declare_their_roles(app) -> None:
    declared = {
        name: getattr(fn, "allowed_roles", None)
        for name, fn in app.view_functions.items()
        if name.split(".")[0] in ("inbox", "audit_log", "audio")
    }
    assert declared == EXPECTED_ROLES


@pytest.mark.parametrize("role", ["operator", "manager", "supervisor", "inspector", "analyst", "admin"])
def test_inbox_pages_open_only_to_their_roles(client, make_user, role: str, two_units) -> None:
    name, password = make_user(role)
    login(client, name, password)
    for endpoint, url in (
        ("inbox.index", "/inbox/"),
        ("audit_log.index", "/audit/"),
    ):
        expected = 200 if role in EXPECTED_ROLES[endpoint] else 403
        assert client.get(url).status_code == expected, (role, url)


@pytest.mark.parametrize("url", ["/inbox/", "/inbox/messages/1", "/audit/"])
def test_inbox_pages_anonymous_is_sent_to_login(client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_inbox_reply_anonymous_post_is_sent_to_login(client) -> None:
    # CSRF fires first on a bare POST; with a valid token the login wall answers.
    from tests.conftest import csrf_token

    token = csrf_token(client, "/login")
    response = client.post("/inbox/messages/1/reply", data={"csrf_token": token})
    assert response.status_code == 302 and "/login" in response.headers["Location"]


# ---- isolation -----------------------------------------------------------------------------

def test_inbox_manager_sees_only_own_unit(client, two_units) -> None:
    login(client, two_units["mine"])
    page = client.get("/inbox/").get_data(as_text=True)
    assert fa_digits(two_units["code_a"]) in page
    assert fa_digits(two_units["code_b"]) not in page
    assert client.get(f"/inbox/messages/{two_units['msg_a']}").status_code == 200
    assert client.get(f"/inbox/messages/{two_units['msg_b']}").status_code == 404
    assert client.get("/inbox/messages/999999").status_code == 404


def test_inbox_manager_cannot_pick_another_unit_by_query(client, two_units) -> None:
    login(client, two_units["mine"])
    page = client.get(f"/inbox/?unit={two_units['unit_b']}").get_data(as_text=True)
    assert fa_digits(two_units["code_b"]) not in page and fa_digits(two_units["code_a"]) in page


def test_inbox_supervisor_chooses_unit(client, make_user, two_units) -> None:
    name, password = make_user("supervisor")
    login(client, name, password)
    first = client.get("/inbox/").get_data(as_text=True)
    assert "واحدی را انتخاب کنید" in first and fa_digits(two_units["code_a"]) not in first
    page = client.get(f"/inbox/?unit={two_units['unit_b']}").get_data(as_text=True)
    assert fa_digits(two_units["code_b"]) in page and fa_digits(two_units["code_a"]) not in page
    assert client.get("/inbox/?unit=999999").status_code == 404
    assert client.get(f"/inbox/messages/{two_units['msg_a']}").status_code == 200


def test_inbox_manager_never_sees_complainant_number(client, two_units) -> None:
    login(client, two_units["mine"])
    inbox = client.get("/inbox/").get_data(as_text=True)
    message = client.get(f"/inbox/messages/{two_units['msg_a']}").get_data(as_text=True)
    assert not shown_phone(inbox) and not shown_phone(message)
    assert "محرمانه" in inbox and "محرمانه (شکایت)" in message


def test_inbox_supervisor_sees_complainant_number(client, make_user, two_units) -> None:
    name, password = make_user("supervisor")
    login(client, name, password)
    assert shown_phone(client.get(f"/inbox/?unit={two_units['unit_a']}").get_data(as_text=True))
    assert shown_phone(client.get(f"/inbox/messages/{two_units['msg_a']}").get_data(as_text=True))


def test_inbox_manager_sees_number_on_other_kinds(client, session_factory, settings, make_user) -> None:
    name, password = make_user("manager")
    with session_factory() as s:
        msg = referred_message(s, settings, unit_of(s, name), kind="suggestion")
        s.commit()
    login(client, name, password)
    assert shown_phone(client.get("/inbox/").get_data(as_text=True))
    assert shown_phone(client.get(f"/inbox/messages/{msg.id}").get_data(as_text=True))


# ---- order, due dates, reminders --------------------------------------------------------------

def _codes_in_order(page: str) -> list[str]:
    return re.findall(r'data-message="(\d+)"', page)


def test_inbox_lists_unanswered_first_overdue_marked_with_reminders(client, session_factory, settings, make_user) -> None:
    name, password = make_user("manager")
    with session_factory() as s:
        unit = unit_of(s, name)
        later = referred_message(s, settings, unit, line="137", kind="request", due_in=timedelta(days=9))
        overdue = referred_message(s, settings, unit, line="137", kind="request", due_in=timedelta(days=-2))
        answered = referred_message(s, settings, unit, line="137", kind="request", due_in=timedelta(days=-5))
        answered.status = "answered"
        answered.referrals[0].closed_at = utcnow()
        reopened = referred_message(s, settings, unit, line="137", kind="request", due_in=timedelta(days=3))
        for _ in range(2):
            s.add(Reminder(message_id=reopened.id, unit_id=unit, reason="dissatisfied"))
        s.add(Reminder(message_id=reopened.id, unit_id=unit, reason="dissatisfied", resolved_at=utcnow()))
        s.commit()
        later_due = later.referrals[0].due_at
    login(client, name, password)
    page = client.get("/inbox/").get_data(as_text=True)
    assert _codes_in_order(page) == [str(m.id) for m in (overdue, reopened, later, answered)]
    rows = {m: re.search(rf'<tr class="([^"]*)" data-message="{m}">(.*?)</tr>', page, re.S) for m in
            (overdue.id, reopened.id, later.id, answered.id)}
    assert rows[overdue.id].group(1) == "overdue" and "گذشته" in rows[overdue.id].group(2)
    assert rows[answered.id].group(1) == "" and rows[later.id].group(1) == ""
    assert "۲ تذکر" in rows[reopened.id].group(2) and "تذکر" not in rows[later.id].group(2)
    due = rows[later.id].group(2)
    from web.format import jdate

    assert jdate(later_due, settings.timezone) in due
    only_open = client.get("/inbox/?state=open").get_data(as_text=True)
    assert _codes_in_order(only_open) == [str(m.id) for m in (overdue, reopened, later)]
    only_answered = client.get("/inbox/?state=answered").get_data(as_text=True)
    assert _codes_in_order(only_answered) == [str(answered.id)]


def test_inbox_rereferred_message_leaves_the_first_unit(client, session_factory, settings, make_user) -> None:
    first, password = make_user("manager")
    second, _ = make_user("manager")
    with session_factory() as s:
        msg = referred_message(s, settings, unit_of(s, first), kind="criticism")
        now = utcnow()
        s.add(Referral(message_id=msg.id, unit_id=unit_of(s, second), referred_at=now, due_at=now + timedelta(days=3)))
        s.commit()
    login(client, first, password)
    assert _codes_in_order(client.get("/inbox/").get_data(as_text=True)) == []
    assert client.get(f"/inbox/messages/{msg.id}").status_code == 404


def test_inbox_paginates(client, session_factory, settings, make_user) -> None:
    from ivr.services import inbox as inbox_service

    name, password = make_user("manager")
    with session_factory() as s:
        unit = unit_of(s, name)
        ids = [referred_message(s, settings, unit, kind="suggestion", due_in=timedelta(days=i + 1)).id for i in range(3)]
        s.commit()
        viewer = inbox_service.Viewer(user_id(s, name), "manager", unit)
        page2 = inbox_service.list_inbox(s, viewer, page=2, per_page=2)
    assert (page2.total, page2.pages, page2.page, [i.message_id for i in page2.items]) == (3, 2, 2, [ids[2]])
    assert (page2.has_next, page2.more, page2.open_total) == (False, False, 3)
    page1 = inbox_service.list_inbox(s, viewer, page=1, per_page=2)
    assert [i.message_id for i in page1.items] == ids[:2] and page1.has_next


def test_inbox_counts_stop_at_the_cap_and_pages_still_follow(session_factory, settings, make_user, monkeypatch) -> None:
    from ivr.services import inbox as inbox_service

    monkeypatch.setattr(inbox_service, "COUNT_CAP", 3)
    name, _ = make_user("manager")
    with session_factory() as s:
        unit = unit_of(s, name)
        waiting = [referred_message(s, settings, unit, kind="suggestion", due_in=timedelta(days=i + 1)).id
                   for i in range(5)]
        done = []
        for i in range(2):
            msg = referred_message(s, settings, unit, kind="criticism")
            msg.status = "answered"
            msg.referrals[0].closed_at = utcnow() + timedelta(minutes=i)
            done.append(msg.id)
        s.flush()
        viewer = inbox_service.Viewer(user_id(s, name), "manager", unit)
        pages = [inbox_service.list_inbox(s, viewer, page=p, per_page=2) for p in (1, 2, 3, 4)]
        s.rollback()
    assert [[i.message_id for i in p.items] for p in pages] == [waiting[:2], waiting[2:4], [waiting[4], done[1]], [done[0]]]
    assert [p.has_next for p in pages] == [True, True, True, False]
    assert (pages[0].total, pages[0].more, pages[0].open_total, pages[0].open_more, pages[0].pages) == (3, True, 3, True, None)


def test_inbox_audio_player_on_each_row(client, two_units) -> None:
    login(client, two_units["mine"])
    page = client.get("/inbox/").get_data(as_text=True)
    (src,) = re.findall(r'<audio controls preload="none" src="(/audio/[^"]+)"', page)
    response = client.get(src)
    assert response.status_code == 200 and response.data[:4] == b"RIFF"
    assert response.mimetype == "audio/wav"
    response.close()


def test_inbox_fixture_files_are_real(settings: Settings, session_factory, two_units) -> None:
    with session_factory() as s:
        msg = s.get(Message, two_units["msg_a"])
        path = AudioStore(settings.recordings_dir).path_of(msg.recordings[0].path)
    assert isinstance(path, Path) and path.is_file()
