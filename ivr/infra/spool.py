"""The on-disk spool: what a call produced that the database could not take.

A call writes one JSON file here (atomically) holding its call record and the messages
that could not be registered, each with the reason (database down, unknown topic,
storage error...). A message's audio is either already in storage (`audio`) or, when
storing it failed, kept raw under `audio/` in the spool (`file`): never an orphan.
`replay` ingests the files in order once the cause is gone; ingestion is idempotent
(calls by channel id, messages by origin key), so a crash half-way or a second replay
never duplicates anything. A file that still cannot be ingested is moved to `rejected/`
with the reason, never deleted: `rejected()` lists it and `register` ingests it by hand,
with a topic chosen.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from ivr.db import transaction
from ivr.infra.storage import AudioStore, StoredAudio

log = logging.getLogger(__name__)

# The database does not answer: the file waits, nothing is rejected.
DB_DOWN = (OperationalError, InterfaceError, PoolTimeout)
AUDIO_DIR = "audio"
REJECTED_DIR = "rejected"


@dataclass
class ReplayReport:
    """What one replay did."""

    ingested: int = 0
    waiting: int = 0
    rejected: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SpoolEntry:
    """One spooled file as a supervisor sees it."""

    id: str
    state: str  # waiting | rejected
    channel_id: str
    line: str
    kinds: tuple[str, ...]
    topics: tuple[str, ...]
    reason: str


class SpoolError(LookupError):
    """No such spooled file, or it cannot be registered as asked."""


class CallLog(Protocol):
    """A call's record as the spool keeps it (`ivr.services.call_log.CallRecord`)."""

    def to_dict(self) -> dict[str, Any]:
        """The record as plain data."""
        ...


class Ingest(Protocol):
    """Writes one spooled file to the database (the services' `ivr.services.spooled.ingest`)."""

    def __call__(
        self, session: Session, payload: dict[str, Any], store_raw: Any = None, *, call_only: bool = False
    ) -> list[str]:
        """Ingest `payload` (only its call log with `call_only`); the tracking codes registered."""
        ...


