"""Each call-flow instruction becomes exactly the AGI commands ASTERISK.md calls for.

The channel talks to the fake Asterisk in memory (`loopback`) or over a real socket
pair; the caller's script says what the caller does during each media command.
"""
from __future__ import annotations

import array
import math
import wave
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from ivr.config import Settings
from ivr.drivers.agi.protocol import AgiChannel, AgiRecordError
from ivr.drivers.agi.telephone import AgiTelephone
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
from tests.fakes import (
    DEAD_CHANNEL,
    Action,
    FakeAsteriskCall,
    hangup,
    loopback,
    press,
    silence,
    socketpair_channel,
    speak,
    type_digits,
    wait,
)

ALL_DIGITS = f'"{DIGITS}"'
Connect = Callable[[FakeAsteriskCall], AbstractContextManager[AgiChannel]]


@contextmanager
def _loopback_channel(call: FakeAsteriskCall) -> Iterator[AgiChannel]:
    yield AgiChannel(*loopback(call), install_sighup=False)


@pytest.fixture(params=["loopback", "socketpair"])
def connect(request: pytest.FixtureRequest) -> Connect:
    """Open a channel to a fake call, in memory or over a real socket pair."""
    return _loopback_channel if request.param == "loopback" else socketpair_channel


def run(
    settings: Settings,
    script: list[Action],
    *instructions: Instruction,
    call_id: str = "1747000000.7",
) -> tuple[list[Event], FakeAsteriskCall]:
    """Perform instructions against a fake call in memory; the events and the call."""
    call = FakeAsteriskCall(script, incoming_root=settings.data_dir)
    with _loopback_channel(call) as channel:
        telephone = AgiTelephone(channel, settings, call_id)
        events = [telephone.perform(i) for i in instructions]
    return events, call


def rms_dbfs(path: str) -> float:
    with wave.open(path, "rb") as w:
        samples = array.array("h", w.readframes(w.getnframes()))
    mean_square = sum(s * s for s in samples) / max(len(samples), 1)
    return 20 * math.log10(math.sqrt(mean_square) / 32768) if mean_square else -120.0


# ---- Play ----------------------------------------------------------------------------


def test_play_reports_milliseconds_played_from_endpos_summed_over_prompts(settings: Settings) -> None:
    # The fake plays each prompt for 1 s (8,000 samples) and is cut halfway by a key.
    call = FakeAsteriskCall([wait(), wait()], incoming_root=settings.data_dir)
    with _loopback_channel(call) as channel:
        done = AgiTelephone(channel, settings, "c1").perform(Play(("welcome_1888", "intro_1888")))
    assert isinstance(done, Done) and done.played_ms == 2000
    call = FakeAsteriskCall([wait(), press("#")], incoming_root=settings.data_dir,
                            prompt_seconds=lambda name: 12.0 if name == "reply" else 1.0)
    with _loopback_channel(call) as channel:
        key = AgiTelephone(channel, settings, "c2").perform(Play(("reply_follows", "reply"), interrupt=DIGITS))
    assert key == Key("#") and isinstance(key, Key) and key.played_ms == 1000 + 6000


def test_read_key_reports_milliseconds_played_before_the_key(settings: Settings) -> None:
    events, _ = run(settings, [press("2")], ReadKey(("satisfaction_question",), keys="12"))
    assert events == [Key("2")] and isinstance(events[0], Key) and events[0].played_ms == 500


def test_play_missing_prompt_counts_no_time(settings: Settings) -> None:
    call = FakeAsteriskCall([wait()], incoming_root=settings.data_dir, sounds_dir=settings.data_dir)
    with _loopback_channel(call) as channel:
        done = AgiTelephone(channel, settings, "c3").perform(Play(("no_such_prompt",)))
    assert isinstance(done, Done) and done.played_ms == 0 and call.missing == ["no_such_prompt"]


def test_play_prompts_played_out_gives_done(settings: Settings) -> None:
    events, call = run(settings, [wait(), wait()], Play(("welcome_1888", "intro_1888")))
    assert events == [Done()]
    assert call.commands == ['STREAM FILE welcome_1888 "" 0', 'STREAM FILE intro_1888 "" 0']
    assert call.heard == ["welcome_1888", "intro_1888"]


def test_play_interrupt_key_stops_playback_and_is_returned(settings: Settings) -> None:
    events, call = run(settings, [press("1")], Play(("welcome_1888", "intro_1888"), interrupt="1"))
    assert events == [Key("1")]
    assert call.commands == ['STREAM FILE welcome_1888 "1" 0']


def test_play_key_not_accepted_is_lost(settings: Settings) -> None:
    events, call = run(settings, [press("5")], Play(("welcome_1888",)))
    assert events == [Done()]
    assert call.lost_keys == "5"


