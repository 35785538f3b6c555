"""A total time for one botocore call, retries included (botocore itself has none).

``Deadline`` is a pair of botocore event hooks: the clock starts when a call starts
(``before-call``, once per call); each retry's request (``request-created``, once per attempt)
is refused with ``OutOfTime`` when a whole attempt (connect + read timeout) would end after
``total`` seconds. botocore calls a hook with keywords only (``context`` for the first,
``request`` for the second, and others). Used by the STS clients and the IAM clients.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError


class OutOfTime(BotoCoreError):
    """The call's total time leaves no room for another attempt (raised instead of it)."""

    fmt = "no time left for attempt {attempt} within {total:g} s"


class Deadline:
    def __init__(self, *, total: float, attempt: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.attempt, self.clock = total, attempt, clock

    def register(self, session: Any, service: str) -> None:
        """Hook into every call a botocore ``session``'s clients make to ``service`` (``sts``, ``iam``)."""
        session.register(f"before-call.{service}", self.start)
        session.register(f"request-created.{service}", self.check)

    def start(self, **event: Any) -> None:
        event["context"]["broker_deadline"] = self.clock() + self.total

    def check(self, **event: Any) -> None:
        context = getattr(event["request"], "context", None) or {}
        attempt = context.get("retries", {}).get("attempt", 1)
        deadline = context.get("broker_deadline")
        if attempt > 1 and deadline is not None and self.clock() + self.attempt > deadline:
            raise OutOfTime(attempt=attempt, total=self.total)
