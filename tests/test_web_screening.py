"""Screening pages: the queue, claiming (409 on a conflict), classifying with CSRF, typed messages."""
from __future__ import annotations

import re

from sqlalchemy import select

from ivr.identifiers import persian_digits
from ivr.models import Message, Referral, User
from tests.conftest import csrf_token, login
from tests.console_data import seed_committed


def _user_id(session_factory, username: str) -> int:
    with session_factory() as session:
        return session.scalars(select(User.id).where(User.username == username)).one()


def test_screening_queue_shows_messages_oldest_first_in_persian(client, make_user, session_factory) -> None:
    s = seed_committed(session_factory)
    login(client, *make_user("operator"))
    page = client.get("/screening/").get_data(as_text=True)
    assert "صف پالایش" in page and "۳ پیام" in page
    assert page.index("۱۰۰۰۰۰۰۱۶") < page.index("۲۰۰۰۰۰۰۱۵") < page.index("۳۰۰۰۰۰۰۱۹")
    assert "۰۹۱۲۱۲۳۴۵۶۷" in page and "۱:۰۵" in page and "شکایت" in page and "۱۸۸۸" in page
    assert "۱۴۰۵/۰۹/۰۷ ۰۸:۳۰" in page  # T0 - 5 h in Tehran, Jalali
    assert f'action="/screening/{s.messages[0]}/claim"' in page


def test_screening_claim_then_second_operator_gets_a_409_in_persian(app, make_user, session_factory) -> None:
    s = seed_committed(session_factory)
    first, second = app.test_client(), app.test_client()
    user_a, _ = make_user("operator")
    login(first, user_a)
    login(second, make_user("operator")[0])
    token = csrf_token(first, "/screening/")
    resp = first.post(f"/screening/{s.messages[0]}/claim", data={"csrf_token": token})
    assert resp.status_code == 302 and resp.headers["Location"] == f"/screening/{s.messages[0]}"
    page = first.get(f"/screening/{s.messages[0]}").get_data(as_text=True)
    assert 'id="classify"' in page
    resp = second.post(f"/screening/{s.messages[0]}/claim", data={"csrf_token": csrf_token(second, "/screening/")})
    assert resp.status_code == 409
    assert f"این پیام را کاربر {user_a} در دست بررسی دارد" in resp.get_data(as_text=True)
    queue = second.get("/screening/").get_data(as_text=True)
    assert f"در دست کاربر {user_a}" in queue
    detail = second.get(f"/screening/{s.messages[0]}").get_data(as_text=True)
    assert f"این پیام را کاربر {user_a} تا " in detail and 'id="classify"' not in detail
    with session_factory() as session:
        assert session.get(Message, s.messages[0]).claimed_by_id == _user_id(session_factory, user_a)


def test_screening_classify_refers_and_flashes_the_tracking_code(client, make_user, session_factory) -> None:
    s = seed_committed(session_factory)
    login(client, make_user("operator")[0])
    token = csrf_token(client, "/screening/")
    client.post(f"/screening/{s.messages[0]}/claim", data={"csrf_token": token})
    resp = client.post(f"/screening/{s.messages[0]}/classify", data={
        "csrf_token": token, "decision": "refer", "kind": "complaint", "topic_id": str(s.topic_1888),
        "district": "۵", "unit_id": str(s.unit_a), "summary": "برخورد نامناسب",
    })
    assert resp.status_code == 302 and resp.headers["Location"] == "/screening/"
    assert "پیام ۱۰۰۰۰۰۰۱۶ ارجاع شد." in client.get("/screening/").get_data(as_text=True)
    with session_factory() as session:
        msg = session.get(Message, s.messages[0])
        assert (msg.status, msg.district, msg.unit_id) == ("referred", 5, s.unit_a)
        assert session.scalars(select(Referral.manager_id)).all() == [s.manager_a]


def test_screening_classify_without_csrf_is_rejected_and_nothing_changes(client, make_user, session_factory) -> None:
    s = seed_committed(session_factory)
    login(client, make_user("operator")[0])
    resp = client.post(f"/screening/{s.messages[0]}/classify", data={
        "decision": "refer", "kind": "complaint", "topic_id": str(s.topic_1888), "unit_id": str(s.unit_a),
        "summary": "x",
    })
    assert resp.status_code == 400 and "برگه منقضی شده است" in resp.get_data(as_text=True)
    with session_factory() as session:
        assert session.get(Message, s.messages[0]).status == "new"


def test_screening_claim_without_csrf_is_rejected(client, make_user, session_factory) -> None:
    s = seed_committed(session_factory)
    login(client, make_user("operator")[0])
    assert client.post(f"/screening/{s.messages[0]}/claim").status_code == 400
    with session_factory() as session:
        assert session.get(Message, s.messages[0]).claimed_by_id is None


