"""The audit log: who listened to, screened, referred, answered or changed what, and when."""
from __future__ import annotations

from sqlalchemy.orm import Session

from ivr.models import AuditEntry


def record(
    session: Session,
    user_id: int | None,
    action: str,
    object_type: str,
    object_id: int | None = None,
    detail: str | None = None,
    ip: str | None = None,
) -> AuditEntry:
    """Add one audit entry (no commit: it lands with the change it describes)."""
    entry = AuditEntry(
        user_id=user_id, action=action, object_type=object_type, object_id=object_id, detail=detail, ip=ip
    )
    session.add(entry)
    return entry
