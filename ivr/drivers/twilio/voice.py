"""The Twilio voice driver: each webhook is one step of the same call flow the AGI driver runs.

`TwilioVoice` keeps a call's engine state in `twilio_calls` between webhooks (keyed by
CallSid), turns the webhook's parameters into the engine event the last TwiML waited for
(`Digits` → Key/Digits/Timeout, a `<Record>` action → Recorded), runs the business actions
through the same `CallActions` as Asterisk calls, and answers with the TwiML of the next
step that needs the caller. Replays: every answer names its step (`?n=`); a webhook whose
step was already answered gets the same TwiML back, and nothing runs twice.

Recordings (see `recordings.py`): at `check_recording` the flow waits, answering with a
one-second pause and a redirect, until the job has fetched the audio and checked it for
speech. From there the flow is the Asterisk one: silence is recorded again, a kept take is
registered from the stored audio and its tracking code is read out by `<Play>` of the
Persian digit fragments. A caller who hangs up after speaking keeps the message, now or
when the job finishes.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ivr.config import Settings
from ivr.db import transaction
from ivr.drivers.twilio.recordings import (
    FETCH_JOB,
    RECORDING_SID_RE,
    find_recording,
    note_recording,
    recording_ref,
    set_status,
    sid_of,
    stored_audio,
)
from ivr.drivers.twilio.twiml import AudioTokens, Expect, TwimlRenderer
from ivr.flow.definition import load_flow
from ivr.flow.engine import ActionResult, CallState, End, Engine, Step, stronger_outcome
from ivr.flow.steps import (
    ActionRequest,
    Digits,
    Done,
    Event,
    Hangup,
    HungUp,
    Key,
    Recorded,
    SetVariable,
    Timeout,
    Transfer,
)
from ivr.jobqueue import Jobs, enqueue_after_commit
from ivr.models import LINES, Call, Message, TwilioCall, TwilioRecording, utcnow
from ivr.runner import DB_ERRORS, CallActions, CallContext
from ivr.services.call_log import CallRecord

log = logging.getLogger(__name__)

CALL_SID_RE = re.compile(r"CA[0-9a-fA-F]{32}")
MAX_HOLD_POLLS = 20  # seconds a caller waits for a recording before the apology
FINAL_CALL_STATUSES = {"completed": None, "busy": "dropped", "no-answer": "dropped", "canceled": "dropped",
                       "failed": "failed"}
KEEP_VARS = ("line", "kind", "topic", "district")


class TwilioRequestError(ValueError):
    """A webhook that cannot be acted on; `status` is the 4xx to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class NotReady(Exception):
    """An action's input has not arrived yet (a recording still being fetched)."""


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


def keep_args(vars: Mapping[str, Any]) -> dict[str, str]:
    """What registering a message needs from the call's variables."""
    return {k: str(vars[k]) for k in KEEP_VARS if vars.get(k) not in (None, "")}


def _link(recording_sid: str) -> Callable[[Session, Message], None]:
    def link(session: Session, msg: Message) -> None:
        row = find_recording(session, recording_sid)
        if row is not None:
            row.message_id = msg.id
            row.updated_at = utcnow()

    return link


