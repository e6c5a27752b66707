"""Deadlines and escalation: overdue referrals are raised to the parent unit and the supervisors.

A referral is overdue when its due date (working days, ivr/services/calendar.py) has passed and it
is still open (closed_at NULL). The periodic sweep escalates each overdue referral once per
deadline: the claim is a conditional `UPDATE referrals SET escalated_at = now WHERE id = :id AND
escalated_at IS NULL`, so two sweeps at once (PostgreSQL row locks) or one run twice escalate once.
A re-opened referral (a reminder) gets a new deadline and may be escalated again when it passes.
Each escalation is a row (listed in the console for supervisors, and for the parent unit's manager)
and, when the parent unit's manager has a phone number, an SMS to them.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, aliased

from ivr.db import execute_dml
from ivr.identifiers import persian_digits
from ivr.jobqueue import Jobs
from ivr.models import Escalation, Message, Referral, Unit, User, utcnow
from ivr.services.sms import SmsError, queue_sms

log = logging.getLogger(__name__)

ESCALATION_PURPOSE = "escalation"
ESCALATION_TEXT = "پیام با کد رهگیری {code} در «{unit}» از مهلت پاسخ گذشته و به واحد شما ارجاع شد."


def sweep_overdue(session: Session, jobs: Jobs, now: datetime | None = None) -> list[int]:
    """Escalate every overdue referral once; the ids of the escalations made by this run."""
    now = now or utcnow()
    made: list[int] = []
    for ref_id, message_id, unit_id, due in session.execute(
        select(Referral.id, Referral.message_id, Referral.unit_id, Referral.due_at)
        .where(Referral.closed_at.is_(None), Referral.escalated_at.is_(None), Referral.due_at < now)
        .order_by(Referral.due_at, Referral.id)
    ).all():
        claimed = execute_dml(
            session,
            update(Referral)
            .where(Referral.id == ref_id, Referral.escalated_at.is_(None), Referral.closed_at.is_(None))
            .values(escalated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed != 1:
            continue  # another sweep got there first
        unit = session.get(Unit, unit_id)
        parent_id = unit.parent_id if unit is not None else None
        esc = Escalation(referral_id=ref_id, message_id=message_id, unit_id=unit_id, to_unit_id=parent_id,
                         due_at=due, created_at=now)
        session.add(esc)
        session.flush()
        made.append(esc.id)
        manager = session.scalars(
            select(User).where(User.unit_id == parent_id, User.role == "manager", User.active.is_(True),
                               User.phone.is_not(None)).order_by(User.id).limit(1)
        ).first() if parent_id is not None else None
        if manager is not None and unit is not None:
            code = session.scalar(select(Message.tracking_code).where(Message.id == message_id)) or ""
            try:
                sms = queue_sms(session, jobs, phone=manager.phone or "", purpose=ESCALATION_PURPOSE,
                                body=ESCALATION_TEXT.format(code=persian_digits(code), unit=unit.name))
                esc.notified_sms_id = sms.id
            except SmsError as exc:
                log.warning("escalation %s: manager %s not notified: %s", esc.id, manager.username, exc)
    session.flush()
    session.expire_all()  # the conditional UPDATEs bypassed the identity map
    return made


@dataclass(frozen=True)
class EscalationRow:
    """One escalation as the console lists it."""

    id: int
    tracking_code: str
    message_id: int
    unit_name: str
    to_unit_name: str | None
    due_at: datetime
    escalated_at: datetime
    still_open: bool
    notified: bool


def list_escalations(session: Session, *, to_unit_id: int | None = None, limit: int = 300) -> list[EscalationRow]:
    """Escalations, newest first; only those raised to `to_unit_id` when given (a manager's view)."""
    parent = aliased(Unit)
    query = (
        select(Escalation, Message.tracking_code, Unit.name, parent.name, Referral.closed_at)
        .join(Message, Message.id == Escalation.message_id)
        .join(Unit, Unit.id == Escalation.unit_id)
        .outerjoin(parent, parent.id == Escalation.to_unit_id)
        .join(Referral, Referral.id == Escalation.referral_id)
        .order_by(Escalation.created_at.desc(), Escalation.id.desc())
        .limit(limit)
    )
    if to_unit_id is not None:
        query = query.where(Escalation.to_unit_id == to_unit_id)
    return [
        EscalationRow(e.id, code, e.message_id, unit_name, parent_name, e.due_at, e.created_at,
                      closed_at is None, e.notified_sms_id is not None)
        for e, code, unit_name, parent_name, closed_at in session.execute(query).all()
    ]
