"""A thread-safe circuit breaker: one per directory server and per STS endpoint.

``closed`` (calls go through) → ``open`` after ``failures`` consecutive failures, or at once
after a timeout (``failure(timeout=True)``: each further try would cost the whole timeout again)
→ after ``open_seconds``, ``allow()`` gives ONE caller the probe (``half_open``; everyone else is
still refused) → its ``success()`` closes the breaker, its ``failure()`` opens it again for
``open_seconds``. Any ``success()`` (also of a call begun before the breaker opened) closes it:
the target answered.

Callers report every call they were allowed: ``success()`` (the target answered, even with an
error of its own), ``failure()`` (refused, timed out, broken), or ``release()`` (nothing was
learnt, e.g. the request was invalid before it left). ``with breaker.call() as outcome:`` does
it for them: the block ending normally is a success, an exception a failure (``timeout=`` says
which exceptions are timeouts), an interruption that is no ``Exception`` (KeyboardInterrupt, a
cancelled task) a release; inside the block ``outcome.succeed()`` / ``fail()`` / ``release()``
report otherwise (an error answer of the target's own is a success), and ``outcome.changed``
says afterwards whether this call opened or closed the breaker (for a log line).

(pybreaker holds its lock during the whole protected call, so every call through one breaker
would wait for the one in flight — a frozen target would serialise the worker; and its half-open
state lets every concurrent call through. Hence these ~80 lines.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

State = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class BreakerState:
    """One breaker as /readyz and /metrics show it."""

    kind: str
    """``directory`` or ``sts``."""
    target: str
    """The server's URL, or the STS endpoint (partition/region endpoint URL)."""
    state: State
    failures: int
    """Consecutive failures seen."""


class Breaker:
    def __init__(
        self, kind: str, target: str, *, failures: int, open_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if failures < 1 or open_seconds <= 0:
            raise ValueError("a breaker needs failures >= 1 and open_seconds > 0")
        self.kind, self.target = kind, target
        self._threshold, self._open_seconds, self._clock = failures, open_seconds, clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> State:
        with self._lock:
            return self._state()

    def _state(self) -> State:
        if self._opened_at is None:
            return "closed"
        return "half_open" if self._probing else "open"

    def snapshot(self) -> BreakerState:
        with self._lock:
            return BreakerState(self.kind, self.target, self._state(), self._failures)

    def allow(self) -> bool:
        """May a call go out now? Closed: yes. Open: only once ``open_seconds`` have passed, and
        then to one caller at a time (the probe)."""
        with self._lock:
            if self._opened_at is None:
                return True
            if self._probing or self._clock() < self._opened_at + self._open_seconds:
                return False
            self._probing = True
            return True

    def success(self) -> bool:
        """The target answered: closed, failures forgotten. True when it was open (or probing)."""
        with self._lock:
            was_open = self._opened_at is not None
            self._failures, self._opened_at, self._probing = 0, None, False
            return was_open

    def failure(self, *, timeout: bool = False) -> bool:
        """A failed call; True when this one opened the breaker (it was closed or probing)."""
        with self._lock:
            self._failures += 1
            if self._opened_at is not None and not self._probing:
                return False  # a call begun before it opened: open already, its interval unchanged
            if self._probing or timeout or self._failures >= self._threshold:
                self._opened_at, self._probing = self._clock(), False
                return True
            return False

    def release(self) -> None:
        """An allowed call that taught nothing: a probe slot it held is free again."""
        with self._lock:
            self._probing = False

    @contextmanager
    def call(self, *, timeout: Callable[[Exception], bool] = lambda _exc: False) -> Iterator[Outcome]:
        """Report the allowed call the block makes (see the module's docstring); ``allow()`` is
        the caller's to ask first, as what a refusal means differs (an error, the next server)."""
        outcome = Outcome(self)
        try:
            yield outcome
        except Exception as exc:
            if not outcome.reported:
                outcome.fail(timeout=timeout(exc))
            raise
        except BaseException:
            if not outcome.reported:
                outcome.release()
            raise
        if not outcome.reported:
            outcome.succeed()


class Outcome:
    """What one call through ``Breaker.call()`` reported: at most once, the first report counts."""

    def __init__(self, breaker: Breaker) -> None:
        self._breaker = breaker
        self.reported = False
        self.changed = False
        """This call's report opened the breaker (a failure) or closed an open one (a success)."""

    def succeed(self) -> bool:
        if not self.reported:
            self.reported, self.changed = True, self._breaker.success()
        return self.changed

    def fail(self, *, timeout: bool = False) -> bool:
        if not self.reported:
            self.reported, self.changed = True, self._breaker.failure(timeout=timeout)
        return self.changed

    def release(self) -> None:
        if not self.reported:
            self.reported = True
            self._breaker.release()
