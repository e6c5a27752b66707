"""The browser driver: each POST from the console's test phone is one `CallRunner.advance`.

Like the Twilio driver (and for the same reason: waitress serves plain WSGI, with no
WebSocket), the browser posts what the caller did and gets the next instruction in the
answer, as plain JSON: which prompts to play, which keys end them, how long to wait for a
key, when to record. Everything the call knows stays on the server, keyed by the call id,
in a `twilio_calls`-shaped row (`ivr.services.twilio_calls`: state, version, last answer),
so a retried POST gets the same answer and nothing runs twice. The browser only plays,
records, counts time and sends keys; it holds no call logic.

Calls are real calls with driver `test` (`calls.driver`), bound to the console user who
placed them. A recording arrives as the browser's own audio (MediaRecorder WebM/Opus);
it goes through the same checks and conversion as a manager's spoken reply
(`ivr.infra.audio_convert`) and lands as an 8 kHz WAV in `incoming/`, where the runner's
actions find it exactly as they find an Asterisk recording.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.orm import Session, sessionmaker

from ivr.config import Settings
from ivr.db import transaction
from ivr.flow.engine import End
from ivr.flow.steps import (
    Digits,
    Done,
    Event,
    Hangup,
    HungUp,
    Key,
    Play,
    ReadDigits,
    ReadKey,
    Record,
    Recorded,
    Timeout,
    Transfer,
)
from ivr.infra.audio_convert import ReplyAudioError, ReplyAudioLimits, convert_reply_audio
from ivr.models import LINES, TEST_DRIVER, utcnow
from ivr.runner import CallContext, CallRunner, Handover, Hold, Next, build_runner
from ivr.services import twilio_calls as calls
from ivr.services.call_log import CallRecord

log = logging.getLogger(__name__)

DRIVER = TEST_DRIVER  # calls.driver of a test call
CALL_ID_PREFIX = "web-"
CALL_ID_RE = re.compile(r"web-[0-9a-f]{32}")
CALLER_RE = re.compile(r"\+?[0-9]{3,20}")
KEYS = "0123456789*#"
EMPTY_TAKE = ("missing", "silent", "too_short")  # the runner's check_recording says "empty" for these


class PhoneRequestError(ValueError):
    """A request the test phone cannot act on; `status` is the 4xx to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Answer:
    """What the browser does next: `do` one of play, key, digits, record, wait, transfer, end."""

    call: str
    n: int
    do: str
    prompts: tuple[str, ...] = ()
    keys: str = ""  # keys that end the prompts (play) or answer (key)
    timeout_ms: int = 0
    max_digits: int = 0
    max_seconds: int = 0
    silence_seconds: int = 0
    seconds: int = 0  # wait

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {"call": self.call, "n": self.n, "do": self.do, "prompts": list(self.prompts), "keys": self.keys,
                "timeout_ms": self.timeout_ms, "max_digits": self.max_digits, "max_seconds": self.max_seconds,
                "silence_seconds": self.silence_seconds, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Answer:
        """Rebuild an answer kept as JSON."""
        return cls(**{**data, "prompts": tuple(data.get("prompts") or ())})

    @property
    def finished(self) -> bool:
        """The call is over once this answer is carried out."""
        return self.do in ("transfer", "end")


def fingerprint(call_id: str, n: int, form: Mapping[str, str]) -> str:
    """A step request's identity (a retried POST has the same one)."""
    h = hashlib.sha256(f"{call_id}\0{n}".encode())
    for key in sorted(form):
        h.update(f"\0{key}={form[key]}".encode())
    return h.hexdigest()


def render(call_id: str, step: Next, n: int) -> Answer:
    """The answer for what the runner said the call needs next."""
    match step:
        case Hold(seconds=seconds):
            return Answer(call_id, n, "wait", seconds=seconds)
        case Handover(prompts=prompts):
            return Answer(call_id, n, "transfer", prompts=prompts)
        case Transfer():
            return Answer(call_id, n, "transfer")
        case Play(prompts=prompts, interrupt=interrupt):
            return Answer(call_id, n, "play", prompts=prompts, keys=interrupt)
        case ReadKey(prompts=prompts, keys=keys, timeout_ms=timeout_ms):
            return Answer(call_id, n, "key", prompts=prompts, keys=keys, timeout_ms=timeout_ms)
        case ReadDigits(prompts=prompts, max_digits=max_digits, timeout_ms=timeout_ms):
            return Answer(call_id, n, "digits", prompts=prompts, keys=KEYS, timeout_ms=timeout_ms,
                          max_digits=max_digits)
        case Record(prompts=prompts, max_seconds=max_seconds, silence_seconds=silence_seconds):
            return Answer(call_id, n, "record", prompts=prompts, keys="#", max_seconds=max_seconds,
                          silence_seconds=silence_seconds)
    if not isinstance(step, Hangup | End):
        log.warning("test phone: nothing to render for %r; hanging up", step)
    return Answer(call_id, n, "end")


def _played_ms(form: Mapping[str, str]) -> int:
    raw = form.get("played_ms", "0")
    return min(int(raw), 24 * 3600 * 1000) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else 0


class BrowserPhone:
    """Runs test calls from the console with the shared runner."""

    def __init__(self, settings: Settings, factory: sessionmaker[Session], runner: CallRunner) -> None:
        self.settings = settings
        self.factory = factory
        self.runner = runner
        self.incoming = Path(settings.incoming_dir)

    # ---- requests -------------------------------------------------------------------------

    def start(self, line: str, caller: str, user_id: int) -> Answer:
        """Place a test call on `line` from `caller`: its first answer."""
        if line not in LINES:
            raise PhoneRequestError(404, f"unknown line {line!r}")
        caller = caller.strip()
        if caller and not CALLER_RE.fullmatch(caller):
            raise PhoneRequestError(400, "the caller number must be digits")
        call_id = CALL_ID_PREFIX + uuid.uuid4().hex
        now = utcnow()
        record = CallRecord(channel_id=call_id, line=line, driver=DRIVER, caller=caller or None, started_at=now,
                            answered_at=now)
        ctx, step = self.runner.start(record, sets_variables=False)
        answer = render(call_id, step, 1)
        with transaction(self.factory) as s:
            calls.add_call(s, call_id, line, self._kept(ctx, answer, user_id), "", self._json(answer),
                           finished=answer.finished)
        if answer.finished:
            self.runner.finish(ctx)
        log.info("test call %s on %s by user %s: started", call_id, line, user_id)
        return answer

    def step(self, call_id: str, n: int, form: Mapping[str, str], upload: Path | None, user_id: int) -> Answer:
        """What the caller did in answer to step `n` (`upload`: the recording, for a record step)."""
        saved = self._saved(call_id, user_id)
        fp = fingerprint(call_id, n, form)
        if n != saved.version or saved.finished:
            return self._replayed(saved, fp)
        ctx = CallContext.from_dict(saved.state)
        expect = Answer.from_dict(saved.state["expect"])
        event = self._event(expect, form, upload, call_id, n)
        answer = render(call_id, self.runner.advance(ctx, event), n + 1)
        with transaction(self.factory) as s:
            claimed = calls.claim_step(s, call_id, saved.version, self._kept(ctx, answer, user_id), fingerprint=fp,
                                       twiml=self._json(answer), finished=answer.finished)
        if not claimed:  # a duplicate of this POST, or the hang-up, got there first
            if isinstance(event, Recorded) and event.path and event.path not in ctx.kept:
                Path(event.path).unlink(missing_ok=True)
            return self._replayed(self._saved(call_id, user_id), fp)
        if answer.finished:
            self.runner.finish(ctx)
        return answer

    def hangup(self, call_id: str, user_id: int) -> Answer:
        """The caller hung up: the call ends where it is, with the same rules as on a phone."""
        saved = self._saved(call_id, user_id)
        if saved.finished:
            return Answer(call_id, saved.version, "end")
        ctx = CallContext.from_dict(saved.state)
        self.runner.advance(ctx, HungUp())
        answer = Answer(call_id, saved.version + 1, "end")
        with transaction(self.factory) as s:
            claimed = calls.claim_step(s, call_id, saved.version, self._kept(ctx, answer, user_id), fingerprint=None,
                                       twiml=self._json(answer), finished=True)
        if claimed:
            self.runner.finish(ctx)
        return answer

    # ---- translation ----------------------------------------------------------------------

    def _saved(self, call_id: str, user_id: int) -> calls.SavedStep:
        if not CALL_ID_RE.fullmatch(call_id):
            raise PhoneRequestError(404, "unknown call")
        with transaction(self.factory, readonly=True) as s:
            saved = calls.find_call(s, call_id)
        if saved is None or saved.state.get("user") != user_id:  # another user's call is not theirs to run
            raise PhoneRequestError(404, "unknown call")
        return saved

    def _replayed(self, saved: calls.SavedStep, fp: str) -> Answer:
        if saved.last_fingerprint == fp and saved.last_twiml:
            return Answer.from_dict(_loads(saved.last_twiml))
        if saved.finished:
            return Answer(saved.call_sid, saved.version, "end")
        raise PhoneRequestError(409, f"step out of order for call {saved.call_sid}")

    def _kept(self, ctx: CallContext, answer: Answer, user_id: int) -> dict[str, Any]:
        return {**ctx.to_dict(), "expect": answer.to_dict(), "user": user_id}

    @staticmethod
    def _json(answer: Answer) -> str:
        return _dumps(answer.to_dict())

    def _event(self, expect: Answer, form: Mapping[str, str], upload: Path | None, call_id: str, n: int) -> Event:
        """The engine event a POST brings, given what the last answer asked the browser to do."""
        kind = form.get("event", "")
        played_ms = _played_ms(form)
        key = form.get("key", "")
        if expect.do == "wait":
            return Done()
        if expect.do == "play":
            if kind == "done":
                return Done(played_ms)
            if kind == "key" and len(key) == 1 and key in expect.keys:
                return Key(key, played_ms)
        elif expect.do == "key":
            if kind == "timeout":
                return Timeout()
            if kind == "key" and len(key) == 1 and key in expect.keys:
                return Key(key, played_ms)
        elif expect.do == "digits":
            digits = form.get("digits", "")
            if kind == "digits" and re.fullmatch(r"[0-9*]*", digits) and len(digits) <= expect.max_digits:
                return Digits(digits, timed_out=form.get("timed_out", "") == "1")
        elif expect.do == "record" and kind == "recorded":
            ended_by = form.get("ended_by", "")
            if ended_by not in ("dtmf", "timeout", "hangup"):
                raise PhoneRequestError(400, "ended_by must be dtmf, timeout or hangup")
            return self._recorded(expect, upload, ended_by, call_id, n)  # type: ignore[arg-type]
        raise PhoneRequestError(400, f"the event {kind!r} does not answer a {expect.do!r} step")

    def _recorded(self, expect: Answer, upload: Path | None, ended_by: Literal["dtmf", "timeout", "hangup"],
                  call_id: str, n: int) -> Recorded:
        """The browser's take, checked and converted to the phone's 8 kHz WAV in `incoming/`."""
        if upload is None:
            return Recorded("", ended_by, 0)
        limits = ReplyAudioLimits(max_seconds=float(expect.max_seconds + 5), min_seconds=0.0,
                                  min_speech_ms=self.settings.min_speech_ms,
                                  silence_threshold_dbfs=self.settings.silence_threshold_dbfs)
        self.incoming.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{call_id}-", dir=self.incoming))
        try:
            try:
                converted = convert_reply_audio(upload, work, limits)
            except ReplyAudioError as exc:
                if exc.reason in EMPTY_TAKE:  # nothing said: the flow asks again, as after a silent phone take
                    return Recorded("", ended_by, 0)
                raise PhoneRequestError(exc.status, str(exc)) from None
            path = self.incoming / f"{call_id}-{n}.wav"
            shutil.move(str(converted.phone_wav), path)
            return Recorded(str(path), ended_by, int(converted.seconds * 1000))
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _dumps(data: Mapping[str, Any]) -> str:
    return json.dumps(data)


def _loads(raw: str) -> dict[str, Any]:
    value = json.loads(raw)
    return value if isinstance(value, dict) else {}


def build_browser_phone(
    settings: Settings, factory: sessionmaker[Session], *, clock: Callable[[], datetime] = utcnow
) -> BrowserPhone:
    """The test phone's driver for this deployment: the shared runner."""
    return BrowserPhone(settings, factory, build_runner(settings, factory, clock=clock))
