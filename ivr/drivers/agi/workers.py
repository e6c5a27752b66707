"""Several FastAGI server processes on one port: a supervisor and its workers.

One Python process uses about one core (the GIL). `ivr agi serve --workers N` (or
`IVR_AGI_WORKERS`) starts N worker processes, each a complete `AgiServer` with its own
database pool, listening on the same port with SO_REUSEPORT (Linux): the kernel spreads
new connections across them, and a failure in one worker never touches another's calls.

The parent only supervises. A worker that dies is started again (after a pause that
grows while workers keep dying young, so a broken database does not make it spin).
SIGTERM or SIGINT to the parent stops every worker gracefully: each stops accepting at
once and finishes its calls in progress within the grace period. A worker whose parent
is gone (killed with SIGKILL) stops the same way.

Workers are started with the `spawn` method (a fresh interpreter, not fork()), so the
parent may already run threads (the web server of `ivr serve`). The parent keeps the
port bound but does not listen on it: it learns the real port when 0 is asked for, and
no other program can take the port while a worker is being restarted.
"""
from __future__ import annotations

import errno
import gc
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from ivr.config import Settings

log = logging.getLogger(__name__)

# Every worker writes to the supervisor's stderr: each line names its worker, so a call's log can
# be told apart from another worker's and matched with `ss -tnp` (which shows the pid).
LOG_FORMAT = "%(asctime)s %(levelname)s agi-worker-{index}[%(process)d] %(name)s: %(message)s"
START_TIMEOUT_SECONDS = 120.0  # a worker imports the project and opens the database first
YOUNG_SECONDS = 10.0  # a worker that dies younger than this counts towards the back-off
MAX_RESTART_DELAY_SECONDS = 30.0
PARENT_CHECK_SECONDS = 1.0

# target(settings, index, ready, grace, log_level): one worker process's whole life.
WorkerTarget = Callable[[Settings, int, Connection, float, int], None]


class WorkerStartError(RuntimeError):
    """A worker process could not start (it exited before it was listening)."""


def run_worker(
    settings: Settings,
    index: int,
    ready: Connection,
    grace: float,
    log_level: int,
    on_server: Callable[[Any], None] | None = None,
) -> None:
    """One worker: serve calls on the shared port until SIGTERM or until the parent is gone.

    Worker 0 also replays the spool, so only one process replays at a time.
    `on_server` (the benchmark's hook) sees the server before it accepts calls.
    """
    logging.basicConfig(level=log_level, format=worker_log_format(index))
    from ivr.drivers.agi.handler import SpoolReplayer, build_call_handler
    from ivr.drivers.agi.server import build_agi_server
    from ivr.runner import build_runner

    parent = os.getppid()
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    # Ctrl-C reaches the whole process group: only the supervisor acts on it (with SIGTERM),
    # so it never mistakes a worker stopping on its own for one that died.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    runner = build_runner(settings)
    server = build_agi_server(settings, build_call_handler(settings, runner), reuse_port=True)
    replayer = SpoolReplayer(runner) if index == 0 else None
    if on_server is not None:
        on_server(server)
    loop = threading.Thread(target=server.serve_forever, name="agi-accept", daemon=True)
    loop.start()
    if replayer is not None:
        replayer.start()
    freeze_startup_objects()
    ready.send(os.getpid())
    ready.close()
    while not stop.wait(PARENT_CHECK_SECONDS):
        if os.getppid() != parent:
            log.warning("AGI worker %d: the supervisor is gone; stopping", index)
            break
    server.shutdown(grace)
    if replayer is not None:
        replayer.stop()


def worker_log_format(index: int) -> str:
    """The logging format of worker `index`: its lines carry the worker's number and pid."""
    return LOG_FORMAT.replace("{index}", str(index))


def freeze_startup_objects() -> None:
    """Move everything built at start-up out of the garbage collector's sight.

    The flow, the ORM mappers and the imported modules live as long as the process;
    without this, every full collection walks them again while calls wait.
    """
    gc.collect()
    gc.freeze()


@dataclass
class _Worker:
    index: int
    process: Any
    ready: Connection | None
    started: float = field(default_factory=time.monotonic)
    pid: int | None = None


