"""The decision flow: the one module that sequences a decision.

    authenticate → current identity (directory re-read) → groups → grants → mint → STS → deliver

and writes one audit event per decision (allow, deny or error): who (username and immutable
id), which account and role, the mapping or rule that granted it, a snapshot of the groups,
the source address, the duration and the access key id — never a secret.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from broker.audit import AuditContext, Decision
from broker.aws.partitions import check_console_service, partition
from broker.aws.sts import clamp_duration
from broker.connectors.base import Connector, LookupConnector, PasswordConnector
from broker.domain import ConsoleLink, Identity, RoleGrant, TemporaryCredentials
from broker.errors import (
    BadRequest,
    BrokerError,
    InvalidCredentials,
    InvalidInput,
    NotFound,
    RoleNotGranted,
    Unauthenticated,
    Unavailable,
)
from broker.mapping.model import REGION
from broker.mapping.rules import Resolution, resolve
from broker.mapping.store import MappingStore
from broker.mapping.suggest import not_granted_hint
from broker.minting.names import role_session_name

if TYPE_CHECKING:
    from broker.aws.factory import Aws
    from broker.minting.factory import Minting


@dataclass(frozen=True)
class Explanation:
    username: str
    resolution: Resolution
    identity: Identity | None = None
    """Set when the groups were read from the directory rather than given."""

    def to_dict(self) -> dict[str, Any]:
        r = self.resolution
        body: dict[str, Any] = {
            "username": self.username,
            "groups_from": "request" if self.identity is None else "directory",
            "groups": [{"given": g.given, "name": g.name} for g in r.groups],
            "grants": [g.to_dict() for g in r.grants],
            "unmatched_groups": list(r.unmatched),
            "notes": list(r.notes),
        }
        if self.identity is not None:
            i = self.identity
            body["directory"] = {
                "id": i.id, "username": i.username, "display_name": i.display_name, "source": i.source
            }
        return body


@dataclass(frozen=True)
class DecisionContext:
    """Where a request for access comes from, for the audit log."""

    source_ip: str | None = None
    request_id: str | None = None
    via: str = "api"
    """portal | api | cli | device | ..."""


@dataclass(frozen=True)
class Issued:
    credentials: TemporaryCredentials
    grant: RoleGrant
    duration: int


class DecisionLog(Protocol):
    def record_events(self, events: Sequence[Decision]) -> None: ...


_T = TypeVar("_T")
_BATCH: ContextVar[list[Decision] | None] = ContextVar("broker_decision_batch", default=None)


def _utcnow() -> datetime:
    return datetime.now(UTC)


FRESH_SIGN_IN_SECONDS = 5.0
"""How long the identity a password sign-in returned counts as the directory's current view for
the one issuance of the same request (HTTP Basic: sign-in and issuance in one call)."""
_FRESH_MAX = 4096



class Flow:
    """The decision sequence. Built once by create_app with the store, the directory, the
    signers (keys parsed once) and the STS gateway (one client per partition and region)."""

    def __init__(
        self,
        *,
        store: MappingStore,
        directory: Connector | None = None,
        minting: Minting | None = None,
        aws: Aws | None = None,
        log: DecisionLog | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.store = store
        self.directory = directory
        self.minting = minting
        self.aws = aws
        self.log = log
        self.clock = clock
        # Identities a password sign-in has just read from the directory, by object id, each
        # usable once by current_identity instead of a second directory read in the same request.
        self._fresh: dict[int, tuple[Identity, float]] = {}
        self._fresh_lock = threading.Lock()

    @property
    def directory(self) -> Connector | None:
        return self._directory

    @directory.setter
    def directory(self, directory: Connector | None) -> None:
        # What the directory can do, decided once: isinstance against a runtime Protocol walks
        # its members on every call, and these checks sit on every issuance.
        self._directory = directory
        self._password_directory = directory if isinstance(directory, PasswordConnector) else None
        self._lookup_directory = directory if isinstance(directory, LookupConnector) else None

    def grants_for(self, groups: Iterable[str]) -> Resolution:
        groups = list(groups)
        return resolve(groups, self.store.snapshot_for(groups))

    # ---- who ----

    def authenticate(self, username: str, password: str) -> Identity:
        """A directory password sign-in; raises InvalidCredentials (one answer) or DirectoryUnavailable."""
        if self._password_directory is None:
            raise BadRequest("no password directory is configured")
        result = self._password_directory.login(username, password)
        if isinstance(result, InvalidCredentials):
            raise result
        return result

    def login_key(self, username: str) -> str:
        """What rate limits count a password sign-in against: the account the typed name stands
        for in the password directory (AD: ``CORP\\alice``, ``alice@corp.example`` and ``alice``
        are one), so spelling a name another way buys no new attempts."""
        key = getattr(self._password_directory, "login_key", None)
        return key(username) if key is not None else username.strip().casefold()

    def sign_in(self, username: str, password: str, *, ctx: DecisionContext) -> Identity:
        """``authenticate`` with its decision in the audit log (the password never is)."""
        try:
            identity = self.authenticate(username, password)
        except BrokerError as exc:
            self.sign_in_refused(username, exc, ctx=ctx)
            raise
        self._record(ctx, "login", identity, outcome="allow", target=None, details={"source": identity.source})
        self._remember_fresh(identity)
        return identity

    def sign_in_refused(self, username: str, exc: BrokerError, *, ctx: DecisionContext) -> None:
        """A password sign-in refused, in the audit log: by the directory, or before it was asked
        (a rate limit)."""
        who = Identity(id="", username=username[:256])
        reason = getattr(exc, "reason", None) or exc.code
        self._record(ctx, "login", who, outcome="error" if exc.status >= 500 else "deny", target=None,
                     details={"code": exc.code, "reason": reason})

    def _remember_fresh(self, identity: Identity) -> None:
        now = time.monotonic()
        with self._fresh_lock:
            if len(self._fresh) >= _FRESH_MAX:
                self._fresh = {k: v for k, v in self._fresh.items() if now - v[1] < FRESH_SIGN_IN_SECONDS}
                if len(self._fresh) >= _FRESH_MAX:
                    self._fresh.clear()
            self._fresh[id(identity)] = (identity, now)

    def _take_fresh(self, identity: Identity) -> bool:
        """True once for the very object a sign-in returned moments ago (this process)."""
        with self._fresh_lock:
            entry = self._fresh.pop(id(identity), None)
        return entry is not None and entry[0] is identity and time.monotonic() - entry[1] < FRESH_SIGN_IN_SECONDS

    def current_identity(self, identity: Identity) -> Identity:
        """At every issuance: the account and its groups as the directory says *now*.

        A disabled, locked, expired or deleted account, or a username that now belongs to
        another account (another immutable id), gets nothing. Groups come through the group
        cache (``directory.cache.ttl_seconds``), so a removed membership stops issuance at once
        or within that TTL. Identities from other sources (upstream IdPs) pass unchanged.
        When the same request signed in with a password (HTTP Basic), that sign-in was this
        read: the identity it returned is used as is, once, within ``FRESH_SIGN_IN_SECONDS``.
        A sign-in past the end its source gave it (``Identity.valid_until``) gets nothing.
        """
        if identity.valid_until is not None and self.clock().timestamp() >= identity.valid_until:
            raise Unauthenticated("your sign-in has reached the end your identity provider set for it: sign in again")
        directory = self._lookup_directory
        if directory is None or identity.source != directory.name:
            return identity
        if self._take_fresh(identity):  # this request's own sign-in read the directory a moment ago
            return identity
        fresh = directory.lookup(identity.username)
        if fresh is None or fresh.id != identity.id:
            raise Unauthenticated("the directory no longer accepts this account: sign in again")
        return fresh if identity.valid_until is None else replace(fresh, valid_until=identity.valid_until)

    def explain(self, username: str, groups: Iterable[str] | None = None) -> Explanation:
        """Which roles ``username`` gets and why; without ``groups`` they are read from the directory."""
        if groups is not None:
            return Explanation(username, self.grants_for(groups))
        if self._lookup_directory is None:
            raise BadRequest("no directory is configured: give the groups to explain")
        identity = self._lookup_directory.lookup(username)
        if identity is None:
            raise NotFound("no active account of that name in the directory")
        return Explanation(username, self.grants_for(identity.groups), identity)

    # -- the steps --

    def _grant(self, resolution: Resolution, account: str, role: str) -> RoleGrant:
        wanted = account.lower()
        for g in resolution.grants:
            if (g.account_id == account or (g.account_alias or "").lower() == wanted) and g.role_name.lower() == role.lower():
                return g
        hint, details = not_granted_hint(resolution.grants, account=account, role=role)
        message = f"you are not entitled to role {role!r} in account {account!r}"
        raise RoleNotGranted(message + (f"; {hint}" if hint else ""), details=details or None)

    def _assume(self, identity: Identity, grant: RoleGrant, duration: int, now: datetime) -> TemporaryCredentials:
        if self.minting is None or self.aws is None:
            raise Unavailable("this broker is not set up to issue credentials (no keys / STS)")
        if grant.federation_path == "saml":
            saml = self.minting.saml.aws_response(identity=identity, grants=[grant], session_duration=duration, now=now)
            return self.aws.sts.assume_with_saml(grant=grant, saml_assertion=saml.encoded, duration=duration)
        audience = grant.audience or partition(grant.partition).oidc_audience
        token = self.minting.oidc.id_token(identity=identity, audience=audience, now=now)
        return self.aws.sts.assume_with_web_identity(
            grant=grant, token=token, session_name=role_session_name(identity.username), duration=duration
        )

    def _record(
        self,
        ctx: DecisionContext,
        action: str,
        identity: Identity,
        *,
        outcome: str,
        target: str | None,
        details: dict[str, Any],
    ) -> None:
        if self.log is None:
            return
        audit_ctx = AuditContext(actor=f"user:{identity.username}", request_id=ctx.request_id, source_ip=ctx.source_ip)
        decision = Decision(
            audit_ctx,
            action,
            outcome,
            target_type="role" if target else None,
            target_id=target,
            details={"user": identity.username, "immutable_id": identity.id, "via": ctx.via, **details},
            at=_utcnow(),
        )
        batch = _BATCH.get()
        if batch is None:
            self.log.record_events([decision])
        else:
            batch.append(decision)

    @contextmanager
    def one_audit_write(self) -> Iterator[None]:
        """The decisions recorded inside the block (a password sign-in and the issuance it led
        to) are written together, in one database write, when the block ends, well or not."""
        if _BATCH.get() is not None:  # already inside one
            yield
            return
        batch: list[Decision] = []
        token = _BATCH.set(batch)
        try:
            yield
        finally:
            _BATCH.reset(token)
            if batch and self.log is not None:
                self.log.record_events(batch)

    def _decide(
        self,
        action: str,
        identity: Identity,
        ctx: DecisionContext,
        target: str | None,
        step: Callable[[Identity, dict[str, Any]], Any],
    ) -> Any:
        """Run ``step`` on the directory's current view of ``identity``; audit allow or deny/error."""
        details: dict[str, Any] = {}
        try:
            current = self.current_identity(identity)
            details["groups"] = list(current.groups)
            result = step(current, details)
        except BrokerError as exc:
            outcome = "error" if exc.status >= 500 else "deny"
            details |= {"code": exc.code, "reason": getattr(exc, "reason", None) or exc.message}
            if isinstance(exc.details, dict):
                details["error_details"] = exc.details
            self._record(ctx, action, identity, outcome=outcome, target=target, details=details)
            raise
        self._record(ctx, action, current, outcome="allow", target=target, details=details)
        return result

    @staticmethod
    def _describe(grant: RoleGrant, duration: int) -> dict[str, Any]:
        return {
            "account_id": grant.account_id,
            "role_arn": grant.role_arn,
            "federation_path": grant.federation_path,
            "granted_by": [r._asdict() for r in grant.reasons],
            "duration": duration,
        }

    # -- the decisions --

    def admit(self, identity: Identity, *, ctx: DecisionContext, action: str, check: Callable[[Identity], _T]) -> _T:
        """A decision on the person rather than on a role (the admin API's directory admins):
        ``check`` sees the directory's current view of ``identity`` and raises to refuse;
        audited either way, with the groups it saw."""
        return self._decide(action, identity, ctx, None, lambda current, _details: check(current))

    def credentials(
        self, *, identity: Identity, account: str, role: str, duration: int | None = None, ctx: DecisionContext
    ) -> Issued:
        """Temporary credentials for the command line (channel "cli")."""

        def step(current: Identity, details: dict[str, Any]) -> Issued:
            grant = self._grant(self.grants_for(current.groups), account, role)
            seconds = clamp_duration(grant=grant, channel="cli", requested=duration)
            details |= self._describe(grant, seconds)
            creds = self._assume(current, grant, seconds, self.clock())
            details["access_key_id"] = creds.access_key_id
            return Issued(creds, grant, seconds)

        return self._decide("issue.credentials", identity, ctx, f"{account}/{role}", step)

    def console(
        self,
        *,
        identity: Identity,
        account: str,
        role: str,
        service: str | None = None,
        region: str | None = None,
        duration: int | None = None,
        ctx: DecisionContext,
    ) -> ConsoleLink:
        """A console sign-in URL (15 minutes): deliver by 302, never log it."""
        if service is not None:
            check_console_service(service)
        if region is not None and not REGION.match(region):
            raise InvalidInput("region is an AWS region name such as eu-west-1")

        def step(current: Identity, details: dict[str, Any]) -> ConsoleLink:
            grant = self._grant(self.grants_for(current.groups), account, role)
            if region is not None:
                partition(grant.partition).check_console_region(region, account_region=grant.region)
            seconds = clamp_duration(grant=grant, channel="console", requested=duration)
            details |= self._describe(grant, seconds)
            now = self.clock()
            creds = self._assume(current, grant, seconds, now)
            details["access_key_id"] = creds.access_key_id
            destination = partition(grant.partition).console_url(region=region or grant.region, service=service)
            details["destination"] = destination
            return self.aws.signin.console_link(
                credentials=creds, partition_name=grant.partition, destination=destination, session_duration=seconds, now=now
            )

        return self._decide("issue.console", identity, ctx, f"{account}/{role}", step)
