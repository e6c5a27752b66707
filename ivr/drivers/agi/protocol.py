"""The AGI protocol: one thin adapter over pyst2's `AGI` class, and the reply parser it uses.

Every reply form a real Asterisk 22 sends (see `parse_reply`) is read in one place, and
the typed methods return exactly what happened (which key, whether input timed out, how
a recording ended) instead of pyst2 0.5.1's lossy values. What pyst2 gets wrong, and
what `AgiChannel` does instead:

* its `__init__` installs a SIGHUP handler unconditionally (fails off the main thread)
  and writes debug text to stderr: we install the handler only where it can work and
  send the chatter to `logging` at debug level;
* it does not know FastAGI's unsolicited `HANGUP` line, the `511` dead-channel reply, or
  `result=` with an empty value: `get_result` handles them all;
* it neither escapes quotes nor refuses newlines, so a value could inject a second
  command: `send_command` quotes and escapes as Asterisk's `parse_args` reads them;
* its `record_file` returns `'\\x00'` on a timeout and raises on a hang-up, losing the
  recording: ours returns a `RecordResult`.
"""
from __future__ import annotations

import logging
import re
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Literal

from asterisk.agi import AGI, AGIError, AGIHangup, AGIInvalidCommand, AGIUsageError

log = logging.getLogger(__name__)

#: Called with (command, seconds from reading the previous reply to sending this command).
LatencyHook = Callable[[str, float], None]

# A real reply line is short; a longer one means we are not talking to Asterisk.
MAX_LINE = 8192
MAX_ENV_LINES = 512
DIGITS = "0123456789*#"
HANGUP_NOTICE = 0  # Reply.code of the unsolicited `HANGUP` line

_ENDPOS_RE = re.compile(r"(?:^|\s)endpos=(-?\d+)$")
_CODE_RE = re.compile(r"^(\d{3})([ -])(.*)$")
_KEY_RE = re.compile(r"^\w+$")
_NEEDS_QUOTES_RE = re.compile(r'[\s"\\]')


class AgiProtocolError(AGIError):
    """Asterisk (or whatever is on the other end) sent something that is not AGI."""


class CallerHungUp(AGIHangup):
    """The channel hung up before or during a command; media commands can no longer run."""


class AgiConnectionLost(CallerHungUp, AgiProtocolError):
    """The connection ended (end of file, reset, timeout): the call is over for us too."""


class AgiRecordError(AGIError):
    """RECORD FILE failed without recording anything (e.g. Asterisk cannot write the file)."""


class Quoted(str):
    """An argument that is always sent in double quotes, even when empty (escape digits, values)."""


@dataclass(frozen=True)
class Reply:
    """One parsed reply from Asterisk.

    `code` is 200, 510, 511 or 520 (0 for the unsolicited `HANGUP` line); `result` is the
    text after `result=` (possibly empty), `data` the part in parentheses, `endpos` the
    sample position some media commands report. Indexing (`reply['result']`) gives the
    `(value, data)` pairs pyst2's own helper methods expect.
    """

    code: int
    result: str = ""
    data: str | None = None
    endpos: int | None = None
    text: str = ""
    continues: bool = False

    @property
    def is_hangup_notice(self) -> bool:
        """True for the unsolicited `HANGUP` line FastAGI sends after a hang-up."""
        return self.code == HANGUP_NOTICE

    def __getitem__(self, key: str) -> tuple[str, str]:
        """pyst2 compatibility: `reply['result'] == (value, data)`."""
        if key == "result":
            return self.result, self.data or ""
        if key == "endpos" and self.endpos is not None:
            return str(self.endpos), ""
        raise KeyError(key)


@dataclass(frozen=True)
class RecordResult:
    """How RECORD FILE ended: by a key (`key` holds it), a timeout or silence, or a hang-up.

    `endpos` is the length of the recording in samples (8 per millisecond for `wav`), or
    None when the connection ended before Asterisk could say.
    """

    ended_by: Literal["dtmf", "timeout", "hangup"]
    key: str = ""
    endpos: int | None = 0


