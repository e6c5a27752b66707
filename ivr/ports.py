"""Outbound ports: the small interfaces through which the services reach the outside world.

The services and the follow-through depend only on these Protocols; the implementations (Twilio's
REST API, the local SMS log, Asterisk call files) live in `ivr.infra`, and the composition root
(`ivr.wiring`) chooses them from the settings and hands them over: as arguments, or to a background
job through its `JobContext.outbound`. This module sits in the bottom layer so that the job queue,
the services and the adapters can all name the same types without importing one another.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class NotifierError(Exception):
    """An SMS that could not be sent; `permanent` when retrying cannot help (bad number...)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class Notifier(Protocol):
    """Sends one SMS and returns the provider's id for it."""

    def send(self, phone: str, body: str, *, sender_line: str | None = None) -> str:
        """Send `body` to `phone` (normalised, e.g. 0912…); the provider's message id."""
        ...


@dataclass(frozen=True)
class PlacedCall:
    """An outbound call handed over: its reference and our status for it.

    `queued` when the outcome comes back later (an Asterisk call file, settled by the sweep),
    `sent` when the provider accepted the call (Twilio's Calls API).
    """

    ref: str
    status: str


class ReplyCaller(Protocol):
    """Places the call that plays a spoken reply to the citizen (the reply notice by phone)."""

    def call(self, *, phone: str, line: str, reply_id: int, tracking_code: str, audio: Path,
             attempt: int) -> PlacedCall:
        """Place the call; raises when it could not be handed over (the notice is then failed)."""
        ...


class DownloadError(Exception):
    """A recording that could not be fetched; `permanent` when retrying cannot help (gone, not ours)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class RecordingDownloader(Protocol):
    """Fetches a caller's recording from the telephony provider (Twilio's RecordingUrl)."""

    def download(self, url: str) -> bytes:
        """The WAV audio at `url`; DownloadError (permanent or not) when it cannot be had."""
        ...


@dataclass(frozen=True)
class Outbound:
    """Every outbound adapter the services and jobs use, chosen once by the composition root."""

    notifier: Notifier
    reply_caller: ReplyCaller
    recordings: RecordingDownloader
