"""The AGI protocol adapter against every reply form Asterisk 22 sends.

Each channel test replays a recorded exchange: Asterisk's side (greeting and reply
lines, as observed and listed in shared/ASTERISK.md) is an in-memory stream, and the
test checks both what the channel returns and the exact command lines it wrote.
"""
from __future__ import annotations

import io
import logging
import os
import signal
import threading
import wave
from pathlib import Path

import pytest
from asterisk.agi import AGIHangup, AGIInvalidCommand, AGIUsageError
from hypothesis import given
from hypothesis import strategies as st

from ivr.drivers.agi.protocol import (
    AgiChannel,
    AgiConnectionLost,
    AgiProtocolError,
    AgiRecordError,
    CallerHungUp,
    Quoted,
    RecordResult,
    Reply,
    format_argument,
    parse_reply,
)
from tests.fakes import FakeAsteriskCall, hangup, press, speak, split_agi_args, type_digits, wait

GREETING = (
    "agi_network: yes\n"
    "agi_network_script: 1888\n"
    "agi_request: agi://127.0.0.1:4573/1888\n"
    "agi_channel: PJSIP/trunk-00000007\n"
    "agi_language: fa\n"
    "agi_type: PJSIP\n"
    "agi_uniqueid: 1747000123.45\n"
    "agi_version: 22.10.1\n"
    "agi_callerid: 09121234567\n"
    "agi_calleridname: unknown\n"
    "agi_callingpres: 0\n"
    "agi_callingani2: 0\n"
    "agi_callington: 0\n"
    "agi_callingtns: 0\n"
    "agi_dnid: unknown\n"
    "agi_rdnis: unknown\n"
    "agi_context: ivr-1888\n"
    "agi_extension: 1888\n"
    "agi_priority: 2\n"
    "agi_enhanced: 0.0\n"
    "agi_accountcode: \n"
    "agi_threadid: 140245810009792\n"
    "agi_arg_1: 1888\n"
    "\n"
)
DEAD = "511 Command Not Permitted on a dead channel or intercept routine"
USAGE_BLOCK = (
    "520-Invalid command syntax.  Proper usage follows:",
    "Usage: SET VARIABLE <variablename> <value>",
    " Sets a variable to the current channel.",
    "520 End of proper usage.",
)


def replay(*asterisk_lines: str, greeting: str = GREETING) -> tuple[AgiChannel, io.StringIO]:
    """A channel reading a recorded Asterisk side, and the stream its commands go to."""
    stdin = io.StringIO(greeting + "".join(f"{line}\n" for line in asterisk_lines))
    stdout = io.StringIO()
    return AgiChannel(stdin, stdout, install_sighup=False), stdout


def sent(stdout: io.StringIO) -> list[str]:
    return stdout.getvalue().splitlines()


# ---- parse_reply -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("200 result=0 endpos=8000", Reply(200, "0", None, 8000)),
        ("200 result=52 endpos=4000", Reply(200, "52", None, 4000)),
        ("200 result=-1 endpos=0", Reply(200, "-1", None, 0)),
        ("200 result=123456", Reply(200, "123456")),
        ("200 result= (timeout)", Reply(200, "", "timeout")),
        ("200 result=12 (timeout)", Reply(200, "12", "timeout")),
        ("200 result=35 (dtmf) endpos=23040", Reply(200, "35", "dtmf", 23040)),
        ("200 result=12666 (timeout) endpos=40000", Reply(200, "12666", "timeout", 40000)),
        ("200 result=-1 (hangup) endpos=16000", Reply(200, "-1", "hangup", 16000)),
        ("200 result=-1 (writefile)", Reply(200, "-1", "writefile")),
        ("200 result=1 (a value (with) parens)", Reply(200, "1", "a value (with) parens")),
        ("200 result=1\r", Reply(200, "1")),
    ],
)
def test_parse_reply_200_forms_give_result_data_and_endpos(line: str, expected: Reply) -> None:
    reply = parse_reply(line)
    assert (reply.code, reply.result, reply.data, reply.endpos) == (
        expected.code,
        expected.result,
        expected.data,
        expected.endpos,
    )


@pytest.mark.parametrize(
    ("line", "code", "continues"),
    [
        ("510 Invalid or unknown command", 510, False),
        (DEAD, 511, False),
        ("520-Invalid command syntax.  Proper usage follows:", 520, True),
        ("520 End of proper usage.", 520, False),
        ("520 Invalid command syntax.  Proper usage not available.", 520, False),
    ],
)
def test_parse_reply_error_codes_keep_code_and_continuation(line: str, code: int, continues: bool) -> None:
    reply = parse_reply(line)
    assert (reply.code, reply.continues) == (code, continues)
    assert not reply.is_hangup_notice


