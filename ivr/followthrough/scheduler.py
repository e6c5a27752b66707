"""Periodic work: a thread that enqueues the sweep every IVR_SWEEP_SECONDS.

It runs inside `ivr serve` (in-process jobs) and inside each `ivr worker` (Redis). The job id
names the time slot (`followthrough.sweep:<slot>`); on Redis a `SET NX` key per slot means that
however many workers run, one of them enqueues each slot's sweep. The sweep is idempotent anyway.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

PERIODIC_JOBS = ("followthrough.sweep",)


class PeriodicScheduler:
    """Enqueues the periodic jobs once per time slot until stopped."""

    def __init__(self, jobs: Any, interval: float, names: tuple[str, ...] = PERIODIC_JOBS,
                 clock: Callable[[], float] = time.time) -> None:
        self.jobs, self.interval, self.names, self.clock = jobs, float(interval), names, clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def slot(self) -> int:
        """The current time slot number."""
        return int(self.clock() // self.interval)

    def _claim(self, job_id: str) -> bool:
        connection = getattr(self.jobs, "connection", None)
        if connection is None:  # in-process: one scheduler per process
            return True
        queue = getattr(self.jobs.settings, "queue_name", "ivr")
        key = f"ivr:{queue}:periodic:{job_id}"
        return bool(connection.set(key, "1", nx=True, ex=max(60, int(self.interval * 3))))

    def tick(self) -> list[str]:
        """Enqueue this slot's periodic jobs (those not enqueued by another scheduler); their ids."""
        slot = self.slot()
        queued = []
        for name in self.names:
            job_id = f"{name}:{slot}"
            try:
                if self._claim(job_id):
                    self.jobs.enqueue(name, job_id=job_id)
                    queued.append(job_id)
            except Exception:  # Redis or the queue is down: try again next slot
                log.exception("could not enqueue periodic job %s", job_id)
        return queued

    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            wait = self.interval - (self.clock() % self.interval)
            self._stop.wait(max(0.5, wait))

    def start(self) -> None:
        """Start the thread (a daemon: it never keeps the process alive)."""
        self._thread = threading.Thread(target=self._run, name="periodic", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
