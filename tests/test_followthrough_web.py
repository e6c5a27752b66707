"""Follow-through pages: who sees what, the inspectors' form, and failed jobs kept on Redis for real."""
from __future__ import annotations

import io
import re
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ivr.followthrough.escalation import sweep_overdue
from ivr.followthrough.inspections import sample_for_inspection
from ivr.followthrough.jobs import reply_followup_job
from ivr.identifiers import persian_digits
from ivr.jobqueue import JobContext, JobRegistry, RedisJobs
from ivr.models import AuditEntry, FieldCheck, Reminder, utcnow
from ivr.vocabulary import ROLES
from ivr.wiring import build_redis_jobs
from tests.conftest import csrf_token, login
from tests.fakes import photo_bytes
from tests.test_followthrough import QueuedJobs, answer, make_request, make_unit

PAGES = {
    "/followthrough/scorecard": {"manager", "supervisor", "analyst", "admin"},
    "/followthrough/escalations": {"manager", "supervisor", "analyst", "admin"},
    "/followthrough/dissatisfied": {"supervisor", "analyst", "admin"},
    "/followthrough/checks": {"inspector", "supervisor", "admin"},
    "/followthrough/jobs/failed": {"supervisor", "admin"},
}


@pytest.mark.parametrize("role", ROLES)
def test_followthrough_pages_open_only_for_their_roles(client, make_user, role: str) -> None:
    login(client, *make_user(role))
    for url, allowed in PAGES.items():
        status = client.get(url).status_code
        assert status == (200 if role in allowed else 403), (url, role, status)


def test_followthrough_pages_send_anonymous_users_to_login(client) -> None:
    for url in PAGES:
        resp = client.get(url)
        assert resp.status_code == 302 and resp.headers["Location"].startswith("/login")


def _units(session_factory) -> tuple[int, int, str]:
    with session_factory() as s:
        now = utcnow()
        parent = make_unit(s, "deputy")
        unit = make_unit(s, "roads", parent_id=parent.id)
        msg, ref = make_request(s, unit, referred_at=now - timedelta(days=9), due_at=now - timedelta(hours=3))
        other = make_unit(s, "parks")
        make_request(s, other, referred_at=now - timedelta(days=2), due_at=now + timedelta(days=3), phone="09120000001")
        sweep_overdue(s, QueuedJobs(), now)
        s.commit()
        return parent.id, unit.id, msg.tracking_code


def test_manager_sees_own_unit_trend_and_escalations_raised_to_it(client, make_user, session_factory) -> None:
    parent_id, unit_id, code = _units(session_factory)
    login(client, *make_user("manager", unit_id=unit_id))
    page = client.get(f"/followthrough/scorecard?unit={parent_id}").get_data(as_text=True)
    assert 'id="scorecards"' not in page  # not everyone's table
    assert 'id="trend"' in page and "روند ماهانه: واحد roads" in page  # their own unit, whatever ?unit= says
    assert "۴۰ × سهم پاسخ به‌موقع" in page
    assert client.get("/followthrough/escalations").get_data(as_text=True).count("<tr class=\"overdue\">") == 0
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    login(client, *make_user("manager", unit_id=parent_id))
    escalated = client.get("/followthrough/escalations").get_data(as_text=True)
    assert persian_digits(code) in escalated and "هنوز بی‌پاسخ" in escalated


def test_supervisor_sees_every_unit_and_bad_month_is_400(client, make_user, session_factory) -> None:
    _units(session_factory)
    login(client, *make_user("supervisor"))
    page = client.get("/followthrough/scorecard").get_data(as_text=True)
    assert 'id="scorecards"' in page and "واحد roads" in page and "واحد parks" in page
    assert client.get("/followthrough/scorecard?month=azar").status_code == 400
    assert client.get("/followthrough/scorecard?month=1405-13").status_code == 400


def _check(session_factory, settings) -> tuple[int, int]:
    with session_factory() as s:
        now = utcnow()
        unit = make_unit(s, "asphalt")
        msg, ref = make_request(s, unit, referred_at=now - timedelta(days=3), due_at=now + timedelta(days=3))
        reply = answer(s, msg, ref, now - timedelta(days=1))
        check = sample_for_inspection(s, reply.id, settings.with_(inspection_share=1.0), now)
        s.commit()
        return check.id, msg.id


