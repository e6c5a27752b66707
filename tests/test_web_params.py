"""Issue 14's bad-input reproductions: each answered a 500 (or stored nonsense) before request parsing was unified."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from ivr.identifiers import persian_digits
from ivr.models import Message, User
from ivr.services.api_tokens import create_token
from tests.conftest import csrf_token, login
from tests.console_data import seed_committed

BIG = "9" * 20  # does not fit a 64-bit integer


def _signed_in(app, make_user, role: str):
    client = app.test_client()
    login(client, make_user(role)[0])
    return client


def _token(session_factory, make_user, role: str) -> dict[str, str]:
    name, _ = make_user(role)
    with session_factory() as session:
        user_id = session.scalars(select(User.id).where(User.username == name)).one()
        plain = create_token(session, user_id, "test")[1]
        session.commit()
    return {"Authorization": f"Bearer {plain}"}


@pytest.mark.parametrize(("role", "url", "status"), [
    ("operator", "/screening/?page=²", 400),
    ("operator", f"/screening/?page={BIG}", 400),
    ("operator", "/screening/?page=-1", 400),
    ("supervisor", "/inbox/?unit=²", 400),
    ("supervisor", f"/inbox/?unit={BIG}", 400),
    ("supervisor", f"/inbox/?unit=1&page={BIG}", 400),
    ("supervisor", "/audit/?user=²", 400),
    ("supervisor", f"/audit/?user={BIG}", 400),
    ("supervisor", "/audit/?page=²", 400),
    ("supervisor", f"/audit/?page={BIG}", 400),
    ("supervisor", "/followthrough/scorecard?unit=²", 400),
    ("supervisor", f"/followthrough/scorecard?unit={BIG}", 400),
    ("supervisor", "/followthrough/scorecard?month=0-01", 400),
    ("supervisor", "/followthrough/scorecard?month=99999-01", 400),
    ("operator", f"/screening/{BIG}", 404),
    ("manager", f"/inbox/messages/{BIG}", 404),
    ("analyst", "/analysis/report?month=0/01", 400),
    ("analyst", "/analysis/report?month=99999/01", 400),
    ("analyst", "/analysis/?from=1/01/01", 400),
    ("analyst", "/analysis/?to=99999/01/01", 400),
    ("analyst", "/analysis/api/funnel?from=0/01/01", 400),
    ("analyst", "/analysis/?from=1300/01/01&to=1499/12/29", 400),
    ("analyst", "/analysis/export/calls-daily.xlsx?from=1300/01/01&to=1499/12/29", 400),
])
def test_hostile_query_values_are_a_clear_4xx_not_a_500(app, make_user, session_factory, role, url, status) -> None:
    seed_committed(session_factory)
    resp = _signed_in(app, make_user, role).get(url)
    assert resp.status_code == status, resp.get_data(as_text=True)[:400]


def test_persian_digits_still_parse_as_numbers(app, make_user, session_factory) -> None:
    seed_committed(session_factory)
    client = _signed_in(app, make_user, "operator")
    assert client.get("/screening/?page=۲").status_code == 200
    assert client.get("/screening/?page=٢").status_code == 200


@pytest.mark.parametrize(("field", "value"), [("district", "²"), ("topic_id", "²"), ("unit_id", BIG), ("district", BIG)])
def test_typed_message_form_with_a_bad_number_is_400_and_stores_nothing(app, make_user, session_factory, field, value) -> None:
    seed = seed_committed(session_factory)
    client = _signed_in(app, make_user, "operator")
    form = {"line": "1888", "kind": "complaint", "caller": "09121112233", "body": "متن", "summary": "خلاصه",
            "topic_id": str(seed.topic_1888), "csrf_token": csrf_token(client, "/screening/typed"), field: value}
    resp = client.post("/screening/typed", data=form)
    assert resp.status_code == 400
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == len(seed.messages)


@pytest.mark.parametrize(("url", "field", "value"), [
    ("/admin/units", "parent_id", "²"),
    ("/admin/units", "district", "²"),
    ("/admin/units", "parent_id", BIG),
    ("/admin/hours", "weekday", "²"),
    ("/admin/hours", "weekday", "9"),
])
def test_admin_forms_with_a_bad_number_are_400(app, make_user, session_factory, url, field, value) -> None:
    client = _signed_in(app, make_user, "admin")
    form = {"code": "x1", "name": "واحد", "kind": "department", "opens": "08:00", "closes": "14:00",
            "csrf_token": csrf_token(client, "/admin/"), field: value}
    assert client.post(url, data=form).status_code == 400


@pytest.mark.parametrize("query", ["limit=²", "offset=²", f"limit={BIG}", f"offset={BIG}", "limit=0", "offset=-1"])
def test_api_queue_bad_paging_is_a_json_400(client, session_factory, make_user, query) -> None:
    seed_committed(session_factory)
    resp = client.get(f"/api/v1/screening/queue?{query}", headers=_token(session_factory, make_user, "operator"))
    assert resp.status_code == 400
    assert resp.get_json()["status"] == 400 and resp.get_json()["error"]


def test_api_twenty_digit_message_id_is_a_json_404(client, session_factory, make_user) -> None:
    headers = _token(session_factory, make_user, "operator")
    for method, url in (("POST", f"/api/v1/messages/{BIG}/release"), ("GET", f"/api/v1/messages/{BIG}"),
                        ("GET", f"/api/v1/messages/{'9' * 400}")):
        resp = client.open(url, method=method, headers=headers)
        assert resp.status_code == 404 and resp.get_json() == {"error": "صفحه‌ای با این نشانی وجود ندارد.", "status": 404}


@pytest.mark.parametrize(("field", "value"), [("caller", "²"), ("caller", "۰۹۱۲²"), ("district", "²"),
                                              ("district", BIG), ("topic_id", "²"), ("district", 10 ** 30)])
def test_api_typed_message_with_non_digits_is_a_json_400(client, session_factory, make_user, field, value) -> None:
    seed = seed_committed(session_factory)
    body = {"line": "1888", "kind": "complaint", "caller": "09121112233", "body": "متن", "summary": "خلاصه",
            "topic_id": seed.topic_1888, field: value}
    resp = client.post("/api/v1/messages", json=body, headers=_token(session_factory, make_user, "operator"))
    assert resp.status_code == 400 and resp.get_json()["status"] == 400
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == len(seed.messages)


def test_api_classify_duplicate_of_a_superscript_code_is_a_json_400(client, session_factory, make_user) -> None:
    seed = seed_committed(session_factory)
    headers = _token(session_factory, make_user, "operator")
    mid = seed.messages[0]
    body = {"decision": "not_referred", "kind": "complaint", "reason": "duplicate", "duplicate_of": "²"}
    resp = client.post(f"/api/v1/messages/{mid}/classify", json=body, headers=headers)
    assert resp.status_code == 400 and resp.get_json()["error"] == "پیام اصلی با این کد رهگیری پیدا نشد."


def test_path_ids_take_persian_digits_but_not_other_scripts(app, make_user, session_factory) -> None:
    seed = seed_committed(session_factory)
    client = _signed_in(app, make_user, "operator")
    assert client.get(f"/screening/{persian_digits(str(seed.messages[0]))}").status_code == 200
    assert client.get("/screening/১").status_code == 404  # Bengali one
