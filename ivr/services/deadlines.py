"""How long a unit has to answer a message: per topic, and per kind of message on that topic.

A topic has its own deadline in working days (`topics.due_working_days`); an administrator can
set a different one for one kind of message on it (`topic_deadlines`: complaints sooner than
suggestions, say). Referrals and re-opened requests (reminders) take their due date from here.
"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from ivr.models import Topic, TopicDeadline
from ivr.services.calendar import due_at

DEFAULT_DUE_WORKING_DAYS = 7  # a message with no topic


def working_days_to_answer(session: Session, topic_id: int | None, kind: str) -> int:
    """The kind's deadline on that topic if one is set, else the topic's, else the default."""
    if topic_id is None:
        return DEFAULT_DUE_WORKING_DAYS
    special = session.get(TopicDeadline, (topic_id, kind))
    if special is not None:
        return special.due_working_days
    topic = session.get(Topic, topic_id)
    return (topic.due_working_days if topic is not None else 0) or DEFAULT_DUE_WORKING_DAYS


def answer_due_at(session: Session, *, topic_id: int | None, kind: str, start: datetime, tz: ZoneInfo) -> datetime:
    """When an answer to a message of `kind` on `topic_id`, referred at `start`, falls due."""
    return due_at(session, start, working_days_to_answer(session, topic_id, kind), tz)
