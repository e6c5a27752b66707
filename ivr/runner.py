"""Running one phone call: the engine's steps, the business actions, the call log.

`CallRunner` owns one operation, `advance(ctx, event)`: apply what the caller did and run
the business actions the flow asks for until the call needs the caller again; the
answer is an instruction (`ivr.flow.steps`), a `Hold` (background work the call waits
for: a recording still being fetched) or a `Handover` (the one error path: a short
apology and the operators' queue), or `End`. `start` and `finish` open and close a call.
Every driver uses it: the AGI driver loops over it on its socket (`run`), the Twilio
driver calls it once per webhook with the context it keeps between webhooks.

Every action ends as one of its declared results: an exception inside an action is
logged and becomes `failed`. A message is announced only once its row is committed;
when registering fails for any reason the audio is kept in the spool with the reason
(`ivr spool replay` registers it later), and `finish` logs the call whatever happened.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from ivr.config import Settings
from ivr.db import make_engine, make_sessionmaker, transaction
from ivr.flow.definition import load_flow
from ivr.flow.engine import ActionResult, CallState, End, Engine, stronger_outcome
from ivr.flow.steps import (
    ActionRequest,
    Done,
    Event,
    HungUp,
    Instruction,
    Play,
    SetVariable,
    Started,
    Transfer,
)
from ivr.identifiers import is_valid_tracking_code
from ivr.infra.storage import AudioError, AudioStore, StoredAudio, has_speech
from ivr.models import Call, Message, utcnow
from ivr.services import cases as case_service
from ivr.services import twilio_calls
from ivr.services.call_log import CallRecord, save_call_row
from ivr.services.feedback import FeedbackError, record_feedback
from ivr.services.messages import (
    find_by_tracking_code,
    find_for_phone,
    mark_reply_heard,
    phone_status,
    register_message,
)
from ivr.services.operators import Schedule, ScheduleCache, load_schedule, operators_open
from ivr.services.spooled import open_spool
from ivr.speech import persian
from ivr.vocabulary import TRACKING_CODE_VARIABLE

log = logging.getLogger(__name__)

# The database is down, unreachable or saturated: spool or fall back, never lose the call.
DB_ERRORS = (OperationalError, InterfaceError, PoolTimeout)
PENDING = "pending"  # an action result: its input is not there yet (the runner answers Hold)
FAILED = "failed"  # an action result: it could not do its work (every action node maps it)
MAX_HOLDS = 20  # Holds (of HOLD_SECONDS) a caller waits for background work before the apology
HOLD_SECONDS = 1
APOLOGY = ("sorry_technical",)
# Call logs written at once per process: every call row updates the same rollup rows (the
# hour's, the line's), so more writers only queue on their row locks holding connections.
LOG_WRITERS = 2
LOG_SLOT_WAIT = 5.0  # seconds a call log waits for a turn before it is written anyway


@dataclass(frozen=True)
class Hold:
    """Wait `seconds` for background work (a recording being fetched), then `advance` again with Done."""

    seconds: int = HOLD_SECONDS


@dataclass(frozen=True)
class Handover:
    """The one error path: play `prompts`, then hand the caller to `target`; the call is over."""

    prompts: tuple[str, ...] = APOLOGY
    target: str = "operator"


Next = Instruction | Hold | Handover | End


class Telephone(Protocol):
    """What a looping driver offers the runner: carry out one instruction, report what happened."""

    def perform(self, instruction: Instruction) -> Event:
        """Carry out `instruction` on the call and return the resulting event."""
        ...


@dataclass
class CallContext:
    """One call in progress: its log record, the engine state and what it produced."""

    record: CallRecord
    state: CallState | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    spooled: list[dict[str, Any]] = field(default_factory=list)
    incoming: list[str] = field(default_factory=list)
    earlier_keys: str = ""
    earlier_outcome: str | None = None
    earlier_messages: int = 0
    late_code: str | None = None
    waiting: dict[str, Any] | None = None  # the action a Hold waits on (name, args)
    holds: int = 0
    failing: bool = False
    kept: list[str] = field(default_factory=list)  # takes registered or spooled: never kept twice
    sets_variables: bool = True  # False: the transport has no channel variables (Twilio)

    def to_dict(self) -> dict[str, Any]:
        """What a webhook driver keeps between two requests (plain data)."""
        assert self.state is not None
        return {"flow": self.state.to_dict(), "record": self.record.to_dict(), "waiting": self.waiting,
                "holds": self.holds, "earlier": [self.earlier_keys, self.earlier_outcome],
                "numbered": self.earlier_messages + len(self.messages), "spooled": self.spooled,
                "failing": self.failing, "kept": self.kept, "sets_variables": self.sets_variables}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CallContext:
        """Rebuild a context saved with `to_dict`."""
        ctx = cls(record=CallRecord.from_dict(data["record"]), state=CallState.from_dict(data["flow"]))
        # "action"/"polls": what calls in progress across an upgrade saved before the runner held them.
        ctx.waiting = data.get("waiting") or data.get("action")
        ctx.holds = int(data.get("holds", data.get("polls", 0)))
        ctx.earlier_keys, ctx.earlier_outcome = data.get("earlier") or ["", None]
        # Numbering only: the messages themselves were registered by earlier webhooks.
        ctx.earlier_messages = int(data.get("numbered", 0))
        ctx.spooled = list(data.get("spooled") or [])
        ctx.failing = bool(data.get("failing", False))
        ctx.kept = list(data.get("kept") or [])
        ctx.sets_variables = bool(data.get("sets_variables", True))
        return ctx

    @property
    def cid(self) -> str:
        """The call's id in log lines."""
        return self.record.channel_id


