"""The on-disk spool: what a call produced while the database was unreachable.

A call that cannot reach the database writes one JSON file here (atomically) holding
its call record and the messages it registered, whose audio is already in storage.
`replay` ingests the files in order once the database answers again; ingestion is
idempotent (calls by channel id, messages by origin key), so a crash half-way or a
second replay never duplicates anything. A file that can never be ingested is moved
to `rejected/` with the reason, never deleted.
"""
from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ivr.db import transaction
from ivr.infra.storage import StoredAudio
from ivr.services.call_log import CallRecord, save_call
from ivr.services.messages import MessageError, register_message

log = logging.getLogger(__name__)


@dataclass
class ReplayReport:
    """What one replay did."""

    ingested: int = 0
    waiting: int = 0
    rejected: list[str] = field(default_factory=list)


class Spool:
    """A folder of pending call results."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, call: CallRecord, messages: list[dict[str, Any]]) -> Path:
        """Write one call's results; returns the file written."""
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
        tmp = self.root / f".{name}.tmp"
        payload = {"version": 1, "call": call.to_dict(), "messages": messages}
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(payload, f, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        final = self.root / name
        os.replace(tmp, final)
        return final

    def pending(self) -> list[Path]:
        """Spooled files, oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(self.root.glob("*.json"))

    def replay(self, factory: sessionmaker[Session]) -> ReplayReport:
        """Ingest every spooled file the database accepts; stop at the first outage."""
        report = ReplayReport()
        files = self.pending()
        for i, path in enumerate(files):
            try:
                payload = json.loads(path.read_text(encoding="utf-8"))
                with transaction(factory) as session:
                    ingest(session, payload)
            except OperationalError as exc:
                log.warning("spool: database still unreachable (%s); %d file(s) wait", exc.orig, len(files) - i)
                report.waiting = len(files) - i
                return report
            except (MessageError, ValueError, KeyError, TypeError) as exc:
                self._reject(path, str(exc))
                report.rejected.append(path.name)
                continue
            path.unlink()
            report.ingested += 1
        return report

    def _reject(self, path: Path, reason: str) -> None:
        bad = self.root / "rejected"
        bad.mkdir(exist_ok=True)
        os.replace(path, bad / path.name)
        (bad / (path.name + ".reason")).write_text(reason + "\n", encoding="utf-8")
        log.error("spool: %s rejected: %s", path.name, reason)


def ingest(session: Session, payload: dict[str, Any]) -> None:
    """Write one spooled call (and its messages) to the database, idempotently."""
    record = CallRecord.from_dict(payload["call"])
    call = save_call(session, record)
    for m in payload.get("messages", []):
        audio = StoredAudio(**m["audio"]) if m.get("audio") else None
        register_message(
            session,
            line=m["line"],
            kind=m["kind"],
            source=m.get("source", "phone_voice"),
            caller=record.caller,
            topic_code=m.get("topic") or None,
            district=int(m["district"]) if m.get("district") else None,
            call_id=call.id,
            audio=audio,
            body=m.get("body"),
            origin_key=m["origin_key"],
            tracking_code=m.get("tracking_code"),
        )