class Spool:
    """A folder of pending call results."""

    def __init__(self, root: Path, recordings_dir: Path | None = None, *, ingest: Ingest | None = None) -> None:
        """`recordings_dir`: where raw audio kept in the spool is stored when it is registered;
        `ingest`: how a file reaches the database (given by the services: the spool sits below them).
        """
        self.root = root
        self.recordings_dir = recordings_dir
        self._ingest_file = ingest

    def _ingester(self) -> Ingest:
        if self._ingest_file is None:
            raise SpoolError("this spool was opened without a way into the database (ivr.services.spooled.open_spool)")
        return self._ingest_file

    def put(self, call: CallLog, messages: list[dict[str, Any]]) -> Path:
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

    def keep_audio(self, src: Path) -> str:
        """Move raw audio that could not be stored into the spool; its name there."""
        folder = self.root / AUDIO_DIR
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}{src.suffix or '.wav'}"
        shutil.move(str(src), folder / name)
        return name

    def pending(self) -> list[Path]:
        """Spooled files, oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(self.root.glob("*.json"))

    def rejected_files(self) -> list[Path]:
        """Files replay could not ingest, oldest first."""
        bad = self.root / REJECTED_DIR
        return sorted(bad.glob("*.json")) if bad.is_dir() else []

    def entries(self) -> list[SpoolEntry]:
        """Every spooled file, waiting or rejected, with its reason."""
        out = []
        for state, paths in (("waiting", self.pending()), ("rejected", self.rejected_files())):
            for path in paths:
                out.append(self._entry(path, state))
        return out

    def rejected(self) -> list[SpoolEntry]:
        """The files replay could not ingest, with the reason."""
        return [self._entry(p, "rejected") for p in self.rejected_files()]

    def replay(self, factory: sessionmaker[Session]) -> ReplayReport:
        """Ingest every spooled file the database accepts; stop at the first outage."""
        report = ReplayReport()
        files = self.pending()
        for i, path in enumerate(files):
            try:
                payload = json.loads(path.read_text(encoding="utf-8"))
                self._ingest(factory, payload)
            except DB_DOWN as exc:
                log.warning("spool: database still unreachable (%s); %d file(s) wait", exc, len(files) - i)
                report.waiting = len(files) - i
                return report
            except Exception as exc:  # anything else will not go away by itself: set aside, with why
                self._keep_call_log(factory, path)
                self._reject(path, f"{type(exc).__name__}: {exc}")
                report.rejected.append(path.name)
                continue
            self._done(path, payload)
            report.ingested += 1
        return report

    def register(self, file_id: str, factory: sessionmaker[Session], *, topic: str | None = None) -> list[str]:
        """Register a rejected (or waiting) file by hand, with `topic` for its messages; the tracking codes."""
        path = self._find(file_id)
        payload = json.loads(path.read_text(encoding="utf-8"))
        if topic:
            for m in payload.get("messages", []):
                m["topic"] = topic
        codes = self._ingest(factory, payload)
        self._done(path, payload)
        reason = path.with_name(path.name + ".reason")
        reason.unlink(missing_ok=True)
        return codes

    # ---- inside -------------------------------------------------------------------------

    def _find(self, file_id: str) -> Path:
        name = file_id if file_id.endswith(".json") else f"{file_id}.json"
        if "/" in name or name.startswith("."):
            raise SpoolError(f"no spooled file {file_id!r}")
        for folder in (self.root / REJECTED_DIR, self.root):
            if (folder / name).is_file():
                return folder / name
        raise SpoolError(f"no spooled file {file_id!r}")

    def _entry(self, path: Path, state: str) -> SpoolEntry:
        reason_file = path.with_name(path.name + ".reason")
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            call, messages = payload.get("call") or {}, payload.get("messages") or []
        except (OSError, ValueError):
            call, messages = {}, []
        reasons = [str(m.get("reason")) for m in messages if m.get("reason")]
        if reason_file.is_file():
            reasons.append(reason_file.read_text(encoding="utf-8").strip())
        return SpoolEntry(
            id=path.stem, state=state, channel_id=str(call.get("channel_id", "")), line=str(call.get("line", "")),
            kinds=tuple(str(m.get("kind", "")) for m in messages),
            topics=tuple(str(m.get("topic") or "") for m in messages),
            reason="; ".join(reasons) or ("call log only" if not messages else ""),
        )

    def _ingest(self, factory: sessionmaker[Session], payload: dict[str, Any]) -> list[str]:
        stored: list[Path] = []
        try:
            with transaction(factory) as session:
                return self._ingester()(session, payload, self._storer(stored))
        except BaseException:
            for p in stored:  # the raw audio is still in the spool; drop the copy made for this try
                p.unlink(missing_ok=True)
            raise

    def _storer(self, stored: list[Path]) -> Any:
        def store(name: str) -> StoredAudio:
            if self.recordings_dir is None:
                raise SpoolError("this spool has no storage to register raw audio into")
            raw = self.root / AUDIO_DIR / name
            if not raw.is_file():
                raise SpoolError(f"the spooled audio {name} is missing")
            copy = raw.with_name(f".{raw.name}.copy{raw.suffix}")
            shutil.copyfile(raw, copy)
            store_ = AudioStore(self.recordings_dir)
            audio = store_.store(copy)
            stored.append(store_.path_of(audio.rel_path))
            return audio

        return store

    def _done(self, path: Path, payload: Mapping[str, Any]) -> None:
        for m in payload.get("messages", []):
            if m.get("file"):
                (self.root / AUDIO_DIR / m["file"]).unlink(missing_ok=True)
        path.unlink()

    def _keep_call_log(self, factory: sessionmaker[Session], path: Path) -> None:
        """A message that cannot be registered must not take its call's log with it."""
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            with transaction(factory) as session:
                self._ingester()(session, payload, call_only=True)
        except Exception as exc:
            log.warning("spool: %s: the call log could not be saved either: %s", path.name, exc)

    def _reject(self, path: Path, reason: str) -> None:
        bad = self.root / REJECTED_DIR
        bad.mkdir(exist_ok=True)
        os.replace(path, bad / path.name)
        (bad / (path.name + ".reason")).write_text(reason + "\n", encoding="utf-8")
        log.error("spool: %s rejected: %s", path.name, reason)
