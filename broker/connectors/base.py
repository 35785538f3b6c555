"""What a connector can do: one ``Protocol`` per capability (the dex shape).

Every connector returns the same frozen ``broker.domain.Identity``.

- ``PasswordConnector.login(username, password)`` → ``Identity``, or an ``InvalidCredentials``
  *value* for a wrong password, an unknown user and a disabled, locked or expired account (one
  answer for all; ``reason`` says which, for the audit log). An empty or whitespace password is
  refused before anything reaches the directory.
- ``LookupConnector.lookup(username)`` → the current ``Identity`` (account status and groups
  read again, groups through the cache), or ``None`` when the account is gone or not usable.
  The broker calls it at every credential issuance.
- ``ProbeConnector.probe()`` → None; raises when the directory cannot be used (readiness).
- ``InspectConnector.inspect(username)`` → what ``broker check-directory`` prints.

A directory outage is an exception, ``broker.errors.DirectoryUnavailable``, never a value.
This package imports neither FastAPI, ``broker.web`` nor ``broker.db``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from broker.domain import Identity
from broker.errors import InvalidCredentials

LoginResult = Identity | InvalidCredentials


@runtime_checkable
class Connector(Protocol):
    name: str
    """Identity.source of every identity this connector establishes."""

    def close(self) -> None: ...


@runtime_checkable
class PasswordConnector(Connector, Protocol):
    def login(self, username: str, password: str) -> LoginResult: ...


@runtime_checkable
class LookupConnector(Connector, Protocol):
    def lookup(self, username: str) -> Identity | None: ...


@runtime_checkable
class ProbeConnector(Connector, Protocol):
    def probe(self) -> None: ...


@dataclass(frozen=True)
class Inspection:
    """What the directory says about one account, for operators (``broker check-directory``)."""

    identity: Identity
    dn: str | None = None
    group_dns: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    """Account status and other remarks (``account disabled (userAccountControl 0x2)``)."""
    usable: bool = True


@runtime_checkable
class InspectConnector(Connector, Protocol):
    def inspect(self, username: str) -> Inspection | None: ...


def blank_password(password: str) -> bool:
    """True for an empty or whitespace-only password. An empty password is an anonymous bind,
    which real Active Directory answers with success: it never reaches a directory."""
    return not password or not password.strip()
