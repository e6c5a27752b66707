"""Background jobs: in-process (retries, kept failures, no duplicates) and RQ on the local Redis."""
from __future__ import annotations

import threading
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ivr.jobqueue import (
    InProcessJobs,
    JobContext,
    JobError,
    JobRegistry,
    RedisJobs,
)
from ivr.models import FailedJob
from ivr.wiring import build_jobs, build_registry


class Recorder:
    """Job functions that record their calls and fail a set number of times."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, ctx: JobContext, **payload: Any) -> str:
        with self.lock:
            self.calls.append(payload)
            if len(self.calls) <= self.failures:
                raise RuntimeError(f"boom {len(self.calls)}")
        return "ok"


def _queue(settings, session_factory, fn, backoff=(0, 0)) -> InProcessJobs:
    return InProcessJobs(
        settings.with_(job_backoff=backoff), session_factory, JobRegistry({"test.job": fn}), workers=1
    )


def test_inprocess_job_runs_with_its_payload(settings, session_factory) -> None:
    fn = Recorder()
    jobs = _queue(settings, session_factory, fn)
    jobs.enqueue("test.job", sms_id=7, text="سلام")
    assert jobs.drain(10)
    jobs.close()
    assert fn.calls == [{"sms_id": 7, "text": "سلام"}]


def test_inprocess_failing_job_is_retried_then_succeeds(settings, session_factory) -> None:
    fn = Recorder(failures=2)
    jobs = _queue(settings, session_factory, fn)
    jobs.enqueue("test.job", n=1)
    assert jobs.drain(10)
    jobs.close()
    assert len(fn.calls) == 3
    assert jobs.failed() == []


def test_inprocess_job_that_keeps_failing_is_kept_and_can_be_retried(settings, session_factory) -> None:
    fn = Recorder(failures=3)
    jobs = _queue(settings, session_factory, fn)
    job_id = jobs.enqueue("test.job", job_id="test.job:42", n=42)
    assert jobs.drain(10)
    assert len(fn.calls) == 3  # first try plus two retries
    [kept] = jobs.failed()
    assert (kept.job_id, kept.name, kept.payload, kept.attempts) == (job_id, "test.job", {"n": 42}, 3)
    assert "RuntimeError: boom 3" in kept.error
    jobs.retry(job_id)
    assert jobs.drain(10)
    jobs.close()
    assert len(fn.calls) == 4
    assert jobs.failed() == []
    with session_factory() as session:
        row = session.scalars(select(FailedJob).where(FailedJob.job_id == job_id)).one()
        assert row.retried_at is not None


def test_inprocess_same_job_id_is_not_queued_twice(settings, session_factory) -> None:
    gate = threading.Event()

    def slow(ctx: JobContext, **payload: Any) -> None:
        gate.wait(5)
        calls.append(payload)

    calls: list[dict[str, Any]] = []
    jobs = _queue(settings, session_factory, slow)
    jobs.enqueue("test.job", job_id="sms.send:1", n=1)
    jobs.enqueue("test.job", job_id="sms.send:1", n=1)
    gate.set()
    assert jobs.drain(10)
    jobs.enqueue("test.job", job_id="sms.send:1", n=1)  # finished: may run again
    assert jobs.drain(10)
    jobs.close()
    assert calls == [{"n": 1}, {"n": 1}]


def test_inprocess_close_keeps_delayed_jobs_instead_of_dropping_them(settings, session_factory) -> None:
    fn = Recorder()
    jobs = _queue(settings, session_factory, fn)
    jobs.enqueue("test.job", job_id="later:1", delay=3600, n=1)
    jobs.close(timeout=0.1)
    assert fn.calls == []
    with session_factory() as session:
        row = session.scalars(select(FailedJob).where(FailedJob.job_id == "later:1")).one()
        assert row.error == "the queue closed before the job ran"


def test_enqueue_rejects_unknown_names_and_non_json_payloads(settings, session_factory) -> None:
    jobs = _queue(settings, session_factory, Recorder())
    with pytest.raises(JobError, match="unknown job 'nope'"):
        jobs.enqueue("nope")
    with pytest.raises(JobError, match="payload is not JSON"):
        jobs.enqueue("test.job", when=object())
    jobs.close()


def test_build_jobs_picks_redis_only_when_configured(settings, session_factory, redis_queue) -> None:
    local = build_jobs(settings, session_factory)
    assert isinstance(local, InProcessJobs)
    local.close()
    assert isinstance(build_jobs(redis_queue, session_factory), RedisJobs)


def test_registry_is_assembled_by_the_composition_root_with_every_job() -> None:
    assert build_registry().names() == [
        "followthrough.sweep", "reply.followup", "sms.send", "spool.replay", "twilio.recording",
    ]


def test_queue_built_without_adapters_says_so_when_a_job_needs_them(settings, session_factory) -> None:
    ctx = JobContext(settings, session_factory, jobs=None)  # type: ignore[arg-type]
    with pytest.raises(JobError, match="without outbound adapters"):
        ctx.adapters  # noqa: B018 - the property raises


# ---- RQ on the real local Redis -------------------------------------------------------------


def test_redis_job_runs_in_a_worker(redis_queue, session_factory) -> None:
    fn = Recorder()
    jobs = RedisJobs(redis_queue, session_factory, JobRegistry({"test.job": fn}))
    jobs.enqueue("test.job", job_id="test.job:1", sms_id=3)
    jobs.enqueue("test.job", job_id="test.job:1", sms_id=3)  # still queued: not twice
    jobs.work(burst=True)
    assert fn.calls == [{"sms_id": 3}]
    assert jobs.failed() == []


def test_redis_job_that_keeps_failing_is_retried_then_kept_and_retryable(redis_queue, session_factory) -> None:
    fn = Recorder(failures=3)
    jobs = RedisJobs(redis_queue.with_(job_backoff=(0, 0)), session_factory, JobRegistry({"test.job": fn}))
    jobs.enqueue("test.job", job_id="test.job:9", n=9)
    jobs.work(burst=True)
    assert len(fn.calls) == 3
    [kept] = jobs.failed()
    assert (kept.name, kept.payload) == ("test.job", {"n": 9})
    assert "RuntimeError: boom 3" in kept.error
    jobs.retry(kept.job_id)
    jobs.work(burst=True)
    assert len(fn.calls) == 4
    assert jobs.failed() == []


def test_worker_command_without_redis_says_so(settings) -> None:
    from ivr.cli import main

    result = CliRunner().invoke(main, ["worker", "--burst"], obj={"settings": settings})
    assert result.exit_code == 1
    assert "IVR_REDIS_URL is not set" in result.output