class TwilioCallActions(CallActions):
    """The same actions as Asterisk calls; only those touching recordings differ (audio is Twilio's)."""

    def origin_key(self, ctx: CallContext, recording_sid: str) -> str:
        """One message per Twilio recording, however often it is registered."""
        return f"twilio:{ctx.record.channel_id}:{recording_sid}"

    def do_check_recording(self, args: dict[str, str], ctx: CallContext) -> ActionResult:
        """Speech or not, once the job has fetched and checked the recording; NotReady until then."""
        sid = sid_of(args.get("recording"))
        if sid is None:
            return ActionResult("empty")  # <Record> heard nothing at all
        with transaction(self.factory, readonly=True) as s:
            row = find_recording(s, sid)
            status = row.status if row is not None else "pending"
        if status == "pending":
            raise NotReady(sid)
        return ActionResult("speech" if status == "speech" else "empty")

    def do_discard_recording(self, args: dict[str, str], ctx: CallContext) -> ActionResult:
        """The caller records again: the first take leaves storage."""
        sid = sid_of(args.get("recording"))
        if sid is not None:
            with transaction(self.factory) as s:
                row = find_recording(s, sid)
                if row is not None and row.message_id is None:
                    audio = stored_audio(row)
                    if audio is not None:
                        self.store.path_of(audio.rel_path).unlink(missing_ok=True)
                    row.status, row.audio, row.updated_at = "discarded", None, utcnow()
        return ActionResult("ok")

    def do_register_message(self, args: dict[str, str], ctx: CallContext) -> ActionResult:
        """Register the kept take from its stored audio (a short transaction, inside the webhook)."""
        sid = sid_of(args.get("recording"))
        code = None
        if sid is not None:
            with transaction(self.factory, readonly=True) as s:
                row = find_recording(s, sid)
                audio = stored_audio(row) if row is not None else None
            if audio is not None:
                code = self.register_stored(args, audio, ctx, origin_key=self.origin_key(ctx, sid),
                                            on_registered=_link(sid))
        return ActionResult("started", {"registered_code": code or ""})

    def do_message_code(self, args: dict[str, str], ctx: CallContext) -> ActionResult:
        """The tracking code registered a step earlier."""
        assert ctx.state is not None
        code = ctx.state.vars.pop("registered_code", "")
        return ActionResult("ok", {"tracking_code": code}) if code else ActionResult("failed")

    def keep_pending_recording(self, ctx: CallContext, state: CallState) -> None:
        """Hung up after speaking: register now if the audio is here, else leave it to the fetch job."""
        sid = sid_of(state.vars.get("pending_recording") or state.vars.get("recording"))
        if sid is None or not state.vars.get("kind"):
            return
        spec = json.dumps(keep_args(state.vars))
        with transaction(self.factory) as s:
            row = note_recording(s, sid, ctx.record.channel_id)
            if row.message_id is not None or row.status not in ("pending", "speech"):
                return
            # Only a still-pending row takes the note; if the job won the race, register here.
            waiting = s.execute(
                update(TwilioRecording)
                .where(TwilioRecording.id == row.id, TwilioRecording.status == "pending")
                .values(keep=spec, updated_at=utcnow())
            ).rowcount
            s.expire(row)
            audio = None if waiting else stored_audio(row)
        if audio is None:
            return
        code = self.register_stored(json.loads(spec), audio, ctx, origin_key=self.origin_key(ctx, sid),
                                    on_registered=_link(sid))
        if code:
            state.outcome = "message_registered"
            ctx.late_code = code