def test_parse_reply_hangup_line_is_a_notice() -> None:
    assert parse_reply("HANGUP").is_hangup_notice
    assert parse_reply("HANGUP\r\n").is_hangup_notice


@pytest.mark.parametrize(
    "line",
    ["", "hello", "200", "200 foo=1", "200 result=1 junk", "2000 result=1", "20 result=0", "HANGUPX"],
)
def test_parse_reply_garbled_line_raises_protocol_error(line: str) -> None:
    with pytest.raises(AgiProtocolError):
        parse_reply(line)


def test_parse_reply_indexing_gives_pyst2_pairs() -> None:
    reply = parse_reply("200 result=12 (timeout) endpos=80")
    assert reply["result"] == ("12", "timeout")
    assert reply["endpos"] == ("80", "")


# ---- arguments -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Quoted(""), '""'),
        (Quoted("0123456789*#"), '"0123456789*#"'),
        ("welcome_1888", "welcome_1888"),
        ("/var/lib/ivr/in coming/x", '"/var/lib/ivr/in coming/x"'),
        (Quoted('say "hi"'), '"say \\"hi\\""'),
        (Quoted("back\\slash"), '"back\\\\slash"'),
        (5000, "5000"),
        ("", None),
    ],
)
def test_format_argument_quotes_and_escapes_as_asterisk_parses(value: object, expected: str | None) -> None:
    assert format_argument(value) == expected


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\0b"])
def test_format_argument_newline_or_nul_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        format_argument(Quoted(bad))


@given(st.text(alphabet=st.characters(blacklist_characters="\r\n\0", blacklist_categories=("Cs",))))
def test_format_argument_any_value_reads_back_identically_in_asterisk(value: str) -> None:
    line = f"SET VARIABLE {format_argument(Quoted('V'))} {format_argument(Quoted(value))}"
    assert split_agi_args(line) == ["SET", "VARIABLE", "V", value]


# ---- greeting ------------------------------------------------------------------------


def test_channel_greeting_is_read_into_env() -> None:
    channel, stdout = replay()
    assert channel.env["agi_request"] == "agi://127.0.0.1:4573/1888"
    assert channel.env["agi_uniqueid"] == "1747000123.45"
    assert channel.env["agi_arg_1"] == "1888"
    assert channel.env["agi_accountcode"] == ""
    assert channel.uniqueid == "1747000123.45"
    assert stdout.getvalue() == ""


def test_channel_greeting_garbled_lines_are_skipped() -> None:
    greeting = "agi_network: yes\nthis is not a header\n\x00\x01\x02\n: no key\nagi_uniqueid: 17.1\n\n"
    channel, _ = replay(greeting=greeting)
    assert channel.env == {"agi_network": "yes", "agi_uniqueid": "17.1"}


def test_channel_greeting_eof_before_blank_line_raises() -> None:
    with pytest.raises(AgiProtocolError):
        replay(greeting="agi_network: yes\nagi_uniqueid: 17.1\n")


def test_channel_greeting_without_agi_variables_raises() -> None:
    with pytest.raises(AgiProtocolError):
        replay(greeting="GET / HTTP/1.1\r\nHost: example\r\n\r\n")


def test_channel_construction_writes_nothing_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    replay()
    assert capsys.readouterr().err == ""


def test_channel_off_main_thread_does_not_touch_sighup() -> None:
    before = signal.getsignal(signal.SIGHUP)
    errors: list[BaseException] = []

    def build() -> None:
        try:
            AgiChannel(io.StringIO(GREETING), io.StringIO())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=build)
    thread.start()
    thread.join()
    assert errors == []
    assert signal.getsignal(signal.SIGHUP) is before


def test_channel_on_main_thread_sighup_marks_hung_up() -> None:
    before = signal.getsignal(signal.SIGHUP)
    try:
        channel = AgiChannel(io.StringIO(GREETING + "200 result=1\n"), io.StringIO())
        os.kill(os.getpid(), signal.SIGHUP)
        assert channel.hung_up
        channel.set_variable("SAVED", "yes")  # still allowed after the hang-up
    finally:
        signal.signal(signal.SIGHUP, before)


# ---- media commands ------------------------------------------------------------------


