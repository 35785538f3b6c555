"""What a connector can do: one ``Protocol`` per capability (the dex shape).

Every connector returns the same frozen ``broker.domain.Identity``.

- ``PasswordConnector.login(username, password)`` → ``Identity``, or an ``InvalidCredentials``
  *value* for a wrong password, an unknown user and a disabled, locked or expired account (one
  answer for all; ``reason`` says which, for the audit log). An empty or whitespace password is
  refused before anything reaches the directory. ``login_key(username)`` names the account a
  typed name stands for, which the sign-in rate limits count.
- ``LookupConnector.lookup(username, uncached=)`` → the current ``Identity`` (account status and
  groups read again, groups through the cache unless ``uncached``: then read from the directory
  now), or ``None`` when the account is gone or not usable. The broker calls it at every
  credential issuance, ``uncached`` when an approver decides (approve, deny, end a grant).
- ``ProbeConnector.probe()`` → None; raises when the directory cannot be used (readiness).
- ``BreakerConnector.breakers()`` → each server's circuit breaker state (/readyz, /metrics).
- ``InspectConnector.inspect(username)`` → what ``broker check-directory`` prints.
- ``AttributeLookupConnector.find_by(attribute, value)`` → the one usable account whose
  ``attribute`` equals ``value`` (directory enrichment of an upstream sign-in), or ``None``.
- ``MembersConnector.membership(deadline=)`` → ``broker.connectors.membership.Membership``: every
  group (its name) and every usable account with its direct groups, read in a few paged searches
  before ``deadline`` (``time.monotonic()``); ``members_of(groups)`` on it gives the people in
  those groups, nested included, each group with its path (the access report). Disabled, locked
  or expired accounts are left out by the rules ``lookup`` applies.

Upstream identity providers (the broker as SAML SP / OIDC RP) follow a redirect and come back:

- ``UpstreamConnector.login_url(next_url=, binding=)`` → where to send the browser; the pending
  request (AuthnRequest ID, or state + nonce + PKCE verifier) is kept in shared state with a TTL.
- ``CallbackConnector.handle_callback(params, binding=)`` (OIDC: the authorization response) and
  ``SAMLConnector.handle_post(form, binding=)`` (SAML: the ACS POST) → ``SignIn`` (the same frozen
  ``Identity`` as a password sign-in, and the validated relative path to continue to). A refused
  answer *raises* ``UpstreamRejected`` (401) or ``SsoRequestInvalid`` (400); an unreachable IdP
  raises ``UpstreamUnavailable`` (503). ``binding`` ties the callback to the browser that started
  the sign-in (a hash of a cookie set by the router), so a callback URL or a form taken from one
  browser is refused in another.

A directory outage is an exception, ``broker.errors.DirectoryUnavailable``, never a value.
This package imports neither FastAPI, ``broker.web`` nor ``broker.db``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from broker.breaker import BreakerState
from broker.connectors.membership import Membership
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

    def login_key(self, username: str) -> str:
        """The account a typed login name stands for, as the rate limits count a sign-in: every
        spelling the directory takes for one account (AD: ``CORP\\alice``, ``alice@corp.example``,
        ``alice``) gives one key, so spelling a name another way buys no new attempts."""
        ...


@runtime_checkable
class LookupConnector(Connector, Protocol):
    def lookup(self, username: str, *, uncached: bool = False) -> Identity | None: ...


@runtime_checkable
class ProbeConnector(Connector, Protocol):
    def probe(self) -> None: ...


@runtime_checkable
class BreakerConnector(Connector, Protocol):
    def breakers(self) -> list[BreakerState]:
        """Each server's circuit breaker (``broker.breaker``), for /readyz and /metrics."""
        ...


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


@runtime_checkable
class AttributeLookupConnector(Connector, Protocol):
    def find_by(self, attribute: str, value: str) -> Identity | None: ...


@runtime_checkable
class MembersConnector(Connector, Protocol):
    def membership(self, *, deadline: float) -> Membership: ...


@dataclass(frozen=True)
class SignIn:
    """The outcome of an upstream sign-in: who, and the relative path to continue to."""

    identity: Identity
    next_url: str = "/"
    """Always a local path (``/...``): never a scheme, a host or ``//``."""


@runtime_checkable
class UpstreamConnector(Connector, Protocol):
    @property
    def kind(self) -> Literal["saml", "oidc"]:
        """The protocol, a class constant of each implementation."""
        ...

    display_name: str
    """What the sign-in button says."""

    def login_url(self, *, next_url: str, binding: str, now: float | None = None) -> str: ...


@runtime_checkable
class CallbackConnector(UpstreamConnector, Protocol):
    def handle_callback(self, params: Mapping[str, str], *, binding: str | None, now: float | None = None) -> SignIn: ...


@runtime_checkable
class SAMLConnector(UpstreamConnector, Protocol):
    def handle_post(self, form: Mapping[str, str], *, binding: str | None, now: float | None = None) -> SignIn: ...

    def metadata(self) -> bytes:
        """This SP's metadata (entity ID, ACS) for the IdP's administrator."""
        ...


def blank_password(password: str) -> bool:
    """True for an empty or whitespace-only password. An empty password is an anonymous bind,
    which real Active Directory answers with success: it never reaches a directory."""
    return not password or not password.strip()