def recording_ref(rel_path: str) -> str:
    """The prompt reference for stored audio (drivers turn it into a path or a URL)."""
    return f"rec:{rel_path}"


class CallActions:
    """The business work the flow asks for, each in its own short transaction.

    A take (`recording` variable) is a file in `incoming/` (Asterisk) or a Twilio
    recording reference (`twilio:RE...`, fetched by a job into storage).
    """

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utcnow,
        outcome_rank: Sequence[str] | None = None,
    ) -> None:
        """`clock` tells the time for working hours (tests pin it); call times are real.

        `outcome_rank`: the flow's outcomes, weakest first (default: the packaged flow's).
        """
        self.factory = factory
        self.settings = settings
        self.store = AudioStore(settings.recordings_dir)
        self.spool = open_spool(settings)
        self.clock = clock
        self.outcome_rank = tuple(outcome_rank if outcome_rank is not None else load_flow().outcome_rank)
        self.schedule = ScheduleCache()  # working hours and holidays, re-read every 30 s at most
        self.log_slots = threading.BoundedSemaphore(LOG_WRITERS)

    def run(self, req: ActionRequest, ctx: CallContext) -> ActionResult:
        """Run the action named in `req`; unknown names are a definition error."""
        method = getattr(self, f"do_{req.name}", None)
        if method is None:
            raise LookupError(f"the flow asks for an unknown action {req.name!r}")
        result: ActionResult = method(req.args, ctx)
        return result

    # ---- recordings and messages --------------------------------------------------

    def do_check_recording(self, args: dict[str, str], ctx: CallContext) -> ActionResult:
        """Is there speech in the recording just made? Silence is thrown away; `pending` until fetched."""
        ref = args.get("recording", "")
        sid = twilio_calls.sid_of(ref)
        if sid is not None:
            with transaction(self.factory, readonly=True) as s:
                status = twilio_calls.recording_status(s, sid)
            if status == PENDING:
                return ActionResult(PENDING)
            return ActionResult("speech" if status == "speech" else "empty")
        if not ref:
            return ActionResult("empty")  # nothing was recorded at all
        path = Path(ref)
        ctx.incoming.append(str(path))
        if path.is_file() and self._speech(path):
            return ActionResult("speech")
        path.unlink(missing_ok=True)
        return ActionResult("empty")

    def do_discard_recording(self, args: dict[str, str], ctx: CallContext) -> ActionResult:
        """The caller chose to record again: the first take is deleted."""
        ref = args.get("recording", "")
        sid = twilio_calls.sid_of(ref)
        if sid is None:
            if ref:
                Path(ref).unlink(missing_ok=True)
            return ActionResult("ok")
        with transaction(self.factory) as s:
            rel_path = twilio_calls.discard_take(s, sid)
        if rel_path is not None:
            self.store.path_of(rel_path).unlink(missing_ok=True)
        return ActionResult("ok")

    def do_register_message(self, args: dict[str, str], ctx: CallContext) -> ActionResult:
        """Store the take and register the message; `ok` with its tracking code once committed.

        On any failure the audio is kept in the spool with the reason, and the result is
        `failed`: the caller is never told "registered" for a message that is not.
        """
        code = self.keep_message(args, ctx)
        if code is None:
            return ActionResult(FAILED)
        return ActionResult("ok", {"tracking_code": code})

    def keep_message(self, args: Mapping[str, Any], ctx: CallContext) -> str | None:
        """Store the take and register its message; the tracking code, or None (then it is spooled)."""
        ref = str(args.get("recording") or "")
        sid = twilio_calls.sid_of(ref)
        spec = self._spec(args, ctx, sid)
        ctx.kept.append(ref)
        try:
            audio = self._stored_take(ref, sid)
        except Exception as exc:
            self._spool_message(ctx, spec, exc, raw=None if sid else Path(ref))
            return None
        return self.register_stored(spec, audio, ctx, sid)

    def register_stored(self, spec: dict[str, Any], audio: StoredAudio, ctx: CallContext,
                        recording_sid: str | None = None) -> str | None:
        """Register a message for audio already in storage; spooled (with the reason) on any failure."""
        try:
            with transaction(self.factory) as s:
                call = save_call_row(s, ctx.record)
                msg = register_message(
                    s,
                    line=spec["line"],
                    kind=spec["kind"],
                    source="phone_voice",
                    caller=ctx.record.caller,
                    citizen_id=call.citizen_id,
                    topic_code=spec["topic"],
                    district=int(spec["district"]) if spec["district"] else None,
                    call_id=call.id,
                    audio=audio,
                    origin_key=spec["origin_key"],
                )
                if recording_sid is not None:
                    twilio_calls.link_message(s, recording_sid, msg.id)
                code = msg.tracking_code
        except Exception as exc:
            self._spool_message(ctx, {**spec, "audio": asdict(audio)}, exc)
            return None
        ctx.messages.append({**spec, "tracking_code": code})
        log.info("call %s: message %s registered", ctx.cid, code)
        return code

    def _spec(self, args: Mapping[str, Any], ctx: CallContext, recording_sid: str | None) -> dict[str, Any]:
        n = ctx.earlier_messages + len(ctx.messages) + len(ctx.spooled) + 1
        take = recording_sid or n  # one message per Twilio recording, however often it is registered
        return {
            "line": args.get("line") or ctx.record.line,
            "kind": args.get("kind") or "",
            "topic": args.get("topic") or None,
            "district": args.get("district") or None,
            "source": "phone_voice",
            "origin_key": f"{ctx.record.driver}:{ctx.cid}:{take}",
            **({"recording_sid": recording_sid} if recording_sid else {}),
        }

    def _stored_take(self, ref: str, recording_sid: str | None) -> StoredAudio:
        if recording_sid is None:
            return self.store.store(Path(ref))
        with transaction(self.factory, readonly=True) as s:
            audio = twilio_calls.take_audio(s, recording_sid)
        if audio is None:
            raise AudioError(f"the Twilio recording {recording_sid} is not in storage")
        return audio

    def _spool_message(self, ctx: CallContext, spec: dict[str, Any], exc: Exception, *, raw: Path | None = None) -> None:
        """Registering failed: keep the audio in the spool with the reason (written by `finish`)."""
        reason = f"{type(exc).__name__}: {exc}"[:500]
        log.error("call %s: message not registered, kept in the spool: %s", ctx.cid, reason,
                  exc_info=not isinstance(exc, DB_ERRORS))
        entry = {**spec, "reason": reason}
        if raw is not None and raw.is_file():
            try:
                entry["file"] = self.spool.keep_audio(raw)
            except OSError:
                log.exception("call %s: the recording could not be moved into the spool either", ctx.cid)
        ctx.spooled.append(entry)
        ctx.record.outcome = "failed"
        ctx.record.error = f"message not registered: {reason}"[:2000]

    def _speech(self, path: Path) -> bool:
        return has_speech(path, min_speech_ms=self.settings.min_speech_ms,
                          threshold_dbfs=self.settings.silence_threshold_dbfs)

    # ---- follow-up ------------------------------------------------------------------

    def do_lookup_message(self, args: dict[str, str], ctx: CallContext) -> ActionResult:
        """Find a message by the code typed; say its status and play the reply if any."""
        code = args.get("code", "")
        if not is_valid_tracking_code(code):
            return ActionResult("invalid")
        try:
            with transaction(self.factory, readonly=True, single=True) as s:
                msg = find_for_phone(s, code)  # one query: the phone path's budget
                if msg is None:
                    return ActionResult("unknown")
                status = phone_status(msg)
        except DB_ERRORS as exc:
            log.error("call %s: lookup failed, database down: %s", ctx.record.channel_id, exc)
            return ActionResult("failed")
        out: dict[str, Any] = {"status_prompts": list(status.prompts), "message_code": status.tracking_code}
        if status.reply_audio:
            out["reply_audio"] = recording_ref(status.reply_audio)
            out["reply_id"] = status.reply_id  # marked heard by `reply_heard`, once it has played
            return ActionResult("with_reply", out)
        return ActionResult("no_reply", out)

    def do_reply_heard(self, args: dict[str, str], ctx: CallContext) -> ActionResult:
        """The caller heard the reply (to its end, or long enough before skipping it): note when."""
        reply_id = args.get("reply", "")
        if not reply_id.isdigit():
            return ActionResult("failed")
        try:
            with transaction(self.factory) as s:
                mark_reply_heard(s, int(reply_id), self.clock())
        except DB_ERRORS as exc:
            log.error("call %s: reply not marked heard, database down: %s", ctx.record.channel_id, exc)
            return ActionResult("failed")
        return ActionResult("ok")

    def do_store_feedback(self, args: dict[str, str], ctx: CallContext) -> ActionResult:
        """Store the caller's satisfaction with the reply just heard."""
        satisfied = args.get("satisfied") == "1"
        try:
            with transaction(self.factory) as s:
                msg = find_by_tracking_code(s, args.get("code", ""))
                if msg is None:
                    return ActionResult("failed")
                record_feedback(
                    s,
                    msg,
                    satisfied=satisfied,
                    channel="phone",
                    origin_key=f"{ctx.record.driver}:{ctx.record.channel_id}:feedback",
                )
        except (FeedbackError, *DB_ERRORS) as exc:
            log.error("call %s: feedback not stored: %s", ctx.record.channel_id, exc)
            return ActionResult("failed")
        return ActionResult("satisfied" if satisfied else "dissatisfied")

    def do_lookup_case(self, args: dict[str, str], ctx: CallContext) -> ActionResult:
        """Find an urban-planning or Article 100 case and say where it stands."""
        try:
            with transaction(self.factory, readonly=True, single=True) as s:
                case = case_service.find_case(s, args.get("kind", ""), args.get("number", ""))
                if case is None:
                    return ActionResult("unknown")
                prompts = case_prompts(case, self.settings.currency)
        except DB_ERRORS as exc:
            log.error("call %s: case lookup failed, database down: %s", ctx.record.channel_id, exc)
            return ActionResult("failed")
        return ActionResult("found", {"case_prompts": prompts})

    # ---- routing --------------------------------------------------------------------

    def do_operator_available(self, args: dict[str, str], ctx: CallContext) -> ActionResult:
        """Are the operators staffed now? Falls back to the configured hours without a database."""
        now = self.clock()
        tz, hours = self.settings.timezone, self.settings.operator_hours
        try:
            is_open = self.schedule.get(now.astimezone(tz).date(), self._load_schedule).is_open(now, tz, hours)
        except DB_ERRORS:
            is_open = operators_open(None, now, tz, hours)
        return ActionResult("open" if is_open else "closed")

    def _load_schedule(self, today: date) -> Schedule:
        with transaction(self.factory, readonly=True) as s:
            return load_schedule(s, today)

    def do_check_district(self, args: dict[str, str], ctx: CallContext) -> ActionResult:
        """A district typed on the keypad must be one of the city's (1 to IVR_DISTRICTS)."""
        raw = args.get("district", "")
        ok = raw.isdigit() and int(raw) in self.settings.district_numbers
        return ActionResult("ok" if ok else "invalid", {"district": str(int(raw)) if ok else ""})

    # ---- the start and end of a call ------------------------------------------------

    def begin(self, ctx: CallContext) -> None:
        """Pick up an earlier session of the same call (back from an unanswered queue).

        The dialplan may run the flow twice on one channel; both sessions share one
        call row, and message numbering continues so a second message is not taken
        for a replay of the first.
        """
        try:
            with transaction(self.factory) as s:
                earlier = s.scalar(select(Call).where(Call.channel_id == ctx.record.channel_id))
                if earlier is None:
                    return
                ctx.earlier_keys, ctx.earlier_outcome = earlier.keys, earlier.outcome
                ctx.record.started_at = earlier.started_at
                ctx.earlier_messages = s.scalar(
                    select(func.count()).select_from(Message).where(Message.call_id == earlier.id)
                ) or 0
        except DB_ERRORS as exc:
            log.warning("call %s: could not look up an earlier session: %s", ctx.record.channel_id, exc)

    def finish(self, ctx: CallContext) -> None:
        """Keep a message left before a hang-up, tidy recordings, and log the call, whatever fails."""
        self.conclude(ctx)
        self.log_call(ctx)

    def conclude(self, ctx: CallContext) -> None:
        """The end of a call before its log: keep a take left at the hang-up, spool, tidy recordings."""
        state = ctx.state
        if state is not None:
            try:
                self.keep_pending_recording(ctx, state)
            except Exception:
                log.exception("call %s: the take left at the hang-up could not be kept", ctx.cid)
            ctx.record.keys = ctx.earlier_keys + state.keys
            ctx.record.outcome = ctx.record.outcome or state.outcome or "dropped"
        if ctx.earlier_outcome:
            ctx.record.outcome = stronger_outcome(self.outcome_rank, ctx.earlier_outcome, ctx.record.outcome)
        ctx.record.ended_at = utcnow()
        if ctx.spooled:  # written first: the audio is safe whatever the database does next
            try:
                self.spool.put(ctx.record, ctx.spooled)
            except Exception:
                log.exception("call %s: the spool could not be written", ctx.cid)
        for path in ctx.incoming:
            try:
                Path(path).unlink(missing_ok=True)  # unused takes; kept ones were moved away
            except OSError:
                log.warning("call %s: could not remove %s", ctx.cid, path)

    def log_call(self, ctx: CallContext) -> None:
        """Write the call's row (one statement on PostgreSQL); into the spool if the database fails."""
        turn = self.log_slots.acquire(timeout=LOG_SLOT_WAIT)
        try:
            with transaction(self.factory, single=True) as s:
                save_call_row(s, ctx.record)
        except Exception as exc:
            log.error("call %s: call log not saved, spooling it: %s", ctx.cid, exc,
                      exc_info=not isinstance(exc, DB_ERRORS))
            if not ctx.spooled:  # a file with messages already carries the call record
                self.spool.put(ctx.record, [])
        finally:
            if turn:
                self.log_slots.release()

    def keep_pending_recording(self, ctx: CallContext, state: CallState) -> None:
        """The caller hung up after speaking: a take neither kept nor discarded keeps the message."""
        ref = str(state.vars.get("pending_recording") or state.vars.get("recording") or "")
        if not ref or not state.vars.get("kind") or ref in ctx.kept:
            return
        sid = twilio_calls.sid_of(ref)
        if sid is not None:
            with transaction(self.factory) as s:
                take = twilio_calls.keep_take(s, sid, ctx.cid, twilio_calls.keep_args(state.vars))
            if take is not None:  # fetched already; otherwise the fetch job registers it
                self._keep_late(ctx, take.args, take.audio, sid, state)
            return
        path = Path(ref)
        if not path.is_file():
            return  # kept (moved to storage) or discarded already
        ctx.incoming.append(ref)
        if self._speech(path):
            code = self.keep_message({**state.vars, "recording": ref}, ctx)
            if code:
                ctx.late_code = code
                state.outcome = "message_registered"

    def _keep_late(self, ctx: CallContext, args: Mapping[str, str], audio: StoredAudio, sid: str,
                   state: CallState | None) -> str | None:
        ctx.kept.append(twilio_calls.recording_ref(sid))
        before = ctx.record.outcome
        ctx.record.outcome = stronger_outcome(self.outcome_rank, before, "message_registered")  # saved with the message
        code = self.register_stored(self._spec(args, ctx, sid), audio, ctx, sid)
        if code is not None:
            ctx.late_code = code
            if state is not None:
                state.outcome = "message_registered"
        return code

    def keep_late_take(self, recording_sid: str) -> str | None:
        """A take fetched after its caller hung up (the fetch job): register it and mark the call."""
        with transaction(self.factory, readonly=True) as s:
            take = twilio_calls.late_take(s, recording_sid)
            call = s.scalar(select(Call).where(Call.channel_id == take.call_sid)) if take is not None else None
            if take is None or call is None:
                return None
            record = CallRecord(call.channel_id, call.line_code, call.driver, call.caller_number, call.started_at,
                                call.answered_at, call.ended_at, call.keys, call.outcome, call.error)
        ctx = CallContext(record=record)
        code = self._keep_late(ctx, take.args, take.audio, recording_sid, None)
        if code is None:
            self.spool.put(ctx.record, ctx.spooled)
        return code

    def replay_spool(self) -> None:
        """Ingest spooled calls if the database is back (cheap when the spool is empty)."""
        if self.spool.pending():
            self.spool.replay(self.factory)


