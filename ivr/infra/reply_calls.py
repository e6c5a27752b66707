"""Placing the call that plays a spoken reply: the `ReplyCaller` port (ivr.ports), two ways.

`AsteriskCallFiles` writes an Asterisk call file atomically into `IVR_CALL_SPOOL_DIR` (Asterisk's
outgoing spool): Asterisk dials `IVR_CALL_CHANNEL`, runs the dialplan context `ivr-reply-notice`
and retries by itself (`MaxRetries`, `RetryTime`); the sweep reads the outcome from the archived
file later. `TwilioReplyCalls` asks Twilio's Calls API to call and fetch the reply's TwiML.
"""
from __future__ import annotations

import grp
import os
import tempfile
from pathlib import Path
from typing import Any

from ivr.config import Settings
from ivr.infra.notify import e164
from ivr.infra.twilio_rest import build_client
from ivr.ports import PlacedCall
from ivr.vocabulary import REPLY_AUDIO_VARIABLE, REPLY_ID_VARIABLE, TRACKING_CODE_VARIABLE

NOTICE_CONTEXT = "ivr-reply-notice"
CALL_FILE_MODE = 0o660  # Asterisk reads the file and appends its retries to it
TWILIO_NOTICE_PATH = "/twilio/voice/reply-notice"


def call_file_text(*, number: str, reply_id: int, tracking_code: str, audio: Path, line: str,
                   settings: Settings) -> str:
    """An Asterisk call file that dials the citizen and plays the reply in `ivr-reply-notice`."""
    sound = str(audio.with_suffix(""))  # Playback takes the name without the extension
    return "\n".join([
        f"Channel: {settings.call_channel.format(number=number)}",
        f'CallerID: "{line}" <{line}>',
        f"MaxRetries: {settings.call_max_retries}",
        f"RetryTime: {settings.call_retry_seconds}",
        "WaitTime: 45",
        f"Context: {NOTICE_CONTEXT}",
        "Extension: s",
        "Priority: 1",
        f"Setvar: {REPLY_ID_VARIABLE}={reply_id}",
        f"Setvar: {REPLY_AUDIO_VARIABLE}={sound}",
        f"Setvar: {TRACKING_CODE_VARIABLE}={tracking_code}",
        "Archive: yes",
        "",
    ])


def give_call_file_to_spool(fd: int, spool_dir: Path) -> None:
    """Give an open call file the spool folder's group (and owner, when running as root), mode 0660.

    Asterisk, running as its own user, must read the file and append its `StartRetry` lines to
    it: they are how it counts `MaxRetries`. A file it can read but not append to is retried for
    ever; one it cannot read (mkstemp's 0600) is deleted unplayed. Only the owner may set the file's
    time (Asterisk's retry clock), so as root the file also takes the folder's owner; otherwise
    Asterisk logs "Unable to set utime" on each attempt, which is harmless.
    Raises PermissionError when this user may not give the file that group (not a member).
    """
    folder = spool_dir.stat()
    os.fchmod(fd, CALL_FILE_MODE)
    try:
        os.fchown(fd, folder.st_uid if os.geteuid() == 0 else -1, folder.st_gid)
    except PermissionError:
        raise PermissionError(
            f"cannot give call files the group {_group_name(folder.st_gid)} of {spool_dir}: "
            "the server's user must be a member, or Asterisk cannot read them"
        ) from None


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def write_call_file(spool_dir: Path, name: str, text: str) -> Path:
    """Write a call file atomically: into a staging folder beside the spool, then renamed in.

    Asterisk reads a call file as soon as it appears, so it must never see a half-written one;
    the staging folder is on the same file system, so the rename is atomic. The file is made
    Asterisk's to read and append to (see `give_call_file_to_spool`).
    """
    spool_dir.mkdir(parents=True, exist_ok=True)
    staging = spool_dir.parent / f".{spool_dir.name}.staging"
    staging.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=staging, suffix=".call")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            give_call_file_to_spool(f.fileno(), spool_dir)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        target = spool_dir / name
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


class AsteriskCallFiles:
    """Reply calls as Asterisk call files; the outcome is read later from Asterisk's archive."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def call(self, *, phone: str, line: str, reply_id: int, tracking_code: str, audio: Path,
             attempt: int) -> PlacedCall:
        """Write `reply-<id>-<attempt>.call` into the outgoing spool (status `queued`)."""
        name = f"reply-{reply_id}-{attempt}.call"
        write_call_file(self.settings.outgoing_call_dir, name, call_file_text(
            number=phone, reply_id=reply_id, tracking_code=tracking_code, audio=audio, line=line,
            settings=self.settings))
        return PlacedCall(name, "queued")


class TwilioReplyCalls:
    """Reply calls through Twilio's Calls API; Twilio fetches the TwiML that plays the reply."""

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self.settings = settings
        self._client = client

    def call(self, *, phone: str, line: str, reply_id: int, tracking_code: str, audio: Path,
             attempt: int) -> PlacedCall:
        """Ask Twilio to place the call (status `sent` once Twilio accepted it)."""
        if self._client is None:
            self._client = build_client(self.settings)
        call = self._client.calls.create(
            to=e164(phone), from_=self.settings.twilio_number_of(line),
            url=f"{self.settings.public_base_url}{TWILIO_NOTICE_PATH}?reply_id={reply_id}", method="POST",
        )
        return PlacedCall(str(call.sid), "sent")