def test_screening_classify_bad_input_shows_the_error_and_keeps_the_form(client, make_user, session_factory) -> None:
    s = seed_committed(session_factory)
    login(client, make_user("operator")[0])
    token = csrf_token(client, "/screening/")
    client.post(f"/screening/{s.messages[0]}/claim", data={"csrf_token": token})
    resp = client.post(f"/screening/{s.messages[0]}/classify", data={
        "csrf_token": token, "decision": "refer", "kind": "complaint", "topic_id": str(s.topic_1888),
        "unit_id": "", "summary": "خلاصه‌ای که نباید گم شود",
    })
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "برای ارجاع، واحد مربوط را انتخاب کنید." in page and "خلاصه‌ای که نباید گم شود" in page
    bad_number = client.post(f"/screening/{s.messages[0]}/classify", data={"csrf_token": token, "district": "abc"})
    assert bad_number.status_code == 400
    with session_factory() as session:
        assert session.get(Message, s.messages[0]).status == "new"


def test_screening_message_page_suggests_originals_and_links_the_window(client, make_user, session_factory) -> None:
    s = seed_committed(session_factory)
    login(client, make_user("supervisor")[0])
    page = client.get(f"/screening/{s.messages[2]}").get_data(as_text=True)
    assert 'id="suggestions"' in page and "۱۰۰۰۰۰۰۱۶" in page and "همان تماس‌گیرنده" in page
    assert "/window/?phone=09121234567" in page
    assert "۱۴ روز" in page
    assert client.get("/screening/999999").status_code == 404


def test_screening_release_returns_the_message_to_the_queue(client, make_user, session_factory) -> None:
    s = seed_committed(session_factory)
    login(client, make_user("operator")[0])
    token = csrf_token(client, "/screening/")
    client.post(f"/screening/{s.messages[0]}/claim", data={"csrf_token": token})
    assert client.post(f"/screening/{s.messages[0]}/release", data={"csrf_token": token}).status_code == 302
    with session_factory() as session:
        assert session.get(Message, s.messages[0]).claimed_by_id is None


def test_typed_message_form_registers_and_shows_the_code_in_persian_digits(client, make_user, session_factory) -> None:
    s = seed_committed(session_factory)
    login(client, make_user("operator")[0])
    token = csrf_token(client, "/screening/typed")
    resp = client.post("/screening/typed", data={
        "csrf_token": token, "line": "137", "kind": "request", "caller": "۰۹۱۲۷۶۵۴۳۲۱", "topic_id": str(s.topic_137),
        "district": "5", "unit_id": "", "summary": "", "body": "آب‌گرفتگی کوچه",
    })
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "پیام ثبت شد" in page
    shown = re.search(r'id="tracking-code"[^>]*>([۰-۹]{9})<', page).group(1)
    with session_factory() as session:
        msg = session.scalars(select(Message).where(Message.source == "operator")).one()
        assert shown == persian_digits(msg.tracking_code)
        assert (msg.body, msg.citizen.phone, msg.status) == ("آب‌گرفتگی کوچه", "09127654321", "new")


def test_typed_message_bad_phone_keeps_the_text_and_registers_nothing(client, make_user, session_factory) -> None:
    seed_committed(session_factory)
    login(client, make_user("operator")[0])
    token = csrf_token(client, "/screening/typed")
    resp = client.post("/screening/typed", data={
        "csrf_token": token, "line": "137", "kind": "request", "caller": "نامعلوم", "body": "متنی که بماند",
    })
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "شماره تماس شهروند درست نیست." in page and "متنی که بماند" in page
    with session_factory() as session:
        assert session.scalars(select(Message).where(Message.source == "operator")).all() == []
    assert client.post("/screening/typed", data={"line": "137"}).status_code == 400  # no CSRF token


def test_screening_queue_without_the_inbox_audio_endpoint_shows_no_player(client, make_user, session_factory) -> None:
    seed_committed(session_factory)
    login(client, make_user("operator")[0])
    page = client.get("/screening/").get_data(as_text=True)
    assert ("<audio" in page) == ("audio.play" in client.application.view_functions)


def test_screening_queue_plays_audio_once_the_inbox_audio_endpoint_exists(
    settings, session_factory, jobs, make_user, monkeypatch
) -> None:
    import sys
    import types

    from web import create_app

    s = seed_committed(session_factory)
    app = create_app(settings, session_factory=session_factory, jobs=jobs, config={"TESTING": True})
    if "audio.play" not in app.view_functions:  # before the inbox branch is merged: a stand-in endpoint
        monkeypatch.setitem(sys.modules, "web.audio", types.SimpleNamespace(audio_token=lambda rid: f"signed-{rid}"))
        app.add_url_rule("/audio/<token>", endpoint="audio.play", view_func=lambda token: "")
    client = app.test_client()
    login(client, make_user("operator")[0])
    page = client.get("/screening/").get_data(as_text=True)
    assert page.count("<audio") == 1  # only the first message has a recording
    row = page.split(f'id="m{s.messages[0]}"')[1].split("</tr>")[0]
    assert re.search(r'<audio controls preload="none" src="/[^"]+">', row)
