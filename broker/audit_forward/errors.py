"""The one failure a destination reports: the batch was not delivered (it stays in the outbox).

Its text is safe to log: a status code, an exception's class and system message, never a header
value, a URL's query or an event's content."""

from __future__ import annotations


class DeliveryFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
