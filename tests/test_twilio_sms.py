"""Incoming SMS over /twilio/sms: feedback to a pending survey, tracking-code queries, new messages."""
from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ivr.config import Settings
from ivr.identifiers import new_tracking_code
from ivr.models import Feedback, Message, Reminder, Reply, Sms, Unit, utcnow
from ivr.services.messages import register_message
from ivr.services.sms import (
    TEXT_ASK_AGAIN,
    TEXT_EMPTY,
    TEXT_NO_SURVEY,
    TEXT_SORRY,
    TEXT_THANKS,
    parse_satisfaction,
    persian_digits,
)
from tests.fake_twilio import (  # noqa: F401 - fixtures
    ACCOUNT_SID,
    PUBLIC_BASE,
    QueuedJobs,
    fake_api_fixture,
    sign,
    twilio_settings_fixture,
)
from web import create_app

PHONE = "+989121234567"
LINE_137 = "+982112345678"
LINE_1888 = "+982188880000"


@pytest.fixture
def app(twilio_settings: Settings, session_factory: sessionmaker[Session]) -> Flask:
    return create_app(twilio_settings, session_factory=session_factory, jobs=QueuedJobs())  # type: ignore[arg-type]


def text_in(app: Flask, body: str | None, *, to: str = LINE_137, sid: str | None = None, sender: str = PHONE) -> str:
    """Send an SMS to the app as Twilio does; the text of the TwiML <Message> reply."""
    params = {"MessageSid": sid or "SM" + uuid.uuid4().hex, "AccountSid": ACCOUNT_SID, "From": sender, "To": to,
              "NumMedia": "0"}
    if body is not None:
        params["Body"] = body
    resp = app.test_client().post("/twilio/sms", data=params,
                                  headers={"X-Twilio-Signature": sign(PUBLIC_BASE + "/twilio/sms", params)})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    root = ET.fromstring(resp.data)
    assert root.tag == "Response" and [c.tag for c in root] == ["Message"]
    return root[0].text or ""


def answered_message(db: Session, line: str = "137", *, survey_age: timedelta = timedelta(hours=2)) -> Message:
    """A message with a reply and a survey SMS sent to the citizen `survey_age` ago."""
    unit = Unit(code=f"u-{uuid.uuid4().hex[:6]}", name="شهرداری منطقه ۳", kind="district_office", district=3)
    db.add(unit)
    db.flush()
    msg = register_message(db, line=line, kind="request" if line == "137" else "complaint", source="operator",
                           caller="09121234567", body="چراغ کوچه خاموش است")
    msg.unit_id, msg.status = unit.id, "answered"
    db.add(Reply(message_id=msg.id, text="تعمیر شد"))
    sent = utcnow() - survey_age
    db.add(Sms(direction="out", phone="09121234567", body="از پاسخ راضی بودید؟ ۱ بله، ۲ خیر", status="delivered",
               purpose="survey", message_id=msg.id, provider_sid="SM" + uuid.uuid4().hex, created_at=sent, updated_at=sent))
    db.commit()
    return msg


def test_sms_persian_two_to_a_pending_survey_is_stored_not_satisfied(app: Flask, db: Session) -> None:
    msg = answered_message(db)
    assert text_in(app, "۲") == TEXT_SORRY
    db.expire_all()
    (fb,) = db.scalars(select(Feedback)).all()
    assert (fb.message_id, fb.satisfied, fb.channel, fb.raw_text) == (msg.id, False, "sms", "۲")
    (reminder,) = db.scalars(select(Reminder)).all()  # 137: back to the same unit
    assert (reminder.message_id, reminder.unit_id, reminder.reason) == (msg.id, msg.unit_id, "dissatisfied")
    assert db.get(Message, msg.id).status == "referred"
    assert len(db.scalars(select(Message)).all()) == 1


@pytest.mark.parametrize(("body", "satisfied"), [("1", True), ("۱", True), ("راضی", True), ("بله", True),
                                                  (" راضی هستم! ", True), ("ناراضی", False), ("خیر", False),
                                                  ("2", False), ("راضی نیستم", False)])
def test_sms_answer_words_and_digits(body: str, satisfied: bool) -> None:
    assert parse_satisfaction(body) is satisfied


def test_sms_satisfied_closes_the_message_and_replay_stores_one_feedback(app: Flask, db: Session) -> None:
    msg = answered_message(db, "1888")
    sid = "SM" + uuid.uuid4().hex
    assert text_in(app, "راضی", sid=sid) == TEXT_THANKS
    assert text_in(app, "راضی", sid=sid) == TEXT_THANKS  # Twilio retried the webhook
    db.expire_all()
    assert len(db.scalars(select(Feedback)).all()) == 1
    assert db.get(Message, msg.id).status == "closed"
    assert len(db.scalars(select(Sms).where(Sms.direction == "in")).all()) == 1
    assert len(db.scalars(select(Sms).where(Sms.purpose == "reply")).all()) == 1


def test_sms_second_answer_after_feedback_is_not_feedback_again(app: Flask, db: Session) -> None:
    answered_message(db)
    text_in(app, "1")
    messages_before = len(db.scalars(select(Message)).all())
    reply = text_in(app, "2")  # no pending request any more: said so, and no "2" registered as a message
    db.expire_all()
    assert len(db.scalars(select(Feedback)).all()) == 1
    assert reply == TEXT_NO_SURVEY
    assert len(db.scalars(select(Message)).all()) == messages_before


