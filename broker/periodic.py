"""A background thread that runs one step every ``interval`` seconds (sooner again while the
step says it had work), for the jobs every worker process runs: notification delivery, the
just-in-time expiry sweep, audit forwarding. A step's exception is logged, never ends the thread; ``stop`` waits
for the step in progress (each is bounded), up to ``join_timeout``."""

from __future__ import annotations

import threading
from collections.abc import Callable

from broker import logs
from broker.errors import BrokerError

log = logs.get_logger("broker.periodic")


class Periodic:
    def __init__(self, name: str, step: Callable[[], bool], *, interval: float, join_timeout: float = 10.0) -> None:
        self.name = name
        self.step = step
        self.interval = interval
        self.join_timeout = join_timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def thread(self) -> threading.Thread | None:
        """The running thread (None: not started, or stopped)."""
        return self._thread

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=self.join_timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.step()
            except Exception as exc:
                if isinstance(exc, BrokerError) or type(exc).__module__.startswith("sqlalchemy"):
                    # the database away (StorageUnavailable, or SQLAlchemy's own): no traceback, no SQL
                    log.warning("periodic_db_error", job=self.name, error=type(exc).__name__)
                else:
                    log.exception("periodic_error", job=self.name)
                busy = False
            if not busy:
                self._stop.wait(self.interval)
