"""Background jobs (SMS, audio conversion, recording downloads, sweeps): one interface, two backends.

A job is a named function `fn(ctx: JobContext, **payload)` listed in a `JobRegistry`; the payload
must be JSON (it crosses Redis). Jobs are written to be idempotent: running one twice does no harm.
This module knows no job: the composition root (`ivr.wiring`) builds the registry and the outbound
adapters (`ivr.ports.Outbound`) the jobs find in their context, and hands both to the queue.

- `InProcessJobs`, the embedded default: a small thread pool inside the serving process. A failure is
  retried after each delay in `IVR_JOB_BACKOFF`; after the last one the job is written to the
  `failed_jobs` table, where `ivr jobs failed` lists it and `ivr jobs retry` runs it again.
- `RedisJobs` (`IVR_REDIS_URL` set): RQ on Redis, run by `ivr worker`. RQ retries with the same
  delays; a job that keeps failing stays in RQ's failed-job registry (kept for a year), listed and
  retried by the same commands.
"""
from __future__ import annotations

import contextvars
import heapq
import json
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from ivr.config import Settings
from ivr.db import transaction
from ivr.models import FailedJob, utcnow
from ivr.ports import Outbound

log = logging.getLogger(__name__)

JobFunction = Callable[..., Any]
FAILED_JOB_TTL = 365 * 24 * 3600  # RQ's failed-job registry keeps them this long


class JobError(Exception):
    """A job cannot be queued or found (unknown name, payload that is not JSON, unknown id)."""


@dataclass
class JobContext:
    """What a running job may use: settings, database sessions, the queue itself (to chain) and the
    outbound adapters (SMS, reply calls) the composition root chose."""

    settings: Settings
    session_factory: sessionmaker[Session]
    jobs: Jobs
    outbound: Outbound | None = None

    @property
    def adapters(self) -> Outbound:
        """The outbound adapters; JobError when the queue was built without them."""
        if self.outbound is None:
            raise JobError("this job queue was built without outbound adapters (build it with ivr.wiring)")
        return self.outbound


@dataclass(frozen=True)
class FailedJobInfo:
    """A job that kept failing, as `ivr jobs failed` and the console show it."""

    job_id: str
    name: str
    payload: dict[str, Any]
    error: str
    attempts: int
    failed_at: datetime | None


class JobRegistry:
    """Job names to functions; built explicitly by `ivr.wiring.build_registry`, never by import side effects."""

    def __init__(self, jobs: Mapping[str, JobFunction] | None = None) -> None:
        self._jobs: dict[str, JobFunction] = dict(jobs or {})

    def add(self, name: str, fn: JobFunction) -> None:
        """Register `fn` under `name`."""
        if name in self._jobs:
            raise JobError(f"job {name!r} is registered twice")
        self._jobs[name] = fn

    def get(self, name: str) -> JobFunction:
        """The function for `name`."""
        try:
            return self._jobs[name]
        except KeyError:
            raise JobError(f"unknown job {name!r}") from None

    def names(self) -> list[str]:
        """Every registered job name."""
        return sorted(self._jobs)


class Jobs(Protocol):
    """The queue interface the services, drivers and views use."""

    def enqueue(self, name: str, *, job_id: str | None = None, delay: float = 0, **payload: Any) -> str:
        """Queue job `name` with `payload`; a job already queued under `job_id` is not queued twice."""

    def failed(self) -> list[FailedJobInfo]:
        """Jobs that kept failing, newest first."""

    def retry(self, job_id: str) -> None:
        """Queue a failed job again."""

    def close(self, timeout: float = 10.0) -> None:
        """Stop; finish running jobs, keep queued ones (they are recorded, never dropped)."""


