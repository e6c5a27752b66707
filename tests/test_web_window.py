"""The single window: a number's calls, messages, replies, feedback, reminders and SMS; the hand-off list."""
from __future__ import annotations

from datetime import timedelta

from ivr.models import Call, Feedback, Referral, Reminder, Reply, Sms
from ivr.services import window
from tests.conftest import login
from tests.console_data import T0, seed


def _history(session):
    s = seed(session)
    session.add_all([
        Call(line_code="137", channel_id="w-2", driver="twilio", caller_number="+989121234567", started_at=T0,
             keys="0", outcome="operator"),
        Call(line_code="1888", channel_id="w-3", driver="agi", caller_number="09350000000",
             started_at=T0 + timedelta(minutes=5), keys="9", outcome="operator"),
    ])
    referral = Referral(message_id=s.messages[0], unit_id=s.unit_a, referred_at=T0, due_at=T0 + timedelta(days=3))
    session.add(referral)
    session.flush()
    reply = Reply(message_id=s.messages[0], referral_id=referral.id, text="پیگیری شد", created_at=T0,
                  heard_at=T0 + timedelta(hours=1))
    session.add(reply)
    session.flush()
    fb = Feedback(message_id=s.messages[0], reply_id=reply.id, satisfied=False, channel="sms", created_at=T0)
    session.add(fb)
    session.flush()
    session.add(Reminder(message_id=s.messages[0], unit_id=s.unit_a, reason="dissatisfied", feedback_id=fb.id,
                         created_at=T0))
    session.add(Sms(direction="out", phone="09121234567", body="کد رهگیری شما", status="delivered", created_at=T0,
                    updated_at=T0))
    session.flush()
    return s


def test_single_window_gathers_everything_one_number_did(db) -> None:
    s = _history(db)
    w = window.single_window(db, "+98 912 123 4567")
    assert w.phone == "09121234567"
    assert [(c.line_code, c.keys, c.outcome) for c in w.calls] == [("1888", "13", "message_registered")]
    assert [m.id for m in w.messages] == [s.messages[2], s.messages[0]]
    assert [r.text for r in w.messages[1].replies] == ["پیگیری شد"]
    assert [f.satisfied for f in w.feedback] == [False]
    assert [r.reason for r in w.reminders] == ["dissatisfied"]
    assert [x.body for x in w.sms] == ["کد رهگیری شما"]


def test_single_window_unknown_number_is_empty_and_bad_number_refused(db) -> None:
    _history(db)
    w = window.single_window(db, "02188776655")
    assert (w.citizen_id, w.calls, w.messages, w.sms) == (None, [], [], [])
    try:
        window.single_window(db, "شماره")
    except window.WindowError as exc:
        assert str(exc) == "شماره تلفن درست نیست."
    else:
        raise AssertionError("a non-number was looked up")


def test_operator_handoffs_newest_first(db) -> None:
    _history(db)
    assert [(c.caller_number, c.keys) for c in window.operator_handoffs(db)] == [
        ("09350000000", "9"), ("+989121234567", "0")]


def test_window_pages_show_history_and_link_from_handoffs(client, make_user, session_factory) -> None:
    with session_factory() as session:
        _history(session)
        session.commit()
    login(client, make_user("operator")[0])
    handoffs = client.get("/window/handoffs").get_data(as_text=True)
    assert "/window/?phone=09350000000" in handoffs
    assert handoffs.index("۰۹۳۵۰۰۰۰۰۰۰") < handoffs.index("+۹۸۹۱۲۱۲۳۴۵۶۷")
    page = client.get("/window/?phone=۰۹۱۲۱۲۳۴۵۶۷").get_data(as_text=True)
    for text in ("۰۹۱۲۱۲۳۴۵۶۷", "۱۰۰۰۰۰۰۱۶", "پیگیری شد", "شنیده شد", "ناراضی", "تذکر", "کد رهگیری شما", "ثبت پیام"):
        assert text in page, text
    bad = client.get("/window/?phone=abc")
    assert bad.status_code == 400 and "شماره تلفن درست نیست." in bad.get_data(as_text=True)
