"""Administration: units, users and roles, topics, working hours and holidays (Jalali), prompts; all audited."""
from __future__ import annotations

from datetime import date, time

import pytest
from sqlalchemy import select

from ivr.models import AuditEntry, Holiday, Topic, Unit, User, WorkingHours
from ivr.services import admin
from ivr.services.users import verify_password
from tests.conftest import csrf_token, login


@pytest.fixture
def admin_client(client, make_user):
    login(client, *make_user("admin", username="root"))
    return client


def _post(client, url: str, **data: str):
    data["csrf_token"] = csrf_token(client, "/admin/")
    return client.post(url, data=data)


def _actions(session_factory) -> list[str]:
    with session_factory() as session:
        return session.scalars(select(AuditEntry.action).where(AuditEntry.action != "login").order_by(AuditEntry.id)).all()


def test_admin_units_tree_add_and_deactivate(admin_client, session_factory, make_user) -> None:
    resp = _post(admin_client, "/admin/units", code="deputy-1", name="معاونت خدمات شهری", kind="deputy")
    assert resp.status_code == 302
    with session_factory() as session:
        parent = session.scalars(select(Unit).where(Unit.code == "deputy-1")).one().id
    _post(admin_client, "/admin/units", code="parks", name="سازمان پارک‌ها", kind="organisation", parent_id=str(parent))
    with session_factory() as session:
        parks = session.scalars(select(Unit).where(Unit.code == "parks")).one()
        assert parks.parent_id == parent
    make_user("manager", unit_id=parks.id, username="parks-boss")
    page = admin_client.get("/admin/units").get_data(as_text=True)
    assert page.index("معاونت خدمات شهری") < page.index("سازمان پارک‌ها") < page.index("کاربر parks-boss")
    _post(admin_client, f"/admin/units/{parks.id}/active", active="0")
    with session_factory() as session:
        assert session.get(Unit, parks.id).active is False
    dup = _post(admin_client, "/admin/units", code="parks", name="نام تایپ‌شده", kind="organisation")
    page = dup.get_data(as_text=True)
    assert dup.status_code == 400 and "واحدی با این کد هست." in page and 'value="نام تایپ‌شده"' in page
    assert _actions(session_factory) == ["unit_added", "unit_added", "unit_deactivated"]


def test_admin_creates_user_with_hashed_password_resets_and_deactivates(admin_client, session_factory) -> None:
    _post(admin_client, "/admin/users", username="new-op", full_name="کارشناس تازه", role="operator",
          password="first-password!")
    with session_factory() as session:
        user = session.scalars(select(User).where(User.username == "new-op")).one()
        assert user.password_hash != "first-password!" and verify_password(user.password_hash, "first-password!")
    _post(admin_client, f"/admin/users/{user.id}/password", password="second-password!")
    _post(admin_client, f"/admin/users/{user.id}/active", active="0")
    with session_factory() as session:
        user = session.get(User, user.id)
        assert verify_password(user.password_hash, "second-password!") and user.active is False
    assert _actions(session_factory) == ["user_added", "password_reset", "user_deactivated"]


def test_admin_user_rules_are_shown_in_persian_and_nothing_is_saved(admin_client, session_factory) -> None:
    resp = _post(admin_client, "/admin/users", username="mgr", full_name="مدیر تازه", role="manager",
                 password="long-enough-pw")
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "مدیر واحد باید واحدی داشته باشد." in page
    assert 'value="mgr"' in page and 'value="مدیر تازه"' in page  # nothing typed is lost
    resp = _post(admin_client, "/admin/users", username="op2", full_name="x", role="operator", password="short")
    assert resp.status_code == 400 and "گذرواژه باید دست‌کم ۱۰ نویسه باشد." in resp.get_data(as_text=True)
    with session_factory() as session:
        assert session.scalars(select(User.username).order_by(User.username)).all() == ["root"]
        root = session.scalars(select(User).where(User.username == "root")).one()
    resp = _post(admin_client, f"/admin/users/{root.id}/active", active="0")
    assert resp.status_code == 400 and "نمی‌توانید حساب خودتان را غیرفعال کنید." in resp.get_data(as_text=True)
    assert _actions(session_factory) == []