def _check_payload(registry: JobRegistry, name: str, payload: dict[str, Any]) -> str:
    registry.get(name)
    try:
        return json.dumps(payload, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise JobError(f"job {name!r}: payload is not JSON: {exc}") from None


@dataclass(order=True)
class _Pending:
    due: float
    seq: int
    job_id: str = field(compare=False)
    name: str = field(compare=False)
    payload: dict[str, Any] = field(compare=False)
    attempt: int = field(compare=False, default=1)


class InProcessJobs:
    """Jobs run by a thread pool in this process, with retries and a table of failed jobs."""

    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        registry: JobRegistry,
        *,
        outbound: Outbound | None = None,
        workers: int = 2,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.registry = registry
        self.outbound = outbound
        self.backoff = tuple(settings.job_backoff)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="job")
        self._lock = threading.Condition()
        self._heap: list[_Pending] = []
        self._active: set[str] = set()  # queued, waiting for a retry, or running
        self._running = 0
        self._seq = 0
        self._closed = False
        self._timer = threading.Thread(target=self._dispatch_due, name="job-timer", daemon=True)
        self._timer.start()

    def enqueue(self, name: str, *, job_id: str | None = None, delay: float = 0, **payload: Any) -> str:
        """Queue job `name`; a job id already queued or running is not queued twice."""
        _check_payload(self.registry, name, payload)
        job_id = job_id or f"{name}:{uuid.uuid4().hex}"
        with self._lock:
            if self._closed:
                raise JobError("the job queue is closed")
            if job_id in self._active:
                return job_id
            self._active.add(job_id)
            self._push(_Pending(time.monotonic() + delay, 0, job_id, name, payload))
        return job_id

    def _push(self, item: _Pending) -> None:
        self._seq += 1
        item.seq = self._seq
        heapq.heappush(self._heap, item)
        self._lock.notify_all()

    def _dispatch_due(self) -> None:
        while True:
            with self._lock:
                while not self._closed and (not self._heap or self._heap[0].due > time.monotonic()):
                    wait = self._heap[0].due - time.monotonic() if self._heap else None
                    self._lock.wait(wait)
                if self._closed:
                    return
                item = heapq.heappop(self._heap)
                self._running += 1
            self._pool.submit(self._run, item)

    def _run(self, item: _Pending) -> None:
        context = JobContext(self.settings, self.session_factory, self, self.outbound)
        retry_in: float | None = None
        try:
            self.registry.get(item.name)(context, **item.payload)
            log.info("job %s done (attempt %d)", item.job_id, item.attempt)
        except Exception as exc:
            if item.attempt <= len(self.backoff):
                retry_in = self.backoff[item.attempt - 1]
                log.warning("job %s failed (attempt %d), retrying in %ss: %s", item.job_id, item.attempt, retry_in, exc)
            else:
                log.error("job %s failed for good after %d attempts: %s", item.job_id, item.attempt, exc)
                self._keep_failed(item, traceback.format_exc())
        finally:
            with self._lock:
                self._running -= 1
                if retry_in is not None and not self._closed:
                    item.attempt += 1
                    item.due = time.monotonic() + retry_in
                    self._push(item)
                else:
                    if retry_in is not None:  # closing: keep it rather than drop it
                        self._keep_failed(item, "the queue closed before the retry")
                    self._active.discard(item.job_id)
                self._lock.notify_all()

    def _keep_failed(self, item: _Pending, error: str) -> None:
        try:
            with transaction(self.session_factory) as session:
                session.add(FailedJob(
                    job_id=item.job_id, name=item.name, attempts=item.attempt, error=error,
                    payload=json.dumps(item.payload, sort_keys=True, ensure_ascii=False),
                ))
        except Exception:  # the database is down too: the log line is all that is left
            log.exception("could not keep failed job %s %s %r", item.job_id, item.name, item.payload)

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until nothing is queued or running (retries included); True when idle."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._heap or self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.05))
        return True

    def failed(self) -> list[FailedJobInfo]:
        """Jobs kept in the `failed_jobs` table that were not retried, newest first."""
        with transaction(self.session_factory, readonly=True) as session:
            rows = session.scalars(
                select(FailedJob).where(FailedJob.retried_at.is_(None)).order_by(FailedJob.id.desc())
            ).all()
            return [FailedJobInfo(r.job_id, r.name, json.loads(r.payload), r.error, r.attempts, r.failed_at) for r in rows]

    def retry(self, job_id: str) -> None:
        """Queue a kept job again and mark it retried."""
        with transaction(self.session_factory) as session:
            row = session.scalars(
                select(FailedJob).where(FailedJob.job_id == job_id, FailedJob.retried_at.is_(None))
            ).first()
            if row is None:
                raise JobError(f"no failed job {job_id!r}")
            row.retried_at = utcnow()
            name, payload = row.name, json.loads(row.payload)
        self.enqueue(name, job_id=job_id, **payload)

    def close(self, timeout: float = 10.0) -> None:
        """Let due work finish; keep jobs still waiting (delayed or retrying) as failed, never drop them."""
        self.drain(timeout)
        with self._lock:
            self._closed = True
            waiting, self._heap = self._heap, []
            self._lock.notify_all()
        for item in waiting:
            self._keep_failed(item, "the queue closed before the job ran")
        self._pool.shutdown(wait=True)


# The RQ worker installs its context here before it starts taking jobs; `run_rq_job` reads it.
_worker_context: contextvars.ContextVar[JobContext] = contextvars.ContextVar("ivr_job_context")


def run_rq_job(name: str, payload: dict[str, Any]) -> Any:
    """RQ's entry point: run job `name` in the worker's context."""
    try:
        context = _worker_context.get()
    except LookupError:
        raise JobError("run_rq_job called outside `ivr worker`") from None
    return context.jobs.registry.get(name)(context, **payload)  # type: ignore[attr-defined]


