"""Running one phone call: the engine's steps, the business actions, the call log.

Drivers give this module a *telephone* (anything with `perform(instruction) -> event`);
`CallRunner.run` drives the engine over it, runs the actions the flow asks for against
the services, and, whatever happens, finishes the call: a caller who hung up after
speaking keeps the message, unused recordings are removed, and the call is logged
(or spooled to disk when the database is down). Any unexpected error ends in one
place: a short apology and the operators' queue, never dead air.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
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
from ivr.flow.steps import ActionRequest, Event, Instruction, Play, SetVariable, Started, Transfer
from ivr.identifiers import is_valid_tracking_code, new_tracking_code
from ivr.infra.spool import Spool
from ivr.infra.storage import AudioError, AudioStore, StoredAudio, has_speech
from ivr.models import Call, Message, utcnow
from ivr.services import cases as case_service
from ivr.services.call_log import CallRecord, save_call_row
from ivr.services.feedback import FeedbackError, record_feedback
from ivr.services.messages import (
    find_by_tracking_code,
    mark_reply_heard,
    phone_status,
    register_message,
)
from ivr.services.operators import operators_open
from ivr.speech import persian
from ivr.vocabulary import TRACKING_CODE_VARIABLE

log = logging.getLogger(__name__)

# The database is down, unreachable or saturated: spool or fall back, never lose the call.
DB_ERRORS = (OperationalError, InterfaceError, PoolTimeout)


class Telephone(Protocol):
    """What a driver offers the runner: carry out one instruction, report what happened."""

    def perform(self, instruction: Instruction) -> Event:
        """Carry out `instruction` on the call and return the resulting event."""
        ...


@dataclass
class CallContext:
    """One call in progress: its log record and what it produced."""

    record: CallRecord
    state: CallState | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    spooled: list[dict[str, Any]] = field(default_factory=list)
    incoming: list[str] = field(default_factory=list)
    earlier_keys: str = ""
    earlier_outcome: str | None = None
    earlier_messages: int = 0
    late_code: str | None = None
    registering: Future[str | None] | None = None


def recording_ref(rel_path: str) -> str:
    """The prompt reference for stored audio (drivers turn it into a path or a URL)."""
    return f"rec:{rel_path}"


class CallActions:
    """The business work the flow asks for, each in its own short transaction."""

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
        self.spool = Spool(settings.spool_dir)
        self.clock = clock
        self.outcome_rank = tuple(outcome_rank if outcome_rank is not None else load_flow().outcome_rank)
        self.workers = ThreadPoolExecutor(max_workers=8, thread_name_prefix="register")

    def run(self, req: ActionRequest, ctx: CallContext) -> ActionResult:
        """Run the action named in `req`; unknown names are a definition error."""
        method = getattr(self, f"do_{req.name}", None)
        if method is None:
            raise LookupError(f"the flow asks for an unknown action {req.name!r}")
        return method(req.args, ctx)

    # ---- recordings and messages --------------------------------------------------

    def do_check_recording(self, args: dict[str, str], ctx: CallContext) -> ActionResult:
        """Is there speech in the recording just made? Silence is thrown away."""
        path = Path(args["recording"])
        ctx.incoming.append(str(path))
        if path.is_file() and has_speech(
            path,
            min_speech_ms=self.settings.min_speech_ms,
            threshold_dbfs=self.settings.silence_threshold_dbfs,
        ):
            return ActionResult("speech")
        path.unlink(missing_ok=True)
        return ActionResult("empty")

    def do_discard_recording(self, args: dict[str, str], ctx: CallContext) -> ActionResult:
        """The caller chose to record again: the first take is deleted."""
        Path(args["recording"]).unlink(missing_ok=True)
        return ActionResult("ok")

    def do_register_message(self, args: dict[str, str], ctx: CallContext) -> ActionResult:
        """Start storing the recording and registering the message, in the background.

        The caller hears "your message is registered" meanwhile; `message_code` then
        collects the tracking code. Whatever happens to the call, `finish` waits for it.
        """
        ctx.registering = self.workers.submit(self.keep_message, dict(args), ctx)
        return ActionResult("started")

    def do_message_code(self, args: dict[str, str], ctx: CallContext) -> ActionResult:
        """The tracking code of the message being registered (waits for it if need be)."""
        future, ctx.registering = ctx.registering, None
        code = future.result() if future is not None else None
        if code is None:
            return ActionResult("failed")
        return ActionResult("ok", {"tracking_code": code})

    def keep_message(self, args: dict[str, str], ctx: CallContext) -> str | None:
        """Move the recording into storage and register it; the tracking code, or None."""
        try:
            audio = self.store.store(Path(args["recording"]))
        except AudioError as exc:
            log.error("call %s: recording lost before storing: %s", ctx.record.channel_id, exc)
            return None
        return self.register_stored(args, audio, ctx)

    def register_stored(
        self,
        args: dict[str, Any],
        audio: StoredAudio,
        ctx: CallContext,
        *,
        origin_key: str | None = None,
        on_registered: Callable[[Session, Message], None] | None = None,
    ) -> str | None:
        """Register a message for audio already in storage (spooled if the database is down).

        `origin_key` defaults to the call's n-th message; `on_registered` runs in the same
        transaction (a driver linking its own rows).
        """
        n = ctx.earlier_messages + len(ctx.messages) + len(ctx.spooled) + 1
        spec = {
            "line": args.get("line") or ctx.record.line,
            "kind": args["kind"],
            "topic": args.get("topic") or None,
            "district": args.get("district") or None,
            "source": "phone_voice",
            "audio": asdict(audio),
            "origin_key": origin_key or f"{ctx.record.driver}:{ctx.record.channel_id}:{n}",
        }
        if not ctx.spooled:
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
                    if on_registered is not None:
                        on_registered(s, msg)
                    code = msg.tracking_code
                ctx.messages.append({**spec, "tracking_code": code})
                log.info("call %s: message %s registered", ctx.record.channel_id, code)
                return code
            except DB_ERRORS as exc:
                log.error("call %s: database down, spooling the message: %s", ctx.record.channel_id, exc)
        code = new_tracking_code()
        ctx.spooled.append({**spec, "tracking_code": code})
        return code

    # ---- follow-up ------------------------------------------------------------------

    def do_lookup_message(self, args: dict[str, str], ctx: CallContext) -> ActionResult:
        """Find a message by the code typed; say its status and play the reply if any."""
        code = args.get("code", "")
        if not is_valid_tracking_code(code):
            return ActionResult("invalid")
        try:
            with transaction(self.factory) as s:
                msg = find_by_tracking_code(s, code)
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
            with transaction(self.factory, readonly=True) as s:
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
        try:
            with transaction(self.factory, readonly=True) as s:
                is_open = operators_open(s, now, self.settings.timezone, self.settings.operator_hours)
        except DB_ERRORS:
            is_open = operators_open(None, now, self.settings.timezone, self.settings.operator_hours)
        return ActionResult("open" if is_open else "closed")

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
        """Keep a message left before a hang-up, tidy recordings, and log the call."""
        if ctx.registering is not None:  # the caller hung up while it was being registered
            try:
                ctx.late_code = ctx.registering.result()
            except Exception:
                log.exception("call %s: registering the message failed", ctx.record.channel_id)
            ctx.registering = None
        state = ctx.state
        if state is not None:
            self.keep_pending_recording(ctx, state)
            ctx.record.keys = ctx.earlier_keys + state.keys
            ctx.record.outcome = ctx.record.outcome or state.outcome or "dropped"
        if ctx.earlier_outcome:
            ctx.record.outcome = stronger_outcome(self.outcome_rank, ctx.earlier_outcome, ctx.record.outcome)
        ctx.record.ended_at = utcnow()
        for path in ctx.incoming:
            Path(path).unlink(missing_ok=True)  # unused takes; kept ones were moved away
        if ctx.spooled:
            self.spool.put(ctx.record, ctx.spooled)
            return
        try:
            with transaction(self.factory) as s:
                save_call_row(s, ctx.record)
        except DB_ERRORS as exc:
            log.error("call %s: database down, spooling the call log: %s", ctx.record.channel_id, exc)
            self.spool.put(ctx.record, [])

    def keep_pending_recording(self, ctx: CallContext, state: CallState) -> None:
        """The caller hung up after speaking: a take neither kept nor discarded keeps the message."""
        # A take still in `incoming` was neither kept (moved to storage) nor discarded.
        pending = state.vars.get("pending_recording") or state.vars.get("recording")
        if pending and Path(pending).is_file():
            ctx.incoming.append(pending)
            if has_speech(
                Path(pending),
                min_speech_ms=self.settings.min_speech_ms,
                threshold_dbfs=self.settings.silence_threshold_dbfs,
            ) and state.vars.get("kind"):
                ctx.late_code = self.keep_message({**state.vars, "recording": pending}, ctx)
                if ctx.late_code:
                    state.outcome = "message_registered"

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
    """Runs calls: one engine and one set of actions shared by every call."""

    def __init__(self, engine: Engine, actions: CallActions) -> None:
        self.engine = engine
        self.actions = actions

    def run(
        self,
        telephone: Telephone,
        record: CallRecord,
        *,
        start_node: str | None = None,
        resume: bool = False,
        on_state: Callable[[CallState], None] | None = None,
        first: tuple[CallState, Event | Exception] | None = None,
    ) -> CallContext:
        """Run one call to its end over `telephone`; always logs it.

        `resume` continues the call row and message numbering of an earlier session
        on the same channel (the dialplan re-enters the flow after an unanswered queue).
        `first`: the driver already started the engine and performed its first
        instruction (classic AGI, before this runner was loaded): the state, and the
        event (or the error) that instruction ended with.
        """
        ctx = CallContext(record=record)
        cid = record.channel_id
        try:
            if resume:  # a later session of a call already logged (back from the queue)
                self.actions.begin(ctx)
            if first is not None:
                state, outcome = first
                ctx.state = state
                if isinstance(outcome, Exception):
                    raise outcome
                step = self.engine.advance(state, outcome)
            else:
                state, step = self.engine.start(record.line, {"caller": record.caller or ""})
                ctx.state = state
            if start_node:
                state.node = start_node
                step = self.engine.advance(state, Started())
            while not isinstance(step, End):
                if isinstance(step, ActionRequest):
                    result = self.actions.run(step, ctx)
                    log.info("call %s: %s action %s → %s", cid, state.node, step.name, result.outcome)
                    step = self.engine.on_action(state, result)
                    continue
                event = telephone.perform(step)
                log.info("call %s: %s %s → %s", cid, state.node, type(step).__name__, event)
                step = self.engine.advance(state, event)
        except Exception as exc:  # one defined place for every unexpected error
            log.exception("call %s: failed at node %s", cid, ctx.state.node if ctx.state else "-")
            record.outcome = "failed"
            record.error = f"{type(exc).__name__}: {exc}"[:2000]
            try:
                telephone.perform(Play(prompts=("sorry_technical",)))
                telephone.perform(Transfer(target="operator"))
            except Exception:
                log.warning("call %s: could not hand the caller to the operators", cid)
        finally:
            try:
                self.actions.finish(ctx)
            except Exception:
                log.exception("call %s: could not be logged", cid)
            if ctx.late_code:
                # Kept after the hang-up: the dialplan's hang-up handler still reads it.
                try:
                    telephone.perform(SetVariable(name=TRACKING_CODE_VARIABLE, value=ctx.late_code))
                except Exception:
                    log.warning("call %s: could not set TRACKING_CODE after the hang-up", cid)
        return ctx


def build_runner(
    settings: Settings, factory: sessionmaker[Session] | None = None, *, engine: Engine | None = None
) -> CallRunner:
    """The runner for this deployment: the packaged flow, the database, storage and spool."""
    if factory is None:
        factory = make_sessionmaker(make_engine(settings.database_url))
    if engine is None:
        engine = Engine(load_flow(), currency=settings.currency, code_groups=settings.code_groups)
    return CallRunner(engine, CallActions(factory, settings, outcome_rank=engine.flow.outcome_rank))
