"""The decision flow: the one module that sequences a decision.

    authenticate → current identity (directory re-read) → groups → grants → mint → STS → deliver

Every decision is here: a password sign-in with its rate limits (the portal form, the OAuth
password grant, HTTP Basic on the user and admin APIs), an upstream sign-in (SAML / OIDC), a
device-login approval (RFC 8628), an admin sign-in, and each issuance. Each writes one audit
event of one shape (``broker.decisions.log``) per decision (allow, deny or error): who (username
and immutable id), which account and role, the mapping or rule that granted it, a snapshot of
the groups, the source address, the duration and the access key id — never a secret. Routers
only translate HTTP to these calls and their answers back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from broker.aws.partitions import check_console_service, partition
from broker.aws.sts import clamp_duration
from broker.break_glass import BREAK_GLASS_SOURCE, NAME_PREFIX
from broker.connectors.base import Connector, LookupConnector, PasswordConnector, SignIn
from broker.decisions.log import (
    AuditWriter,
    DecisionContext,
    DecisionLog,
    decision,
    outcome_of,
    refusal_details,
)
from broker.domain import Channel, ConsoleLink, Identity, RoleGrant, TemporaryCredentials
from broker.errors import (
    BadRequest,
    BrokerError,
    GrantRequired,
    InvalidCredentials,
    InvalidInput,
    MfaCodeReused,
    MfaRequired,
    NotFound,
    RoleNotGranted,
    TooManyRequests,
    Unauthenticated,
)
from broker.jit import RequestStore, grant_ends
from broker.jit.checks import session_within
from broker.jit.policy import AccessPolicy
from broker.jit.requests import rfc3339
from broker.logs import get_logger
from broker.mapping.grants import Explanation, grants_for
from broker.mapping.model import REGION
from broker.mapping.rules import Resolution
from broker.mapping.store import MappingStore
from broker.mapping.suggest import not_granted_hint
from broker.mfa import fresh, within_mfa
from broker.mfa import rfc3339 as rfc3339_epoch
from broker.minting.names import sts_names
from broker.oauth.device import DeviceAuthorization, DeviceFlow, PendingDevice
from broker.ratelimit import RateLimiter

if TYPE_CHECKING:
    from broker.aws.factory import Aws
    from broker.break_glass.accounts import BreakGlass
    from broker.minting.factory import Minting

__all__ = ["DecisionContext", "DecisionLog", "DeviceOutcome", "Explanation", "Flow", "Issued"]

log = get_logger("broker.flow")


@dataclass(frozen=True)
class Issued:
    credentials: TemporaryCredentials
    grant: RoleGrant
    duration: int


DeviceOutcome = Literal["approved", "denied", "unknown_code", "no_choice"]
"""What became of a device-login decision: ``no_choice`` when neither approve nor deny was asked."""

_T = TypeVar("_T")


def _utcnow() -> datetime:
    return datetime.now(UTC)


FRESH_SIGN_IN_SECONDS = 5.0
"""How long the identity a password sign-in returned counts as the directory's current view for
the one issuance of the same request (HTTP Basic: sign-in and issuance in one call)."""
_FRESH_MAX = 4096


class Flow:
    """The decision sequence. Built once by create_app with the store, the directory (None: no
    directory is configured, a real configuration), the signers (keys parsed once), the STS
    gateway (one client per partition and region), the audit log, the rate limits and the
    pending device logins."""

    def __init__(
        self,
        *,
        store: MappingStore,
        directory: Connector | None,
        minting: Minting,
        aws: Aws,
        log: DecisionLog,
        limits: RateLimiter,
        devices: DeviceFlow,
        clock: Callable[[], datetime] = _utcnow,
        requests: RequestStore | None = None,
        policies: Mapping[str, AccessPolicy] | None = None,
        break_glass: BreakGlass | None = None,
        mfa_default_max_age: int = 43200,
        step_up_url: str = "/mfa/step-up",
    ) -> None:
        self.store = store
        self.break_glass = break_glass
        """Break-glass accounts (``break_glass:``); None: none are configured."""
        self.mfa_default_max_age = mfa_default_max_age
        """What ``require_mfa: true`` accepts (config ``mfa.default_max_age``)."""
        self.step_up_url = step_up_url
        """Where a person steps up (``{public_url}/mfa/step-up``), in ``mfa_required``'s details."""
        self.requests = requests
        """Access requests and their time-bound grants (None: eligible roles are never issued)."""
        self.policies: Mapping[str, AccessPolicy] = policies or {}
        # What the directory can do, decided once: isinstance against a runtime Protocol walks
        # its members on every call, and these checks sit on every issuance.
        self._directory = directory
        self._password_directory = directory if isinstance(directory, PasswordConnector) else None
        self._lookup_directory = directory if isinstance(directory, LookupConnector) else None
        self.minting = minting
        self.aws = aws
        self.audit = AuditWriter(log)
        self.limits = limits
        self.devices = devices
        self.clock = clock
        # Identities a password sign-in has just read from the directory, by object id, each
        # usable once by current_identity instead of a second directory read in the same request.
        self._fresh: dict[int, tuple[Identity, float]] = {}
        self._fresh_lock = threading.Lock()

    @property
    def directory(self) -> Connector | None:
        """The configured directory (None: none is); set once, at construction."""
        return self._directory

    def grants_for(self, groups: Iterable[str]) -> Resolution:
        return grants_for(self.store, groups)

    def roles_of(self, identity: Identity) -> Resolution:
        """The roles of a person as the directory's current view (``current_identity``) gives them:
        their groups' grants, or a break-glass account's listed roles (nothing from any group)."""
        if self.break_glass is not None and self.break_glass.account_of(identity) is not None:
            return self.break_glass.resolution(identity)
        return self.grants_for(identity.groups)

    @contextmanager
    def one_audit_write(self) -> Iterator[None]:
        """The decisions recorded inside the block (a password sign-in and the issuance it led
        to) are written together, in one database write, when the block ends, well or not."""
        with self.audit.one_write():
            yield

    # ---- who: a password sign-in ----

    def authenticate(self, username: str, password: str) -> Identity:
        """A directory password check, no more (no rate limit, no audit): InvalidCredentials (one
        answer) or DirectoryUnavailable. Every door signs in with ``sign_in``."""
        if self._password_directory is None:
            raise BadRequest("no password directory is configured")
        result = self._password_directory.login(username, password)
        if isinstance(result, InvalidCredentials):
            raise result
        return result

    def login_key(self, username: str) -> str:
        """What rate limits count a password sign-in against: the account the typed name stands
        for in the password directory (``PasswordConnector.login_key``)."""
        if self._password_directory is None:
            return username.strip().casefold()
        return self._password_directory.login_key(username)

    def sign_in(self, username: str, password: str, *, ctx: DecisionContext) -> Identity:
        """The password sign-in of every door: malformed input refused, the rate limits (per
        account and per address), the directory, then the decision in the audit log (the
        password never is). One answer, InvalidCredentials, for every wrong case."""
        if not username or len(username) > 256 or len(password) > 1024:
            raise InvalidCredentials(reason="malformed")
        account = self.login_key(username)
        try:
            self.limits.check_login(username=account, address=ctx.source_ip)
        except TooManyRequests as exc:
            if self.limits.first_refusal(username=account, address=ctx.source_ip):
                self._sign_in_refused(username, exc, ctx=ctx)  # audited once per window, not per attempt
            raise
        try:
            identity = self.authenticate(username, password)
        except BrokerError as exc:
            if isinstance(exc, InvalidCredentials):
                self.limits.login_failed(username=account, address=ctx.source_ip)
            self._sign_in_refused(username, exc, ctx=ctx)
            raise
        self.audit.write(decision(ctx, "login", identity, outcome="allow", details={"source": identity.source}))
        self._remember_fresh(identity)
        self.limits.login_succeeded(username=account, address=ctx.source_ip)
        return identity

    def _sign_in_refused(self, username: str, exc: BrokerError, *, ctx: DecisionContext) -> None:
        """A password sign-in refused, in the audit log: by the directory, or before it was asked
        (a rate limit). Who: the name as typed (no immutable id is known)."""
        who = Identity(id="", username=username[:256])
        self.audit.write(decision(ctx, "login", who, outcome=outcome_of(exc),
                                  details=refusal_details(exc, otherwise=exc.code)))

    def admin_sign_in(self, username: str, password: str, *, ctx: DecisionContext,
                      check: Callable[[Identity], _T]) -> _T:
        """HTTP Basic on the admin API: the password sign-in of every other door, then the
        admin-group decision (``check`` raises to refuse), audited too; one audit write."""
        with self.one_audit_write():
            identity = self.sign_in(username, password, ctx=ctx)
            return self.admit(identity, ctx=ctx, action="admin.sign_in", check=check)

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

    # ---- who: an upstream identity provider ----

    def upstream_sign_in(
        self,
        *,
        idp: str,
        protocol: str | None,
        ctx: DecisionContext,
        verify: Callable[[], SignIn],
        establish: Callable[[SignIn], _T],
        refuse: Callable[[BrokerError], _T],
    ) -> _T:
        """A sign-in through an upstream IdP: ``verify`` (the connector checks the IdP's answer),
        then ``establish`` (the session); a refusal of either is audited and answered by
        ``refuse``. No sign-in without its audit event: a failed write of the allow raises."""
        try:
            signed_in = verify()
            result = establish(signed_in)
        except BrokerError as exc:
            return refuse(self.upstream_refused(idp=idp, protocol=protocol, ctx=ctx, error=exc))
        identity = signed_in.identity
        log.info("upstream_sign_in", idp=idp, outcome="allow", code=None, reason=None)
        self.audit.write(decision(
            ctx, "login", identity, outcome="allow", target_type="identity_provider", target_id=idp,
            details={"idp": idp, "protocol": protocol, "source": identity.source, "groups": list(identity.groups),
                     **({"mfa_at": rfc3339_epoch(identity.mfa_at), "mfa_methods": list(identity.mfa_methods)}
                        if identity.mfa_at is not None else {})},
        ))
        return result

    def upstream_refused(self, *, idp: str, protocol: str | None, ctx: DecisionContext,
                         error: BrokerError) -> BrokerError:
        """An upstream sign-in refused (also before the connector saw it: an unreadable form), in
        the audit log as ``upstream:<idp>``; a failed write of it is logged, not raised."""
        details = {"idp": idp, "protocol": protocol, **refusal_details(error)}
        outcome = outcome_of(error)
        log.info("upstream_sign_in", idp=idp, outcome=outcome, code=details["code"], reason=details["reason"])
        self.audit.write(decision(ctx, "login", None, outcome=outcome, target_type="identity_provider",
                                  target_id=idp, details=details, actor=f"upstream:{idp}"), required=False)
        return error

    # ---- a device login (RFC 8628: the CLI starts it, the person approves on /device, the CLI polls) ----

    def start_device(self, *, client_id: str, user_agent: str | None, ctx: DecisionContext,
                     mfa: bool = False) -> DeviceAuthorization:
        """A new device code (§3.1-3.2), rate limited per address: starts count until completed.
        ``mfa``: the login is approved only with a fresh step-up (``decide_device``)."""
        self.limits.device_authorization(address=ctx.source_ip)
        return self.devices.authorize(client_id=client_id, address=ctx.source_ip, user_agent=user_agent, mfa=mfa)

    def complete_device(self, *, device_code: str, client_id: str, ctx: DecisionContext) -> Identity:
        """The identity a poll finds approved (§3.4-3.5; else the RFC error to answer); once
        completed, its start no longer counts against the address."""
        identity = self.devices.poll(device_code=device_code, client_id=client_id)
        self.limits.device_login_completed(address=ctx.source_ip)
        return identity

    def device_code(self, identity: Identity, user_code: str, *, ctx: DecisionContext) -> PendingDevice | None:
        """The pending login a typed code names, for its confirmation page (nothing is decided):
        rate limited per person and address, an unknown code counted as a guess."""
        self.limits.check_user_code(user=identity.username, address=ctx.source_ip)
        pending = self.devices.pending(user_code)
        if pending is None:
            self.limits.user_code_failed(user=identity.username, address=ctx.source_ip)
        return pending

    def decide_device(self, identity: Identity, user_code: str, choice: str, *, ctx: DecisionContext) -> DeviceOutcome:
        """Approve or deny the device login of ``user_code`` as the directory's current view of
        ``identity`` (a disabled account approves nothing); audited either way."""
        self.limits.check_user_code(user=identity.username, address=ctx.source_ip)
        if choice not in ("approve", "deny"):
            return "no_choice"
        action = f"device.{choice}"
        pending = self.devices.pending(user_code) if choice == "approve" else None

        def step(current: Identity, details: dict[str, Any]) -> Identity:
            if pending is not None and pending.mfa:  # the CLI asked for MFA: a fresh step-up first
                details["mfa"] = True
                if not fresh(current, now=self.clock().timestamp()):
                    raise MfaRequired("this command-line login asks for a second factor: step up first",
                                      details=[{"field": "step_up_url", "code": "mfa_required",
                                                "value": self.step_up_url, "message": "step up, then approve"}])
                return current
            # a login that did not ask for MFA gets none of the browser's: a phished device code
            # approved after a step-up must not carry it (the CLI asks with mfa=required when it needs it)
            return replace(current, mfa_at=None, mfa_methods=())

        current = self._decide(action, identity, ctx, None, step, audit_allow=False)
        if not self.devices.decide(user_code, identity=current, approve=choice == "approve"):
            self.limits.user_code_failed(user=identity.username, address=ctx.source_ip)
            self.audit.write(decision(ctx, "device.decide", current, outcome="deny",
                                      details={"groups": list(current.groups), "code": "unknown_user_code"}))
            return "unknown_code"
        details: dict[str, Any] = {"groups": list(current.groups)}
        if pending is not None and pending.mfa:
            details |= {"mfa": True, "mfa_at": rfc3339_epoch(current.mfa_at), "mfa_methods": list(current.mfa_methods)}
        self.audit.write(decision(ctx, action, current, outcome="allow", details=details))
        return "approved" if choice == "approve" else "denied"

    # ---- the directory's view now ----

    def current_identity(self, identity: Identity, *, uncached: bool = False) -> Identity:
        """At every issuance: the account and its groups as the directory says *now*.

        A disabled, locked, expired or deleted account, or a username that now belongs to
        another account (another immutable id), gets nothing. Groups come through the group
        cache (``directory.cache.ttl_seconds``), so a removed membership stops issuance at once
        or within that TTL; ``uncached`` (an approver deciding) reads them from the directory now.
        Identities from other sources (upstream IdPs) pass unchanged.
        When the same request signed in with a password (HTTP Basic), that sign-in was this
        read: the identity it returned is used as is, once, within ``FRESH_SIGN_IN_SECONDS``.
        A sign-in past the end its source gave it (``Identity.valid_until``) gets nothing.
        """
        if identity.valid_until is not None and self.clock().timestamp() >= identity.valid_until:
            raise Unauthenticated("your sign-in has reached the end your identity provider set for it: sign in again")
        if identity.source == BREAK_GLASS_SOURCE:
            if self.break_glass is None or self.break_glass.account_of(identity) is None:
                raise Unauthenticated("this break-glass account is no longer configured: sign in again")
            return identity
        directory = self._lookup_directory
        if directory is None or identity.source != directory.name:
            return identity
        if self._take_fresh(identity):  # this request's own sign-in read the directory a moment ago
            return identity
        fresh = directory.lookup(identity.username, uncached=uncached)
        if fresh is None or fresh.id != identity.id:
            raise Unauthenticated("the directory no longer accepts this account: sign in again")
        if identity.valid_until is None and identity.mfa_at is None:
            return fresh
        # What the sign-in itself established (its end, its second factor) is not the directory's to change.
        return replace(fresh, valid_until=identity.valid_until, mfa_at=identity.mfa_at,
                       mfa_methods=identity.mfa_methods)

    def person(self, username: str, *, none: str = "nobody can be looked up") -> Identity:
        """The directory's active account of ``username`` (its immutable id): NotFound when there is
        none; BadRequest (``none`` says what to do) when no directory is configured."""
        if self._lookup_directory is None:
            raise BadRequest(f"no directory is configured: {none}")
        identity = self._lookup_directory.lookup(username)
        if identity is None:
            raise NotFound("no active account of that name in the directory")
        return identity

    def explain(self, username: str, groups: Iterable[str] | None = None) -> Explanation:
        """Which roles ``username`` gets and why; without ``groups`` they are read from the directory."""
        if groups is not None:
            return Explanation(username, self.grants_for(groups))
        identity = self.person(username, none="give the groups to explain")
        active = {(a, r): ends for (person, a, r), ends in grant_ends(self.requests, self.clock()).items()
                  if person == identity.id}
        return Explanation(username, self.grants_for(identity.groups), identity, active)

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
        if grant.federation_path == "saml":
            saml = self.minting.saml.aws_response(identity=identity, grants=[grant], session_duration=duration, now=now)
            return self.aws.sts.assume_with_saml(grant=grant, saml_assertion=saml.encoded, duration=duration)
        audience = grant.audience or partition(grant.partition).oidc_audience
        token = self.minting.oidc.id_token(identity=identity, audience=audience, now=now)
        return self.aws.sts.assume_with_web_identity(
            grant=grant,
            token=token,
            session_name=sts_names(username=identity.username, immutable_id=identity.id).role_session_name,
            duration=duration,
        )

    def _decide(
        self,
        action: str,
        identity: Identity,
        ctx: DecisionContext,
        target: str | None,
        step: Callable[[Identity, dict[str, Any]], _T],
        *,
        audit_allow: bool = True,
        target_type: str = "role",
        uncached: bool = False,
    ) -> _T:
        """Run ``step`` on the directory's current view of ``identity``; audit allow (unless the
        caller writes it, ``audit_allow`` False) or deny/error."""
        details: dict[str, Any] = {}
        kind = target_type if target else None
        try:
            current = self.current_identity(identity, uncached=uncached)
            details["groups"] = list(current.groups)
            result = step(current, details)
        except BrokerError as exc:
            details |= refusal_details(exc)
            if isinstance(exc.details, dict):
                details["error_details"] = exc.details
            self.audit.write(decision(ctx, action, identity, outcome=outcome_of(exc), target_type=kind,
                                      target_id=target, details=details))
            raise
        if audit_allow:
            self.audit.write(decision(ctx, action, current, outcome="allow", target_type=kind,
                                      target_id=target, details=details))
        return result

    @staticmethod
    def _describe(identity: Identity, grant: RoleGrant, duration: int) -> dict[str, Any]:
        """An issuance's audit details, with the RoleSessionName and SourceIdentity sent to STS
        (what CloudTrail records for the session: the README's correlation queries join on them)."""
        names = sts_names(username=identity.username, immutable_id=identity.id)
        return {
            "account_id": grant.account_id,
            "role_arn": grant.role_arn,
            "federation_path": grant.federation_path,
            "granted_by": [r.to_dict() for r in grant.in_force],
            "duration": duration,
            "role_session_name": names.role_session_name,
            "source_identity": names.source_identity,
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
            grant = self._grant(self.roles_of(current), account, role)
            seconds = self._within_grant(current, grant, clamp_duration(grant=grant, channel="cli", requested=duration),
                                         details)
            seconds = self._with_mfa(current, grant, "cli", seconds, details)
            details |= self._describe(current, grant, seconds)
            creds = self._assume(current, grant, seconds, self.clock())
            details["access_key_id"] = creds.access_key_id
            self._break_glass_issued(current, grant, "credentials", details, ctx)
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
            grant = self._grant(self.roles_of(current), account, role)
            if region is not None:
                partition(grant.partition).check_console_region(region, account_region=grant.region)
            seconds = self._within_grant(
                current, grant, clamp_duration(grant=grant, channel="console", requested=duration), details)
            seconds = self._with_mfa(current, grant, "console", seconds, details)
            details |= self._describe(current, grant, seconds)
            now = self.clock()
            creds = self._assume(current, grant, seconds, now)
            details["access_key_id"] = creds.access_key_id
            destination = partition(grant.partition).console_url(region=region or grant.region, service=service)
            details["destination"] = destination
            link = self.aws.signin.console_link(
                credentials=creds, partition_name=grant.partition, destination=destination, session_duration=seconds, now=now
            )
            self._break_glass_issued(current, grant, "console", details, ctx)
            return link

        return self._decide("issue.console", identity, ctx, f"{account}/{role}", step)

    # ---- break-glass accounts (broker.break_glass) ----

    def break_glass_sign_in(self, username: str, password: str, code: str, *, ctx: DecisionContext) -> Identity:
        """A break-glass sign-in: malformed input refused, the rate limits (per account and per
        address, as ``sign_in``), the availability rule (``when``), then the password (the same
        work for an unknown name) and the TOTP code (once only). Audited ``break_glass.sign_in`` either
        way; a success is also logged at WARNING, counted and alerted. InvalidCredentials (one
        answer) for a wrong name, password or code; MfaCodeReused; BreakGlassUnavailable."""
        bg = self.break_glass
        if bg is None:
            raise NotFound("break-glass sign-in is not configured here")
        if not username.strip() or len(username) > 256 or len(password) > 1024 or len(code) > 16:
            raise self._break_glass_refused(username, InvalidCredentials(reason="malformed"), ctx=ctx)
        key = bg.login_key(username)
        try:
            self.limits.check_login(username=key, address=ctx.source_ip)
        except TooManyRequests as exc:
            # audited once per window, not per attempt; logged and counted each time
            raise self._break_glass_refused(username, exc, ctx=ctx,
                                            audit=self.limits.first_refusal(username=key, address=ctx.source_ip)) from None
        try:  # first: while closed, no password is checked (no 64 MiB hash) and no code is used up
            why = bg.check_available()
        except BrokerError as exc:
            raise self._break_glass_refused(username, exc, ctx=ctx) from None
        now = self.clock().timestamp()
        try:
            account = bg.check_password(username, password)
            bg.check_code(account, code, at=now)
        except (InvalidCredentials, MfaCodeReused) as exc:
            self.limits.login_failed(username=key, address=ctx.source_ip)
            raise self._break_glass_refused(username, exc, ctx=ctx) from None
        identity = bg.identity(account, at=now)
        self.audit.write(decision(ctx, "break_glass.sign_in", identity, outcome="allow",
                                  details={"source": BREAK_GLASS_SOURCE, "open_because": why,
                                           "roles": [f"{r.account}/{r.role}" for r in account.roles],
                                           "session_ends_at": rfc3339(datetime.fromtimestamp(now + bg.config.session_seconds, UTC))}))
        self.limits.login_succeeded(username=key, address=ctx.source_ip)
        bg.used(identity, what="sign_in", address=ctx.source_ip, at=now, why=why)
        return identity

    def _break_glass_refused(self, username: str, exc: BrokerError, *, ctx: DecisionContext,
                             audit: bool = True) -> BrokerError:
        """A refused break-glass sign-in: logged, counted and (``audit``) audited; no alert. Who:
        ``break-glass-<the name as typed>`` (no immutable id is known). Returns ``exc`` to raise."""
        assert self.break_glass is not None
        self.break_glass.refused(username, code=exc.code, reason=exc.reason, address=ctx.source_ip)
        if audit:
            self.audit.write(decision(ctx, "break_glass.sign_in", Identity(id="", username=NAME_PREFIX + username.strip()[:200]),
                                      outcome=outcome_of(exc),
                                      details={"source": BREAK_GLASS_SOURCE, **refusal_details(exc, otherwise=exc.code)}))
        return exc

    def _break_glass_issued(self, current: Identity, grant: RoleGrant, what: str, details: dict[str, Any],
                            ctx: DecisionContext) -> None:
        """An issuance to a break-glass account: marked in its audit event, logged, counted, alerted."""
        if self.break_glass is None or current.source != BREAK_GLASS_SOURCE:
            return
        details["break_glass"] = True
        self.break_glass.used(current, what=what, address=ctx.source_ip, at=self.clock().timestamp(),
                              account=grant.account_alias or grant.account_id, role=grant.role_name)

    def _with_mfa(self, current: Identity, grant: RoleGrant, channel: Channel, seconds: int,
                  details: dict[str, Any]) -> int:
        """Step-up MFA (``require_mfa`` / ``mfa_max_age``, the least demanding reason wins): a
        second factor of this sign-in young enough, and no session that outlives its max age."""
        return within_mfa(current, max_age=grant.mfa_max_age(channel, self.mfa_default_max_age),
                          now=self.clock().timestamp(), seconds=seconds, step_up_url=self.step_up_url,
                          details=details)

    # ---- just-in-time access (broker.jit): the issuance under a grant (the requests: broker.access_requests) ----

    def _within_grant(self, current: Identity, grant: RoleGrant, seconds: int, details: dict[str, Any]) -> int:
        """An eligible role is issued only under the person's active approved grant, re-read at
        every issuance like a group membership, and no session outlives the grant."""
        if not grant.eligible:
            return seconds
        now = self.clock()
        active = None if self.requests is None else self.requests.active_grant(
            current.id, grant.account_id, grant.role_name, now)
        if active is None:
            account = grant.account_alias or grant.account_id
            raise GrantRequired(
                f"role {grant.role_name!r} in account {account!r} is eligible, not standing: request it "
                f"(awsbroker request -a {account} -r {grant.role_name} --reason \"...\" --duration 1h, or the "
                "portal's Request access) and have it approved",
                details=[{"field": "role", "code": "eligible", "message": "request the role first"}],
            )
        details["access_request"] = active.id
        details["grant_ends_at"] = rfc3339(active.ends_at)
        return session_within(active, seconds=seconds, now=now)
