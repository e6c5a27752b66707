"""The composition root: what the program is made of, assembled in one place.

The CLI (`ivr serve`, `ivr worker`, `ivr jobs ...`) and the web app factory build their job queue
here. This is the one module that knows every background job and every outbound adapter: the job
queue (ivr/jobqueue.py) runs whatever registry it is given, and the services receive the adapters
(ivr/ports.py) they need instead of importing Twilio or Asterisk themselves.
"""
from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from ivr.config import Settings
from ivr.drivers.twilio.recordings import FETCH_JOB, fetch_recording_job
from ivr.followthrough.jobs import followthrough_sweep_job, reply_followup_job
from ivr.infra.notify import LocalNotifier, TwilioNotifier
from ivr.infra.reply_calls import AsteriskCallFiles, TwilioReplyCalls
from ivr.infra.twilio_rest import TwilioRecordings
from ivr.jobqueue import InProcessJobs, JobContext, JobRegistry, Jobs, RedisJobs
from ivr.jobqueue import build_jobs as queue_for
from ivr.ports import Notifier, Outbound, ReplyCaller
from ivr.services.sms import sms_send_job
from ivr.services.spooled import open_spool


def replay_spool_job(ctx: JobContext) -> int:
    """Job `spool.replay`: ingest calls that waited in the spool while the database was down."""
    return open_spool(ctx.settings).replay(ctx.session_factory).ingested


def build_registry() -> JobRegistry:
    """Every job the system runs, by name."""
    registry = JobRegistry()
    registry.add("spool.replay", replay_spool_job)
    registry.add("sms.send", sms_send_job)
    registry.add(FETCH_JOB, fetch_recording_job)
    registry.add("reply.followup", reply_followup_job)
    registry.add("followthrough.sweep", followthrough_sweep_job)
    return registry


def build_outbound(settings: Settings) -> Outbound:
    """The outbound adapters the settings ask for: Twilio when `IVR_SMS_BACKEND=twilio`, local otherwise."""
    notifier: Notifier
    caller: ReplyCaller
    if settings.sms_backend == "twilio":
        notifier, caller = TwilioNotifier(settings), TwilioReplyCalls(settings)
    else:
        notifier, caller = LocalNotifier(), AsteriskCallFiles(settings)
    # Recordings come from Twilio whenever a Twilio call left one, whatever sends the SMS.
    return Outbound(notifier=notifier, reply_caller=caller, recordings=TwilioRecordings(settings))


def build_jobs(settings: Settings, session_factory: sessionmaker[Session]) -> InProcessJobs | RedisJobs:
    """The job queue the settings ask for (Redis or in-process), with every job and adapter."""
    return queue_for(settings, session_factory, build_registry(), outbound=build_outbound(settings))


def build_in_process_jobs(
    settings: Settings, session_factory: sessionmaker[Session], *, workers: int = 2
) -> InProcessJobs:
    """The in-process queue with every job and adapter (`ivr jobs` on the embedded default, tests)."""
    return InProcessJobs(settings, session_factory, build_registry(), outbound=build_outbound(settings),
                         workers=workers)


def build_redis_jobs(settings: Settings, session_factory: sessionmaker[Session]) -> RedisJobs:
    """The Redis queue with every job and adapter (`ivr worker`)."""
    return RedisJobs(settings, session_factory, build_registry(), outbound=build_outbound(settings))


def job_context(settings: Settings, session_factory: sessionmaker[Session], jobs: Jobs) -> JobContext:
    """The context a job runs in, for running one job directly (`ivr followthrough sweep`, tests)."""
    return JobContext(settings, session_factory, jobs, build_outbound(settings))