def test_play_prompt_prefix_is_prepended(settings: Settings) -> None:
    local = settings.with_(agi_prompt_prefix="/usr/share/ivr/fa/")
    events, call = run(local, [wait()], Play(("welcome_1888",)))
    assert events == [Done()]
    assert call.commands == ['STREAM FILE /usr/share/ivr/fa/welcome_1888 "" 0']


def test_play_absolute_prompt_path_gets_no_prefix(settings: Settings) -> None:
    local = settings.with_(agi_prompt_prefix="/usr/share/ivr/fa/")
    events, call = run(local, [wait()], Play(("/var/ivr/recordings/reply-12",)))
    assert events == [Done()]
    assert call.commands == ['STREAM FILE /var/ivr/recordings/reply-12 "" 0']


def test_play_missing_prompt_is_skipped(settings: Settings, tmp_path: Path) -> None:
    sounds = tmp_path / "sounds"
    (sounds / "fa").mkdir(parents=True)
    (sounds / "fa" / "intro_1888.wav").write_bytes(b"")
    call = FakeAsteriskCall([wait()], sounds_dir=sounds)
    with _loopback_channel(call) as channel:
        event = AgiTelephone(channel, settings, "c").perform(Play(("missing_prompt", "intro_1888")))
    assert event == Done()
    assert call.missing == ["missing_prompt"]
    assert call.heard == ["intro_1888"]


# ---- ReadKey -------------------------------------------------------------------------


def test_read_key_pressed_during_prompt_needs_no_wait_command(settings: Settings, connect: Connect) -> None:
    call = FakeAsteriskCall([press("4")])
    with connect(call) as channel:
        event = AgiTelephone(channel, settings, "c").perform(ReadKey(("menu_1888",), "1234"))
    assert event == Key("4")
    assert call.commands == ['STREAM FILE menu_1888 "1234" 0']


def test_read_key_pressed_after_prompt_goes_straight_to_wait_for_digit(
    settings: Settings, connect: Connect
) -> None:
    call = FakeAsteriskCall([wait(), press("2")])
    with connect(call) as channel:
        event = AgiTelephone(channel, settings, "c").perform(ReadKey(("menu_1888",), "1234", 4000))
    assert event == Key("2")
    assert call.commands == ['STREAM FILE menu_1888 "1234" 0', "WAIT FOR DIGIT 4000"]


def test_read_key_unexpected_key_after_prompt_is_returned(settings: Settings) -> None:
    events, _ = run(settings, [wait(), press("9")], ReadKey(("menu_1888",), "1234"))
    assert events == [Key("9")]


def test_read_key_unexpected_key_during_prompt_is_lost_then_times_out(settings: Settings) -> None:
    events, call = run(settings, [press("9"), wait()], ReadKey(("menu_1888",), "1234"))
    assert events == [Timeout()]
    assert call.lost_keys == "9"


def test_read_key_nothing_pressed_times_out(settings: Settings) -> None:
    events, call = run(settings, [wait(), wait()], ReadKey(("menu_1888", "menu_more"), "12"))
    assert events == [Timeout()]
    assert call.commands == [
        'STREAM FILE menu_1888 "12" 0',
        'STREAM FILE menu_more "12" 0',
        "WAIT FOR DIGIT 5000",
    ]


# ---- ReadDigits ----------------------------------------------------------------------


def test_read_digits_typed_during_prompt_continue_with_get_data(settings: Settings, connect: Connect) -> None:
    call = FakeAsteriskCall([type_digits("123456789")])
    with connect(call) as channel:
        event = AgiTelephone(channel, settings, "c").perform(
            ReadDigits(("enter_code", "then_hash"), max_digits=9)
        )
    assert event == Digits("123456789")
    assert call.commands == [f"STREAM FILE enter_code {ALL_DIGITS} 0", "GET DATA silence_short 6000 8"]


def test_read_digits_typed_after_prompts_use_get_data_on_last_prompt(settings: Settings) -> None:
    events, call = run(settings, [wait(), type_digits("42#")], ReadDigits(("enter_code", "then_hash"), 9))
    assert events == [Digits("42")]
    assert call.commands == [f"STREAM FILE enter_code {ALL_DIGITS} 0", "GET DATA then_hash 6000 9"]


def test_read_digits_hash_first_gives_empty_digits(settings: Settings) -> None:
    events, call = run(settings, [press("#")], ReadDigits(("enter_code", "then_hash"), 9))
    assert events == [Digits("")]
    assert len(call.commands) == 1


def test_read_digits_one_digit_wanted_needs_no_get_data(settings: Settings) -> None:
    events, call = run(settings, [press("3")], ReadDigits(("enter_district", "then_hash"), 1))
    assert events == [Digits("3")]
    assert len(call.commands) == 1


