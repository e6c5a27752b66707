"""Must show: a voice message left by phone is referred, answered in the console, and heard on key 2."""
from __future__ import annotations

from datetime import timedelta
from io import BytesIO

import pytest
from sqlalchemy import select

from ivr.models import Feedback, Message, Recording, Referral, Reply, utcnow
from tests.conftest import csrf_token, login
from tests.fakes import press, speak, type_digits, wait
from tests.test_phone_journeys import agi, call, city  # noqa: F401  (fixtures)
from tests.test_replies import followups, jobs, samples, wait_for  # noqa: F401  (fixtures)
from tests.test_web_inbox import shown_phone, unit_of
from web.format import fa_digits

pytestmark = pytest.mark.slow
CALLER = "09121234567"


def test_journey_phone_message_referred_answered_in_console_and_heard_on_key_2(
    agi, settings, db, client, make_user, samples, followups  # noqa: F811
) -> None:
    # 1. A citizen leaves a voice complaint on 1888 and hears a tracking code.
    first = call(agi, settings, [press("1"), press("3"), speak(3), press("#"), press("1")], caller=CALLER)
    code = first.variables["TRACKING_CODE"]

    # 2. Screening refers it to the manager's unit (the referral row screening writes).
    manager, password = make_user("manager")
    other, other_password = make_user("manager")
    msg = db.scalar(select(Message).where(Message.tracking_code == code))
    unit = unit_of(db, manager)
    now = utcnow()
    db.add(Referral(message_id=msg.id, unit_id=unit, referred_at=now, due_at=now + timedelta(days=7)))
    msg.status, msg.unit_id, msg.kind = "referred", unit, "complaint"
    db.commit()

    # 3. It is in that manager's inbox, not in another unit's; the complainant's number is hidden.
    login(client, other, other_password)
    assert fa_digits(code) not in client.get("/inbox/").get_data(as_text=True)
    assert client.get(f"/inbox/messages/{msg.id}").status_code == 404
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    login(client, manager, password)
    inbox = client.get("/inbox/").get_data(as_text=True)
    assert fa_digits(code) in inbox and not shown_phone(inbox, CALLER)
    page = client.get(f"/inbox/messages/{msg.id}").get_data(as_text=True)
    assert 'id="reply-form"' in page and not shown_phone(page, CALLER)

    # 4. The manager answers with a recorded reply (the browser's WebM/Opus) through the console.
    response = client.post(
        f"/inbox/messages/{msg.id}/reply",
        data={"csrf_token": csrf_token(client, f"/inbox/messages/{msg.id}"), "text": "رسیدگی شد",
              "audio": (BytesIO(samples["webm"]), "reply.webm", "audio/webm")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    db.expire_all()
    (reply,) = db.scalars(select(Reply).where(Reply.message_id == msg.id)).all()
    wav = db.scalar(select(Recording).where(Recording.reply_id == reply.id, Recording.format == "wav"))
    browser = db.scalar(select(Recording).where(Recording.reply_id == reply.id, Recording.format == "webm"))
    wait_for(followups)
    assert followups == [reply.id]

    # 5. The caller follows up with the tracking code (key 2), hears the 8 kHz WAV reply to its
    # end (status, unit, "the reply follows", the reply), then answers the question.
    assert "شنیده شد" not in client.get(f"/inbox/messages/{msg.id}").get_data(as_text=True)
    followup = call(agi, settings, [press("2"), type_digits(code + "#"), wait(), wait(), wait(), wait(), press("1")],
                    caller=CALLER)
    phone_file = str(settings.recordings_dir / wav.path).rsplit(".", 1)[0]
    browser_file = str(settings.recordings_dir / browser.path).rsplit(".", 1)[0]
    heard = followup.heard[followup.heard.index("status_answered"):]
    assert heard[:4] == ["status_answered", "referred_to_unit", "reply_follows", phone_file]
    assert browser_file not in followup.heard
    db.expire_all()
    assert db.get(Reply, reply.id).heard_at is not None
    (feedback,) = db.scalars(select(Feedback).where(Feedback.message_id == msg.id)).all()
    assert (feedback.satisfied, feedback.reply_id) == (True, reply.id)  # key 1 after the reply: satisfied
    # 6. The manager sees that the citizen heard it (heard to its end, not merely looked up).
    assert "شنیده شد" in client.get(f"/inbox/messages/{msg.id}").get_data(as_text=True)