def test_inspector_records_failed_check_with_photo_and_request_reopens(client, make_user, session_factory, settings) -> None:
    check_id, msg_id = _check(session_factory, settings)
    login(client, *make_user("inspector"))
    token = csrf_token(client, "/followthrough/checks")
    fake = client.post(f"/followthrough/checks/{check_id}", data={
        "csrf_token": token, "result": "failed", "note": "", "photo": (io.BytesIO(b"GIF89a-but-not-really"), "x.gif"),
    }, content_type="multipart/form-data", follow_redirects=True)
    assert "تصویر معتبری نیست" in fake.get_data(as_text=True)
    resp = client.post(f"/followthrough/checks/{check_id}", data={
        "csrf_token": token, "result": "failed", "note": "آسفالت نشده", "photo": (io.BytesIO(photo_bytes()), "p.png"),
    }, content_type="multipart/form-data", follow_redirects=True)
    assert "نتیجه بازرسی ثبت شد" in resp.get_data(as_text=True)
    with session_factory() as s:
        check = s.get(FieldCheck, check_id)
        assert (check.status, check.note) == ("failed", "آسفالت نشده")
        [reminder] = s.scalars(select(Reminder).where(Reminder.message_id == msg_id)).all()
        assert reminder.reason == "field_check_failed"
        assert s.scalars(select(AuditEntry.action).where(AuditEntry.object_type == "field_check")).all() == [
            "field_check_failed"]


def test_check_form_needs_csrf_and_an_inspector(client, make_user, session_factory, settings) -> None:
    check_id, _ = _check(session_factory, settings)
    login(client, *make_user("supervisor"))
    token = csrf_token(client, "/followthrough/checks")
    assert client.post(f"/followthrough/checks/{check_id}", data={"csrf_token": token, "result": "passed",
                                                                  "note": "x"}).status_code == 403
    client.post("/logout", data={"csrf_token": token})
    login(client, *make_user("inspector"))
    assert client.post(f"/followthrough/checks/{check_id}", data={"result": "passed", "note": "x"}).status_code == 400


# ---- Must show: a failing job is retried, then kept and visible (Redis, for real) -------------


class CountingFollowup:
    """The real reply.followup job, counting its attempts."""

    def __init__(self) -> None:
        self.attempts = 0

    def __call__(self, ctx: JobContext, **payload: Any) -> Any:
        self.attempts += 1
        return reply_followup_job(ctx, **payload)


def test_failing_job_on_redis_is_retried_then_kept_visible_in_cli_and_console(
    redis_queue, session_factory, make_user
) -> None:
    from ivr.cli import main
    from web import create_app

    settings = redis_queue.with_(job_backoff=(0, 0))
    job = CountingFollowup()
    jobs = RedisJobs(settings, session_factory, JobRegistry({"reply.followup": job}))
    # RQ job ids are global to the Redis server: one of this queue's own keeps concurrent runs apart
    # (and the fixture deletes its key after).
    job_id = f"reply.followup:{settings.queue_name}"
    jobs.enqueue("reply.followup", job_id=job_id, reply_id=999999)  # no such reply: fails
    jobs.work(burst=True)
    assert job.attempts == 3  # the first try and two retries
    [kept] = jobs.failed()
    assert (kept.name, kept.payload) == ("reply.followup", {"reply_id": 999999})
    assert "NoticeError: no reply 999999" in kept.error

    cli = CliRunner().invoke(main, ["jobs", "failed"], obj={"settings": settings})
    assert cli.exit_code == 0
    assert f"{kept.job_id}\treply.followup\t" in cli.output and "no reply 999999" in cli.output

    app = create_app(settings, session_factory=session_factory, jobs=jobs, config={"TESTING": True})
    client = app.test_client()
    login(client, *make_user("admin"))
    page = client.get("/followthrough/jobs/failed").get_data(as_text=True)
    assert kept.job_id in page and "NoticeError: no reply 999999" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = client.post("/followthrough/jobs/failed/retry", data={"csrf_token": token, "job_id": kept.job_id},
                       follow_redirects=True)
    assert "کار دوباره در صف گذاشته شد" in resp.get_data(as_text=True)
    assert jobs.failed() == []
    jobs.work(burst=True)
    assert job.attempts == 4  # retried by hand: one more try (RQ keeps no retries left), then kept again
    assert [f.job_id for f in jobs.failed()] == [kept.job_id]
    unknown = client.post("/followthrough/jobs/failed/retry", data={"csrf_token": token, "job_id": "nope"},
                          follow_redirects=True)
    assert "در فهرست کارهای ناموفق نیست" in unknown.get_data(as_text=True)
    with session_factory() as s:
        assert s.scalars(select(AuditEntry.detail).where(AuditEntry.action == "job_retry")).all() == [kept.job_id]


def test_scheduler_enqueues_each_slot_once_across_workers(redis_queue, session_factory) -> None:
    from ivr.followthrough.scheduler import PeriodicScheduler

    jobs = build_redis_jobs(redis_queue, session_factory)
    clock = [1_000_000.0]
    one = PeriodicScheduler(jobs, 60, clock=lambda: clock[0])
    two = PeriodicScheduler(build_redis_jobs(redis_queue, session_factory), 60, clock=lambda: clock[0])
    assert one.tick() == ["followthrough.sweep:16666"]
    assert two.tick() == []  # another worker, same slot: not again
    clock[0] += 60
    assert two.tick() == ["followthrough.sweep:16667"]
    assert len(jobs.queue) == 2
    jobs.work(burst=True)
    assert jobs.failed() == []
