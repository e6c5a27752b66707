"""The fakes the tests use. The main one is a fake Asterisk that answers AGI as Asterisk 22 does.

`FakeAsteriskCall` is sans-IO: it makes the greeting and turns each command line into
the reply lines a real res_agi would send (see shared/ASTERISK.md), driven by a caller
script. Thin runners carry it over a real transport: TCP (`run_fake_call_tcp`), an
existing socket (`run_fake_call_socket`), a classic AGI child process
(`run_fake_call_pipes`), asyncio (`run_fake_call_async`), or in memory (`loopback`).

The caller script is a list of actions, each consumed by the next *media* command
(STREAM FILE, WAIT FOR DIGIT, GET DATA, RECORD FILE); other commands consume nothing:

    script = [wait(), press("4"), type_digits("12345678#"), speak(4), press("#"), hangup()]

* `press(k)` / `type_digits("12#")`: keys pressed during the command. A command that
  accepts a key (an escape digit of STREAM FILE, any key for WAIT FOR DIGIT, digits for
  GET DATA, `#` for RECORD FILE) takes it; keys it does not accept are lost, as when a
  caller presses during a prompt that ignores keys. Keys left over after the command that
  took one carry on into the next command (the caller keeps typing).
* `wait()`: the command ends by itself: a prompt plays out, an input times out.
* `speak(s)`: during RECORD FILE, s seconds of speech are recorded (a real 8 kHz WAV).
  Prompts (STREAM FILE) before it play out without using it up, so a Record's prompts
  and beep need no `wait()`; WAIT FOR DIGIT and GET DATA time out on it and use it up.
* `silence()`: during RECORD FILE the caller says nothing: ~1 s of silence, `(timeout)`;
  otherwise like `speak`.
* `hangup()`: the caller hangs up during the command: `result=-1`, then the unsolicited
  `HANGUP` line before the reply to the next command (FastAGI) or SIGHUP (classic AGI);
  media commands get 511 from then on, SET VARIABLE / VERBOSE / NOOP still get 200.

When the script runs out, the caller idles (`wait()`) a few more times, then hangs up.
"""
from __future__ import annotations

import array
import asyncio
import functools
import io
import itertools
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import wave
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image

from ivr.drivers.agi.protocol import AgiChannel

DIGITS = "0123456789*#"
RATE = 8000  # samples per second of a lower-case `wav` recording
DEAD_CHANNEL = "511 Command Not Permitted on a dead channel or intercept routine"
UNKNOWN_COMMAND = "510 Invalid or unknown command"
SOUND_EXTENSIONS = ("wav", "WAV", "sln", "gsm", "ulaw", "alaw", "g722", "sln16")
_unique_ids = itertools.count(1)

ActionKind = Literal["keys", "wait", "speak", "silence", "hangup"]


# ---- the caller's script ------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """One thing the caller does during one media command."""

    kind: ActionKind
    keys: str = ""
    seconds: float = 0.0


def press(key: str) -> Action:
    """The caller presses one key."""
    if len(key) != 1 or key not in DIGITS:
        raise ValueError(f"not a phone key: {key!r}")
    return Action("keys", keys=key)


def type_digits(keys: str) -> Action:
    """The caller types several keys in a row (e.g. '12345678#')."""
    if not keys or any(k not in DIGITS for k in keys):
        raise ValueError(f"not phone keys: {keys!r}")
    return Action("keys", keys=keys)


def speak(seconds: float) -> Action:
    """The caller talks for `seconds` (recorded when RECORD FILE is running)."""
    return Action("speak", seconds=float(seconds))


def silence() -> Action:
    """The caller says nothing while being recorded."""
    return Action("silence")


def hangup() -> Action:
    """The caller hangs up."""
    return Action("hangup")


def wait() -> Action:
    """The caller does nothing: the prompt plays out, the input times out."""
    return Action("wait")


# ---- audio ---------------------------------------------------------------------------

_SPEECH_TEXT = (
    "سلام، من از منطقه شش تهران تماس می‌گیرم. چند شب است که چراغ‌های خیابان ما خاموش است "
    "و جوی آب هم گرفته است. لطفاً پیگیری کنید. شماره من را دارید. ممنونم."
)


