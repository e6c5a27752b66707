"""Classic AGI: Asterisk starts this program once per call and talks over stdin/stdout.

For small sites (`AGI(ivr-agi)` in the dialplan). Asterisk waits for the process
before the caller hears anything, so start-up must be quick: only `sys` and `logging`
are imported here, everything else inside `main`, and the welcome prompt is sent before
SQLAlchemy and the rest of the database layer are imported (they load while it plays). A hang-up arrives as SIGHUP (with
the default `AGISIGHUP=yes`), never as a `HANGUP` line: the channel marks itself hung
up and Asterisk answers media commands with 511 from then on.
"""
from __future__ import annotations

import logging
import sys
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ivr.config import Settings
    from ivr.drivers.agi.protocol import AgiChannel

log = logging.getLogger(__name__)


def main(
    argv: Sequence[str] | None = None,
    handler: Callable[[AgiChannel], Any] | None = None,
    *,
    settings: Settings | None = None,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
) -> int:
    """Serve the one call on stdin/stdout; 0 when the call was handled, 1 on failure."""
    del argv  # the call's arguments arrive in the greeting as agi_arg_N
    import io

    from asterisk.agi import AGIError

    from ivr.drivers.agi.protocol import AgiChannel
    from ivr.drivers.agi.server import apologise, run_call

    if not logging.getLogger().handlers:
        # stdout is the protocol: logs must go to stderr, which Asterisk shows on its console.
        logging.basicConfig(
            stream=sys.stderr, level=logging.WARNING, format="ivr-agi %(levelname)s %(name)s: %(message)s"
        )
    if stdin is None:
        stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline="\n")
    if stdout is None:
        stdout = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="\n")
        # A stray print() anywhere in the call would corrupt the protocol: send it to stderr.
        sys.stdout = sys.stderr
    try:
        channel = AgiChannel(stdin, stdout)
    except (AGIError, OSError) as exc:
        log.error("no usable AGI greeting: %s", exc)
        return 1
    prefix = settings.agi_prompt_prefix if settings is not None else ""
    try:
        if settings is None:
            from ivr.config import load_settings

            settings = load_settings()
            prefix = settings.agi_prompt_prefix
        if handler is None:
            handler = _default_handler(settings)
    except Exception:
        log.exception("call %s: cannot start the call flow", channel.uniqueid or "?")
        apologise(channel, prefix)
        return 1
    try:
        return 0 if run_call(channel, handler, prefix) else 1
    finally:
        try:
            stdout.flush()
        except (OSError, ValueError):
            pass


def _default_handler(settings: Settings) -> Callable[[AgiChannel], Any]:
    """The project's call handler, the same one the FastAGI server runs (the first prompt before SQLAlchemy)."""
    from ivr.drivers.agi.handler import build_call_handler

    return build_call_handler(settings, early_start=True)


if __name__ == "__main__":  # pragma: no cover - `python -m ivr.drivers.agi.classic`
    sys.exit(main())
