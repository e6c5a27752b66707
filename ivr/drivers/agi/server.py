"""The FastAGI server: Asterisk connects once per call (`AGI(agi://host:4573/1888)`).

One thread per call, each with its own `AgiChannel`, handed to the handler the caller
supplies (the call flow). Every call is isolated: an exception in one call is logged,
that caller hears an apology and is sent to the operator, and no other call notices.
The connection is closed as soon as the handler returns, because the channel stays in
the AGI until we close it; a handler may close it earlier (`release`, on the channel it
is given) and finish work that nothing in the call waits for, such as the call log.
"""
from __future__ import annotations

import collections
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable

from ivr.config import Settings
from ivr.drivers.agi.protocol import AgiChannel, AgiConnectionLost, CallerHungUp
from ivr.vocabulary import NEXT_OPERATOR, NEXT_VARIABLE

log = logging.getLogger(__name__)

Handler = Callable[[AgiChannel], None]

LISTEN_BACKLOG = 1024
# Calls spend their life blocked on a socket; a small stack lets thousands of threads fit.
THREAD_STACK_SIZE = 512 * 1024
LATENCY_SAMPLES = 65536  # newest samples kept for latency_samples()
# No single AGI command takes this long (recordings are capped well below it): a socket
# silent for longer is a dead peer.
IDLE_TIMEOUT_SECONDS = 1800.0
APOLOGY_PROMPT = "sorry_technical"
FALLBACK_TARGET = NEXT_OPERATOR


def apologise(channel: AgiChannel, prompt_prefix: str = "") -> None:
    """Best effort after a failure: play `sorry_technical` and send the caller to the operator."""
    if channel.hung_up:
        return
    try:
        channel.stream_file(prompt_prefix + APOLOGY_PROMPT, "")
    except AgiConnectionLost:
        return
    except Exception as exc:  # best effort: the next step may still work
        log.warning("call %s: could not play the apology: %s", channel.uniqueid, exc)
    try:
        channel.set_variable(NEXT_VARIABLE, FALLBACK_TARGET)
    except Exception as exc:
        log.warning("call %s: could not set %s: %s", channel.uniqueid, NEXT_VARIABLE, exc)


def run_call(channel: AgiChannel, handler: Handler, prompt_prefix: str = "") -> bool:
    """Run one call's handler; False (after apologising) if it failed unexpectedly."""
    try:
        handler(channel)
        return True
    except CallerHungUp:
        # A hang-up the handler did not catch is the end of a call, not a fault.
        log.info("call %s: ended by hang-up", channel.uniqueid or "?")
        return True
    except Exception:
        log.exception("call %s: the call handler failed", channel.uniqueid or "?")
    apologise(channel, prompt_prefix)
    return False


class _Latencies:
    """A bounded reservoir of per-command processing times (appends are atomic, no lock)."""

    def __init__(self, size: int) -> None:
        self.samples: collections.deque[float] = collections.deque(maxlen=size)

    def __call__(self, command: str, seconds: float) -> None:
        self.samples.append(seconds)