def _resample(samples: Sequence[int], src_rate: int, dst_rate: int) -> array.array:
    """Linear-interpolation resampling after a small moving-average low-pass."""
    smooth = [
        (samples[max(i - 1, 0)] + samples[i] + samples[min(i + 1, len(samples) - 1)]) // 3
        for i in range(len(samples))
    ]
    out = array.array("h")
    step = src_rate / dst_rate
    n = int(len(smooth) / step)
    for j in range(n):
        x = j * step
        i = int(x)
        frac = x - i
        b = smooth[i + 1] if i + 1 < len(smooth) else smooth[i]
        out.append(int(smooth[i] + (b - smooth[i]) * frac))
    return out


def _espeak_speech() -> array.array | None:
    """Persian speech from espeak-ng at 8 kHz, or None if espeak-ng is not installed."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "speech.wav")
        result = subprocess.run(
            [espeak, "-v", "fa", "-s", "150", "-w", path, _SPEECH_TEXT],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if result.returncode != 0 or not os.path.exists(path):
            return None
        with wave.open(path, "rb") as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                return None
            rate = w.getframerate()
            raw = array.array("h", w.readframes(w.getnframes()))
    return raw if rate == RATE else _resample(raw, rate, RATE)


def _tone_speech(seconds: float = 6.0) -> array.array:
    """A speech-like sound: a voiced buzz with syllable-rate loudness changes and pauses."""
    out = array.array("h")
    for n in range(int(seconds * RATE)):
        t = n / RATE
        syllable = max(0.0, math.sin(2 * math.pi * 3.5 * t)) ** 0.5  # ~3.5 syllables a second
        pause = 0.0 if (t % 2.5) > 2.2 else 1.0  # a breath every 2.5 s
        pitch = 130 + 20 * math.sin(2 * math.pi * 0.7 * t)
        phase = 2 * math.pi * pitch * t
        voice = math.sin(phase) + 0.5 * math.sin(2 * phase) + 0.3 * math.sin(3 * phase)
        out.append(int(6000 * syllable * pause * voice / 1.8))
    return out


@functools.lru_cache(maxsize=1)
def _speech_base() -> array.array:
    """A few seconds of speech, made once per test run."""
    return _espeak_speech() or _tone_speech()


def speech_samples(seconds: float) -> array.array:
    """`seconds` of 8 kHz 16-bit speech (espeak-ng Persian if available, else a voiced tone)."""
    base = _speech_base()
    n = int(seconds * RATE)
    out = array.array("h")
    while len(out) < n:
        out.extend(base[: n - len(out)])
    return out


def silence_samples(seconds: float) -> array.array:
    """`seconds` of line silence (faint noise, around -70 dBFS)."""
    rng = random.Random(len(_SPEECH_TEXT))
    return array.array("h", (rng.randint(-8, 8) for _ in range(int(seconds * RATE))))


def write_wav(path: Path, samples: array.array) -> None:
    """Write 8 kHz mono 16-bit PCM, as Asterisk writes a lower-case `wav` recording."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.tobytes())


def write_speech_wav(path: Path, seconds: float) -> Path:
    """A caller's voice message as Asterisk would have recorded it (for tests that skip the call)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, speech_samples(seconds))
    return path


def photo_bytes(size: tuple[int, int] = (8, 8), fmt: str = "PNG") -> bytes:
    """A small plain image, as an inspector's phone would upload a photo of the site."""
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 90, 90)).save(buf, format=fmt)
    return buf.getvalue()


# ---- the fake Asterisk ----------------------------------------------------------------


def split_agi_args(line: str) -> list[str]:
    """Split a command line exactly as res_agi's parse_args does (quotes, backslash escapes)."""
    args: list[str] = []
    cur: list[str] | None = None
    quoted = escaped = False
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and cur is None:
                cur = []
                args.append("")
            continue
        if ch in " \t" and not quoted and not escaped:
            if cur is not None:
                args[-1] = "".join(cur)
            cur = None
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if cur is None:
            cur = []
            args.append("")
        cur.append(ch)
        escaped = False
    if cur is not None:
        args[-1] = "".join(cur)
    return args


class _Usage(Exception):
    """The command's arguments are wrong: answer with the 520 usage block."""


