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
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from broker.aws.partitions import check_console_service, partition
from broker.aws.sts import clamp_duration
from broker.connectors.base import Connector, LookupConnector, PasswordConnector, SignIn
from broker.decisions.log import (
    AuditWriter,
    DecisionContext,
    DecisionLog,
    decision,
    outcome_of,
    refusal_details,
)
from broker.domain import ConsoleLink, Identity, RoleGrant, TemporaryCredentials
from broker.errors import (
    AlreadyApproved,
    BadRequest,
    BrokerError,
    Conflict,
    GrantNotActive,
    GrantRequired,
    InvalidCredentials,
    InvalidInput,
    NotApprover,
    NotEligible,
    NotFound,
    RequestExists,
    RequestNotPending,
    RoleNotGranted,
    SelfApproval,
    TooManyRequests,
    Unauthenticated,
    UnknownRequest,
)
from broker.jit import RequestStore
from broker.jit.checks import approval, check_request, session_within
from broker.jit.policy import AccessPolicy
from broker.jit.requests import AccessRequest, NewRequest, rfc3339
from broker.logs import get_logger
from broker.mapping.grants import Explanation, grants_for
from broker.mapping.model import REGION
from broker.mapping.rules import Resolution
from broker.mapping.store import MappingStore
from broker.mapping.suggest import not_granted_hint
from broker.minting.names import sts_names
from broker.oauth.device import DeviceAuthorization, DeviceFlow, PendingDevice
from broker.ratelimit import RateLimiter

