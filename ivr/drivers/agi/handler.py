"""From an AGI connection to a running call: which line, who calls, and the runner."""
from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from ivr.calls import CallRunner, build_runner
from ivr.config import Settings
from ivr.flow.steps import Instruction, Play, ReadDigits, ReadKey, Record
from ivr.models import LINES, utcnow
from ivr.services.calls import CallRecord

log = logging.getLogger(__name__)


class UnknownLine(LookupError):
    """The AGI request names no line this server runs."""


def line_from_env(env: dict[str, str]) -> tuple[str, list[str]]:
    """The line (137/1888) and extra arguments of an AGI request.

    FastAGI names the line in the script path (`agi://host:4573/1888`); classic AGI
    passes it as the first argument (`AGI(ivr-agi,1888)`); without either, the
    dialled number (`agi_dnid`, then `agi_extension`) decides.
    """
    args = [env[k] for k in sorted((k for k in env if k.startswith("agi_arg_")), key=lambda k: int(k[8:]))]
    script = env.get("agi_network_script") or urlsplit(env.get("agi_request", "")).path.lstrip("/")
    script = script.split("?", 1)[0].strip("/")
    if script in LINES:
        return script, args
    if args and args[0] in LINES:
        return args[0], args[1:]
    for key in ("agi_dnid", "agi_extension"):
        if env.get(key) in LINES:
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


def build_call_handler(settings: Settings, runner: CallRunner | None = None) -> Callable[[Any], None]:
    """The handler the FastAGI server (and classic AGI) runs for each connection."""
    from ivr.drivers.agi.telephone import AgiTelephone

    runner = runner or build_runner(settings)

    def handle(channel: Any) -> None:
        env = channel.env
        channel_id = env.get("agi_uniqueid") or f"agi-{uuid.uuid4().hex}"
        caller = env.get("agi_callerid")
        caller = None if not caller or caller.lower() in ("unknown", "anonymous") else caller
        line, args = line_from_env(env)  # UnknownLine → the server's apology and operator path
        now = utcnow()
        record = CallRecord(channel_id=channel_id, line=line, driver="agi", caller=caller, started_at=now, answered_at=now)
        telephone = _RecordingsAsFiles(AgiTelephone(channel, settings, channel_id), settings)
        again = "after_queue" in args
        runner.run(telephone, record, start_node="operator_closed" if again else None, resume=again)

    return handle


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
