"""A ``broker.flow.Flow`` for unit tests: real rate limits and device logins on in-memory state,
a list as the audit log, and stand-ins for the collaborators a test does not reach."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from broker.access_config import OAuthConfig, RateLimitsConfig
from broker.audit import Decision
from broker.connectors.base import Connector
from broker.errors import BrokerError
from broker.flow import Flow
from broker.oauth.device import DeviceFlow
from broker.ratelimit import RateLimiter
from broker.state.memory import MemoryState


class ListLog:
    """The DecisionLog Protocol into a list: ``writes`` holds each write's events."""

    def __init__(self) -> None:
        self.writes: list[list[Decision]] = []
        self.broken: BrokerError | None = None
        """Set: every write fails with it (the database is down)."""

    def record_events(self, events: Sequence[Decision]) -> None:
        if self.broken is not None:
            raise self.broken
        self.writes.append(list(events))

    @property
    def events(self) -> list[Decision]:
        return [e for write in self.writes for e in write]


class Unreached:
    """A collaborator the test must not reach: any use of it fails the test."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        raise AssertionError(f"the test reached {self._name}.{attribute}")


def unit_flow(directory: Connector | None, *, log: ListLog | None = None, **limits: Any) -> Flow:
    state = MemoryState()
    return Flow(
        store=cast(Any, Unreached("store")),
        directory=directory,
        minting=cast(Any, Unreached("minting")),
        aws=cast(Any, Unreached("aws")),
        log=log or ListLog(),
        limits=RateLimiter(state, RateLimitsConfig(**limits)),
        devices=DeviceFlow(state, OAuthConfig()),
    )