if TYPE_CHECKING:
    from broker.aws.factory import Aws
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
    ) -> None:
        self.store = store
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
            details={"idp": idp, "protocol": protocol, "source": identity.source, "groups": list(identity.groups)},
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

    def start_device(self, *, client_id: str, user_agent: str | None, ctx: DecisionContext) -> DeviceAuthorization:
        """A new device code (§3.1-3.2), rate limited per address: starts count until completed."""
        self.limits.device_authorization(address=ctx.source_ip)
        return self.devices.authorize(client_id=client_id, address=ctx.source_ip, user_agent=user_agent)

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
        current = self._decide(action, identity, ctx, None, lambda current, _details: current, audit_allow=False)
        if not self.devices.decide(user_code, identity=current, approve=choice == "approve"):
            self.limits.user_code_failed(user=identity.username, address=ctx.source_ip)
            self.audit.write(decision(ctx, "device.decide", current, outcome="deny",
                                      details={"groups": list(current.groups), "code": "unknown_user_code"}))
            return "unknown_code"
        self.audit.write(decision(ctx, action, current, outcome="allow", details={"groups": list(current.groups)}))
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

    def explain(self, username: str, groups: Iterable[str] | None = None) -> Explanation:
        """Which roles ``username`` gets and why; without ``groups`` they are read from the directory."""
        if groups is not None:
            return Explanation(username, self.grants_for(groups))
        if self._lookup_directory is None:
            raise BadRequest("no directory is configured: give the groups to explain")
        identity = self._lookup_directory.lookup(username)
        if identity is None:
            raise NotFound("no active account of that name in the directory")
        active = {(a, r): ends for (person, a, r), ends in self.active_grants().items() if person == identity.id}
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
            "granted_by": [r.to_dict() for r in grant.reasons],
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
            grant = self._grant(self.grants_for(current.groups), account, role)
            seconds = self._within_grant(current, grant, clamp_duration(grant=grant, channel="cli", requested=duration),
                                         details)
            details |= self._describe(current, grant, seconds)
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
            seconds = self._within_grant(
                current, grant, clamp_duration(grant=grant, channel="console", requested=duration), details)
            details |= self._describe(current, grant, seconds)
            now = self.clock()
            creds = self._assume(current, grant, seconds, now)
            details["access_key_id"] = creds.access_key_id
            destination = partition(grant.partition).console_url(region=region or grant.region, service=service)
            details["destination"] = destination
            return self.aws.signin.console_link(
                credentials=creds, partition_name=grant.partition, destination=destination, session_duration=seconds, now=now
            )

        return self._decide("issue.console", identity, ctx, f"{account}/{role}", step)

    # ---- just-in-time access (broker.jit): requests, approvals, time-bound grants ----

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

    def _request_store(self) -> RequestStore:
        if self.requests is None:
            raise BadRequest("just-in-time access is not available here")
        return self.requests

    def _policy_of(self, grant: RoleGrant) -> tuple[str, AccessPolicy]:
        for name in grant.policies:
            policy = self.policies.get(name)
            if policy is not None:
                return name, policy
        raise NotEligible("the role's access policy is not configured: ask an administrator", reason="unknown_policy")

    def _expire(self, req: AccessRequest, ctx: DecisionContext) -> AccessRequest:
        """A grant whose end has passed, recorded as expired (lazily: when a listing notices it;
        issuance never needs it, it compares the end with the time)."""
        if not req.lapsed(self.clock()):
            return req
        expired = self._request_store().update(req, state="expired")
        if expired is None:
            return self._request_store().get(req.id) or req
        self.audit.write(decision(ctx, "access.expire", None, outcome="allow", target_type="access_request",
                                  target_id=str(req.id), actor="broker",
                                  details={"requester": req.requester, "account_id": req.account_id,
                                           "role_name": req.role_name, "ends_at": rfc3339(req.ends_at)}),
                         required=False)
        return expired

    @staticmethod
    def _about(req: AccessRequest) -> dict[str, Any]:
        return {"request_id": req.id, "requester": req.requester, "account_id": req.account_id,
                "role_name": req.role_name, "policy": req.policy}

    def request_access(self, *, identity: Identity, account: str, role: str, duration: int | str | None,
                       reason: str | None, ticket: str | None, ctx: DecisionContext) -> AccessRequest:
        """A request for an eligible role: the person's groups now, the role's policy (duration,
        reason, ticket), at most one pending request or active grant per role; approved at once
        when the policy's auto-approval holds. Audited ``access.request`` (and ``access.approve``)."""
        store = self._request_store()

        def step(current: Identity, details: dict[str, Any]) -> AccessRequest:
            wanted = account.lower()
            grant = next((g for g in self.grants_for(current.groups).grants
                          if (g.account_id == account or (g.account_alias or "").lower() == wanted)
                          and g.role_name.lower() == role.lower()), None)
            if grant is None or not grant.eligible:
                why = "standing" if grant is not None else "not_mapped"
                raise NotEligible(
                    f"you already have role {role!r} in account {account!r}: no request is needed" if grant is not None
                    else f"you are not eligible to request role {role!r} in account {account!r}", reason=why)
            name, policy = self._policy_of(grant)
            seconds, text, tid = check_request(policy, duration=duration, reason=reason, ticket=ticket)
            now = self.clock()
            details |= {"account_id": grant.account_id, "role_name": grant.role_name, "policy": name,
                        "duration": seconds, "reason": text, "ticket": tid}
            held = [r for r in store.of_requester(current.id) if r.account_id == grant.account_id
                    and r.role_name.lower() == grant.role_name.lower() and (r.state == "pending" or r.active(now))]
            if held:
                raise RequestExists(details=[{"field": "role", "value": held[0].id,
                                              "message": f"request {held[0].id} is {held[0].state}"}])
            req = store.create(NewRequest(
                requester_id=current.id, requester=current.username, account_id=grant.account_id,
                role_name=grant.role_name, policy=name, reason=text, ticket=tid, duration=seconds,
                approvals_needed=policy.approvals, created_at=now))
            details["request_id"] = req.id
            earlier = [r for r in store.of_requester(current.id) if r.id < req.id and r.account_id == req.account_id
                       and r.role_name.lower() == req.role_name.lower() and (r.state == "pending" or r.active(now))]
            if earlier:  # two requests at once: the first one stands, this one is withdrawn
                store.update(req, state="cancelled", decided_at=now, decided_by="broker")
                raise RequestExists(details=[{"field": "role", "value": earlier[-1].id,
                                              "message": f"request {earlier[-1].id} is {earlier[-1].state}"}])
            auto = policy.auto_approve.why(current.groups, now) if policy.auto_approve is not None else None
            if auto is not None:
                changes = approval(req, by="auto", by_id="", groups=[], now=now)
                changes |= {"state": "approved", "decided_by": "auto", "starts_at": now,
                            "ends_at": now + timedelta(seconds=seconds)}
                req = store.update(req, **changes) or req
                details["auto_approved"] = auto
                self.audit.write(decision(ctx, "access.approve", current, outcome="allow", target_type="access_request",
                                          target_id=str(req.id), actor="broker",
                                          details={**self._about(req), "auto_approved": auto,
                                                   "ends_at": rfc3339(req.ends_at)}))
            return req

        return self._decide("access.request", identity, ctx, f"{account}/{role}", step)

    def _load(self, request_id: int) -> AccessRequest:
        req = self._request_store().get(request_id)
        if req is None:
            raise UnknownRequest()
        return req

    def decide_request(self, *, identity: Identity, request_id: int, choice: Literal["approve", "deny"],
                       ctx: DecisionContext) -> AccessRequest:
        """Approve or deny as the directory's current view of the approver: never one's own
        request, only while in an approver group of the request's policy (groups re-read now),
        each approver counted once; two at once: one conditional update wins, the other re-reads."""
        store = self._request_store()

        def step(current: Identity, details: dict[str, Any]) -> AccessRequest:
            for _ in range(5):
                req = self._load(request_id)
                details |= self._about(req)
                if req.state != "pending":
                    raise RequestNotPending(f"request {req.id} is {req.state}")
                if req.requester_id == current.id:
                    raise SelfApproval()
                policy = self.policies.get(req.policy)
                groups = policy.approver_groups_of(current.groups) if policy is not None else []
                details["approver_groups"] = groups
                if not groups:
                    raise NotApprover()
                now = self.clock()
                if choice == "deny":
                    changes: dict[str, Any] = {"state": "denied", "decided_at": now, "decided_by": current.username}
                else:
                    if req.approved_by(current.id):
                        raise AlreadyApproved()
                    changes = approval(req, by=current.username, by_id=current.id, groups=groups, now=now)
                updated = store.update(req, **changes)
                if updated is not None:
                    details |= {"state": updated.state, "approvals": len(updated.approvals),
                                "ends_at": rfc3339(updated.ends_at)}
                    return updated
            raise Conflict("the request kept changing while you decided: reload and try again")

        return self._decide(f"access.{choice}", identity, ctx, str(request_id), step, target_type="access_request",
                            uncached=True)

    def cancel_request(self, *, identity: Identity, request_id: int, ctx: DecisionContext) -> AccessRequest:
        """The requester withdraws a pending request."""
        store = self._request_store()

        def step(current: Identity, details: dict[str, Any]) -> AccessRequest:
            req = self._load(request_id)
            details |= self._about(req)
            if req.requester_id != current.id:
                raise UnknownRequest()
            if req.state != "pending":
                raise RequestNotPending(f"request {req.id} is {req.state}")
            updated = store.update(req, state="cancelled", decided_at=self.clock(), decided_by=current.username)
            if updated is None:
                raise RequestNotPending("the request changed meanwhile: reload")
            return updated

        return self._decide("access.cancel", identity, ctx, str(request_id), step, target_type="access_request")

    def end_grant(self, *, identity: Identity | None, request_id: int, ctx: DecisionContext,
                  admin: str | None = None) -> AccessRequest:
        """End an active grant early: by an approver of its policy (groups re-read now), by the
        person themselves, or by an admin (``admin``: the admin API's actor, ``identity`` None).
        Later issuances are refused at once; sessions already issued run on (README: Emergency
        revocation)."""
        store = self._request_store()

        def end(req: AccessRequest, by: str, details: dict[str, Any]) -> AccessRequest:
            details |= self._about(req)
            if not req.active(self.clock()):
                raise GrantNotActive(f"request {req.id} is {req.state}" + (" (its end has passed)" if req.lapsed(
                    self.clock()) else ""))
            updated = store.update(req, state="ended", ended_at=self.clock(), ended_by=by)
            if updated is None:
                raise GrantNotActive("the grant changed meanwhile: reload")
            details["ended_by"] = by
            return updated

        if identity is None:
            assert admin is not None
            details: dict[str, Any] = {}
            try:
                result = end(self._load(request_id), admin, details)
            except BrokerError as exc:
                self.audit.write(decision(ctx, "access.end", None, outcome=outcome_of(exc), actor=admin,
                                          target_type="access_request", target_id=str(request_id),
                                          details=details | refusal_details(exc)))
                raise
            self.audit.write(decision(ctx, "access.end", None, outcome="allow", actor=admin,
                                      target_type="access_request", target_id=str(request_id), details=details))
            return result

        def step(current: Identity, details: dict[str, Any]) -> AccessRequest:
            req = self._load(request_id)
            if req.requester_id != current.id:
                policy = self.policies.get(req.policy)
                groups = policy.approver_groups_of(current.groups) if policy is not None else []
                details["approver_groups"] = groups
                if not groups:
                    raise NotApprover("only an approver of the role's policy, an admin or the person ends a grant")
            return end(req, current.username, details)

        return self._decide("access.end", identity, ctx, str(request_id), step, target_type="access_request",
                            uncached=True)

    def active_grants(self) -> dict[tuple[str, str, str], str]:
        """The just-in-time grants active now, for the access report and explain:
        (person's immutable id, account id, lower-cased role name) → end (RFC 3339)."""
        if self.requests is None:
            return {}
        out: dict[tuple[str, str, str], str] = {}
        for r in self.requests.active_grants(self.clock()):  # ordered by end: the latest wins
            out[(r.requester_id, r.account_id, r.role_name.lower())] = rfc3339(r.ends_at) or ""
        return out

    def grants_of(self, person_id: str) -> dict[tuple[str, str], AccessRequest]:
        """One person's active grants: (account id, lower-cased role name) → the request (the portal)."""
        if self.requests is None:
            return {}
        now = self.clock()
        return {(r.account_id, r.role_name.lower()): r for r in reversed(self.requests.of_requester(person_id))
                if r.active(now)}

    def policy_max(self, grant: RoleGrant) -> int | None:
        """The longest grant a request for this eligible role may ask (None: no usable policy)."""
        try:
            return self._policy_of(grant)[1].max_duration
        except NotEligible:
            return None

    def list_requests(self, *, identity: Identity, ctx: DecisionContext) -> dict[str, list[dict[str, Any]]]:
        """The person's own requests, and the open ones they may decide or end (approver groups
        read from the directory now); grants whose end has passed are recorded as expired."""
        store = self._request_store()
        current = self.current_identity(identity)
        mine = [self._expire(r, ctx) for r in store.of_requester(current.id)]
        approvable = []
        for r in store.open():
            policy = self.policies.get(r.policy)
            if r.requester_id == current.id or policy is None or not policy.approver_groups_of(current.groups):
                continue
            r = self._expire(r, ctx)
            if r.state in ("pending", "approved"):
                approvable.append(r)
        now = self.clock()

        def view(r: AccessRequest, approver: bool) -> dict[str, Any]:
            return {**r.to_dict(), "active": r.active(now),
                    "can_approve": approver and r.state == "pending" and not r.approved_by(current.id),
                    "can_end": r.active(now)}

        return {"mine": [view(r, False) for r in mine], "to_decide": [view(r, True) for r in approvable]}
