"""The follow-through's background jobs: `reply.followup` (per reply) and `followthrough.sweep` (periodic)."""
from __future__ import annotations

import logging
from typing import Any

from ivr.db import transaction
from ivr.followthrough.escalation import sweep_overdue
from ivr.followthrough.inspections import sample_for_inspection
from ivr.followthrough.notices import NoticeError, collect_call_outcomes, send_reply_notice
from ivr.followthrough.surveys import schedule_survey, send_due_surveys
from ivr.jobqueue import JobContext
from ivr.models import Citizen, Reply

log = logging.getLogger(__name__)


def reply_followup_job(ctx: JobContext, reply_id: int) -> dict[str, Any]:
    """Job `reply.followup`: notify the citizen, schedule the survey, maybe sample a field check.

    Idempotent: a notice already queued or sent, the reply's survey and its sampling decision are
    each made once. A notice that could not be made (a call file not written, Twilio refused) is
    recorded as a failed attempt and the job raises, so the queue retries it with backoff.
    """
    with transaction(ctx.session_factory) as session:
        reply = session.get(Reply, reply_id)
        if reply is None:
            raise NoticeError(f"no reply {reply_id}")
        notice = send_reply_notice(session, ctx.jobs, ctx.settings, reply_id, caller=ctx.adapters.reply_caller)
        failed = notice is not None and notice.status == "failed"
        survey_id = check_id = None
        if not failed:
            citizen = session.get(Citizen, reply.message.citizen_id) if reply.message.citizen_id else None
            if citizen is not None:
                survey_id = schedule_survey(session, reply_id=reply_id, message_id=reply.message_id,
                                            phone=citizen.phone, settings=ctx.settings).id
            check = sample_for_inspection(session, reply_id, ctx.settings)
            check_id = check.id if check is not None else None
        error = notice.error if failed and notice is not None else None
    if failed:
        raise NoticeError(f"reply {reply_id}: notice failed: {error}")
    return {"notice": notice.channel if notice else None, "survey": survey_id, "field_check": check_id}


def followthrough_sweep_job(ctx: JobContext) -> dict[str, int]:
    """Job `followthrough.sweep`: escalate overdue referrals, send due surveys and resends."""
    with transaction(ctx.session_factory) as session:
        escalated = len(sweep_overdue(session, ctx.jobs))
    with transaction(ctx.session_factory) as session:
        surveys = send_due_surveys(session, ctx.jobs, ctx.settings)
    with transaction(ctx.session_factory) as session:
        calls = collect_call_outcomes(session, ctx.settings)
    if escalated or surveys or calls:
        log.info("sweep: %d escalated, %d surveys sent, %d notice calls settled", escalated, surveys, calls)
    return {"escalated": escalated, "surveys": surveys, "notice_calls": calls}
