"""What the app factory hands to every view: the session factory and the job queue."""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ivr.jobqueue import Jobs


def sessions(app: Any) -> sessionmaker[Session]:
    """The session factory the app was built with."""
    return app.extensions["ivr_sessions"]


def jobs_of(app: Any) -> Jobs:
    """The background job queue the app was built with."""
    return app.extensions["ivr_jobs"]