def test_stream_file_played_out_returns_empty_and_sends_exact_command() -> None:
    channel, stdout = replay("200 result=0 endpos=16000")
    assert channel.stream_file("welcome_1888", "0123456789*#") == ""
    assert sent(stdout) == ['STREAM FILE welcome_1888 "0123456789*#" 0']


def test_stream_file_interrupted_returns_the_key() -> None:
    channel, stdout = replay("200 result=52 endpos=4000")
    assert channel.stream_file("menu_1888", "1234") == "4"
    assert sent(stdout) == ['STREAM FILE menu_1888 "1234" 0']


def test_stream_file_missing_prompt_returns_empty_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    channel, _ = replay("200 result=-1 endpos=0")
    with caplog.at_level(logging.WARNING):
        assert channel.stream_file("no_such_prompt", "") == ""
    assert "no_such_prompt" in caplog.text
    assert not channel.hung_up


def test_stream_file_minus_one_then_hangup_line_raises_on_next_command() -> None:
    channel, stdout = replay("200 result=-1 endpos=3000", "HANGUP", DEAD)
    assert channel.stream_file("menu_1888", "12") == ""
    with pytest.raises(CallerHungUp):
        channel.wait_for_digit(5000)
    assert channel.hung_up
    assert sent(stdout) == ['STREAM FILE menu_1888 "12" 0', "WAIT FOR DIGIT 5000"]


def test_wait_for_digit_key_timeout_and_hangup() -> None:
    channel, _ = replay("200 result=52", "200 result=0", "200 result=-1")
    assert channel.wait_for_digit(5000) == "4"
    assert channel.wait_for_digit(5000) == ""
    with pytest.raises(CallerHungUp):
        channel.wait_for_digit(5000)
    assert channel.hung_up


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("200 result=123456", ("123456", False)),
        ("200 result=", ("", False)),
        ("200 result= (timeout)", ("", True)),
        ("200 result=12 (timeout)", ("12", True)),
    ],
)
def test_get_data_returns_digits_and_whether_it_timed_out(line: str, expected: tuple[str, bool]) -> None:
    channel, stdout = replay(line)
    assert channel.get_data("enter_code", 6000, 9) == expected
    assert sent(stdout) == ["GET DATA enter_code 6000 9"]


def test_get_data_minus_one_is_a_hang_up() -> None:
    channel, _ = replay("200 result=-1")
    with pytest.raises(CallerHungUp):
        channel.get_data("enter_code", 6000, 9)
    assert channel.hung_up


def test_record_file_sends_exact_command_without_beep() -> None:
    channel, stdout = replay("200 result=35 (dtmf) endpos=23040")
    result = channel.record_file("/var/ivr/incoming/c1-1", "wav", "#", 120000, 5)
    assert result == RecordResult("dtmf", "#", 23040)
    assert sent(stdout) == ['RECORD FILE /var/ivr/incoming/c1-1 wav "#" 120000 0 s=5']


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("200 result=12666 (timeout) endpos=40000", RecordResult("timeout", "", 40000)),
        ("200 result=0 (timeout) endpos=960000", RecordResult("timeout", "", 960000)),
        ("200 result=-1 (hangup) endpos=16000", RecordResult("hangup", "", 16000)),
    ],
)
def test_record_file_timeout_and_hangup_are_results(line: str, expected: RecordResult) -> None:
    channel, _ = replay(line)
    assert channel.record_file("/tmp/x", "wav", "#", 120000, 5) == expected
    assert channel.hung_up == (expected.ended_by == "hangup")


def test_record_file_hangup_line_then_eof_returns_hangup_result() -> None:
    channel, _ = replay("HANGUP")
    assert channel.record_file("/tmp/x", "wav", "#", 120000, 5) == RecordResult("hangup", "", None)
    assert channel.hung_up


def test_record_file_on_dead_channel_raises_caller_hung_up() -> None:
    channel, _ = replay("HANGUP", DEAD)
    with pytest.raises(CallerHungUp):
        channel.record_file("/tmp/x", "wav", "#", 120000, 5)


def test_record_file_writefile_failure_raises_record_error() -> None:
    channel, _ = replay("200 result=-1 (writefile)")
    with pytest.raises(AgiRecordError, match="writable"):
        channel.record_file("/nonexistent/x", "wav", "#", 120000, 5)


# ---- other replies -------------------------------------------------------------------


def test_hangup_line_before_reply_marks_hung_up_and_reads_the_reply() -> None:
    channel, _ = replay("HANGUP", "200 result=1")
    channel.set_variable("IVR_RESULT", "saved")
    assert channel.hung_up