def test_sms_answer_after_the_phone_follow_up_rated_the_reply_is_not_a_second_rating(app: Flask, db: Session) -> None:
    from ivr.services.feedback import record_feedback

    msg = answered_message(db)
    record_feedback(db, msg, satisfied=True, channel="phone")
    db.commit()
    assert text_in(app, "۲") == TEXT_NO_SURVEY
    db.expire_all()
    assert [(f.channel, f.satisfied) for f in db.scalars(select(Feedback))] == [("phone", True)]
    assert db.scalars(select(Reminder)).all() == []


def test_sms_survey_older_than_14_days_is_not_pending(app: Flask, db: Session) -> None:
    answered_message(db, survey_age=timedelta(days=15))
    reply = text_in(app, "ناراضی")
    db.expire_all()
    assert db.scalars(select(Feedback)).all() == []
    assert reply == TEXT_NO_SURVEY


def test_sms_other_digit_to_a_pending_survey_is_asked_again(app: Flask, db: Session) -> None:
    answered_message(db)
    assert text_in(app, "۳") == TEXT_ASK_AGAIN
    db.expire_all()
    assert db.scalars(select(Feedback)).all() == []


def test_sms_tracking_code_gets_the_status_back(app: Flask, db: Session) -> None:
    msg = register_message(db, line="1888", kind="criticism", source="operator", body="x")
    db.commit()
    reply = text_in(app, f"کد من {persian_digits(msg.tracking_code)} است")
    assert reply == f"وضعیت پیام با کد رهگیری {persian_digits(msg.tracking_code)}: پیام شما دریافت شده و در نوبت بررسی است."


def test_sms_unknown_code_alone_is_said_so(app: Flask, db: Session) -> None:
    code = new_tracking_code()
    assert text_in(app, code) == f"کد رهگیری {persian_digits(code)} پیدا نشد. لطفاً آن را دوباره بررسی کنید."
    assert db.scalars(select(Message)).all() == []


@pytest.mark.parametrize(("to", "line", "kind"), [(LINE_137, "137", "request"), (LINE_1888, "1888", "complaint")])
def test_sms_other_text_is_a_new_message_for_screening(app: Flask, db: Session, to: str, line: str, kind: str) -> None:
    reply = text_in(app, "جوی آب خیابان ما چند روز است گرفته 🙁", to=to)
    db.expire_all()
    (msg,) = db.scalars(select(Message)).all()
    assert (msg.line_code, msg.kind, msg.source, msg.status, msg.body) == (
        line, kind, "sms", "new", "جوی آب خیابان ما چند روز است گرفته 🙁")
    assert msg.citizen is not None and msg.citizen.phone == "09121234567"
    assert reply == f"پیام شما ثبت شد و پس از بررسی پیگیری می‌شود. کد رهگیری: {persian_digits(msg.tracking_code)}"


def test_sms_replayed_new_message_is_registered_once(app: Flask, db: Session) -> None:
    sid = "SM" + uuid.uuid4().hex
    first = text_in(app, "درخت افتاده", sid=sid)
    assert text_in(app, "درخت افتاده", sid=sid) == first
    db.expire_all()
    assert len(db.scalars(select(Message)).all()) == 1


@pytest.mark.parametrize("body", [None, "", "   ", "\x00\x01"])
def test_sms_empty_body_is_answered_and_registers_nothing(app: Flask, db: Session, body: str | None) -> None:
    assert text_in(app, body) == TEXT_EMPTY
    db.expire_all()
    assert db.scalars(select(Message)).all() == []


def test_sms_very_long_body_with_emoji_and_nul_never_crashes(app: Flask, db: Session) -> None:
    body = ("سلام 👋🏽 " * 1000) + "\x00پایان"
    reply = text_in(app, body)
    db.expire_all()
    (msg,) = db.scalars(select(Message)).all()
    assert len(msg.body) == 4000 and "\x00" not in msg.body
    assert reply.endswith(persian_digits(msg.tracking_code))


def test_sms_from_a_sender_name_is_still_answered(app: Flask, db: Session) -> None:
    reply = text_in(app, "سلام", sender="CITYNEWS")
    assert reply.startswith("پیام شما ثبت شد")


def test_sms_delivery_report_updates_the_row(app: Flask, db: Session, settings: Settings) -> None:
    db.add(Sms(direction="out", phone="09121234567", body="x", status="sent", provider_sid="SM42", purpose="notice"))
    db.commit()
    params = {"MessageSid": "SM42", "MessageStatus": "undelivered", "ErrorCode": "30006", "AccountSid": ACCOUNT_SID}
    resp = app.test_client().post("/twilio/sms/status", data=params,
                                  headers={"X-Twilio-Signature": sign(PUBLIC_BASE + "/twilio/sms/status", params)})
    assert resp.status_code == 204
    db.expire_all()
    row = db.scalars(select(Sms).where(Sms.provider_sid == "SM42")).one()
    assert (row.status, row.error) == ("undelivered", "Twilio error 30006")