def test_read_digits_partial_input_times_out(settings: Settings) -> None:
    events, _ = run(settings, [wait(), press("4"), wait()], ReadDigits(("enter_code", "then_hash"), 9))
    assert events == [Digits("4", timed_out=True)]


def test_read_digits_interrupted_then_timeout_keeps_first_digit(settings: Settings) -> None:
    events, _ = run(settings, [type_digits("12"), wait()], ReadDigits(("enter_code", "then_hash"), 9))
    assert events == [Digits("12", timed_out=True)]


def test_read_digits_nothing_typed_times_out_empty(settings: Settings) -> None:
    events, call = run(settings, [wait()], ReadDigits(("enter_code",), 9, timeout_ms=3000))
    assert events == [Digits("", timed_out=True)]
    assert call.commands == ["GET DATA enter_code 3000 9"]


# ---- Record --------------------------------------------------------------------------


def test_record_ended_by_hash_makes_a_real_wav(settings: Settings, connect: Connect) -> None:
    assert not settings.incoming_dir.exists()
    call = FakeAsteriskCall([speak(3), press("#")], incoming_root=settings.data_dir)
    with connect(call) as channel:
        event = AgiTelephone(channel, settings, "1747000000.7").perform(Record(("record_after_beep",)))
    base = settings.incoming_dir / "1747000000.7-1"
    assert call.commands == [
        'STREAM FILE record_after_beep "" 0',
        'STREAM FILE beep "" 0',
        f'RECORD FILE {base} wav "#" 120000 0 s=5',
    ]
    assert call.asterisk_beeps == 0
    # Asterisk cuts the last 200 ms (the key's tone) out of the recording.
    assert event == Recorded(f"{base}.wav", "dtmf", 2800)
    with wave.open(f"{base}.wav", "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()) == (8000, 1, 2, 22400)
    assert rms_dbfs(f"{base}.wav") > -35


def test_record_hang_up_keeps_the_partial_file(settings: Settings) -> None:
    events, call = run(
        settings,
        [speak(4), hangup()],
        Record(("record_after_beep",)),
        SetVariable("IVR_RESULT", "recorded"),
        Play(("thanks",)),
    )
    path = str(settings.incoming_dir / "1747000000.7-1.wav")
    assert events == [Recorded(path, "hangup", 4000), Done(), HungUp()]
    assert Path(path).is_file()
    assert call.variables == {"IVR_RESULT": "recorded"}
    assert call.transcript[-1] == ('STREAM FILE thanks "" 0', [DEAD_CHANNEL])
    assert call.transcript[-2][1][0] == "HANGUP"


def test_record_silent_caller_gives_a_short_quiet_file(settings: Settings) -> None:
    events, _ = run(settings, [silence()], Record(("record_after_beep",), silence_seconds=3))
    path = str(settings.incoming_dir / "1747000000.7-1.wav")
    assert events == [Recorded(path, "timeout", 1000)]
    assert rms_dbfs(path) < -60


def test_record_max_seconds_cuts_a_long_message(settings: Settings) -> None:
    events, call = run(settings, [speak(8)], Record(("record_after_beep",), max_seconds=5))
    assert events == [Recorded(str(settings.incoming_dir / "1747000000.7-1.wav"), "timeout", 5000)]
    assert call.commands[-1].endswith('wav "#" 5000 0 s=5')


def test_record_each_recording_gets_its_own_file(settings: Settings) -> None:
    events, _ = run(
        settings,
        [speak(1), press("#"), speak(2), press("#")],
        Record(("first",)),
        Record(("second",)),
        call_id="../etc/x",
    )
    assert [e.path for e in events if isinstance(e, Recorded)] == [
        str(settings.incoming_dir / ".._etc_x-1.wav"),
        str(settings.incoming_dir / ".._etc_x-2.wav"),
    ]


def test_record_keys_during_prompt_are_lost(settings: Settings) -> None:
    events, call = run(settings, [press("1"), wait(), speak(1), press("#")], Record(("record_after_beep",)))
    assert isinstance(events[0], Recorded) and events[0].ended_by == "dtmf"
    assert call.lost_keys == "1"


def test_record_hang_up_during_prompt_gives_hung_up_and_no_record_command(settings: Settings) -> None:
    events, call = run(settings, [hangup()], Record(("record_after_beep",)))
    assert events == [HungUp()]
    assert not any(c.startswith("RECORD FILE") for c in call.commands)


def test_record_unwritable_directory_raises(settings: Settings, tmp_path: Path) -> None:
    call = FakeAsteriskCall([speak(1)], incoming_root=tmp_path / "asterisk_only")
    with _loopback_channel(call) as channel:
        with pytest.raises(AgiRecordError):
            AgiTelephone(channel, settings, "c").perform(Record(("record_after_beep",)))


# ---- SetVariable, Transfer, Hangup ----------------------------------------------------


def test_set_variable_sends_quoted_name_and_value(settings: Settings) -> None:
    events, call = run(settings, [], SetVariable("IVR_KIND", 'complaint "urgent"'))
    assert events == [Done()]
    assert call.commands == ['SET VARIABLE "IVR_KIND" "complaint \\"urgent\\""']
    assert call.variables == {"IVR_KIND": 'complaint "urgent"'}


def test_transfer_sets_ivr_next(settings: Settings) -> None:
    events, call = run(settings, [], Transfer("operator"))
    assert events == [Done()]
    assert call.commands == ['SET VARIABLE "IVR_NEXT" "operator"']


def test_hangup_sends_hangup_and_later_variables_still_work(settings: Settings) -> None:
    events, call = run(settings, [], Hangup(), SetVariable("IVR_RESULT", "done"))
    assert events == [Done(), Done()]
    assert call.commands == ["HANGUP", 'SET VARIABLE "IVR_RESULT" "done"']
    assert call.hung_up_by == "app"
    assert call.transcript[1][1] == ["HANGUP", "200 result=1"]


# ---- hang-ups everywhere -------------------------------------------------------------

JOURNEY: tuple[Instruction, ...] = (
    Play(("welcome_1888",)),
    ReadKey(("menu_1888",), "1234"),
    ReadDigits(("enter_code", "then_hash"), 9),
    SetVariable("IVR_STEP", "code"),
    Record(("record_after_beep",)),
    Play(("thanks", "goodbye")),
    Transfer("operator"),
    Hangup(),
)
JOURNEY_SCRIPT = [wait(), wait(), press("2"), type_digits("12345678#"), speak(2), press("#"), wait(), wait()]


def test_journey_without_hang_up_completes(settings: Settings) -> None:
    events, call = run(settings, list(JOURNEY_SCRIPT), *JOURNEY)
    assert events == [
        Done(),
        Key("2"),
        Digits("12345678"),
        Done(),
        Recorded(str(settings.incoming_dir / "1747000000.7-1.wav"), "dtmf", 1800),
        Done(),
        Done(),
        Done(),
    ]
    assert call.hung_up_by == "app"


def _kind(event: Event) -> str:
    return f"Recorded({event.ended_by})" if isinstance(event, Recorded) else type(event).__name__


# What the engine hears when the caller hangs up during the n-th media command of the
# journey. A prompt cut off by the hang-up answers `result=-1 endpos=N` (N > 0; a missing
# file gives endpos=0): the hang-up is known at once, so a cut-off prompt never counts as
# played to its end. Prompts before a recording are played with the plain `stream_file`.
HANG_UP_EXPECTED = [
    ["HungUp"],  # during welcome: cut off
    ["Done", "HungUp"],  # during the menu prompt: WAIT FOR DIGIT gets HANGUP + 511
    ["Done", "HungUp"],  # while waiting for the key: result=-1 says it
    ["Done", "Key", "HungUp"],  # while typing the code: GET DATA result=-1
    ["Done", "Key", "Digits", "Done", "HungUp"],  # during the record prompt: beep gets 511
    ["Done", "Key", "Digits", "Done", "Recorded(hangup)", "HungUp"],  # mid-message: file kept
    ["Done", "Key", "Digits", "Done", "Recorded(dtmf)", "HungUp"],  # during thanks
    ["Done", "Key", "Digits", "Done", "Recorded(dtmf)", "HungUp"],  # during goodbye: cut off
    ["Done", "Key", "Digits", "Done", "Recorded(dtmf)", "Done", "Done", "Done"],  # never: app hangs up
]


@pytest.mark.parametrize("hang_up_at", range(len(JOURNEY_SCRIPT) + 1))
def test_journey_hang_up_at_any_point_ends_in_hung_up(settings: Settings, hang_up_at: int) -> None:
    call = FakeAsteriskCall(JOURNEY_SCRIPT[:hang_up_at] + [hangup()], incoming_root=settings.data_dir)
    events: list[Event] = []
    with _loopback_channel(call) as channel:
        telephone = AgiTelephone(channel, settings, "c")
        for instruction in JOURNEY:
            events.append(telephone.perform(instruction))
            if isinstance(events[-1], HungUp):
                break
    assert [_kind(e) for e in events] == HANG_UP_EXPECTED[hang_up_at]
    # Never more than one media command is sent to a channel already known to be dead.
    assert sum(DEAD_CHANNEL in replies for _, replies in call.transcript) <= 1
    for event in events:
        if isinstance(event, Recorded):
            assert Path(event.path).is_file()