def parse_reply(line: str) -> Reply:
    """Parse one line Asterisk sent in answer to a command.

    Lines seen from Asterisk 22 (res_agi.c):

    * ``200 result=0 endpos=8000`` / ``200 result=52 endpos=4000`` / ``200 result=-1 endpos=0``
      (STREAM FILE: played out, interrupted by ``4``, file missing or hang-up)
    * ``200 result=123456`` / ``200 result= (timeout)`` / ``200 result=12 (timeout)`` /
      ``200 result=-1`` (GET DATA)
    * ``200 result=52`` / ``200 result=0`` / ``200 result=-1`` (WAIT FOR DIGIT)
    * ``200 result=35 (dtmf) endpos=N`` / ``200 result=12666 (timeout) endpos=N`` /
      ``200 result=-1 (hangup) endpos=N`` / ``200 result=-1 (writefile)`` (RECORD FILE)
    * ``200 result=1`` (SET VARIABLE, VERBOSE, HANGUP), ``200 result=1 (value)`` (GET VARIABLE)
    * ``510 Invalid or unknown command``
    * ``511 Command Not Permitted on a dead channel or intercept routine``
    * ``520-Invalid command syntax.  Proper usage follows:`` ... ``520 End of proper usage.``
      (`continues` is True on the first line) or ``520 Invalid command syntax.  Proper usage
      not available.``
    * ``HANGUP`` (unsolicited, FastAGI only: the caller hung up)

    Anything else raises `AgiProtocolError`.
    """
    line = line.rstrip("\r\n")
    if line.strip() == "HANGUP":
        return Reply(code=HANGUP_NOTICE, text=line)
    if line.startswith("200 "):
        rest = line[4:].strip()
        if not rest.startswith("result="):
            raise AgiProtocolError(f"garbled AGI reply (no result=): {line[:200]!r}")
        value, _, rest = rest[len("result="):].partition(" ")
        if value.startswith("("):  # `result= (timeout)`: the value is empty
            value, rest = "", f"{value} {rest}"
        rest = rest.strip()
        endpos = None
        m = _ENDPOS_RE.search(rest)
        if m:
            endpos = int(m.group(1))
            rest = rest[: m.start()].strip()
        data = None
        if rest:
            if not (rest.startswith("(") and rest.endswith(")")):
                raise AgiProtocolError(f"garbled AGI reply: {line[:200]!r}")
            data = rest[1:-1]
        return Reply(code=200, result=value, data=data, endpos=endpos, text=line)
    m = _CODE_RE.match(line)
    if not m:
        raise AgiProtocolError(f"garbled AGI reply: {line[:200]!r}")
    return Reply(code=int(m.group(1)), text=m.group(3), continues=m.group(2) == "-")


def format_argument(value: object) -> str | None:
    """One command argument as Asterisk's `parse_args` reads it (None: leave it out).

    Quotes and backslashes are escaped with a backslash; newlines (and NUL) are refused
    because they would end the command and start another one.
    """
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    if "\n" in text or "\r" in text or "\0" in text:
        raise ValueError(f"an AGI argument cannot contain a newline or NUL: {text[:80]!r}")
    if not isinstance(value, Quoted):
        if text == "":
            return None  # pyst2 passes '' for "no optional argument"
        if not _NEEDS_QUOTES_RE.search(text):
            return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _DebugLog:
    """A stderr stand-in that sends pyst2's chatter to logging at debug level."""

    def write(self, text: str) -> int:
        """Log one chunk of text at debug level."""
        if text.strip():
            log.debug("pyst2: %s", text.rstrip())
        return len(text)

    def flush(self) -> None:
        """Nothing is buffered."""