class AgiServer:
    """A FastAGI server over TCP: one thread per call, a limit on concurrent calls."""

    def __init__(
        self,
        settings: Settings,
        handler: Handler,
        *,
        host: str | None = None,
        port: int | None = None,
        max_calls: int | None = None,
        stack_size: int = THREAD_STACK_SIZE,
        idle_timeout: float = IDLE_TIMEOUT_SECONDS,
        reuse_port: bool = False,
    ) -> None:
        """`reuse_port`: share the port with other processes (SO_REUSEPORT, Linux), see workers.py."""
        self._handler = handler
        self._prompt_prefix = settings.agi_prompt_prefix
        self._max_calls = max_calls if max_calls is not None else settings.agi_max_calls
        self._stack_size = stack_size
        self._idle_timeout = idle_timeout
        self._latencies = _Latencies(LATENCY_SAMPLES)
        # Reentrant: shutdown() may run in a signal handler on the thread that holds it.
        self._lock = threading.RLock()
        self._calls_changed = threading.Condition(self._lock)
        self._calls: dict[socket.socket, threading.Thread | None] = {}
        self._stopping = False
        self._loop_running = False
        self._loop_thread: int | None = None
        self._done = threading.Event()
        host = settings.agi_host if host is None else host
        port = settings.agi_port if port is None else port
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        # create_server sets SO_REUSEADDR, so a restart does not wait for TIME_WAIT.
        self._listener = socket.create_server(
            (host, port), family=family, backlog=LISTEN_BACKLOG, reuse_port=reuse_port
        )
        self._listener.setblocking(False)
        self._address: tuple[str, int] = self._listener.getsockname()[:2]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the server listens on (the real port when 0 was asked for)."""
        return self._address

    @property
    def active_calls(self) -> int:
        """Calls in progress right now."""
        return len(self._calls)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no call is in progress (every handler has returned, its call log written); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._calls:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._calls_changed.wait(left)
        return True

    def latency_samples(self) -> list[float]:
        """Recent per-command processing times in seconds (reply read → next command sent)."""
        return list(self._latencies.samples.copy())

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Accept calls until `shutdown`; returns once the shutdown has finished."""
        with self._lock:
            if self._stopping:
                return
            self._loop_running = True
            self._loop_thread = threading.get_ident()
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self._listener, selectors.EVENT_READ)
                selector.register(self._wake_r, selectors.EVENT_READ)
                while not self._stopping:
                    for key, _ in selector.select(poll_interval):
                        if key.fileobj is self._listener and not self._stopping:
                            self._accept_waiting()
        finally:
            with self._lock:
                self._loop_running = False
                self._calls_changed.notify_all()
        self._done.wait()

    def _accept_waiting(self) -> None:
        """Accept every connection already waiting (calls arrive in bursts)."""
        while not self._stopping:
            try:
                conn, addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # closed by shutdown, or out of file descriptors
                if not self._stopping:
                    log.error("AGI server: accept failed: %s", exc)
                    time.sleep(0.05)  # do not spin while out of descriptors
                return
            self._start_call(conn, addr)

    def _start_call(self, conn: socket.socket, addr: object) -> None:
        conn.settimeout(self._idle_timeout)
        if conn.family in (socket.AF_INET, socket.AF_INET6):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        with self._lock:
            stopping = self._stopping
            full = len(self._calls) >= self._max_calls
            if not (full or stopping):
                self._calls[conn] = None
        if stopping:
            _close(conn)
            return
        if full:
            # Closing without a command lets Asterisk carry on with the dialplan (AGISTATUS).
            log.warning("AGI server full (%d calls): refusing a call from %s", self._max_calls, addr)
            _close(conn)
            return
        thread = threading.Thread(
            target=self._serve_call, args=(conn, addr), name=f"agi-{addr}", daemon=True
        )
        # stack_size is process-wide: set it for our threads only, and put it back at once.
        previous = threading.stack_size(self._stack_size)
        try:
            thread.start()
        except RuntimeError as exc:
            log.error("AGI server: cannot start a thread for %s: %s", addr, exc)
            self._forget(conn)
            _close(conn)
            return
        finally:
            threading.stack_size(previous)
        with self._lock:
            if conn in self._calls:
                self._calls[conn] = thread

    def _serve_call(self, conn: socket.socket, addr: object) -> None:
        channel: AgiChannel | None = None
        try:
            try:
                channel = _ServedChannel.from_socket(conn, latency_hook=self._latencies)
                assert isinstance(channel, _ServedChannel)
                channel.conn = conn
            except Exception as exc:  # garbled greeting, reset: this connection only
                log.warning("AGI connection from %s: no usable greeting: %s", addr, exc)
                return
            run_call(channel, self._handler, self._prompt_prefix)
        except Exception:
            log.exception("AGI connection from %s failed", addr)
        finally:
            if channel is not None:
                channel.close()
            _close(conn)
            self._forget(conn)

    def _forget(self, conn: socket.socket) -> None:
        with self._lock:
            self._calls.pop(conn, None)
            self._calls_changed.notify_all()

    def shutdown(self, grace_seconds: float = 30.0) -> None:
        """Stop accepting calls, let calls in progress finish for up to `grace_seconds`, then end them."""
        with self._lock:
            already = self._stopping
            self._stopping = True
        if already:
            self._done.wait(grace_seconds + 5.0)
            return
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        # New connections are refused from here on.
        self._listener.close()
        deadline = time.monotonic() + grace_seconds
        with self._lock:
            while self._calls and (left := deadline - time.monotonic()) > 0:
                self._calls_changed.wait(left)
            remaining = list(self._calls)
        if remaining:
            log.warning("AGI server: ending %d calls still running after the grace period", len(remaining))
            for conn in remaining:
                try:
                    conn.shutdown(socket.SHUT_RDWR)  # their reads see end of file and unwind
                except OSError:
                    pass
            deadline = time.monotonic() + 5.0
            with self._lock:
                while self._calls and (left := deadline - time.monotonic()) > 0:
                    self._calls_changed.wait(left)
        if self._loop_thread != threading.get_ident():  # not from a signal handler inside the loop
            with self._lock:
                loop_deadline = time.monotonic() + 5.0
                while self._loop_running and (left := loop_deadline - time.monotonic()) > 0:
                    self._calls_changed.wait(left)
        self._wake_r.close()
        self._wake_w.close()
        self._done.set()

    def __enter__(self) -> AgiServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown(0)


class _ServedChannel(AgiChannel):
    """A FastAGI channel the handler can let go before it returns (`release`)."""

    conn: socket.socket | None = None

    def release(self) -> None:
        """Close the connection now: Asterisk goes on with the dialplan while the handler finishes (the call log)."""
        self.close()
        if self.conn is not None:
            _close(self.conn)


def _close(conn: socket.socket) -> None:
    """Close a call's socket now (shutdown first: a makefile() reference must not keep it open)."""
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    conn.close()


def build_agi_server(
    settings: Settings,
    handler: Handler,
    *,
    host: str | None = None,
    port: int | None = None,
    max_calls: int | None = None,
    reuse_port: bool = False,
) -> AgiServer:
    """A FastAGI server for `settings` (agi_host, agi_port, agi_max_calls) running `handler` per call."""
    return AgiServer(settings, handler, host=host, port=port, max_calls=max_calls, reuse_port=reuse_port)