def test_admin_reset_password_of_missing_user_is_404(admin_client) -> None:
    assert _post(admin_client, "/admin/users/999999/password", password="long-enough-pw").status_code == 404


def test_admin_changes_role_and_makes_an_api_token(admin_client, session_factory, make_user) -> None:
    name, _ = make_user("operator", username="op-x")
    with session_factory() as session:
        uid = session.scalars(select(User.id).where(User.username == name)).one()
    _post(admin_client, f"/admin/users/{uid}/role", role="supervisor", unit_id="")
    resp = _post(admin_client, f"/admin/users/{uid}/token", name="crm")
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "فقط همین یک بار" in page
    token = page.split('id="token">')[1].split("<")[0]
    assert admin_client.get("/api/v1/screening/queue", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    with session_factory() as session:
        assert session.get(User, uid).role == "supervisor"
    assert _actions(session_factory) == ["role_changed", "api_token_created"]


def test_admin_topics_deadline_changes_are_audited(admin_client, session_factory) -> None:
    _post(admin_client, "/admin/topics", code="lights", line="137", name="روشنایی معابر", due_working_days="۴")
    with session_factory() as session:
        topic = session.scalars(select(Topic).where(Topic.code == "lights")).one()
        assert (topic.due_working_days, topic.line_code, topic.active) == (4, "137", True)
    _post(admin_client, f"/admin/topics/{topic.id}", due_working_days="10", unit_id="", active="1")
    resp = _post(admin_client, f"/admin/topics/{topic.id}", due_working_days="400", unit_id="", active="1")
    assert resp.status_code == 400 and "مهلت پاسخ باید از ۱ تا ۳۶۵ روز کاری باشد." in resp.get_data(as_text=True)
    with session_factory() as session:
        assert session.get(Topic, topic.id).due_working_days == 10
        detail = session.scalars(select(AuditEntry.detail).where(AuditEntry.action == "topic_changed")).one()
        assert detail == "days=4 unit=None active=True -> days=10 unit=None active=True"


def test_admin_holidays_are_entered_and_shown_in_jalali(admin_client, session_factory) -> None:
    _post(admin_client, "/admin/holidays", day="۱۴۰۵/۱۰/۰۱", name="تعطیلی آزمایشی")
    with session_factory() as session:
        assert session.scalars(select(Holiday.day)).all() == [date(2026, 12, 22)]
    page = admin_client.get("/admin/calendar").get_data(as_text=True)
    assert "۱۴۰۵/۱۰/۰۱" in page and "تعطیلی آزمایشی" in page
    resp = _post(admin_client, "/admin/holidays", day="1405/12/31", name="نادرست")
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "این تاریخ در تقویم خورشیدی وجود ندارد." in page and 'value="نادرست"' in page
    _post(admin_client, "/admin/holidays/2026-12-22/delete")
    with session_factory() as session:
        assert session.scalars(select(Holiday)).all() == []
    assert _post(admin_client, "/admin/holidays/not-a-date/delete").status_code == 404
    assert _actions(session_factory) == ["holiday_added", "holiday_removed"]


def test_admin_working_hours_set_and_cleared(admin_client, session_factory) -> None:
    _post(admin_client, "/admin/hours", weekday="5", opens="۰۷:۳۰", closes="19:00")
    with session_factory() as session:
        hours = session.get(WorkingHours, 5)
        assert (hours.opens, hours.closes) == (time(7, 30), time(19, 0))
    assert "۰۷:۳۰" in admin_client.get("/admin/calendar").get_data(as_text=True)
    resp = _post(admin_client, "/admin/hours", weekday="5", opens="20:00", closes="08:00")
    assert resp.status_code == 400 and "ساعت شروع باید پیش از ساعت پایان باشد." in resp.get_data(as_text=True)
    _post(admin_client, "/admin/hours", weekday="5", opens="", closes="")
    with session_factory() as session:
        assert session.get(WorkingHours, 5) is None
    assert _actions(session_factory) == ["hours_set", "hours_cleared"]


def test_admin_prompts_play_by_catalogue_name_only(settings, session_factory, jobs, make_user, tmp_path) -> None:
    from web import create_app

    prompts = tmp_path / "prompts"
    (prompts / "fa").mkdir(parents=True)
    (prompts / "fa" / "num_9.wav").write_bytes(b"RIFF fake wav")
    (prompts / "secret.wav").write_bytes(b"not for the web")
    app = create_app(settings.with_(prompts_dir=prompts), session_factory=session_factory, jobs=jobs,
                     config={"TESTING": True})
    client = app.test_client()
    login(client, *make_user("admin"))
    page = client.get("/admin/prompts").get_data(as_text=True)
    assert page.count("<audio") == 1 and 'src="/admin/prompts/num_9.wav"' in page and "ساخته نشده" in page
    with client.get("/admin/prompts/num_9.wav") as resp:
        assert resp.status_code == 200 and resp.mimetype == "audio/wav" and resp.data == b"RIFF fake wav"
    for bad in ("nope", "..%2Fsecret", "%2Fetc%2Fpasswd", "num_10"):
        assert client.get(f"/admin/prompts/{bad}.wav").status_code == 404


def test_admin_services_parse_jalali_and_times() -> None:
    assert admin.parse_jalali("1403/12/30") == date(2025, 3, 20)
    assert admin.parse_time("۸:۰۵") == time(8, 5)
    for bad in ("1403-13-01", "۱۴۰۳", "yesterday"):
        with pytest.raises(admin.AdminError):
            admin.parse_jalali(bad)
    with pytest.raises(admin.AdminError):
        admin.parse_time("25:00")


@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/admin/users", {"username": "sneaky", "full_name": "x", "role": "admin", "password": "long-enough-pw"}),
        ("/admin/topics", {"code": "sneaky", "line": "137", "name": "x", "due_working_days": "3"}),
        ("/admin/units", {"code": "sneaky", "name": "x", "kind": "department"}),
        ("/admin/holidays", {"day": "1405/10/01", "name": "x"}),
        ("/admin/hours", {"weekday": "5", "opens": "07:00", "closes": "19:00"}),
    ],
)
def test_admin_forms_without_csrf_token_change_nothing(admin_client, session_factory, url, data) -> None:
    resp = admin_client.post(url, data=data)
    assert resp.status_code == 400 and "برگه منقضی شده است" in resp.get_data(as_text=True)
    assert _actions(session_factory) == []
    with session_factory() as session:
        assert session.scalars(select(User.username)).all() == ["root"]
        assert session.scalars(select(Topic)).all() == [] and session.scalars(select(Holiday)).all() == []
        assert session.scalars(select(WorkingHours)).all() == []


