"""From an AGI connection to a running call: which line, who calls, and the runner.

Importing this module stays light (no SQLAlchemy): classic AGI sends the first prompt
before the database layer is imported (see `build_call_handler(early_start=True)`).
"""
from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Collection
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ivr.config import Settings
from ivr.flow.steps import Instruction, Play, ReadDigits, ReadKey, Record

if TYPE_CHECKING:
    from ivr.runner import CallRunner
    from ivr.services.call_log import CallRecord

log = logging.getLogger(__name__)

ENTRY_AFTER_QUEUE = "after_queue"  # the dialplan's argument when the operators' queue went unanswered


class UnknownLine(LookupError):
    """The AGI request names no line this server runs."""


def line_from_env(env: dict[str, str], lines: Collection[str] | None = None) -> tuple[str, list[str]]:
    """The line (137/1888) and extra arguments of an AGI request.

    FastAGI names the line in the script path (`agi://host:4573/1888`); classic AGI
    passes it as the first argument (`AGI(ivr-agi,1888)`); without either, the
    dialled number (`agi_dnid`, then `agi_extension`) decides. `lines` defaults to
    every line of the data model.
    """
    if lines is None:
        from ivr.models import LINES

        lines = LINES
    args = [env[k] for k in sorted((k for k in env if k.startswith("agi_arg_")), key=lambda k: int(k[8:]))]
    script = env.get("agi_network_script") or urlsplit(env.get("agi_request", "")).path.lstrip("/")
    script = script.split("?", 1)[0].strip("/")
    if script in lines:
        return script, args
    if args and args[0] in lines:
        return args[0], args[1:]
    for key in ("agi_dnid", "agi_extension"):
        if env.get(key) in lines:
            return env[key], args
    raise UnknownLine(f"no line in agi_network_script={script!r}, args={args}, dnid={env.get('agi_dnid')!r}")


class _RecordingsAsFiles:
    """Turns `rec:<stored path>` prompt references into absolute paths Asterisk can play."""

    def __init__(self, telephone: Any, settings: Settings) -> None:
        self.telephone = telephone
        self.root = settings.recordings_dir

    def _map(self, prompts: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(
            str(self.root / p[4:]).rsplit(".", 1)[0] if p.startswith("rec:") else p for p in prompts
        )

    def perform(self, instruction: Instruction) -> Any:
        if isinstance(instruction, Play | ReadKey | ReadDigits | Record):
            instruction = replace(instruction, prompts=self._map(instruction.prompts))
        return self.telephone.perform(instruction)


def build_call_handler(
    settings: Settings, runner: CallRunner | None = None, *, early_start: bool = False
) -> Callable[[Any], None]:
    """The handler the FastAGI server (and classic AGI) runs for each connection.

    `early_start` (classic AGI, one process per call): the caller hears the welcome
    prompt before the database layer is imported; it is imported while that prompt plays.
    """
    from ivr.drivers.agi.telephone import AgiTelephone

    if runner is None and not early_start:
        from ivr.runner import build_runner

        runner = build_runner(settings)

    def handle(channel: Any) -> None:
        env = channel.env
        channel_id = env.get("agi_uniqueid") or f"agi-{uuid.uuid4().hex}"
        caller = env.get("agi_callerid")
        caller = None if not caller or caller.lower() in ("unknown", "anonymous") else caller
        now = datetime.now(UTC)  # ivr.models.utcnow, without importing the models here
        telephone = _RecordingsAsFiles(AgiTelephone(channel, settings, channel_id), settings)
        if runner is None:
            _run_early(settings, channel, telephone, channel_id, caller, now)
            return
        line, args = line_from_env(env)  # UnknownLine → the server's apology and operator path
        record = _record(channel_id, line, caller, now)
        # The FastAGI server's channel can be let go before the call log is written.
        runner.run(telephone, record, entry=_entry(args), release=getattr(channel, "release", None))

    return handle


def _entry(args: list[str]) -> str | None:
    """A named re-entry into the flow passed by the dialplan (`AGI(...,after_queue)`); menus.yaml names its node."""
    return ENTRY_AFTER_QUEUE if ENTRY_AFTER_QUEUE in args else None


def _record(channel_id: str, line: str, caller: str | None, now: datetime) -> CallRecord:
    from ivr.services.call_log import CallRecord

    return CallRecord(channel_id=channel_id, line=line, driver="agi", caller=caller, started_at=now, answered_at=now)


def _run_early(
    settings: Settings, channel: Any, telephone: Any, channel_id: str, caller: str | None, now: datetime
) -> None:
    """Run a call whose first instruction goes out before the runner (and SQLAlchemy) is loaded."""
    from ivr.flow.definition import load_flow
    from ivr.flow.engine import Engine

    engine = Engine(load_flow(), currency=settings.currency, code_groups=settings.code_groups)
    line, args = line_from_env(channel.env, engine.flow.lines)  # UnknownLine → apology, operator
    loaded: list[Any] = []

    def load() -> None:
        try:
            from ivr.runner import build_runner

            loaded.append(build_runner(settings, engine=engine))
        except Exception as exc:  # raised once the reply has been read, to keep the protocol in step
            loaded.append(exc)

    entry = _entry(args)
    if entry is not None:  # a later session: the earlier call row is needed before anything is said
        load()
        _loaded(loaded).run(telephone, _record(channel_id, line, caller, now), entry=entry)
        return
    state, step = engine.start(line, {"caller": caller or ""})
    channel.while_waiting(load)  # once the first command is sent, before its reply is read
    try:
        first: Any = telephone.perform(step)
    except Exception as exc:  # the runner's one place for errors handles it
        first = exc
    if not loaded:  # nothing was sent (the caller had already gone)
        channel.while_waiting(None)
        load()
    runner = _loaded(loaded)
    runner.run(telephone, _record(channel_id, line, caller, now), first=(state, first))


def _loaded(loaded: list[Any]) -> CallRunner:
    if isinstance(loaded[0], Exception):
        raise loaded[0]
    runner: CallRunner = loaded[0]
    return runner


class SpoolReplayer:
    """Replays the on-disk spool every `interval` seconds in a background thread."""

    def __init__(self, runner: CallRunner, interval: float = 30.0) -> None:
        self.runner = runner
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="spool-replay", daemon=True)

    def start(self) -> None:
        """Start replaying in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current replay."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.runner.actions.replay_spool()
            except Exception:
                log.exception("spool replay failed; will retry")