def test_set_variable_and_verbose_after_hang_up_still_work() -> None:
    channel, stdout = replay("200 result=-1", "HANGUP", "200 result=1", "200 result=1")
    with pytest.raises(CallerHungUp):
        channel.wait_for_digit(1000)
    channel.set_variable("IVR_RESULT", "dropped")
    channel.verbose("call ended", 3)
    assert sent(stdout)[1:] == ['SET VARIABLE "IVR_RESULT" "dropped"', 'VERBOSE "call ended" 3']


def test_set_variable_escapes_quotes_and_backslashes() -> None:
    channel, stdout = replay("200 result=1")
    channel.set_variable("NOTE", 'he said "hi" \\o/')
    assert sent(stdout) == ['SET VARIABLE "NOTE" "he said \\"hi\\" \\\\o/"']
    assert split_agi_args(sent(stdout)[0])[3] == 'he said "hi" \\o/'


def test_set_variable_with_newline_is_refused_before_sending() -> None:
    channel, stdout = replay("200 result=1")
    with pytest.raises(ValueError):
        channel.set_variable("NOTE", "line one\nHANGUP")
    assert stdout.getvalue() == ""


def test_invalid_command_raises_agi_invalid_command() -> None:
    channel, _ = replay("510 Invalid or unknown command")
    with pytest.raises(AGIInvalidCommand):
        channel.execute("FLY TO", "moon")


def test_usage_block_is_read_whole_and_the_stream_stays_in_step() -> None:
    channel, _ = replay(*USAGE_BLOCK, "200 result=1")
    with pytest.raises(AGIUsageError) as info:
        channel.execute("SET VARIABLE", "ONLY_NAME")
    assert "Usage: SET VARIABLE" in str(info.value)
    channel.set_variable("A", "b")  # reads "200 result=1", not a leftover usage line


def test_usage_single_line_raises_usage_error() -> None:
    channel, _ = replay("520 Invalid command syntax.  Proper usage not available.", "200 result=1")
    with pytest.raises(AGIUsageError):
        channel.execute("SET VARIABLE")
    channel.set_variable("A", "b")


def test_eof_instead_of_reply_raises_connection_lost() -> None:
    channel, _ = replay()
    with pytest.raises(AgiConnectionLost) as info:
        channel.stream_file("welcome_1888", "")
    assert isinstance(info.value, AgiProtocolError)
    assert isinstance(info.value, AGIHangup)


def test_hangup_line_then_eof_raises_caller_hung_up() -> None:
    channel, _ = replay("HANGUP")
    with pytest.raises(CallerHungUp):
        channel.stream_file("welcome_1888", "")
    assert channel.hung_up


@pytest.mark.parametrize("line", ["garbage", "200 oops", "404 Not Found"])
def test_garbled_reply_raises_protocol_error(line: str) -> None:
    channel, _ = replay(line)
    with pytest.raises(AgiProtocolError) as info:
        channel.wait_for_digit(100)
    assert not isinstance(info.value, CallerHungUp)


def test_hangup_command_marks_hung_up_and_tolerates_dead_channel() -> None:
    channel, stdout = replay("200 result=1", DEAD)
    channel.hangup()
    assert channel.hung_up
    channel.hangup()  # 511: already down, not an error
    assert sent(stdout) == ["HANGUP", "HANGUP"]


def test_answer_success_and_hang_up() -> None:
    channel, _ = replay("200 result=0", "200 result=-1")
    channel.answer()
    with pytest.raises(CallerHungUp):
        channel.answer()


def test_pyst2_helpers_still_work_through_the_adapter() -> None:
    channel, stdout = replay("200 result=1 (PJSIP/trunk-00000007)", "200 result=0")
    assert channel.get_variable("CHANNEL") == "PJSIP/trunk-00000007"
    channel.noop()
    assert sent(stdout) == ['GET VARIABLE "CHANNEL"', "NOOP"]


def test_latency_hook_gets_one_sample_per_command() -> None:
    samples: list[tuple[str, float]] = []
    stdin = io.StringIO(GREETING + "200 result=0 endpos=1\n200 result=1\n")
    channel = AgiChannel(stdin, io.StringIO(), install_sighup=False, latency_hook=lambda c, s: samples.append((c, s)))
    channel.stream_file("a", "")
    channel.set_variable("B", "c")
    assert [c for c, _ in samples] == ["STREAM FILE", "SET VARIABLE"]
    assert all(0 <= s < 1 for _, s in samples)


