"""Serving recordings: signed expiring tokens, who may hear what, Range requests, and a listen audit."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from ivr.models import AuditEntry, Recording
from tests.conftest import login
from tests.test_web_inbox import two_units  # noqa: F401  (fixture)


def _token_url(app, recording_id: int, user_id: int | None) -> str:
    from web.audio import audio_token

    with app.test_request_context():
        return f"/audio/{audio_token(recording_id, user_id)}"


def _user_id(session_factory, username: str) -> int:
    from tests.test_web_inbox import user_id

    with session_factory() as s:
        return user_id(s, username)


def _listens(session_factory) -> list[tuple[int | None, str, int | None, str | None]]:
    with session_factory() as s:
        return [(e.user_id, e.object_type, e.object_id, e.detail)
                for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "listen").order_by(AuditEntry.id))]


def test_audio_manager_hears_own_unit_and_listen_is_audited(app, client, session_factory, two_units) -> None:  # noqa: F811
    login(client, two_units["mine"])
    me = _user_id(session_factory, two_units["mine"])
    response = client.get(_token_url(app, two_units["rec_a"], me))
    assert response.status_code == 200 and response.data[:4] == b"RIFF"
    assert response.headers["Cache-Control"] == "private, no-store"
    response.close()
    assert _listens(session_factory) == [(me, "message", two_units["msg_a"], f"recording={two_units['rec_a']}")]


def test_audio_manager_cannot_hear_another_units_message(app, client, session_factory, two_units) -> None:  # noqa: F811
    login(client, two_units["mine"])
    me = _user_id(session_factory, two_units["mine"])
    assert client.get(_token_url(app, two_units["rec_b"], me)).status_code == 403
    assert _listens(session_factory) == []


def test_audio_token_of_another_user_is_refused(app, client, session_factory, two_units) -> None:  # noqa: F811
    other = _user_id(session_factory, two_units["other"])
    login(client, two_units["mine"])
    assert client.get(_token_url(app, two_units["rec_a"], other)).status_code == 403


@pytest.mark.parametrize("role,status", [("operator", 200), ("supervisor", 200), ("inspector", 403),
                                         ("analyst", 403), ("admin", 403)])
def test_audio_roles(app, client, session_factory, make_user, two_units, role: str, status: int) -> None:  # noqa: F811
    name, password = make_user(role)
    login(client, name, password)
    response = client.get(_token_url(app, two_units["rec_b"], _user_id(session_factory, name)))
    assert response.status_code == status
    response.close()


def test_audio_tampered_or_expired_token_is_404(app, client, session_factory, two_units) -> None:  # noqa: F811
    login(client, two_units["mine"])
    url = _token_url(app, two_units["rec_a"], _user_id(session_factory, two_units["mine"]))
    assert client.get(url[:-2] + ("AA" if not url.endswith("AA") else "BB")).status_code == 404
    assert client.get("/audio/1").status_code == 404
    app.config["AUDIO_TOKEN_SECONDS"] = -1
    assert client.get(url).status_code == 404


def test_audio_anonymous_is_sent_to_login(app, client, two_units) -> None:  # noqa: F811
    response = client.get(_token_url(app, two_units["rec_a"], None))
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_audio_range_requests_and_one_audit_per_listen(app, client, session_factory, two_units) -> None:  # noqa: F811
    login(client, two_units["mine"])
    url = _token_url(app, two_units["rec_a"], _user_id(session_factory, two_units["mine"]))
    whole = client.get(url)
    size = len(whole.data)
    whole.close()
    first = client.get(url, headers={"Range": "bytes=0-99"})
    assert first.status_code == 206 and len(first.data) == 100
    assert first.headers["Content-Range"] == f"bytes 0-99/{size}"
    first.close()
    rest = client.get(url, headers={"Range": "bytes=100-"})
    assert rest.status_code == 206 and len(rest.data) == size - 100
    rest.close()
    assert len(_listens(session_factory)) == 2  # the whole file, then one ranged playback


def test_audio_path_never_leaves_storage(app, client, session_factory, settings, make_user, two_units) -> None:  # noqa: F811
    secret = settings.data_dir / "secret.txt"
    secret.write_text("not audio")
    with session_factory() as s:
        rec = s.get(Recording, two_units["rec_a"])
        rec.path = "../secret.txt"
        s.commit()
    name, password = make_user("supervisor")
    login(client, name, password)
    assert client.get(_token_url(app, two_units["rec_a"], _user_id(session_factory, name))).status_code == 404


def test_audio_urls_on_pages_are_bound_to_the_viewer(client, session_factory, two_units) -> None:  # noqa: F811
    from itsdangerous import URLSafeTimedSerializer

    login(client, two_units["mine"])
    page = client.get(f"/inbox/messages/{two_units['msg_a']}").get_data(as_text=True)
    (token,) = re.findall(r'class="message-audio" controls preload="none" src="/audio/([^"]+)"', page)
    data = URLSafeTimedSerializer(client.application.config["SECRET_KEY"], salt="ivr-audio").loads(token)
    assert data == {"r": two_units["rec_a"], "u": _user_id(session_factory, two_units["mine"])}