class RedisJobs:
    """Jobs on Redis through RQ; `ivr worker` runs them."""

    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        registry: JobRegistry,
        *,
        outbound: Outbound | None = None,
        connection: Any = None,
    ) -> None:
        # rq and redis are imported only where the Redis queue is used: together they cost ~125 ms
        # (python -X importtime: rq 124.6 ms), and the call runner, which every classic AGI process
        # loads, imports this module through the services.
        from redis import Redis
        from rq import Queue

        self.settings = settings
        self.session_factory = session_factory
        self.registry = registry
        self.outbound = outbound
        self.connection = connection or Redis.from_url(settings.redis_url)
        self.queue = Queue(settings.queue_name, connection=self.connection)

    def enqueue(self, name: str, *, job_id: str | None = None, delay: float = 0, **payload: Any) -> str:
        """Queue job `name` on Redis; a job id already waiting or running is not queued twice."""
        from rq import Retry
        from rq.job import Job, JobStatus

        _check_payload(self.registry, name, payload)
        job_id = job_id or f"{name}:{uuid.uuid4().hex}"
        rq_id = self._rq_id(job_id)
        if Job.exists(rq_id, connection=self.connection):
            status = Job.fetch(rq_id, connection=self.connection).get_status()
            if status in (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED):
                return job_id
        options: dict[str, Any] = dict(
            job_id=rq_id, failure_ttl=FAILED_JOB_TTL, description=name,
            retry=Retry(max=len(self.settings.job_backoff), interval=list(self.settings.job_backoff))
            if self.settings.job_backoff else None,
        )
        if delay > 0:
            self.queue.enqueue_in(timedelta(seconds=delay), run_rq_job, name, payload, **options)
        else:
            self.queue.enqueue(run_rq_job, name, payload, **options)
        return job_id

    def _rq_id(self, job_id: str) -> str:
        # RQ ids allow only letters, digits, '-' and '_'. RQ's job keys are global to the Redis
        # database, so the queue name is part of the id: two queues sharing one Redis (two
        # installations, parallel test runs) never take each other's job for a duplicate.
        return "".join(c if c.isalnum() or c in "-_" else "_" for c in f"{self.queue.name}:{job_id}")

    def failed(self) -> list[FailedJobInfo]:
        """Jobs in RQ's failed-job registry, newest first."""
        from rq.job import Job
        from rq.registry import FailedJobRegistry

        registry = FailedJobRegistry(queue=self.queue)
        out = []
        for job in Job.fetch_many(registry.get_job_ids(), connection=self.connection):
            if job is None:
                continue
            name, payload = job.args
            result = job.latest_result()
            error = (result.exc_string if result is not None else None) or "unknown error"
            out.append(FailedJobInfo(job.id, name, payload, error, job.retries_left or 0, job.ended_at))
        return sorted(out, key=lambda f: f.failed_at or datetime.min, reverse=True)

    def retry(self, job_id: str) -> None:
        """Queue a job from the failed registry again."""
        from rq.registry import FailedJobRegistry

        registry = FailedJobRegistry(queue=self.queue)
        rq_id = job_id if job_id in registry.get_job_ids() else self._rq_id(job_id)
        if rq_id not in registry.get_job_ids():
            raise JobError(f"no failed job {job_id!r}")
        registry.requeue(rq_id)

    def work(self, *, burst: bool = False) -> None:
        """Run jobs from the queue in this process until stopped (or until empty when `burst`)."""
        from rq.worker import SimpleWorker

        _worker_context.set(JobContext(self.settings, self.session_factory, self, self.outbound))
        worker = SimpleWorker([self.queue], connection=self.connection)
        worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")

    def close(self, timeout: float = 10.0) -> None:
        """Nothing runs here; jobs wait on Redis for a worker."""
        self.connection.close()


_AFTER_COMMIT = "ivr_jobs_after_commit"


def enqueue_after_commit(session: Session, jobs: Jobs, name: str, *, job_id: str, **payload: Any) -> None:
    """Queue a job once `session` commits (never if it rolls back)."""
    pending = session.info.get(_AFTER_COMMIT)
    if pending is None:
        pending = session.info[_AFTER_COMMIT] = []
        event.listen(session, "after_commit", _enqueue_pending)
        event.listen(session, "after_rollback", _drop_pending)
    pending.append((jobs, name, job_id, payload))


def _enqueue_pending(session: Session) -> None:
    pending = session.info.get(_AFTER_COMMIT) or []
    session.info[_AFTER_COMMIT] = []
    for jobs, name, job_id, payload in pending:
        try:
            jobs.enqueue(name, job_id=job_id, **payload)
        except Exception:  # the row is stored: a retry or a sweep picks it up
            log.exception("could not queue job %s; its row stays for a later retry", job_id)


def _drop_pending(session: Session) -> None:
    session.info[_AFTER_COMMIT] = []


def build_jobs(
    settings: Settings, session_factory: sessionmaker[Session], registry: JobRegistry,
    *, outbound: Outbound | None = None,
) -> InProcessJobs | RedisJobs:
    """The queue the settings ask for: Redis when `IVR_REDIS_URL` is set, in-process otherwise."""
    if settings.redis_url:
        return RedisJobs(settings, session_factory, registry, outbound=outbound)
    return InProcessJobs(settings, session_factory, registry, outbound=outbound)