class AgiChannel(AGI):
    """One AGI conversation with Asterisk (FastAGI socket or classic stdin/stdout)."""

    def __init__(
        self,
        stdin: IO[str],
        stdout: IO[str],
        *,
        install_sighup: bool | None = None,
        latency_hook: LatencyHook | None = None,
    ) -> None:
        # pyst2's __init__ is deliberately not called: it installs a SIGHUP handler even
        # where signals cannot be handled (any thread but the main one) and prints to stderr.
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = _DebugLog()
        self.env: dict[str, str] = {}
        self.hung_up = False
        self._got_sighup = False
        self._latency_hook = latency_hook
        self._replied_at: float | None = None
        self._while_waiting: Callable[[], None] | None = None
        if install_sighup is None:
            install_sighup = threading.current_thread() is threading.main_thread()
        if install_sighup:
            # Classic AGI: Asterisk signals a hang-up with SIGHUP (AGISIGHUP=yes, the default).
            signal.signal(signal.SIGHUP, self._handle_sighup)
        self._get_agi_env()

    @classmethod
    def from_socket(
        cls, sock: socket.socket, *, latency_hook: LatencyHook | None = None
    ) -> AgiChannel:
        """A channel over a FastAGI connection (reads the greeting; never touches signals)."""
        rfile = sock.makefile("r", encoding="utf-8", errors="replace", newline="\n")
        wfile = sock.makefile("w", encoding="utf-8", newline="\n")
        try:
            return cls(rfile, wfile, install_sighup=False, latency_hook=latency_hook)
        except BaseException:
            rfile.close()
            wfile.close()
            raise

    @property
    def uniqueid(self) -> str:
        """Asterisk's unique id of the channel ('' if the greeting had none)."""
        return self.env.get("agi_uniqueid", "")

    def close(self) -> None:
        """Close the streams (the socket itself belongs to whoever made it)."""
        for stream in (self.stdout, self.stdin):
            try:
                stream.close()
            except (OSError, ValueError):
                pass

    # ---- the wire ---------------------------------------------------------------------

    def _handle_sighup(self, signum: int, frame: object) -> None:
        self._got_sighup = True
        self.hung_up = True

    def _mark_hung_up(self, why: str) -> None:
        if not self.hung_up:
            log.info("call %s: hung up (%s)", self.uniqueid or "?", why)
        self.hung_up = True

    def _readline(self) -> str | None:
        """One line without its line end, or None at end of file."""
        try:
            line = self.stdin.readline(MAX_LINE)
        except (OSError, ValueError) as exc:  # reset, timeout, or stream already closed
            raise AgiConnectionLost(f"reading from Asterisk failed: {exc}") from exc
        if isinstance(line, bytes):
            line = line.decode("utf-8", "replace")
        if line == "":
            return None
        if len(line) >= MAX_LINE and not line.endswith("\n"):
            raise AgiProtocolError(f"AGI line longer than {MAX_LINE} characters")
        return line.rstrip("\r\n")

    def _get_agi_env(self) -> None:
        """Read the `agi_*: value` greeting up to its blank line, skipping garbled lines."""
        for _ in range(MAX_ENV_LINES):
            line = self._readline()
            if line is None:
                raise AgiProtocolError("the connection ended before the AGI greeting was complete")
            line = line.strip()
            if not line:
                break
            key, sep, value = line.partition(":")
            key = key.strip()
            if not sep or not _KEY_RE.match(key):
                log.warning("ignoring a garbled AGI greeting line: %r", line[:100])
                continue
            self.env[key] = value.strip()
        else:
            raise AgiProtocolError(f"AGI greeting longer than {MAX_ENV_LINES} lines")
        if not any(key.startswith("agi_") for key in self.env):
            raise AgiProtocolError("not an AGI greeting: no agi_* variables")
        self._replied_at = time.perf_counter()

    def _quote(self, string: object) -> Quoted:
        """Mark an argument for quoting; `send_command` does the quoting and escaping once."""
        return Quoted(str(string))

    def send_command(self, command: str, *args: object) -> None:
        """Send one command line, each argument quoted and escaped as Asterisk parses them."""
        words = [command.strip()]
        for arg in args:
            word = format_argument(arg)
            if word is not None:
                words.append(word)
        if any(c in words[0] for c in "\r\n\0"):
            raise ValueError(f"an AGI command cannot contain a newline: {command[:80]!r}")
        line = " ".join(words) + "\n"
        if self._latency_hook is not None and self._replied_at is not None:
            self._latency_hook(words[0], time.perf_counter() - self._replied_at)
        log.debug("call %s: > %s", self.uniqueid, line.rstrip())
        try:
            self.stdout.write(line)
            self.stdout.flush()
        except (OSError, ValueError) as exc:  # broken pipe, reset, closed stream
            raise AgiConnectionLost(f"writing to Asterisk failed: {exc}") from exc
        work, self._while_waiting = self._while_waiting, None
        if work is not None:
            work()

    def while_waiting(self, work: Callable[[], None] | None) -> None:
        """Run `work` once, right after the next command is sent and before its reply is read.

        Classic AGI imports the database layer this way while the first prompt plays.
        """
        self._while_waiting = work

    def get_result(self, stdin: object = None) -> Reply:
        """Read the reply to the command just sent (`stdin` is ignored, kept for pyst2)."""
        while True:
            line = self._readline()
            if line is None:
                if self.hung_up:
                    raise AgiConnectionLost("Asterisk closed the connection after the hang-up")
                raise AgiConnectionLost("Asterisk closed the connection while a reply was due")
            log.debug("call %s: < %s", self.uniqueid, line)
            reply = parse_reply(line)
            if not reply.is_hangup_notice:
                break
            # The caller hung up; the reply to our command is still to come.
            self._mark_hung_up("HANGUP line")
        if reply.code == 520:
            usage = [reply.text]
            while reply.continues:
                more = self._readline()
                if more is None:
                    raise AgiConnectionLost("the connection ended inside a 520 usage block")
                if more.startswith("520 "):
                    break
                usage.append(more)
            self._replied_at = time.perf_counter()
            raise AGIUsageError("\n".join(usage))
        self._replied_at = time.perf_counter()
        if reply.code == 200:
            if reply.data == "hangup":
                self._mark_hung_up("(hangup) reply")
            return reply
        if reply.code == 510:
            raise AGIInvalidCommand(reply.text)
        if reply.code == 511:
            self._mark_hung_up("511 reply")
            raise CallerHungUp(reply.text)
        raise AgiProtocolError(f"unexpected AGI reply: {line[:200]!r}")

    def execute(self, command: str, *args: object) -> Reply:
        """Send a command and read its reply (no SIGHUP check: dead-channel commands stay usable)."""
        self.send_command(command, *args)
        return self.get_result()

    # ---- typed commands ---------------------------------------------------------------

    def _key(self, reply: Reply, command: str) -> str:
        try:
            code = int(reply.result)
        except ValueError:
            raise AgiProtocolError(f"{command}: expected a number, got {reply.text!r}") from None
        if code < 0:
            raise AgiProtocolError(f"{command}: unexpected result {reply.text!r}")
        return chr(code) if code else ""

    def stream_file(self, name: str, escape: str = "") -> str:
        """Play a prompt; the key in `escape` that interrupted it, or ''."""
        return self._stream_file(name, escape)[0]

    def stream_file_to(self, name: str, escape: str = "") -> tuple[str, int]:
        """Play a prompt: (the key in `escape` that interrupted it or '', the sample it reached).

        Unlike `stream_file`, a prompt cut off by the hang-up raises CallerHungUp at once,
        so it is never taken for one played to its end.
        """
        key, reply = self._stream_file(name, escape)
        if reply.result == "-1" and reply.endpos:
            self._mark_hung_up("STREAM FILE cut off")
            raise CallerHungUp(f"hung up during {name}")
        return key, max(reply.endpos or 0, 0)

    def _stream_file(self, name: str, escape: str) -> tuple[str, Reply]:
        reply = self.execute("STREAM FILE", name, Quoted(escape), 0)
        if reply.result == "-1":
            # -1 is both "file missing" and "hung up": the HANGUP line or a 511 will tell.
            if self.hung_up:
                raise CallerHungUp(f"hung up during {name}")
            if reply.endpos:
                # A missing file answers endpos=0; a position means it was playing when the
                # caller hung up (Asterisk sends the HANGUP line just after this reply).
                log.info("call %s: prompt %r cut off at sample %d (hang-up)", self.uniqueid, name, reply.endpos)
                return "", reply
            log.warning(
                "call %s: prompt %r not played (missing file, or the caller hung up)", self.uniqueid, name
            )
            return "", reply
        return self._key(reply, "STREAM FILE"), reply

    def wait_for_digit(self, ms: int) -> str:
        """Wait up to `ms` milliseconds for one key; '' on timeout."""
        reply = self.execute("WAIT FOR DIGIT", int(ms))
        if reply.result == "-1":
            self._mark_hung_up("WAIT FOR DIGIT -1")
            raise CallerHungUp("hung up while waiting for a key")
        return self._key(reply, "WAIT FOR DIGIT")

    def get_data(self, name: str, ms: int, max_digits: int) -> tuple[str, bool]:
        """Play a prompt and collect up to `max_digits` keys ended by `#`: (digits, timed_out)."""
        reply = self.execute("GET DATA", name, int(ms), int(max_digits))
        if reply.result == "-1" and reply.data is None:
            self._mark_hung_up("GET DATA -1")
            raise CallerHungUp("hung up while collecting digits")
        if reply.data not in (None, "timeout"):
            raise AgiProtocolError(f"GET DATA: unexpected reply {reply.text!r}")
        return reply.result, reply.data == "timeout"

    def record_file(
        self, path: str, fmt: str = "wav", escape: str = "#", ms: int = 120000, silence_s: int = 0
    ) -> RecordResult:
        """Record to `path`.`fmt` until a key in `escape`, `ms` milliseconds, silence or hang-up.

        A hang-up while recording is a result, not an error: the partial file holds what
        the caller said. No `BEEP` argument is sent (Asterisk's beep has no `fa` version).
        """
        args: list[object] = [path, fmt, Quoted(escape), int(ms), 0]
        if silence_s > 0:
            args.append(f"s={int(silence_s)}")
        try:
            reply = self.execute("RECORD FILE", *args)
        except AgiConnectionLost:
            self._mark_hung_up("connection lost while recording")
            return RecordResult("hangup", "", None)
        if reply.data == "dtmf":
            return RecordResult("dtmf", self._key(reply, "RECORD FILE"), reply.endpos or 0)
        if reply.data == "timeout":
            return RecordResult("timeout", "", reply.endpos or 0)
        if reply.data in ("hangup", "waitfor"):
            self._mark_hung_up(f"({reply.data}) while recording")
            return RecordResult("hangup", "", reply.endpos or 0)
        if reply.data == "writefile":
            raise AgiRecordError(
                f"Asterisk could not write {path}.{fmt}: does the directory exist, writable by Asterisk?"
            )
        if reply.result == "-1":
            if self.hung_up:
                raise CallerHungUp("hung up before recording started")
            raise AgiRecordError(f"RECORD FILE failed: {reply.text!r}")
        raise AgiProtocolError(f"RECORD FILE: unexpected reply {reply.text!r}")

    def set_variable(self, name: str, value: object) -> None:
        """Set a channel variable (works on a hung-up channel too)."""
        self.execute("SET VARIABLE", Quoted(name), Quoted(str(value)))

    def verbose(self, message: str, level: int = 1) -> None:
        """Write a line to the Asterisk console (works on a hung-up channel too)."""
        self.execute("VERBOSE", Quoted(message), int(level))

    def answer(self) -> None:
        """Answer the channel if it is not up yet."""
        reply = self.execute("ANSWER")
        if reply.result == "-1":
            self._mark_hung_up("ANSWER -1")
            raise CallerHungUp("hung up before the call could be answered")

    def hangup(self) -> None:
        """Hang up the channel (nothing to do if the caller already has)."""
        try:
            self.execute("HANGUP")
        except CallerHungUp:
            pass  # 511: already down, which is what we wanted
        self.hung_up = True