class Supervisor:
    """N worker processes serving FastAGI on one port; restarts those that die."""

    def __init__(
        self,
        settings: Settings,
        workers: int,
        *,
        grace: float = 30.0,
        target: WorkerTarget = run_worker,
        log_level: int | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("at least one worker")
        if sys.platform != "linux" or not hasattr(socket, "SO_REUSEPORT"):
            # Elsewhere SO_REUSEPORT does not spread connections across the listeners.
            raise OSError("several AGI workers need Linux (SO_REUSEPORT); use --workers 1 here")
        self._count = workers
        self._grace = grace
        self._target = target
        self._log_level = log_level if log_level is not None else logging.getLogger().getEffectiveLevel()
        self._context = multiprocessing.get_context("spawn")
        self._reservation = _reserve_port(settings.agi_host, settings.agi_port)
        self._address: tuple[str, int] = self._reservation.getsockname()[:2]
        try:
            self._claim = _claim_address(*self._address)
        except OSError:
            self._reservation.close()
            raise
        self._settings = settings.with_(agi_port=self._address[1])
        self._workers: dict[int, _Worker] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._restart_delay = 0.0
        self._wake_r, self._wake_w = multiprocessing.Pipe(duplex=False)

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the workers listen on."""
        return self._address

    def worker_pids(self) -> list[int]:
        """The process ids of the workers running now, by index."""
        with self._lock:
            return [w.process.pid for _, w in sorted(self._workers.items()) if w.process.is_alive()]

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Start every worker and wait until each is listening; WorkerStartError if one cannot."""
        for index in range(self._count):
            self._spawn(index)
        deadline = time.monotonic() + timeout
        for worker in list(self._workers.values()):
            assert worker.ready is not None
            left = max(0.0, deadline - time.monotonic())
            if not (worker.ready.poll(left) and self._read_ready(worker)):
                self._terminate_all(0.0)
                raise WorkerStartError(
                    f"AGI worker {worker.index} did not start (exit code {worker.process.exitcode}); see its log"
                )

    def serve_forever(self) -> None:
        """Watch the workers until `shutdown`, starting again any that dies."""
        try:
            while not self._stopping.is_set():
                with self._lock:
                    waitables: list[Any] = [self._wake_r]
                    for w in self._workers.values():
                        waitables.append(w.process.sentinel)
                        if w.ready is not None:
                            waitables.append(w.ready)
                wait(waitables, timeout=1.0)
                if self._stopping.is_set():
                    break
                self._check_workers()
        finally:
            self._stopped.set()

    def _check_workers(self) -> None:
        for worker in list(self._workers.values()):
            if worker.ready is not None and worker.ready.poll():
                self._read_ready(worker)
            if worker.process.is_alive() or self._stopping.is_set():
                continue
            worker.process.join()
            age = time.monotonic() - worker.started
            if age < YOUNG_SECONDS:
                self._restart_delay = min(MAX_RESTART_DELAY_SECONDS, max(1.0, self._restart_delay * 2))
            else:
                self._restart_delay = 0.0
            log.error(
                "AGI worker %d (pid %s) died (exit code %s) after %.0f s; starting it again%s",
                worker.index, worker.process.pid, worker.process.exitcode, age,
                f" in {self._restart_delay:.0f} s" if self._restart_delay else "",
            )
            if self._restart_delay and self._stopping.wait(self._restart_delay):
                return
            self._spawn(worker.index)

    def shutdown(self, grace: float | None = None) -> None:
        """Stop every worker gracefully (calls in progress finish within `grace`), then return."""
        if self._stopping.is_set():
            self._stopped.wait(5.0)
            return
        self._stopping.set()
        self._wake_w.send(b"")
        self._stopped.wait(5.0)
        self._terminate_all(self._grace if grace is None else grace)
        self._reservation.close()
        self._claim.close()

    def _terminate_all(self, grace: float) -> None:
        with self._lock:
            workers = list(self._workers.values())
        for w in workers:
            if w.process.is_alive():
                try:
                    os.kill(w.process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        # Each worker ends its calls when its own grace period is over; allow it time to log them.
        deadline = time.monotonic() + grace + 10.0
        for w in workers:
            w.process.join(max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                log.error("AGI worker %d did not stop in time; killing it", w.index)
                w.process.kill()
                w.process.join(5.0)
            if w.ready is not None:
                w.ready.close()

    def _spawn(self, index: int) -> None:
        ready_r, ready_w = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=self._target,
            args=(self._settings, index, ready_w, self._grace, self._log_level),
            name=f"ivr-agi-worker-{index}",
        )
        process.start()
        ready_w.close()  # the child holds its own copy: end of file here means it is gone
        with self._lock:
            self._workers[index] = _Worker(index=index, process=process, ready=ready_r)

    def _read_ready(self, worker: _Worker) -> bool:
        assert worker.ready is not None
        try:
            worker.pid = worker.ready.recv()
        except (EOFError, OSError):
            return False
        finally:
            worker.ready.close()
            worker.ready = None
        log.info("AGI worker %d (pid %s) listening", worker.index, worker.pid)
        return True


def _claim_address(host: str, port: int) -> socket.socket:
    """An abstract Unix socket named after the address: a second supervisor for it fails at once.

    SO_REUSEPORT lets any process of the same user join the port: without this, a second
    `ivr agi serve` (a manual run beside the service, an old one that did not stop) would start
    without a word and silently take part of the calls. The name goes with the process.
    """
    claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        claim.bind(f"\0ivr-agi:{host}:{port}")
    except OSError as exc:
        claim.close()
        if exc.errno == errno.EADDRINUSE:
            raise OSError(errno.EADDRINUSE, f"another `ivr agi serve` already serves {host}:{port}") from None
        raise
    return claim


def _reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) with SO_REUSEPORT but not listening: holds the port."""
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock

