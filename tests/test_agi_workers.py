"""`ivr agi serve --workers 2`: two FastAGI processes on one port, supervised, over real TCP."""
from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from ivr.config import load_settings
from ivr.drivers.agi.workers import worker_log_format
from tests.fakes import FakeAsteriskCall, _encode, press, run_fake_call_tcp

pytestmark = pytest.mark.slow


def wait_until(condition: Callable[[], object], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)


def worker_pids(parent: int) -> list[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    pids = []
    for p in psutil.Process(parent).children():
        try:
            if "spawn_main" in " ".join(p.cmdline()):
                pids.append(p.pid)
        except psutil.Error:  # a worker just killed, not yet reaped
            continue
    return sorted(pids)


class Server:
    """`ivr agi serve --workers 2 --port 0` in a subprocess; its port read from the banner."""

    def __init__(self, tmp_path: Path, grace: float = 20.0) -> None:
        env = dict(os.environ, IVR_VAR_DIR=str(tmp_path / "var"), IVR_DATA_DIR=str(tmp_path / "data"))
        env.pop("IVR_DATABASE_URL", None)
        env.pop("IVR_AGI_WORKERS", None)
        ivr = str(Path(sys.executable).with_name("ivr"))
        self.data = tmp_path / "data"
        # The log goes to a file: a pipe nobody reads would block the workers once full.
        self.log = tmp_path / "serve.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [ivr, "agi", "serve", "--workers", "2", "--port", "0", "--grace", str(grace)],
                cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=log, text=True,
                start_new_session=True,  # its own process group, as in a terminal (Ctrl-C reaches them all)
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        found = re.search(r"agi://127\.0\.0\.1:(\d+)/1888 .*\(2 worker processes\)", line)
        assert found, f"unexpected banner {line!r}: {self.log.read_text()}"
        self.port = int(found.group(1))

    def call(self, script: list, timeout: float = 15.0) -> FakeAsteriskCall:
        fake = FakeAsteriskCall(script, incoming_root=self.data)
        return run_fake_call_tcp("127.0.0.1", self.port, fake, timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the workers too
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path)
    try:
        yield srv
    finally:
        srv.stop()


class HeldCall:
    """A call stopped at its first command (the welcome prompt): the caller waits to answer."""

    def __init__(self, port: int, data: Path) -> None:
        self.fake = FakeAsteriskCall([press("0")], incoming_root=data)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.rfile = self.sock.makefile("rb")
        self.sock.sendall(self.fake.greeting().encode("utf-8"))
        self.first = self.rfile.readline().decode()

    def finish(self) -> FakeAsteriskCall:
        """Answer every command until the application closes the connection."""
        line = self.first
        while line:
            replies = self.fake.handle(line)
            if replies:
                self.sock.sendall(_encode(replies))
            line = self.rfile.readline().decode()
        self.close()
        return self.fake

    def close(self) -> None:
        self.rfile.close()
        self.sock.close()


def test_workers_both_serve_calls_on_one_port(server: Server) -> None:
    pids = worker_pids(server.proc.pid)
    assert len(pids) == 2
    # The kernel spreads connections over the two listeners: 24 held calls all on one worker
    # would happen with a probability of 2**-23.
    held = [HeldCall(server.port, server.data) for _ in range(24)]
    try:
        assert all(h.first.startswith("STREAM FILE welcome_1888") for h in held)
        serving = {
            pid for pid in pids
            for c in psutil.Process(pid).net_connections(kind="tcp")
            if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == server.port
        }
        assert serving == set(pids)
        done = [h.finish() for h in held]
    finally:
        for h in held:
            h.close()
    assert all(_sent_to_operator(c) for c in done)
    # Each call is logged just after its connection is closed: give the last ones a moment.
    wait_until(lambda: _calls_logged(server) == 24, what="24 calls logged")


def _calls_logged(server: Server) -> int:
    from sqlalchemy import func, select

    from ivr.db import make_engine, make_sessionmaker, transaction
    from ivr.models import Call

    settings = load_settings({"IVR_VAR_DIR": str(server.data.parent / "var")}, dotenv=False)
    engine = make_engine(settings.database_url)
    try:
        with transaction(make_sessionmaker(engine), readonly=True) as s:
            return s.scalar(select(func.count()).select_from(Call)) or 0
    finally:
        engine.dispose()


def test_workers_a_killed_worker_is_replaced_and_calls_go_on(server: Server) -> None:
    before = worker_pids(server.proc.pid)
    os.kill(before[0], signal.SIGKILL)
    after: list[int] = []

    def replaced() -> bool:
        after[:] = worker_pids(server.proc.pid)  # one look: the killed one gone, a new one there
        return len(after) == 2 and before[0] not in after

    wait_until(replaced, what="a new worker")
    assert before[1] in after
    [new] = [pid for pid in after if pid != before[1]]
    assert re.search(rf"AGI worker \d \(pid {before[0]}\) died \(exit code -9\)", server.log.read_text())
    # Meanwhile the other worker answers every call; the new one joins once it has started.
    for _ in range(4):
        fake = server.call([press("0")])
        assert fake.heard[0] == "welcome_1888" and fake.closed and not fake.reset
    held: list[HeldCall] = []
    try:
        def new_worker_serving() -> bool:
            held.append(HeldCall(server.port, server.data))
            return any(c.status == psutil.CONN_ESTABLISHED and c.laddr.port == server.port
                       for c in psutil.Process(new).net_connections(kind="tcp"))

        wait_until(new_worker_serving, timeout=60,
                   what=f"a call on the new worker {new}: {_state(server)}")
        done = [h.finish() for h in held]
    finally:
        for h in held:
            h.close()
    assert all(c.heard[0] == "welcome_1888" and _sent_to_operator(c) for c in done)
    assert server.proc.poll() is None


def _sent_to_operator(call: FakeAsteriskCall) -> bool:
    """Key 0: the operator, or out of hours "the operators are closed, leave a message"."""
    return call.variables.get("IVR_NEXT") == "operator" or "operator_closed_leave_message" in call.heard


def _state(server: Server) -> str:
    """The supervisor's children and its log, for a failure message."""
    kids = [(p.pid, p.status(), " ".join(p.cmdline())[-50:]) for p in psutil.Process(server.proc.pid).children()]
    return f"children {kids}; log: {server.log.read_text()[-2000:]}"


@pytest.mark.parametrize("stop", ["sigterm", "ctrl-c"])
def test_workers_stop_finishes_the_call_in_progress_and_refuses_new_ones(server: Server, stop: str) -> None:
    held = HeldCall(server.port, server.data)
    try:
        assert held.first.startswith("STREAM FILE welcome_1888")
        pids = worker_pids(server.proc.pid)
        if stop == "sigterm":  # a service manager stops the supervisor
            server.proc.send_signal(signal.SIGTERM)
        else:  # Ctrl-C in a terminal: SIGINT to the whole process group, workers included
            os.killpg(server.proc.pid, signal.SIGINT)

        def refused() -> bool:
            try:
                socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
            except ConnectionRefusedError:
                return True
            except ConnectionResetError:  # queued as a listener closed: try again
                return False
            return False

        wait_until(refused, what="new calls refused")
        assert server.proc.poll() is None  # still waiting for our call
        fake = held.finish()
    finally:
        held.close()
    assert _sent_to_operator(fake)
    assert server.proc.wait(timeout=20) == 0
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)
    assert _calls_logged(server) == 1
    assert "died" not in server.log.read_text()  # none was taken for dead and started again


def test_workers_port_taken_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = dict(os.environ, IVR_VAR_DIR=str(tmp_path / "var"), IVR_DATA_DIR=str(tmp_path / "data"))
        env.pop("IVR_DATABASE_URL", None)
        ivr = str(Path(sys.executable).with_name("ivr"))
        result = subprocess.run([ivr, "agi", "serve", "--workers", "2", "--port", str(port)], cwd=tmp_path,
                                env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == "ivr: error: [Errno 98] Address already in use"
    assert result.stdout == ""


def test_workers_second_server_on_the_same_port_is_refused(server: Server, tmp_path: Path) -> None:
    # Seen against Asterisk: with SO_REUSEPORT a second `ivr agi serve --workers 2` on the port of a
    # running one started without a word, and Asterisk's calls were shared between the two servers.
    env = dict(os.environ, IVR_VAR_DIR=str(tmp_path / "var2"), IVR_DATA_DIR=str(tmp_path / "data2"))
    env.pop("IVR_DATABASE_URL", None)
    ivr = str(Path(sys.executable).with_name("ivr"))
    result = subprocess.run([ivr, "agi", "serve", "--workers", "2", "--port", str(server.port)], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"ivr: error: [Errno 98] another `ivr agi serve` already serves 127.0.0.1:{server.port}")
    assert result.stdout == ""
    assert len(worker_pids(server.proc.pid)) == 2  # the first server goes on untouched
    assert _sent_to_operator(server.call([press("0")]))


def test_workers_setting_defaults_to_the_cpu_count_and_is_checked() -> None:
    from ivr.config import ConfigError

    assert sys.platform == "linux"  # elsewhere the default is one worker
    assert load_settings({}, dotenv=False).agi_workers == (os.cpu_count() or 1)
    assert load_settings({"IVR_AGI_WORKERS": "3"}, dotenv=False).agi_workers == 3
    with pytest.raises(ConfigError, match="^IVR_AGI_WORKERS: must be between 1 and 256, got 0$"):
        load_settings({"IVR_AGI_WORKERS": "0"}, dotenv=False)


def test_worker_log_lines_name_the_worker_and_its_pid() -> None:
    # Several workers write to one stderr: without this nobody can tell which one served a call.
    record = logging.LogRecord("ivr.runner", logging.INFO, __file__, 1, "call %s: done", ("1795962700.1",), None)
    record.process = 9014
    line = logging.Formatter(worker_log_format(1)).format(record)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO agi-worker-1\[9014\] ivr\.runner: call 1795962700\.1: done",
                        line), line