def test_admin_topic_gets_its_own_deadline_for_one_kind_of_message(admin_client, session_factory) -> None:
    from ivr.models import TopicDeadline
    from ivr.services.deadlines import working_days_to_answer

    _post(admin_client, "/admin/topics", code="staff", line="1888", name="رفتار کارکنان", due_working_days="10")
    with session_factory() as session:
        topic_id = session.scalars(select(Topic.id).where(Topic.code == "staff")).one()
    assert _post(admin_client, f"/admin/topics/{topic_id}/deadlines", kind="complaint", due_working_days="۳").status_code == 302
    assert "شکایت ۳ روز" in admin_client.get("/admin/topics").get_data(as_text=True)
    with session_factory() as session:
        assert working_days_to_answer(session, topic_id, "complaint") == 3
        assert working_days_to_answer(session, topic_id, "suggestion") == 10
    resp = _post(admin_client, f"/admin/topics/{topic_id}/deadlines", kind="request", due_working_days="3")
    assert resp.status_code == 400 and "این نوع پیام در این سامانه نیست." in resp.get_data(as_text=True)
    assert _post(admin_client, f"/admin/topics/{topic_id}/deadlines", kind="complaint", due_working_days="").status_code == 302
    with session_factory() as session:
        assert session.scalars(select(TopicDeadline)).all() == []
        assert working_days_to_answer(session, topic_id, "complaint") == 10
    assert _actions(session_factory)[-2:] == ["topic_deadline_set", "topic_deadline_removed"]