class TwilioVoice:
    """Runs calls over Twilio webhooks with the shared engine and actions."""

    def __init__(self, settings: Settings, factory: sessionmaker[Session], engine: Engine,
                 actions: TwilioCallActions, renderer: TwimlRenderer) -> None:
        self.settings = settings
        self.factory = factory
        self.engine = engine
        self.actions = actions
        self.twiml = renderer

    # ---- webhooks -----------------------------------------------------------------------

    def incoming(self, line: str, form: Mapping[str, str], path: str) -> str:
        """A new call on `line`: its first TwiML (a retried webhook gets the same one)."""
        call_sid = call_sid_of(form)
        if line not in LINES:
            raise TwilioRequestError(404, f"unknown line {line!r}")
        fp = fingerprint(path, form)
        with transaction(self.factory, readonly=True) as s:
            row = s.scalar(select(TwilioCall).where(TwilioCall.call_sid == call_sid))
            if row is not None:  # a retried start: the call goes on from where it is
                return row.last_twiml if row.finished_at is None and row.last_twiml else self.twiml.hangup()
        caller = (form.get("From") or "").strip()
        caller = None if not caller or caller.lower() in ("anonymous", "unknown", "restricted") else caller[:32]
        now = utcnow()
        record = CallRecord(channel_id=call_sid, line=line, driver="twilio", caller=caller, started_at=now,
                            answered_at=now)
        ctx = CallContext(record=record)
        state, step = self.engine.start(line, {"caller": caller or ""})
        ctx.state = state
        twiml, saved = self._run(ctx, step, 1, polls=0)
        try:
            with transaction(self.factory) as s:
                s.add(TwilioCall(call_sid=call_sid, line_code=line, state=json.dumps(saved), version=1,
                                 last_fingerprint=fp, last_twiml=twiml, created_at=now, updated_at=now,
                                 finished_at=now if saved["expect"]["kind"] == "end" else None))
        except IntegrityError:  # the same webhook twice at once: answer as the first did
            with transaction(self.factory, readonly=True) as s:
                row = s.scalars(select(TwilioCall).where(TwilioCall.call_sid == call_sid)).one()
                return self._replayed(row, fp)
        if saved["expect"]["kind"] == "end":
            self.actions.finish(ctx)  # the shared finish: a pending take kept, the call row
        log.info("twilio call %s on %s: started at %s", call_sid, line, state.node)
        return twiml

    def step(self, n: int, form: Mapping[str, str], path: str) -> str:
        """The caller's answer to step `n` (a key, digits, a recording, or just 'done')."""
        call_sid = call_sid_of(form)
        fp = fingerprint(path, form)
        with transaction(self.factory, readonly=True) as s:
            row = s.scalar(select(TwilioCall).where(TwilioCall.call_sid == call_sid))
            if row is None:
                raise TwilioRequestError(404, "unknown CallSid")
            version, saved_json, over = row.version, row.state, row.finished_at is not None
            answer = self._replayed(row, fp) if n != version or over else None
        if over and RECORDING_SID_RE.fullmatch(form.get("RecordingSid", "")):
            # The <Record> action came after the hang-up was handled: the take is still kept.
            late = CallState.from_dict(json.loads(saved_json)["flow"])
            late.vars["pending_recording"] = recording_ref(form["RecordingSid"])
            self._late_take(call_sid, late)
        if answer is not None:
            return answer
        saved = json.loads(saved_json)
        state = CallState.from_dict(saved["flow"])
        ctx = CallContext(record=CallRecord.from_dict(saved["record"]), state=state)
        expect = Expect(**saved["expect"])
        polls, event = 0, None
        if expect.kind == "wait":
            step: Step = ActionRequest(**saved["action"])
            polls = int(saved.get("polls", 0))
        else:
            event = self._event(expect, form, call_sid)
            step = self.engine.advance(state, event)
        twiml, saved = self._run(ctx, step, version + 1, polls=polls)
        finished = saved["expect"]["kind"] == "end"
        with transaction(self.factory) as s:
            claimed = s.execute(
                update(TwilioCall)
                .where(TwilioCall.call_sid == call_sid, TwilioCall.version == version)
                .values(state=json.dumps(saved), version=version + 1, last_fingerprint=fp, last_twiml=twiml,
                        updated_at=utcnow(), finished_at=utcnow() if finished else None)
            ).rowcount
            if claimed and isinstance(event, Recorded) and sid_of(event.path):
                # Check_recording treats an unknown recording as pending, so noting it here is enough.
                note_recording(s, sid_of(event.path) or "", call_sid, event.duration_ms)
        if not claimed:  # a duplicate of this webhook, or the hang-up, got there first
            if isinstance(event, Recorded):
                self._late_take(call_sid, state)
            with transaction(self.factory, readonly=True) as s:
                return self._replayed(s.scalars(select(TwilioCall).where(TwilioCall.call_sid == call_sid)).one(), fp)
        if finished:
            self.actions.finish(ctx)  # the shared finish: a pending take kept, the call row
        return twiml

    def recording_status(self, form: Mapping[str, str], jobs: Jobs) -> None:
        """Twilio's recording status callback: note it and queue the fetch (nothing slow here)."""
        call_sid = call_sid_of(form)
        sid = form.get("RecordingSid", "")
        if not RECORDING_SID_RE.fullmatch(sid):
            raise TwilioRequestError(400, "missing or malformed RecordingSid")
        status = form.get("RecordingStatus", "completed")
        url = form.get("RecordingUrl", "")
        if status == "completed" and not re.match(r"^https?://\S+$", url):
            raise TwilioRequestError(400, "a completed recording needs its RecordingUrl")
        duration = form.get("RecordingDuration", "")
        duration_ms = int(duration) * 1000 if duration.isdigit() else None
        with transaction(self.factory) as s:
            row = note_recording(s, sid, call_sid, duration_ms)
            if row.status != "pending":
                return
            if status == "completed":
                enqueue_after_commit(s, jobs, FETCH_JOB, job_id=f"{FETCH_JOB}:{sid}", recording_sid=sid,
                                     call_sid=call_sid, url=url)
            elif status in ("absent", "failed"):
                set_status(s, sid, "absent", error=f"Twilio reported the recording {status}")

    def call_status(self, form: Mapping[str, str]) -> None:
        """Twilio's call status callback: a call still in the flow is closed with the right outcome."""
        call_sid = call_sid_of(form)
        status = (form.get("CallStatus") or "").strip()
        if status not in FINAL_CALL_STATUSES:
            return  # ringing, in-progress...: nothing to close yet
        with transaction(self.factory, readonly=True) as s:
            row = s.scalar(select(TwilioCall).where(TwilioCall.call_sid == call_sid))
            if row is None or row.finished_at is not None:
                return
            version, saved = row.version, json.loads(row.state)
        state = CallState.from_dict(saved["flow"])
        ctx = CallContext(record=CallRecord.from_dict(saved["record"]), state=state)
        self.engine.advance(state, HungUp())
        if FINAL_CALL_STATUSES[status] is not None:
            ctx.record.outcome = stronger_outcome(self.engine.flow.outcome_rank, FINAL_CALL_STATUSES[status],
                                                  ctx.record.outcome)
            ctx.record.error = f"Twilio call status: {status}"
        saved.update(flow=state.to_dict(), expect={"kind": "end", "max_digits": 0}, action=None)
        with transaction(self.factory) as s:
            claimed = s.execute(
                update(TwilioCall)
                .where(TwilioCall.call_sid == call_sid, TwilioCall.version == version)
                .values(state=json.dumps(saved), version=version + 1, finished_at=utcnow(), updated_at=utcnow(),
                        last_twiml=self.twiml.hangup())
            ).rowcount
        if claimed:
            self.actions.finish(ctx)  # the shared finish: a pending take kept, the call row

    def keep_after_hangup(self, call_sid: str, recording_sid: str) -> str | None:
        """The fetch job found speech in a take the caller hung up on: register it, mark the call."""
        with transaction(self.factory, readonly=True) as s:
            rec = find_recording(s, recording_sid)
            call = s.scalar(select(Call).where(Call.channel_id == call_sid))
            if rec is None or call is None or rec.message_id is not None or not rec.keep:
                return None
            audio, args = stored_audio(rec), json.loads(rec.keep)
            record = CallRecord(call.channel_id, call.line_code, call.driver, call.caller_number, call.started_at,
                                call.answered_at, call.ended_at, call.keys, call.outcome, call.error)
        if audio is None:
            return None
        ctx = CallContext(record=record)
        record.outcome = stronger_outcome(self.engine.flow.outcome_rank, record.outcome, "message_registered")
        return self.actions.register_stored(args, audio, ctx, origin_key=self.actions.origin_key(ctx, recording_sid),
                                            on_registered=_link(recording_sid))

    def _late_take(self, call_sid: str, state: CallState) -> None:
        """A <Record> action that lost the race with the hang-up: its take is still kept by the fetch job."""
        sid = sid_of(state.vars.get("pending_recording") or state.vars.get("recording"))
        if sid is None or not state.vars.get("kind"):
            return
        with transaction(self.factory) as s:
            row = note_recording(s, sid, call_sid)
            if row.message_id is not None or row.status not in ("pending", "speech"):
                return
            row.keep, status = json.dumps(keep_args(state.vars)), row.status
        if status == "speech":
            self.keep_after_hangup(call_sid, sid)

    # ---- steps ------------------------------------------------------------------------------

    def _replayed(self, row: TwilioCall, fp: str) -> str:
        if row.last_fingerprint == fp and row.last_twiml:
            return row.last_twiml
        if row.finished_at is not None:
            return self.twiml.hangup()
        raise TwilioRequestError(409, f"step out of order for call {row.call_sid}")

    def _event(self, expect: Expect, form: Mapping[str, str], call_sid: str) -> Event:
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
            if not RECORDING_SID_RE.fullmatch(sid):
                raise TwilioRequestError(400, "malformed RecordingSid")
            seconds = form.get("RecordingDuration", "0")
            ended_by = "hangup" if digits == "hangup" else "dtmf" if digits else "timeout"
            return Recorded(recording_ref(sid), ended_by, int(seconds) * 1000 if seconds.isdigit() else 0)
        return Done()

    def _run(self, ctx: CallContext, step: Step, n: int, *, polls: int) -> tuple[str, dict[str, Any]]:
        """Advance until a step needs the caller; its TwiML and the state to keep."""
        assert ctx.state is not None
        state, cid = ctx.state, ctx.record.channel_id
        action: dict[str, Any] | None = None
        try:
            while True:
                if isinstance(step, ActionRequest):
                    try:
                        result = self.actions.run(step, ctx)
                    except NotReady:
                        if polls >= MAX_HOLD_POLLS:
                            raise TimeoutError("the recording did not arrive from Twilio in time") from None
                        polls += 1
                        action = {"name": step.name, "args": step.args}
                        return self.twiml.hold(n), self._saved(ctx, Expect("wait"), action, polls)
                    log.info("call %s: %s action %s → %s", cid, state.node, step.name, result.outcome)
                    step = self.engine.on_action(state, result)
                elif isinstance(step, SetVariable):
                    step = self.engine.advance(state, Done())  # no channel variables on Twilio
                elif isinstance(step, Transfer):
                    self.engine.advance(state, Done())
                    return self.twiml.transfer(), self._saved(ctx, Expect("end"), None, 0)
                elif isinstance(step, Hangup | End):
                    if isinstance(step, Hangup):
                        self.engine.advance(state, Done())
                    return self.twiml.hangup(), self._saved(ctx, Expect("end"), None, 0)
                else:
                    twiml, expect = self.twiml.instruction(step, n)
                    log.info("call %s: %s %s", cid, state.node, type(step).__name__)
                    return twiml, self._saved(ctx, expect, None, 0)
        except Exception as exc:  # one defined place: an apology and the operators, never dead air
            if isinstance(exc, DB_ERRORS):
                log.error("call %s: database unavailable at %s: %s", cid, state.node, exc)
            else:
                log.exception("call %s: failed at node %s", cid, state.node)
            ctx.record.outcome = "failed"
            ctx.record.error = f"{type(exc).__name__}: {exc}"[:2000]
            state.finished = True
            return self.twiml.transfer(("sorry_technical",)), self._saved(ctx, Expect("end"), None, 0)

    def _saved(self, ctx: CallContext, expect: Expect, action: dict[str, Any] | None, polls: int) -> dict[str, Any]:
        assert ctx.state is not None
        return {"flow": ctx.state.to_dict(), "record": ctx.record.to_dict(),
                "expect": {"kind": expect.kind, "max_digits": expect.max_digits}, "action": action, "polls": polls}

def build_twilio_voice(
    settings: Settings, factory: sessionmaker[Session], *, clock: Callable[[], datetime] = utcnow
) -> TwilioVoice:
    """The Twilio driver for this deployment: the packaged flow and the shared actions."""
    engine = Engine(load_flow(), currency=settings.currency)
    actions = TwilioCallActions(factory, settings, clock=clock, outcome_rank=engine.flow.outcome_rank)
    return TwilioVoice(settings, factory, engine, actions, TwimlRenderer(settings, AudioTokens(settings, factory)))
