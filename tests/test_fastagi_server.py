"""The FastAGI server over real TCP, and the classic AGI entry point over real pipes.

The fake Asterisk connects exactly as Asterisk does (greeting, then one reply per
command); the handlers here are small call flows built on `AgiTelephone`.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ivr.config import Settings
from ivr.drivers.agi.protocol import AgiChannel
from ivr.drivers.agi.server import AgiServer, build_agi_server
from ivr.drivers.agi.telephone import AgiTelephone
from ivr.flow.steps import Hangup, Key, ReadKey, SetVariable
from tests.fakes import (
    FakeAsteriskCall,
    hangup,
    press,
    run_fake_call_async,
    run_fake_call_pipes,
    run_fake_call_tcp,
    wait,
)

REPO = Path(__file__).resolve().parent.parent


@contextmanager
def running(settings: Settings, handler: Callable[[AgiChannel], None], **options: int) -> Iterator[AgiServer]:
    """A server on an ephemeral port, serving in a thread, shut down afterwards."""
    server = build_agi_server(settings, handler, host="127.0.0.1", port=0, **options)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown(2)
        thread.join(5)
        assert not thread.is_alive()


def menu_flow(settings: Settings, before: Callable[[AgiChannel], None] | None = None) -> Callable[[AgiChannel], None]:
    """A one-menu call flow: the key chosen and the caller id go into channel variables."""

    def handle(channel: AgiChannel) -> None:
        if before is not None:
            before(channel)
        telephone = AgiTelephone(channel, settings, channel.uniqueid)
        event = telephone.perform(ReadKey(("menu_1888",), "123"))
        if isinstance(event, Key):
            telephone.perform(SetVariable("CHOICE", event.key))
            telephone.perform(SetVariable("CALLER", channel.env["agi_callerid"]))
            telephone.perform(Hangup())

    return handle


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def in_thread(target: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


# ---- concurrency and isolation --------------------------------------------------------


def test_server_fifty_concurrent_calls_each_get_their_own_answer(settings: Settings) -> None:
    all_in = threading.Barrier(50, timeout=10)  # every call must be in progress at once

    with running(settings, menu_flow(settings, before=lambda _: all_in.wait())) as server:
        host, port = server.address
        calls = [
            FakeAsteriskCall([press("123"[i % 3])], env={"agi_callerid": f"0912{i:07d}"}) for i in range(50)
        ]

        async def all_calls() -> None:
            await asyncio.gather(*(run_fake_call_async(host, port, call) for call in calls))

        asyncio.run(all_calls())
        wait_until(lambda: server.active_calls == 0)
        samples = server.latency_samples()

    for i, call in enumerate(calls):
        assert call.variables == {"CHOICE": "123"[i % 3], "CALLER": f"0912{i:07d}"}
        assert call.hung_up_by == "app" and call.closed and not call.reset
    assert len(samples) == 50 * 4  # STREAM FILE, SET VARIABLE x2, HANGUP per call
    assert all(0 <= s < 5 for s in samples)
    assert threading.stack_size() == 0  # the small stack was for the server's threads only


def test_server_failing_call_apologises_and_others_are_untouched(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    def fail_for_666(channel: AgiChannel) -> None:
        if channel.env["agi_callerid"] == "666":
            raise RuntimeError("database unreachable")

    calls = [FakeAsteriskCall([press("2")], env={"agi_callerid": cid}) for cid in ("1001", "666", "1002")]
    with caplog.at_level(logging.INFO), running(settings, menu_flow(settings, before=fail_for_666)) as server:
        threads = [in_thread(lambda c=c: run_fake_call_tcp(*server.address, c)) for c in calls]
        for thread in threads:
            thread.join(10)

    good1, bad, good2 = calls
    assert good1.variables["CHOICE"] == "2" and good2.variables["CHOICE"] == "2"
    assert bad.heard == ["sorry_technical"]
    assert bad.variables == {"IVR_NEXT": "operator"}
    assert bad.closed and not bad.reset
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and bad.uniqueid in errors[0].getMessage()


def test_server_hang_up_leaking_from_handler_is_not_an_error(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    def careless(channel: AgiChannel) -> None:
        channel.stream_file("menu_1888", "12")
        channel.wait_for_digit(1000)  # raises CallerHungUp; nobody catches it

    call = FakeAsteriskCall([hangup()])
    with caplog.at_level(logging.INFO), running(settings, careless) as server:
        run_fake_call_tcp(*server.address, call)
    assert call.heard == ["menu_1888"]  # no apology
    assert call.variables == {}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert f"call {call.uniqueid}: ended by hang-up" in caplog.text


def test_server_closes_the_socket_as_soon_as_the_handler_returns(settings: Settings) -> None:
    def set_and_return(channel: AgiChannel) -> None:
        channel.set_variable("IVR_NEXT", "goodbye")  # no HANGUP: the channel stays up until we close

    call = FakeAsteriskCall([])
    with running(settings, set_and_return) as server:
        started = time.monotonic()
        run_fake_call_tcp(*server.address, call, timeout=2)  # raises TimeoutError if left open
    assert call.closed and not call.reset
    assert call.closed_at is not None and call.closed_at - started < 1.0
    assert call.variables == {"IVR_NEXT": "goodbye"}


def test_server_released_call_is_closed_before_the_handler_finishes(settings: Settings) -> None:
    finished = threading.Event()

    def release_then_log(channel: AgiChannel) -> None:
        channel.set_variable("IVR_NEXT", "goodbye")
        channel.release()  # type: ignore[attr-defined]  # the server's channel: Asterisk may go on
        time.sleep(1.5)  # the call log, written after the caller has gone
        finished.set()

    call = FakeAsteriskCall([])
    with running(settings, release_then_log) as server:
        started = time.monotonic()
        run_fake_call_tcp(*server.address, call, timeout=5)
        assert call.closed and not call.reset and not finished.is_set()
        assert call.closed_at is not None and call.closed_at - started < 1.0
        assert call.variables == {"IVR_NEXT": "goodbye"}
        assert finished.wait(5)


# ---- limits and shutdown --------------------------------------------------------------


def test_server_beyond_max_calls_closes_without_commands(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    gate = threading.Event()
    calls = [FakeAsteriskCall([press("1")]) for _ in range(2)]
    with running(settings, menu_flow(settings, before=lambda _: gate.wait(10)), max_calls=2) as server:
        threads = [in_thread(lambda c=c: run_fake_call_tcp(*server.address, c)) for c in calls]
        wait_until(lambda: server.active_calls == 2)
        extra = FakeAsteriskCall([press("1")])
        started = time.monotonic()
        run_fake_call_tcp(*server.address, extra, timeout=2)
        refused_in = time.monotonic() - started
        gate.set()
        for thread in threads:
            thread.join(10)
    assert extra.commands == [] and extra.closed and refused_in < 1.0
    assert "full" in caplog.text
    assert [c.variables.get("CHOICE") for c in calls] == ["1", "1"]


def test_server_graceful_shutdown_finishes_call_and_refuses_new_ones(settings: Settings) -> None:
    entered, gate = threading.Event(), threading.Event()

    def slow(channel: AgiChannel) -> None:
        entered.set()
        gate.wait(10)

    server = build_agi_server(settings, menu_flow(settings, before=slow), host="127.0.0.1", port=0)
    loop = in_thread(lambda: server.serve_forever(poll_interval=0.05))
    call = FakeAsteriskCall([press("3")])
    caller = in_thread(lambda: run_fake_call_tcp(*server.address, call))
    assert entered.wait(5)
    stopper = in_thread(lambda: server.shutdown(10))

    def refused() -> bool:
        try:
            socket.create_connection(server.address, timeout=1).close()
        except ConnectionRefusedError:
            return True
        except ConnectionResetError:  # queued in the backlog as the listener closed: try again
            return False
        return False

    wait_until(refused)
    wait_until(lambda: server.active_calls == 1)  # a probe accepted before the close may linger
    assert stopper.is_alive()  # still waiting for our call
    gate.set()
    caller.join(5)
    stopper.join(5)
    loop.join(5)
    assert call.variables["CHOICE"] == "3"
    assert not stopper.is_alive() and not loop.is_alive()


def test_server_shutdown_after_grace_ends_stuck_calls(settings: Settings) -> None:
    def waits_forever(channel: AgiChannel) -> None:
        channel.wait_for_digit(60000)

    server = build_agi_server(settings, waits_forever, host="127.0.0.1", port=0)
    loop = in_thread(lambda: server.serve_forever(poll_interval=0.05))
    # An "Asterisk" that sends the greeting and never answers a command.
    with socket.create_connection(server.address, timeout=5) as silent:
        silent.sendall(FakeAsteriskCall().greeting().encode())
        wait_until(lambda: server.active_calls == 1)
        started = time.monotonic()
        server.shutdown(0.2)
        took = time.monotonic() - started
        received = b""
        while chunk := silent.recv(4096):
            received += chunk
    loop.join(5)
    assert received == b"WAIT FOR DIGIT 60000\n"
    assert took < 3 and server.active_calls == 0 and not loop.is_alive()


# ---- bad greetings --------------------------------------------------------------------


@pytest.mark.parametrize(
    "greeting",
    [b"GET / HTTP/1.1\r\nHost: example\r\n\r\n", b"\x00\xff\xfe garbage", b"agi_network: yes\nagi_uniq"],
)
def test_server_garbled_greeting_closes_that_connection_only(settings: Settings, greeting: bytes) -> None:
    handled: list[str] = []
    with running(settings, lambda ch: handled.append(ch.uniqueid)) as server:
        with socket.create_connection(server.address, timeout=5) as bad:
            bad.sendall(greeting)
            bad.shutdown(socket.SHUT_WR)
            try:
                assert bad.recv(100) == b""
            except ConnectionResetError:
                pass
        call = FakeAsteriskCall([])
        run_fake_call_tcp(*server.address, call)
    assert handled == [call.uniqueid]


def test_server_greeting_with_some_garbled_lines_still_runs_the_call(settings: Settings) -> None:
    call = FakeAsteriskCall([wait(), press("1")], env={"agi_calleridname": "Ali\x00\x07 Rezaei"})
    call.env = {"not a header line": "", **call.env}
    with running(settings, menu_flow(settings)) as server:
        run_fake_call_tcp(*server.address, call)
    assert call.variables["CHOICE"] == "1"


# ---- classic AGI over stdin/stdout ----------------------------------------------------

CHILD = r"""
import sys
from ivr.config import load_settings
from ivr.drivers.agi.classic import main
from ivr.drivers.agi.telephone import AgiTelephone
from ivr.flow.steps import Key, ReadKey, SetVariable