# ---- the fake Asterisk answers as res_agi does -----------------------------------------


def test_fake_unknown_command_gets_510_and_bad_arguments_the_520_block() -> None:
    call = FakeAsteriskCall([])
    assert call.handle("FLY TO moon") == ["510 Invalid or unknown command"]
    usage = call.handle('SET VARIABLE "ONLY_NAME"')
    assert usage[0] == "520-Invalid command syntax.  Proper usage follows:"
    assert usage[-1] == "520 End of proper usage."
    assert call.handle("WAIT FOR DIGIT soon")[-1] == "520 End of proper usage."


def test_fake_hang_up_sends_minus_one_then_hangup_line_then_511_for_media() -> None:
    call = FakeAsteriskCall([hangup()])
    assert call.handle('STREAM FILE menu_1888 "12" 0') == ["200 result=-1 endpos=4000"]
    assert call.handle("WAIT FOR DIGIT 5000") == ["HANGUP", DEAD]
    assert call.handle('SET VARIABLE "A" "b"') == ["200 result=1"]
    assert call.handle('VERBOSE "bye" 1') == ["200 result=1"]
    assert call.handle("NOOP") == ["200 result=0"]
    assert call.handle("HANGUP") == [DEAD]
    assert call.done and call.hung_up_by == "caller"


def test_fake_hangup_from_app_is_followed_by_hangup_line() -> None:
    call = FakeAsteriskCall([])
    assert call.handle("ANSWER") == ["200 result=0"]
    assert call.handle("HANGUP") == ["200 result=1"]
    assert call.handle('SET VARIABLE "A" "b"') == ["HANGUP", "200 result=1"]
    assert call.hung_up_by == "app"


def test_fake_missing_prompt_in_sounds_dir_gives_minus_one(tmp_path: Path) -> None:
    (tmp_path / "fa").mkdir()
    with wave.open(str(tmp_path / "fa" / "welcome_1888.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 12000)
    call = FakeAsteriskCall([wait()], sounds_dir=tmp_path)
    assert call.handle('STREAM FILE nothing_here "" 0') == ["200 result=-1 endpos=0"]
    assert call.handle('STREAM FILE welcome_1888 "" 0') == ["200 result=0 endpos=12000"]
    assert call.last_duration == 1.5


def test_fake_keys_carry_over_and_get_data_stops_at_hash() -> None:
    call = FakeAsteriskCall([type_digits("7123#9")])
    assert call.handle('STREAM FILE enter_code "0123456789*#" 0') == ["200 result=55 endpos=4000"]
    assert call.handle("GET DATA silence_short 6000 8") == ["200 result=123"]
    assert call.handle("WAIT FOR DIGIT 5000") == ["200 result=57"]


def test_fake_exhausted_script_idles_then_hangs_up() -> None:
    call = FakeAsteriskCall([], idle_limit=2)
    replies = [call.handle("WAIT FOR DIGIT 100")[-1] for _ in range(4)]
    assert replies == ["200 result=0", "200 result=0", "200 result=-1", DEAD]


def test_fake_prompt_seconds_sets_endpos_and_duration() -> None:
    call = FakeAsteriskCall([wait(), press("1")], prompt_seconds=lambda name: 2.5)
    assert call.handle('STREAM FILE welcome_1888 "" 0') == ["200 result=0 endpos=20000"]
    assert call.last_duration == 2.5
    assert call.handle('STREAM FILE menu_1888 "1" 0') == ["200 result=49 endpos=10000"]
    assert call.elapsed == 3.75


def test_fake_record_wait_after_speech_reports_leftover_ms(tmp_path: Path) -> None:
    call = FakeAsteriskCall([speak(2), wait()])
    reply = call.handle(f'RECORD FILE {tmp_path}/m wav "#" 10000 0 s=3')
    assert reply == ["200 result=5000 (timeout) endpos=24000"]  # 2 s speech + ~1 s silence kept
    assert (tmp_path / "m.wav").is_file()


def test_fake_wire_shows_the_whole_exchange() -> None:
    call = FakeAsteriskCall([press("2")], env={"agi_arg_1": "1888"})
    call.handle('STREAM FILE menu_1888 "12" 0')
    wire = call.wire()
    assert "< agi_network_script: 1888\n" in wire and "< agi_arg_1: 1888\n" in wire
    assert wire.endswith('> STREAM FILE menu_1888 "12" 0\n< 200 result=50 endpos=4000\n')