_USAGE = {
    "answer": "Usage: ANSWER\n Answers channel if not already in answer state.",
    "stream file": "Usage: STREAM FILE <filename> <escape_digits> [sample offset]\n"
    " Send the given file, allowing playback to be interrupted by the given digits.",
    "wait for digit": "Usage: WAIT FOR DIGIT <timeout>\n Waits up to timeout milliseconds for a DTMF digit.",
    "get data": "Usage: GET DATA <file to be streamed> [timeout] [maxdigits]\n"
    " Stream the given file, and receive DTMF data.",
    "record file": "Usage: RECORD FILE <filename> <format> <escape_digits> <timeout> "
    "[offset samples] [BEEP] [s=silence]\n Record to a file until a given dtmf digit is received.",
    "set variable": "Usage: SET VARIABLE <variablename> <value>\n Sets a variable to the current channel.",
    "get variable": "Usage: GET VARIABLE <variablename>\n Gets a channel variable.",
    "verbose": "Usage: VERBOSE <message> <level>\n Logs a message to the asterisk verbose log.",
    "hangup": "Usage: HANGUP [<channelname>]\n Hangs up a channel.",
    "noop": "Usage: NOOP\n Does nothing.",
}


class FakeAsteriskCall:
    """One call as Asterisk 22's res_agi would run it, driven by a caller script (sans-IO)."""

    def __init__(
        self,
        script: Iterable[Action] = (),
        env: Mapping[str, str | None] | None = None,
        incoming_root: str | os.PathLike[str] | None = None,
        sounds_dir: str | os.PathLike[str] | None = None,
        *,
        prompt_seconds: Callable[[str], float] | None = None,
        classic: bool = False,
        idle_limit: int = 8,
    ) -> None:
        self.script: deque[Action] = deque(script)
        self.incoming_root = Path(incoming_root) if incoming_root is not None else None
        self.sounds_dir = Path(sounds_dir) if sounds_dir is not None else None
        self.prompt_seconds = prompt_seconds
        self.classic = classic
        self.idle_left = idle_limit
        self.uniqueid = f"1747000000.{next(_unique_ids)}"
        self.env = self._make_env(env or {})
        # What happened, for assertions:
        self.commands: list[str] = []
        self.transcript: list[tuple[str, list[str]]] = []
        self.variables: dict[str, str] = {}
        self.heard: list[str] = []
        self.missing: list[str] = []
        self.lost_keys = ""
        self.recordings: list[Path] = []
        self.asterisk_beeps = 0  # RECORD FILE asked Asterisk for its (silent, for fa) beep
        self.hung_up_by: Literal["caller", "app"] | None = None
        self.elapsed = 0.0  # simulated seconds of the call so far
        self.last_duration = 0.0  # simulated seconds the last command took (runners may sleep it)
        # Transport state, kept by the runners:
        self.sighup_pending = False  # classic AGI: the runner should send SIGHUP now
        self.closed = False  # the application closed the connection
        self.reset = False  # ... abruptly (connection reset)
        self.closed_at: float | None = None  # time.monotonic() when the runner saw it close
        self.returncode: int | None = None  # classic AGI: the child's exit status
        self.stderr_text = ""
        self._pending: list[str] = []  # unsolicited lines sent before the next reply

    # -- greeting ----------------------------------------------------------------------

    def _make_env(self, overrides: Mapping[str, str | None]) -> dict[str, str]:
        env: dict[str, str] = {}
        if not self.classic:
            env["agi_network"] = "yes"
            env["agi_network_script"] = "1888"
            env["agi_request"] = "agi://127.0.0.1:4573/1888"
        else:
            env["agi_request"] = "ivr-agi"
        env.update(
            {
                "agi_channel": f"PJSIP/trunk-{next(_unique_ids):08x}",
                "agi_language": "fa",
                "agi_type": "PJSIP",
                "agi_uniqueid": self.uniqueid,
                "agi_version": "22.10.1",
                "agi_callerid": "09121234567",
                "agi_calleridname": "unknown",
                "agi_callingpres": "0",
                "agi_callingani2": "0",
                "agi_callington": "0",
                "agi_callingtns": "0",
                "agi_dnid": "unknown",
                "agi_rdnis": "unknown",
                "agi_context": "ivr-1888",
                "agi_extension": "1888",
                "agi_priority": "2",
                "agi_enhanced": "0.0",
                "agi_accountcode": "",
                "agi_threadid": "140245810009792",
            }
        )
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def greeting(self) -> str:
        """The agi_* lines and the blank line Asterisk sends first."""
        return "".join(f"{k}: {v}\n" for k, v in self.env.items()) + "\n"

    # -- state -------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """True once the channel is down (the caller or the application hung up)."""
        return self.hung_up_by is not None

    @property
    def dead(self) -> bool:
        """Same as `done`: media commands now get 511."""
        return self.hung_up_by is not None

    def wire(self) -> str:
        """The whole exchange as text: `<` lines from Asterisk, `>` lines from the application."""
        lines = [f"< {line}" for line in self.greeting().split("\n")[:-1]]
        for command, replies in self.transcript:
            lines.append(f"> {command}")
            lines.extend(f"< {reply}" for reply in replies)
        return "\n".join(lines) + "\n"

    def _take(self) -> Action:
        if self.script:
            return self.script.popleft()
        if self.idle_left > 0:
            self.idle_left -= 1
            return Action("wait")
        return Action("hangup")

    def _give_back(self, keys: str) -> None:
        if keys:
            self.script.appendleft(Action("keys", keys=keys))

    def _caller_hangs_up(self) -> None:
        if self.hung_up_by is None:
            self.hung_up_by = "caller"
            self._notify_hangup()

    def _notify_hangup(self) -> None:
        if self.classic:
            self.sighup_pending = True
        else:
            self._pending.append("HANGUP")

    def _duration(self, name: str) -> float:
        if self.prompt_seconds is not None:
            return float(self.prompt_seconds(name))
        path = self._find_prompt(name)
        if path is not None and path.suffix == ".wav":
            try:
                with wave.open(str(path), "rb") as w:
                    return w.getnframes() / (w.getframerate() or RATE)
            except (OSError, EOFError, wave.Error):
                pass
        return 1.0

    def _find_prompt(self, name: str) -> Path | None:
        if self.sounds_dir is None:
            return None
        if name.startswith("/"):
            candidates = [Path(f"{name}.{ext}") for ext in SOUND_EXTENSIONS]
        else:
            lang = self.env.get("agi_language", "")
            candidates = [
                self.sounds_dir / lang / f"{name}.{ext}" for ext in SOUND_EXTENSIONS if lang
            ] + [self.sounds_dir / f"{name}.{ext}" for ext in SOUND_EXTENSIONS]
        return next((p for p in candidates if p.is_file()), None)

    def _prompt_exists(self, name: str) -> bool:
        return self.sounds_dir is None or self._find_prompt(name) is not None

    # -- commands ----------------------------------------------------------------------

    def handle(self, command_line: str) -> list[str]:
        """The reply lines Asterisk sends for one command line (unsolicited lines first)."""
        line = command_line.rstrip("\r\n")
        self.commands.append(line)
        replies, self._pending = self._pending, []
        self.last_duration = 0.0
        replies.extend(self._dispatch(line))
        self.elapsed += self.last_duration
        self.transcript.append((line, list(replies)))
        return replies

    _COMMANDS: tuple[tuple[tuple[str, ...], str, bool], ...] = (
        (("answer",), "_answer", False),
        (("stream", "file"), "_stream_file", False),
        (("wait", "for", "digit"), "_wait_for_digit", False),
        (("get", "data"), "_get_data", False),
        (("record", "file"), "_record_file", False),
        (("set", "variable"), "_set_variable", True),
        (("get", "variable"), "_get_variable", True),
        (("verbose",), "_verbose", True),
        (("noop",), "_noop", True),
        (("hangup",), "_hangup", False),
    )

    def _dispatch(self, line: str) -> list[str]:
        argv = split_agi_args(line)
        lowered = [a.lower() for a in argv]
        for words, method, dead_ok in self._COMMANDS:
            if tuple(lowered[: len(words)]) != words:
                continue
            if self.dead and not dead_ok:
                return [DEAD_CHANNEL]
            try:
                return getattr(self, method)(argv)
            except _Usage:
                usage = _USAGE[" ".join(words)]
                return ["520-Invalid command syntax.  Proper usage follows:", *usage.split("\n"),
                        "520 End of proper usage."]
        return [UNKNOWN_COMMAND]

    def _answer(self, argv: list[str]) -> list[str]:
        return ["200 result=0"]

    def _noop(self, argv: list[str]) -> list[str]:
        return ["200 result=0"]

    def _verbose(self, argv: list[str]) -> list[str]:
        if len(argv) < 2:
            raise _Usage
        return ["200 result=1"]

    def _set_variable(self, argv: list[str]) -> list[str]:
        if len(argv) != 4:
            raise _Usage
        self.variables[argv[2]] = argv[3]
        return ["200 result=1"]

    def _get_variable(self, argv: list[str]) -> list[str]:
        if len(argv) != 3:
            raise _Usage
        if argv[2] in self.variables:
            return [f"200 result=1 ({self.variables[argv[2]]})"]
        return ["200 result=0"]

    def _hangup(self, argv: list[str]) -> list[str]:
        if len(argv) > 2:
            raise _Usage
        if len(argv) == 2:
            return ["200 result=-1"]  # no other channel by that name here
        self.hung_up_by = "app"
        self._notify_hangup()
        return ["200 result=1"]

    def _stream_file(self, argv: list[str]) -> list[str]:
        if len(argv) not in (4, 5):
            raise _Usage
        offset = _int_arg(argv[4]) if len(argv) == 5 else 0
        name, escape = argv[2], argv[3]
        if not self._prompt_exists(name):
            self.missing.append(name)
            return [f"200 result=-1 endpos={offset}"]
        self.heard.append(name)
        seconds = self._duration(name)
        full = int(seconds * RATE)
        if self.script and self.script[0].kind in ("speak", "silence"):
            # The caller will talk once recording starts: prompts before it just play out.
            self.last_duration = seconds
            return [f"200 result=0 endpos={full}"]
        action = self._take()
        if action.kind == "keys":
            for i, key in enumerate(action.keys):
                if key in escape:
                    self.lost_keys += action.keys[:i]
                    self._give_back(action.keys[i + 1:])
                    self.last_duration = seconds / 2
                    return [f"200 result={ord(key)} endpos={full // 2}"]
            self.lost_keys += action.keys  # pressed during a prompt that ignores them
        elif action.kind == "hangup":
            self._caller_hangs_up()
            self.last_duration = seconds / 2
            return [f"200 result=-1 endpos={full // 2}"]
        self.last_duration = seconds
        return [f"200 result=0 endpos={full}"]

    def _wait_for_digit(self, argv: list[str]) -> list[str]:
        if len(argv) != 4:
            raise _Usage
        timeout_ms = _int_arg(argv[3])
        action = self._take()
        if action.kind == "keys":
            self._give_back(action.keys[1:])
            self.last_duration = min(1.0, timeout_ms / 1000) if timeout_ms > 0 else 1.0
            return [f"200 result={ord(action.keys[0])}"]
        if action.kind == "hangup":
            self._caller_hangs_up()
            self.last_duration = 0.5
            return ["200 result=-1"]
        self.last_duration = max(timeout_ms, 0) / 1000
        return ["200 result=0"]

    def _get_data(self, argv: list[str]) -> list[str]:
        if len(argv) < 3:
            raise _Usage
        name = argv[2]
        timeout_ms = _atoi(argv[3]) if len(argv) > 3 else 0
        max_digits = _atoi(argv[4]) if len(argv) > 4 else 1024
        if self._prompt_exists(name):
            self.heard.append(name)
            self.last_duration = self._duration(name)
        else:
            self.missing.append(name)  # Asterisk skips a missing prompt and still collects
        digits = ""
        while True:
            action = self._take()
            if action.kind == "keys":
                for i, key in enumerate(action.keys):
                    if key == "#":
                        self._give_back(action.keys[i + 1:])
                        return [f"200 result={digits}"]
                    digits += key
                    self.last_duration += 0.3
                    if len(digits) >= max_digits:
                        self._give_back(action.keys[i + 1:])
                        return [f"200 result={digits}"]
                continue
            if action.kind == "hangup":
                self._caller_hangs_up()
                return ["200 result=-1"]
            self.last_duration += max(timeout_ms, 0) / 1000
            return [f"200 result={digits} (timeout)"]

    def _record_file(self, argv: list[str]) -> list[str]:
        if len(argv) < 6:
            raise _Usage
        path, fmt, escape = argv[2], argv[3], argv[4]
        timeout_ms = _int_arg(argv[5])
        extra = argv[6:9]
        silence_s = 0
        for arg in extra:
            if arg.startswith("s="):
                silence_s = _atoi(arg[2:])
                break
        # res_agi plays its `beep` when argv[6] is neither a number nor s=, or argv[7] is not s=.
        if (len(argv) > 6 and not _is_int(argv[6]) and not argv[6].startswith("s=")) or (
            len(argv) > 7 and not argv[7].startswith("s=")
        ):
            self.asterisk_beeps += 1
        target = Path(f"{path}.{fmt}")
        if not self._writable(target) or fmt != "wav":
            return ["200 result=-1 (writefile)"]
        limit = timeout_ms * RATE // 1000 if timeout_ms > 0 else None
        samples = array.array("h")
        ended: tuple[str, int] | None = None
        trailing_silence = 0.0
        while ended is None:
            action = self._take()
            if action.kind == "speak":
                samples.extend(speech_samples(action.seconds))
                if limit is not None and len(samples) >= limit:
                    del samples[limit:]
                    ended = ("timeout", 0)
            elif action.kind in ("silence", "wait"):
                # Silence detection (s=N) ends it; Asterisk trims all but ~1 s of the silence.
                samples.extend(silence_samples(1.0))
                trailing_silence = max(silence_s - 1.0, 0.0)  # heard but trimmed off
                ended = ("timeout", 0)
            elif action.kind == "keys":
                for i, key in enumerate(action.keys):
                    if key in escape:
                        self._give_back(action.keys[i + 1:])
                        # Asterisk rewinds 200 ms to cut the key's tone out of the recording.
                        del samples[max(0, len(samples) - RATE // 5):]
                        ended = ("dtmf", ord(key))
                        break
                    self.lost_keys += key
            else:
                self._caller_hangs_up()
                ended = ("hangup", -1)
        write_wav(target, samples)
        self.recordings.append(target)
        self.last_duration = len(samples) / RATE + trailing_silence
        how, result = ended
        if how == "timeout" and limit is not None:
            result = max(0, timeout_ms - int(self.last_duration * 1000))
        return [f"200 result={result} ({how}) endpos={len(samples)}"]

    def _writable(self, target: Path) -> bool:
        if not target.is_absolute() or not target.parent.is_dir():
            return False
        if self.incoming_root is not None:
            try:
                target.resolve().relative_to(self.incoming_root.resolve())
            except ValueError:
                return False
        return os.access(target.parent, os.W_OK)


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _int_arg(text: str) -> int:
    """A number argument res_agi reads with sscanf: anything else is a usage error."""
    try:
        return int(text)
    except ValueError:
        raise _Usage from None


def _atoi(text: str) -> int:
    """C's atoi: the leading number, 0 if none."""
    digits = ""
    for i, ch in enumerate(text.strip()):
        if ch.isdigit() or (i == 0 and ch in "+-"):
            digits += ch
        else:
            break
    return _int_or_zero(digits)


def _int_or_zero(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


# ---- runners -------------------------------------------------------------------------


def _encode(replies: list[str]) -> bytes:
    return "".join(f"{r}\n" for r in replies).encode("utf-8")


def run_fake_call_socket(
    sock: socket.socket, call: FakeAsteriskCall, *, pace: bool = False, timeout: float = 10.0
) -> FakeAsteriskCall:
    """Play Asterisk's side of `call` over a connected socket until the application closes it."""
    sock.settimeout(timeout)
    rfile = sock.makefile("rb")
    try:
        sock.sendall(call.greeting().encode("utf-8"))
        while True:
            line = rfile.readline()
            if not line:
                break
            replies = call.handle(line.decode("utf-8", "replace"))
            if pace and call.last_duration > 0:
                time.sleep(call.last_duration)
            if replies:
                sock.sendall(_encode(replies))
    except (ConnectionResetError, BrokenPipeError):
        call.reset = True
    finally:
        call.closed = True
        call.closed_at = time.monotonic()
        rfile.close()
    return call


def run_fake_call_tcp(
    host: str, port: int, call: FakeAsteriskCall, timeout: float = 10.0, *, pace: bool = False
) -> FakeAsteriskCall:
    """Connect to a FastAGI server as Asterisk does and play `call` (blocking)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return run_fake_call_socket(sock, call, pace=pace, timeout=timeout)


async def run_fake_call_async(
    host: str, port: int, call: FakeAsteriskCall, pace: bool = False, timeout: float = 30.0
) -> FakeAsteriskCall:
    """The asyncio version of `run_fake_call_tcp`, for load generators running many calls."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        writer.write(call.greeting().encode("utf-8"))
        await writer.drain()
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout)
            if not line:
                break
            replies = call.handle(line.decode("utf-8", "replace"))
            if pace and call.last_duration > 0:
                await asyncio.sleep(call.last_duration)
            if replies:
                writer.write(_encode(replies))
                await writer.drain()
    except (ConnectionResetError, BrokenPipeError):
        call.reset = True
    finally:
        call.closed = True
        call.closed_at = time.monotonic()
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionResetError, BrokenPipeError):
            pass
    return call


def run_fake_call_pipes(
    argv: Sequence[str],
    call: FakeAsteriskCall,
    env: Mapping[str, str] | None = None,
    timeout: float = 20.0,
    *,
    pace: bool = False,
) -> FakeAsteriskCall:
    """Start a classic AGI program and play `call` over its stdin/stdout (SIGHUP on hang-up)."""
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env) if env is not None else None,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stderr_chunks: list[bytes] = []
    drain = threading.Thread(target=lambda: stderr_chunks.append(proc.stderr.read()), daemon=True)
    drain.start()
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    try:
        proc.stdin.write(call.greeting().encode("utf-8"))
        proc.stdin.flush()
        while True:
            line = proc.stdout.readline()
            if not line:
                break
            replies = call.handle(line.decode("utf-8", "replace"))
            if pace and call.last_duration > 0:
                time.sleep(call.last_duration)
            proc.stdin.write(_encode(replies))
            proc.stdin.flush()
            if call.sighup_pending:
                call.sighup_pending = False
                proc.send_signal(signal.SIGHUP)
    except BrokenPipeError:
        call.reset = True
    finally:
        call.closed = True
        call.closed_at = time.monotonic()
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
        call.returncode = proc.wait(timeout)
        watchdog.cancel()
        drain.join(timeout)
        proc.stdout.close()
        proc.stderr.close()
        call.stderr_text = b"".join(stderr_chunks).decode("utf-8", "replace")
    return call


