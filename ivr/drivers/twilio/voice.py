"""The Twilio voice driver: each webhook is one `CallRunner.advance` of the same call the AGI driver runs.

`TwilioVoice` only translates: a webhook's parameters become the engine event the last
TwiML waited for (`Digits` → Key/Digits/Timeout, a `<Record>` action → Recorded), the
runner answers with what the caller needs next, and that becomes TwiML. Between two
webhooks the call's context is kept server-side by CallSid (`ivr.services.twilio_calls`).
Replays: every answer names its step (`?n=`); a webhook whose step was already answered
gets the same TwiML back, and nothing runs twice.

Recordings: Twilio's `<Record>` hands us a RecordingSid; a job fetches the audio (see
`recordings.py`). Until it has, `check_recording` is `pending` and the runner answers
`Hold`, rendered as a one-second pause and a redirect. A caller who hangs up after
speaking keeps the message: the runner's `finish` notes the take, and whoever sees the
audio second (the hang-up or the fetch job) registers it.
"""
from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.orm import Session, sessionmaker

from ivr.config import Settings
from ivr.db import transaction
from ivr.drivers.twilio.recordings import FETCH_JOB
from ivr.drivers.twilio.twiml import AudioTokens, Expect, TwimlRenderer
from ivr.flow.engine import stronger_outcome
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
from ivr.jobqueue import Jobs, enqueue_after_commit
from ivr.models import LINES, utcnow
from ivr.runner import CallContext, CallRunner, Handover, Hold, Next, build_runner
from ivr.services import twilio_calls as calls
from ivr.services.call_log import CallRecord

log = logging.getLogger(__name__)

CALL_SID_RE = re.compile(r"CA[0-9a-fA-F]{32}")
FINAL_CALL_STATUSES = {"completed": None, "busy": "dropped", "no-answer": "dropped", "canceled": "dropped",
                       "failed": "failed"}


class TwilioRequestError(ValueError):
    """A webhook that cannot be acted on; `status` is the 4xx to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def fingerprint(path: str, form: Mapping[str, str]) -> str:
    """A webhook's identity: its URL and parameters (a retry by Twilio has the same one)."""
    h = hashlib.sha256(path.encode())
    for key in sorted(form):
        h.update(f"\0{key}={form[key]}".encode())
    return h.hexdigest()


def call_sid_of(form: Mapping[str, str]) -> str:
    """The CallSid of a webhook; 400 when missing or malformed."""
    sid = form.get("CallSid", "")
    if not CALL_SID_RE.fullmatch(sid):
        raise TwilioRequestError(400, "missing or malformed CallSid")
    return sid


