"""The vocabulary between the call-flow engine and the telephony drivers.

The engine emits *instructions* (what the caller should hear, what input to take);
a driver carries one out on its channel (Asterisk AGI, Twilio) and answers with an
*event* (the key pressed, the digits typed, the recording made, the hang-up).
Nothing here does I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DIGITS = "0123456789*#"


# ---- instructions: engine → driver -------------------------------------------------


@dataclass(frozen=True)
class Play:
    """Play prompts in order; a key in `interrupt` stops playback and is returned."""

    prompts: tuple[str, ...]
    interrupt: str = ""


@dataclass(frozen=True)
class ReadKey:
    """Play prompts (interruptible by `keys`), then wait up to `timeout_ms` for one key."""

    prompts: tuple[str, ...]
    keys: str
    timeout_ms: int = 5000


@dataclass(frozen=True)
class ReadDigits:
    """Play prompts, then collect up to `max_digits` digits ended by `#` or a timeout.

    A digit pressed during the prompts interrupts them and is the first digit.
    """

    prompts: tuple[str, ...]
    max_digits: int
    timeout_ms: int = 6000


@dataclass(frozen=True)
class Record:
    """Play prompts, beep, and record the caller until `#`, silence, `max_seconds` or hang-up."""

    prompts: tuple[str, ...]
    max_seconds: int = 120
    silence_seconds: int = 5


@dataclass(frozen=True)
class SetVariable:
    """Set a channel variable (Asterisk) or call attribute the dialplan or operator sees."""

    name: str
    value: str


@dataclass(frozen=True)
class Transfer:
    """Hand the caller to a queue (`operator`); the driver's platform takes it from there."""

    target: str = "operator"


@dataclass(frozen=True)
class Hangup:
    """End the call."""


Instruction = Play | ReadKey | ReadDigits | Record | SetVariable | Transfer | Hangup


# ---- events: driver → engine -------------------------------------------------------


@dataclass(frozen=True)
class Started:
    """The call has been answered and the flow may begin."""


@dataclass(frozen=True)
class Done:
    """A Play or SetVariable finished without a key: a Play's prompts played to their end.

    `played_ms`: how long they played, when the driver knows (not compared: two Done are equal).
    """

    played_ms: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Key:
    """One key pressed (ReadKey, or a Play interrupted by a key).

    `played_ms`: how long the prompts had played when the key came, summed over the
    instruction's prompts (all of them when it came after them); 0 when the driver cannot
    tell, which counts as skipped at once. Not compared: two Key are equal by their key.
    """

    key: str
    played_ms: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Digits:
    """Digits typed for ReadDigits (without the closing `#`); empty when nothing was typed."""

    digits: str
    timed_out: bool = False


@dataclass(frozen=True)
class Timeout:
    """No key came in time for ReadKey."""


@dataclass(frozen=True)
class Recorded:
    """A recording made for Record: where the audio file is, and how recording ended."""

    path: str
    ended_by: Literal["dtmf", "timeout", "hangup"]
    duration_ms: int = 0


@dataclass(frozen=True)
class HungUp:
    """The caller hung up (between commands, or during one that produced nothing)."""


Event = Started | Done | Key | Digits | Timeout | Recorded | HungUp


@dataclass
class ActionRequest:
    """An engine request for business work (database, storage) done outside the engine."""

    name: str
    args: dict[str, str] = field(default_factory=dict)
