"""Carry out the call-flow engine's instructions on an Asterisk channel, one AGI command at a time.

Asterisk throws away a key pressed while the application is between two commands, so
every prompt that expects an answer is followed *immediately* by its input command
(STREAM FILE with the valid keys as escape digits, then WAIT FOR DIGIT; or GET DATA):
nothing else happens between them, not even logging.
"""
from __future__ import annotations

import logging
import os
import re
import wave
from pathlib import Path

from ivr.config import Settings
from ivr.drivers.agi.protocol import AgiChannel, CallerHungUp
from ivr.flow.steps import (
    DIGITS,
    Digits,
    Done,
    Event,
    Hangup,
    HungUp,
    Instruction,
    Key,
    Play,
    ReadDigits,
    ReadKey,
    Record,
    Recorded,
    SetVariable,
    Timeout,
    Transfer,
)
from ivr.vocabulary import NEXT_VARIABLE

log = logging.getLogger(__name__)

BEEP_PROMPT = "beep"  # our own: Asterisk's `beep` is not found when the language is fa
FILLER_PROMPT = "silence_short"  # 200 ms of silence, for GET DATA after a digit already typed
RECORD_FORMAT = "wav"  # lower-case: 8 kHz 16-bit PCM, which is what we store
SAMPLES_PER_MS = 8
_UNSAFE_FILENAME_RE = re.compile(r"[^\w.-]")


class AgiTelephone:
    """Translate `ivr.flow.steps` instructions into AGI commands on one channel."""

    def __init__(self, channel: AgiChannel, settings: Settings, call_id: str) -> None:
        self._channel = channel
        self._prefix = settings.agi_prompt_prefix
        self._incoming = Path(settings.incoming_dir)
        self._call_id = call_id
        self._file_stem = _UNSAFE_FILENAME_RE.sub("_", call_id) or "call"
        self._recordings = 0

    def perform(self, instruction: Instruction) -> Event:
        """Carry out one instruction and say what the caller did."""
        try:
            event = self._perform(instruction)
        except CallerHungUp:
            event = HungUp()
        log.info("call %s: %s -> %s", self._call_id, instruction, event)
        return event

    def _prompt(self, name: str) -> str:
        # An absolute path (a stored recording played back) is already complete.
        return name if name.startswith("/") else self._prefix + name

    def _perform(self, instruction: Instruction) -> Event:
        ch = self._channel
        match instruction:
            case Play(prompts=prompts, interrupt=interrupt):
                key, played_ms = self._play(prompts, interrupt)
                return Key(key, played_ms) if key else Done(played_ms)
            case ReadKey(prompts=prompts, keys=keys, timeout_ms=timeout_ms):
                key, played_ms = self._play(prompts, keys)
                if key:
                    return Key(key, played_ms)
                key = ch.wait_for_digit(timeout_ms)
                return Key(key, played_ms) if key else Timeout()
            case ReadDigits(prompts=prompts, max_digits=max_digits, timeout_ms=timeout_ms):
                return self._read_digits(prompts, max_digits, timeout_ms)
            case Record():
                return self._record(instruction)
            case SetVariable(name=name, value=value):
                ch.set_variable(name, value)
                return Done()
            case Transfer(target=target):
                ch.set_variable(NEXT_VARIABLE, target)
                return Done()
            case Hangup():
                ch.hangup()
                return Done()
        raise TypeError(f"not an instruction: {instruction!r}")

    def _play(self, prompts: tuple[str, ...], escape: str) -> tuple[str, int]:
        """Stream prompts until a key in `escape`: (the key or '', milliseconds played in all).

        STREAM FILE's `endpos` is the sample each prompt reached (8 kHz: 8 per millisecond).
        """
        samples = 0
        for name in prompts:
            key, endpos = self._channel.stream_file_to(self._prompt(name), escape)
            samples += endpos
            if key:
                return key, samples // SAMPLES_PER_MS
        return "", samples // SAMPLES_PER_MS

    def _read_digits(self, prompts: tuple[str, ...], max_digits: int, timeout_ms: int) -> Event:
        ch = self._channel
        last = prompts[-1] if prompts else FILLER_PROMPT
        for name in prompts[:-1]:
            first = ch.stream_file(self._prompt(name), DIGITS)
            if not first:
                continue
            if first == "#":
                return Digits("")
            if max_digits <= 1:
                return Digits(first)
            rest, timed_out = ch.get_data(self._prompt(FILLER_PROMPT), timeout_ms, max_digits - 1)
            return Digits(first + rest, timed_out=timed_out)
        digits, timed_out = ch.get_data(self._prompt(last), timeout_ms, max_digits)
        return Digits(digits, timed_out=timed_out)

    def _record(self, instruction: Record) -> Event:
        ch = self._channel
        self._incoming.mkdir(parents=True, exist_ok=True)
        self._recordings += 1
        base = str(self._incoming / f"{self._file_stem}-{self._recordings}")
        path = f"{base}.{RECORD_FORMAT}"
        for name in instruction.prompts:
            ch.stream_file(self._prompt(name), "")
        ch.stream_file(self._prompt(BEEP_PROMPT), "")
        result = ch.record_file(
            base, RECORD_FORMAT, "#", instruction.max_seconds * 1000, instruction.silence_seconds
        )
        if result.ended_by == "hangup" and not os.path.exists(path):
            return HungUp()
        if result.endpos is not None:
            duration_ms = result.endpos // SAMPLES_PER_MS
        else:
            duration_ms = _wav_duration_ms(path)
        return Recorded(path, result.ended_by, duration_ms)


def _wav_duration_ms(path: str) -> int:
    """Length of a WAV file in milliseconds (0 if it cannot be read)."""
    try:
        with wave.open(path, "rb") as w:
            return w.getnframes() * 1000 // (w.getframerate() or 1)
    except (OSError, EOFError, wave.Error):
        return 0