# ---- in-memory transports for the protocol and telephone tests ------------------------


class _LoopbackReader(io.TextIOBase):
    """What the application reads: the greeting, then the replies to the commands it wrote."""

    def __init__(self, greeting: str) -> None:
        super().__init__()
        self.lines: deque[str] = deque(greeting.splitlines(keepends=True))

    def readable(self) -> bool:
        return True

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        # Nothing queued means nothing will ever come: a real read would block; say EOF.
        return self.lines.popleft() if self.lines else ""


class _LoopbackWriter(io.TextIOBase):
    """What the application writes: each complete line goes to the fake call at once."""

    def __init__(self, call: FakeAsteriskCall, reader: _LoopbackReader) -> None:
        super().__init__()
        self.call = call
        self.reader = reader
        self.buffer_text = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:  # type: ignore[override]
        self.buffer_text += text
        while "\n" in self.buffer_text:
            line, self.buffer_text = self.buffer_text.split("\n", 1)
            self.reader.lines.extend(f"{r}\n" for r in self.call.handle(line))
        return len(text)


def loopback(call: FakeAsteriskCall) -> tuple[io.TextIOBase, io.TextIOBase]:
    """(stdin, stdout) for an `AgiChannel` talking to `call` in memory, with no threads."""
    reader = _LoopbackReader(call.greeting())
    return reader, _LoopbackWriter(call, reader)


@contextmanager
def socketpair_channel(call: FakeAsteriskCall, timeout: float = 10.0) -> Iterator[AgiChannel]:
    """An `AgiChannel` over a real socket pair, the fake call served by a thread."""
    app_side, asterisk_side = socket.socketpair()
    server = threading.Thread(
        target=run_fake_call_socket, args=(asterisk_side, call), kwargs={"timeout": timeout}, daemon=True
    )
    server.start()
    channel: AgiChannel | None = None
    try:
        channel = AgiChannel.from_socket(app_side)
        yield channel
    finally:
        if channel is not None:
            channel.close()
        app_side.close()
        server.join(timeout)
        asterisk_side.close()