def handler(channel):
    print("a stray print must not reach Asterisk")
    telephone = AgiTelephone(channel, SETTINGS, channel.uniqueid)
    event = telephone.perform(ReadKey(("menu_1888",), "123"))
    if MODE == "fail":
        raise RuntimeError("boom")
    result = type(event).__name__ + (":" + event.key if isinstance(event, Key) else "")
    telephone.perform(SetVariable("RESULT", result))

MODE = sys.argv[1]
SETTINGS = load_settings(dotenv=False)
sys.exit(main(sys.argv[2:], handler=handler, settings=SETTINGS))
"""


@pytest.fixture
def child_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "IVR_DATA_DIR": str(tmp_path / "data"), "IVR_VAR_DIR": str(tmp_path / "var")}


def test_classic_key_pressed_sets_variable_and_exits_zero(child_env: dict[str, str]) -> None:
    call = FakeAsteriskCall([wait(), press("2")], classic=True)
    run_fake_call_pipes([sys.executable, "-c", CHILD, "ok"], call, env=child_env)
    assert "agi_network" not in call.env
    assert call.commands == ['STREAM FILE menu_1888 "123" 0', "WAIT FOR DIGIT 5000", 'SET VARIABLE "RESULT" "Key:2"']
    assert call.returncode == 0, call.stderr_text


def test_classic_hang_up_arrives_as_sighup_and_variables_still_work(child_env: dict[str, str]) -> None:
    call = FakeAsteriskCall([hangup()], classic=True)
    run_fake_call_pipes([sys.executable, "-c", CHILD, "ok"], call, env=child_env)
    assert not any(r == "HANGUP" for _, replies in call.transcript for r in replies)
    assert call.variables == {"RESULT": "HungUp"}
    assert call.returncode == 0, call.stderr_text  # SIGHUP was handled, not fatal


def test_classic_failing_handler_apologises_and_exits_one(child_env: dict[str, str]) -> None:
    call = FakeAsteriskCall([press("1")], classic=True)
    run_fake_call_pipes([sys.executable, "-c", CHILD, "fail"], call, env=child_env)
    assert call.heard == ["menu_1888", "sorry_technical"]
    assert call.variables == {"IVR_NEXT": "operator"}
    assert call.returncode == 1
    assert "boom" in call.stderr_text


def test_classic_truncated_greeting_exits_one(child_env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, "ok"], input=b"agi_request: ivr-agi\n", capture_output=True,
        env=child_env, timeout=20, check=False,
    )
    assert result.returncode == 1
    assert result.stdout == b""


def test_classic_module_import_stays_light() -> None:
    probe = (
        "import sys, ivr.drivers.agi.classic\n"
        "print(sorted(m for m in ('asterisk', 'sqlalchemy', 'ivr.config', 'ivr.db', 'flask') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=20, check=True)
    assert result.stdout.strip() == "[]"


# ---- pacing (for the load generator) --------------------------------------------------


@pytest.mark.parametrize("runner", ["tcp", "async"])
def test_fake_paced_call_lasts_as_long_as_its_prompts(settings: Settings, runner: str) -> None:
    def two_prompts(channel: AgiChannel) -> None:
        channel.stream_file("welcome_1888", "")
        channel.stream_file("menu_1888", "")

    call = FakeAsteriskCall([wait(), wait()], prompt_seconds=lambda name: 0.2)
    with running(settings, two_prompts) as server:
        started = time.monotonic()
        if runner == "tcp":
            run_fake_call_tcp(*server.address, call, pace=True)
        else:
            asyncio.run(run_fake_call_async(*server.address, call, pace=True))
        took = time.monotonic() - started
    assert call.elapsed == pytest.approx(0.4)
    assert 0.4 <= took < 2.0