class TwilioVoice:
    """Runs calls over Twilio webhooks with the shared runner."""

    def __init__(self, settings: Settings, factory: sessionmaker[Session], runner: CallRunner,
                 renderer: TwimlRenderer) -> None:
        self.settings = settings
        self.factory = factory
        self.runner = runner
        self.twiml = renderer

    # ---- webhooks -----------------------------------------------------------------------

    def incoming(self, line: str, form: Mapping[str, str], path: str) -> str:
        """A new call on `line`: its first TwiML (a retried webhook gets the same one)."""
        call_sid = call_sid_of(form)
        if line not in LINES:
            raise TwilioRequestError(404, f"unknown line {line!r}")
        fp = fingerprint(path, form)
        with transaction(self.factory, readonly=True) as s:
            saved = calls.find_call(s, call_sid)
        if saved is not None:  # a retried start: the call goes on from where it is
            return saved.last_twiml if not saved.finished and saved.last_twiml else self.twiml.hangup()
        raw = (form.get("From") or "").strip()
        caller = None if not raw or raw.lower() in ("anonymous", "unknown", "restricted") else raw[:32]
        now = utcnow()
        record = CallRecord(channel_id=call_sid, line=line, driver="twilio", caller=caller, started_at=now,
                            answered_at=now)
        ctx, step = self.runner.start(record, sets_variables=False)
        twiml, expect = self._render(step, 1)
        with transaction(self.factory) as s:
            added = calls.add_call(s, call_sid, line, self._kept(ctx, expect), fp, twiml, finished=expect.kind == "end")
        if not added:  # the same webhook twice at once: answer as the first did
            return self._replayed(self._saved(call_sid), fp)
        if expect.kind == "end":
            self.runner.finish(ctx)
        log.info("twilio call %s on %s: started", call_sid, line)
        return twiml

    def step(self, n: int, form: Mapping[str, str], path: str) -> str:
        """The caller's answer to step `n` (a key, digits, a recording, or just 'done')."""
        call_sid = call_sid_of(form)
        fp = fingerprint(path, form)
        saved = self._saved(call_sid)
        if saved.finished and calls.RECORDING_SID_RE.fullmatch(form.get("RecordingSid", "")):
            # The <Record> action came after the hang-up was handled: the take is still kept.
            self._keep_late(saved, form["RecordingSid"])
        if n != saved.version or saved.finished:
            return self._replayed(saved, fp)
        ctx = CallContext.from_dict(saved.state)
        expect = Expect(**saved.state["expect"])
        event = Done() if expect.kind == "wait" else self._event(expect, form)
        twiml, expect = self._render(self.runner.advance(ctx, event), n + 1)
        finished = expect.kind == "end"
        with transaction(self.factory) as s:
            claimed = calls.claim_step(s, call_sid, saved.version, self._kept(ctx, expect), fingerprint=fp,
                                       twiml=twiml, finished=finished)
            if claimed and isinstance(event, Recorded) and calls.sid_of(event.path):
                # check_recording takes an unknown recording for pending, so noting it here is enough.
                calls.note_recording(s, calls.sid_of(event.path) or "", call_sid, event.duration_ms)
        if not claimed:  # a duplicate of this webhook, or the hang-up, got there first
            again = self._saved(call_sid)
            if isinstance(event, Recorded) and again.finished and calls.sid_of(event.path):
                self._keep_late(again, calls.sid_of(event.path) or "")
            return self._replayed(again, fp)
        if finished:
            self.runner.finish(ctx)
        return twiml

    def recording_status(self, form: Mapping[str, str], jobs: Jobs) -> None:
        """Twilio's recording status callback: note it and queue the fetch (nothing slow here)."""
        call_sid = call_sid_of(form)
        sid = form.get("RecordingSid", "")
        if not calls.RECORDING_SID_RE.fullmatch(sid):
            raise TwilioRequestError(400, "missing or malformed RecordingSid")
        status = form.get("RecordingStatus", "completed")
        url = form.get("RecordingUrl", "")
        if status == "completed" and not re.match(r"^https?://\S+$", url):
            raise TwilioRequestError(400, "a completed recording needs its RecordingUrl")
        duration = form.get("RecordingDuration", "")
        duration_ms = int(duration) * 1000 if duration.isascii() and duration.isdigit() else None
        with transaction(self.factory) as s:
            row = calls.note_recording(s, sid, call_sid, duration_ms)
            if row.status != "pending":
                return
            if status == "completed":
                enqueue_after_commit(s, jobs, FETCH_JOB, job_id=f"{FETCH_JOB}:{sid}", recording_sid=sid,
                                     call_sid=call_sid, url=url)
            elif status in ("absent", "failed"):
                calls.set_status(s, sid, "absent", error=f"Twilio reported the recording {status}")

    def call_status(self, form: Mapping[str, str]) -> None:
        """Twilio's call status callback: a call still in the flow is closed with the right outcome."""
        call_sid = call_sid_of(form)
        status = (form.get("CallStatus") or "").strip()
        if status not in FINAL_CALL_STATUSES:
            return  # ringing, in-progress...: nothing to close yet
        with transaction(self.factory, readonly=True) as s:
            saved = calls.find_call(s, call_sid)
        if saved is None or saved.finished:
            return
        ctx = CallContext.from_dict(saved.state)
        self.runner.advance(ctx, HungUp())
        if FINAL_CALL_STATUSES[status] is not None:
            ctx.record.outcome = stronger_outcome(self.runner.engine.flow.outcome_rank, FINAL_CALL_STATUSES[status],
                                                  ctx.record.outcome)
            ctx.record.error = f"Twilio call status: {status}"
        with transaction(self.factory) as s:
            claimed = calls.claim_step(s, call_sid, saved.version, self._kept(ctx, Expect("end")), fingerprint=None,
                                       twiml=self.twiml.hangup(), finished=True)
        if claimed:
            self.runner.finish(ctx)

    # ---- translation ---------------------------------------------------------------------

    def _saved(self, call_sid: str) -> calls.SavedStep:
        with transaction(self.factory, readonly=True) as s:
            saved = calls.find_call(s, call_sid)
        if saved is None:
            raise TwilioRequestError(404, "unknown CallSid")
        return saved

    def _keep_late(self, saved: calls.SavedStep, recording_sid: str) -> None:
        """A <Record> action that lost the race with the hang-up: the runner's finish keeps its take."""
        ctx = CallContext.from_dict(saved.state)
        ref = calls.recording_ref(recording_sid)
        if ctx.state is None or ref in ctx.kept:  # a retry of a take the call already kept
            return
        ctx.state.vars["pending_recording"] = ref
        ctx.spooled = []  # already written by the call's own finish
        self.runner.finish(ctx)

    def _replayed(self, saved: calls.SavedStep, fp: str) -> str:
        if saved.last_fingerprint == fp and saved.last_twiml:
            return saved.last_twiml
        if saved.finished:
            return self.twiml.hangup()
        raise TwilioRequestError(409, f"step out of order for call {saved.call_sid}")

    def _render(self, step: Next, n: int) -> tuple[str, Expect]:
        """The TwiML for what the runner answered, and what its next webhook will bring."""
        if isinstance(step, Hold):
            return self.twiml.hold(n), Expect("wait")
        if isinstance(step, Handover):
            return self.twiml.transfer(step.prompts), Expect("end")
        if isinstance(step, Transfer):
            return self.twiml.transfer(), Expect("end")
        if isinstance(step, Play | ReadKey | ReadDigits | Record):
            return self.twiml.instruction(step, n)
        if not isinstance(step, Hangup):
            log.warning("twilio: nothing to render for %r; hanging up", step)
        return self.twiml.hangup(), Expect("end")

    def _kept(self, ctx: CallContext, expect: Expect) -> dict[str, Any]:
        return {**ctx.to_dict(), "expect": {"kind": expect.kind, "max_digits": expect.max_digits}}

    def _event(self, expect: Expect, form: Mapping[str, str]) -> Event:
        """The engine event a webhook brings, given what the last TwiML waited for."""
        digits = form.get("Digits", "")
        if expect.kind == "key":
            if digits == "":
                return Timeout()
            if len(digits) != 1 or digits not in "0123456789*#":
                raise TwilioRequestError(400, f"Digits must be one key, got {digits[:20]!r}")
            return Key(digits)
        if expect.kind == "digits":
            if not re.fullmatch(r"[0-9*]*", digits) or len(digits) > expect.max_digits:
                raise TwilioRequestError(400, f"Digits must be up to {expect.max_digits} keys, got {digits[:20]!r}")
            return Digits(digits, timed_out=form.get("FinishedOnKey", "") != "#")
        if expect.kind == "record":
            sid = form.get("RecordingSid", "")
            if not sid:
                return Recorded("", "timeout", 0)  # nothing was recorded
            if not calls.RECORDING_SID_RE.fullmatch(sid):
                raise TwilioRequestError(400, "malformed RecordingSid")
            seconds = form.get("RecordingDuration", "0")
            ended_by: Literal["dtmf", "timeout", "hangup"] = (
                "hangup" if digits == "hangup" else "dtmf" if digits else "timeout")
            return Recorded(calls.recording_ref(sid), ended_by, int(seconds) * 1000 if seconds.isascii() and seconds.isdigit() else 0)
        return Done()


def build_twilio_voice(
    settings: Settings, factory: sessionmaker[Session], *, clock: Callable[[], datetime] = utcnow
) -> TwilioVoice:
    """The Twilio driver for this deployment: the shared runner, rendered as TwiML."""
    runner = build_runner(settings, factory, clock=clock)
    return TwilioVoice(settings, factory, runner, TwimlRenderer(settings, AudioTokens(settings, factory)))