def case_prompts(case: Any, currency: str) -> list[str]:
    """What the phone says about a case: its stage, next date, verdict and fine."""
    prompts = [f"case_kind_{case.kind}", f"stage_{case.stage}"]
    if case.next_date is not None:
        prompts += ["case_next_date", *persian.jalali_date(case.next_date)]
    if case.verdict:
        prompts.append(f"verdict_{case.verdict}")
    if case.fine_rials:
        prompts += ["case_fine", *persian.amount(case.fine_rials, currency)]
    return prompts


class CallRunner:
    """Runs calls: one engine and one set of actions shared by every call and every driver."""

    def __init__(self, engine: Engine, actions: CallActions) -> None:
        self.engine = engine
        self.actions = actions

    # ---- the one operation, and the ends of a call ---------------------------------

    def start(self, record: CallRecord, *, entry: str | None = None, sets_variables: bool = True) -> tuple[CallContext, Next]:
        """A new call (or, with `entry`, a named re-entry such as `after_queue`): its context and first step."""
        ctx = CallContext(record=record, sets_variables=sets_variables)
        try:
            if entry is not None:  # a later session of a call already logged
                self.actions.begin(ctx)
            state, step = self.engine.start(record.line, {"caller": record.caller or ""})
            ctx.state = state
            if entry is not None:
                state.node = self.entry_node(record.line, entry)
                step = self.engine.advance(state, Started())
            return ctx, self._settle(ctx, step)
        except Exception as exc:
            return ctx, self._fail(ctx, exc)

    def adopt(self, record: CallRecord, state: CallState) -> CallContext:
        """A call whose engine the driver started itself (classic AGI, before this runner was loaded)."""
        return CallContext(record=record, state=state)

    def advance(self, ctx: CallContext, event: Event) -> Next:
        """Apply `event` and run actions until the call needs the caller; never raises."""
        try:
            if ctx.failing:  # the apology has been handed over: nothing more to say
                return End()
            assert ctx.state is not None
            if ctx.waiting is not None:
                request, ctx.waiting = ActionRequest(**ctx.waiting), None
                if isinstance(event, HungUp):
                    ctx.holds = 0
                    return self._settle(ctx, self.engine.advance(ctx.state, event))
                return self._settle(ctx, request)
            return self._settle(ctx, self.engine.advance(ctx.state, event))
        except Exception as exc:
            return self._fail(ctx, exc)

    def fail(self, ctx: CallContext, exc: BaseException) -> Next:
        """A driver's error around the runner (its transport broke): the one error path."""
        return self._fail(ctx, exc)

    def finish(self, ctx: CallContext) -> None:
        """Log the call and keep what it left; never raises."""
        try:
            self.actions.finish(ctx)
        except Exception:
            log.exception("call %s: could not be logged", ctx.cid)

    def entry_node(self, line: str, entry: str) -> str:
        """The node a named re-entry starts at (menus.yaml, `entries` of the line)."""
        node = self.engine.flow.lines[line].entries.get(entry)
        if node is None:
            raise LookupError(f"line {line} names no entry {entry!r} in the menus")
        return node

    # ---- the AGI driver's loop -----------------------------------------------------

    def run(self, telephone: Telephone, record: CallRecord, *, entry: str | None = None,
            first: tuple[CallState, Event | Exception] | None = None,
            release: Callable[[], None] | None = None) -> CallContext:
        """Run one call to its end over a telephone that performs one instruction at a time; always logs it.

        `first`: the driver already started the engine and performed its first
        instruction (classic AGI): the state, and the event (or error) it ended with.
        `release`: lets the line go (FastAGI: closes the connection, so Asterisk goes on
        with the dialplan); called once nothing more is said, before the call log is written.
        """
        if first is not None:
            ctx = self.adopt(record, first[0])
            step = self.fail(ctx, first[1]) if isinstance(first[1], Exception) else self.advance(ctx, first[1])
        else:
            ctx, step = self.start(record, entry=entry)
        try:
            while not isinstance(step, End):
                if isinstance(step, Hold):
                    time.sleep(step.seconds)
                    step = self.advance(ctx, Done())
                    continue
                try:
                    if isinstance(step, Handover):
                        telephone.perform(Play(prompts=step.prompts))
                        telephone.perform(Transfer(target=step.target))
                        break
                    event = telephone.perform(step)
                except Exception as exc:
                    step = self.fail(ctx, exc)
                    continue
                step = self.advance(ctx, event)
        finally:
            self._end(ctx, telephone, release)
        return ctx

    def _end(self, ctx: CallContext, telephone: Telephone, release: Callable[[], None] | None) -> None:
        """`finish` for a looping driver: the line is let go before the call log is written (nothing waits for it)."""
        try:
            self.actions.conclude(ctx)
        except Exception:
            log.exception("call %s: could not be concluded", ctx.cid)
        if ctx.late_code:
            # Kept after the hang-up: the dialplan's hang-up handler still reads it.
            try:
                telephone.perform(SetVariable(name=TRACKING_CODE_VARIABLE, value=ctx.late_code))
            except Exception:
                log.warning("call %s: could not set TRACKING_CODE after the hang-up", ctx.cid)
        if release is not None:
            try:
                release()
            except Exception:
                log.warning("call %s: could not release the line", ctx.cid, exc_info=True)
        self._log_call(ctx)

    def _log_call(self, ctx: CallContext) -> None:
        """The call log of a concluded call; never raises."""
        try:
            self.actions.log_call(ctx)
        except Exception:
            log.exception("call %s: could not be logged", ctx.cid)

    # ---- inside ------------------------------------------------------------------------

    def _settle(self, ctx: CallContext, step: Any) -> Next:
        """Run actions (and, without channel variables, skip SetVariable) until a step needs the caller."""
        state = ctx.state
        assert state is not None
        while True:
            if isinstance(step, ActionRequest):
                result = self._perform(ctx, step)
                if result.outcome == PENDING:
                    if ctx.holds < MAX_HOLDS:
                        ctx.waiting, ctx.holds = {"name": step.name, "args": dict(step.args)}, ctx.holds + 1
                        return Hold()
                    log.error("call %s: %s still pending after %d waits", ctx.cid, step.name, ctx.holds)
                    result = ActionResult(FAILED)
                ctx.holds = 0
                log.info("call %s: %s action %s → %s", ctx.cid, state.node, step.name, result.outcome)
                step = self.engine.on_action(state, result)
            elif isinstance(step, SetVariable) and not ctx.sets_variables:
                step = self.engine.advance(state, Done())
            else:
                return step

    def _perform(self, ctx: CallContext, req: ActionRequest) -> ActionResult:
        """One action; an exception inside it is logged and becomes its `failed` result."""
        try:
            return self.actions.run(req, ctx)
        except Exception as exc:
            if isinstance(exc, DB_ERRORS):
                log.error("call %s: action %s failed, database unavailable: %s", ctx.cid, req.name, exc)
            else:
                log.exception("call %s: action %s failed", ctx.cid, req.name)
            ctx.record.outcome = "failed"
            ctx.record.error = f"{type(exc).__name__}: {exc}"[:2000]
            return ActionResult(FAILED)

    def _fail(self, ctx: CallContext, exc: BaseException) -> Next:
        """The one error path: log, mark the call failed, and hand the caller over (once)."""
        node = ctx.state.node if ctx.state else "-"
        if isinstance(exc, DB_ERRORS):
            log.error("call %s: database unavailable at %s: %s", ctx.cid, node, exc)
        else:
            log.error("call %s: failed at node %s", ctx.cid, node, exc_info=exc)
        ctx.record.outcome = "failed"
        ctx.record.error = ctx.record.error or f"{type(exc).__name__}: {exc}"[:2000]
        ctx.waiting = None
        if ctx.state is not None:
            ctx.state.finished = True
        if ctx.failing:
            return End()
        ctx.failing = True
        return Handover()


def build_runner(
    settings: Settings, factory: sessionmaker[Session] | None = None, *, engine: Engine | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> CallRunner:
    """The runner for this deployment: the packaged flow, the database, storage and spool."""
    if factory is None:
        factory = make_sessionmaker(make_engine(settings.database_url))
    if engine is None:
        engine = Engine(load_flow(), currency=settings.currency, code_groups=settings.code_groups)
    return CallRunner(engine, CallActions(factory, settings, clock=clock, outcome_rank=engine.flow.outcome_rank))
