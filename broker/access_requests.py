"""Just-in-time access decisions: a request for an eligible role, its approval or denial, its
withdrawal, the early end of its grant, its expiry (the sweep) and the listings.

``AccessRequests`` sequences each of them on the ``Flow``'s decision machinery: ``Flow._decide``
(the directory's current view of the person, the audit event of allow or refusal), its audit
writer and clock; the issuance's own check of a grant (``Flow._within_grant``) stays in the flow.
Every change is one conditional update of the request store, and its notification
(``broker.jit.notes``, for the policy's ``notify:`` webhooks) is queued in the same transaction.

The expiry sweep (``sweep``, every ``jit.sweep_seconds`` on every replica) records approved
grants whose end has passed and pending requests older than their policy's ``pending_expiry`` as
``expired``; the conditional update makes exactly one replica record each (one audit event, one
notification). Listings run the same ``_expire`` on what they show, so nobody sees a stale state
between two sweeps.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from broker.decisions.log import DecisionContext, decision, outcome_of, refusal_details
from broker.domain import Identity, RoleGrant
from broker.errors import (
    AlreadyApproved,
    BadRequest,
    BrokerError,
    Conflict,
    GrantNotActive,
    NotApprover,
    NotEligible,
    RequestExists,
    RequestNotPending,
    SelfApproval,
    UnknownRequest,
)
from broker.jit import NoteFor, RequestStore, grant_ends
from broker.jit.checks import approval, check_request
from broker.jit.notes import access_note
from broker.jit.policy import AccessPolicy
from broker.jit.requests import AccessRequest, NewRequest, rfc3339
from broker.notify import Notification

if TYPE_CHECKING:
    from broker.flow import Flow

__all__ = ["AccessRequests"]

SWEEP_LIMIT = 500
"""Rows of each kind one sweep pass looks at."""
SWEEP = DecisionContext(via="sweep")
"""The expiry sweep's decisions: no request, no address; the actor is ``broker``."""


class AccessRequests:
    def __init__(self, flow: Flow, *, public_url: str = "") -> None:
        self.flow = flow
        self.public_url = public_url
        """The broker's address, for the links in notifications (``server.public_url``)."""

    @property
    def policies(self) -> Mapping[str, AccessPolicy]:
        return self.flow.policies

    def _request_store(self) -> RequestStore:
        if self.flow.requests is None:
            raise BadRequest("just-in-time access is not available here")
        return self.flow.requests

    def _policy_of(self, grant: RoleGrant) -> tuple[str, AccessPolicy]:
        for name in grant.policies:
            policy = self.policies.get(name)
            if policy is not None:
                return name, policy
        raise NotEligible("the role's access policy is not configured: ask an administrator", reason="unknown_policy")

    # ---- notifications ----

    def _alias(self, account_id: str) -> str | None:
        try:
            alias = self.flow.store.get_account(account_id).get("alias")
        except BrokerError:
            return None
        return str(alias) if alias else None

    def _note(self, event: str, account_id: str, *, by: str | None = None, extra: dict[str, Any] | None = None,
              alias: str | None = None) -> NoteFor:
        """The notification of ``event`` for the changed request's policy's webhooks (none: no note)."""
        webhooks = {name: p.notify for name, p in self.policies.items() if p.notify}
        if not webhooks:
            return lambda _req: None
        alias = alias or self._alias(account_id)

        def note(req: AccessRequest) -> tuple[list[str], Notification] | None:
            hooks = webhooks.get(req.policy)
            if not hooks:
                return None
            return hooks, access_note(event, req, public_url=self.public_url, alias=alias, by=by, extra=extra)

        return note

    @staticmethod
    def _decided(note: NoteFor) -> NoteFor:
        """``note`` once the request is decided (an approval of several still pending: nothing yet)."""
        return lambda req: note(req) if req.state != "pending" else None

    # ---- expiry: the sweep, and listings on what they show ----

    def _expire(self, req: AccessRequest, ctx: DecisionContext) -> AccessRequest:
        """``req`` as it is now, recorded as expired first when it is due to (listings)."""
        if not self._due(req):
            return req
        return self._expired(req, ctx) or self._request_store().get(req.id) or req  # or another replica did

    def _due(self, req: AccessRequest) -> bool:
        """Approved past its end, or pending longer than its policy's ``pending_expiry``."""
        now = self.flow.clock()
        policy = self.policies.get(req.policy)
        return req.lapsed(now) or (req.state == "pending" and policy is not None
                                   and req.created_at + timedelta(seconds=policy.pending_expiry) <= now)

    def _expired(self, req: AccessRequest, ctx: DecisionContext) -> AccessRequest | None:
        """``req`` recorded as expired by this call when it is due to; else None. Of replicas at
        once, one conditional update wins: only it writes the audit event and queues the notification."""
        if not self._due(req):
            return None
        now = self.flow.clock()
        stale = req.state == "pending"
        was = req.state
        extra = {"was": was}
        expired = self._request_store().update(req, state="expired", note=self._note("access.expire", req.account_id,
                                                                                      by="broker", extra=extra),
                                               **({"decided_at": now, "decided_by": "broker"} if stale else {}))
        if expired is None:
            return None
        self.flow.audit.write(decision(ctx, "access.expire", None, outcome="allow", target_type="access_request",
                                       target_id=str(req.id), actor="broker",
                                       details={"requester": req.requester, "account_id": req.account_id,
                                                "role_name": req.role_name, "ends_at": rfc3339(req.ends_at),
                                                "was": was}),
                              required=False)
        return expired

    def sweep(self) -> int:
        """One pass of the expiry sweep: how many requests this replica recorded as expired."""
        store = self.flow.requests
        if store is None or not self.policies:
            return 0
        now = self.flow.clock()
        shortest = min(p.pending_expiry for p in self.policies.values())
        found = [*store.lapsed(now, limit=SWEEP_LIMIT),
                 *store.pending_since(now - timedelta(seconds=shortest), limit=SWEEP_LIMIT)]
        return sum(1 for r in found if self._expired(r, SWEEP) is not None)

    # ---- the decisions ----

    @staticmethod
    def _about(req: AccessRequest) -> dict[str, Any]:
        return {"request_id": req.id, "requester": req.requester, "account_id": req.account_id,
                "role_name": req.role_name, "policy": req.policy}

    def request_access(self, *, identity: Identity, account: str, role: str, duration: int | str | None,
                       reason: str | None, ticket: str | None, ctx: DecisionContext) -> AccessRequest:
        """A request for an eligible role: the person's groups now, the role's policy (duration,
        reason, ticket), at most one pending request or active grant per role; approved at once
        when the policy's auto-approval holds. Audited ``access.request`` (and ``access.approve``),
        notified ``access.request`` (pending) or ``access.approve`` (approved at once)."""
        store = self._request_store()
        flow = self.flow

        def step(current: Identity, details: dict[str, Any]) -> AccessRequest:
            wanted = account.lower()
            grant = next((g for g in flow.grants_for(current.groups).grants
                          if (g.account_id == account or (g.account_alias or "").lower() == wanted)
                          and g.role_name.lower() == role.lower()), None)
            if grant is None or not grant.eligible:
                why = "standing" if grant is not None else "not_mapped"
                raise NotEligible(
                    f"you already have role {role!r} in account {account!r}: no request is needed" if grant is not None
                    else f"you are not eligible to request role {role!r} in account {account!r}", reason=why)
            name, policy = self._policy_of(grant)
            seconds, text, tid = check_request(policy, duration=duration, reason=reason, ticket=ticket)
            now = flow.clock()
            details |= {"account_id": grant.account_id, "role_name": grant.role_name, "policy": name,
                        "duration": seconds, "reason": text, "ticket": tid}
            held = [r for r in store.of_requester(current.id) if r.account_id == grant.account_id
                    and r.role_name.lower() == grant.role_name.lower() and (r.state == "pending" or r.active(now))]
            if held:
                raise RequestExists(details=[{"field": "role", "value": held[0].id,
                                              "message": f"request {held[0].id} is {held[0].state}"}])
            auto = policy.auto_approve.why(current.groups, now) if policy.auto_approve is not None else None
            alias = grant.account_alias
            req = store.create(NewRequest(
                requester_id=current.id, requester=current.username, account_id=grant.account_id,
                role_name=grant.role_name, policy=name, reason=text, ticket=tid, duration=seconds,
                approvals_needed=policy.approvals, created_at=now),
                note=None if auto is not None else self._note("access.request", grant.account_id, alias=alias))
            details["request_id"] = req.id
            earlier = [r for r in store.of_requester(current.id) if r.id < req.id and r.account_id == req.account_id
                       and r.role_name.lower() == req.role_name.lower() and (r.state == "pending" or r.active(now))]
            if earlier:  # two requests at once: the first one stands, this one is withdrawn
                store.update(req, state="cancelled", decided_at=now, decided_by="broker",
                             note=None if auto is not None else self._note("access.cancel", req.account_id,
                                                                            by="broker", alias=alias))
                raise RequestExists(details=[{"field": "role", "value": earlier[-1].id,
                                              "message": f"request {earlier[-1].id} is {earlier[-1].state}"}])
            if auto is not None:
                changes = approval(req, by="auto", by_id="", groups=[], now=now)
                changes |= {"state": "approved", "decided_by": "auto", "starts_at": now,
                            "ends_at": now + timedelta(seconds=seconds)}
                req = store.update(req, note=self._note("access.approve", req.account_id, by="auto", alias=alias,
                                                        extra={"auto_approved": auto}), **changes) or req
                details["auto_approved"] = auto
                flow.audit.write(decision(ctx, "access.approve", current, outcome="allow", target_type="access_request",
                                          target_id=str(req.id), actor="broker",
                                          details={**self._about(req), "auto_approved": auto,
                                                   "ends_at": rfc3339(req.ends_at)}))
            return req

        return flow._decide("access.request", identity, ctx, f"{account}/{role}", step)

    def _load(self, request_id: int) -> AccessRequest:
        req = self._request_store().get(request_id)
        if req is None:
            raise UnknownRequest()
        return req

    def decide_request(self, *, identity: Identity, request_id: int, choice: Literal["approve", "deny"],
                       ctx: DecisionContext) -> AccessRequest:
        """Approve or deny as the directory's current view of the approver: never one's own
        request, only while in an approver group of the request's policy (groups re-read now),
        each approver counted once; two at once: one conditional update wins, the other re-reads.
        Notified when the grant starts (``access.approve``) or the request is denied."""
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
                now = self.flow.clock()
                if choice == "deny":
                    changes: dict[str, Any] = {"state": "denied", "decided_at": now, "decided_by": current.username}
                else:
                    if req.approved_by(current.id):
                        raise AlreadyApproved()
                    changes = approval(req, by=current.username, by_id=current.id, groups=groups, now=now)
                event = "access.deny" if choice == "deny" else "access.approve"
                updated = store.update(req, note=self._decided(self._note(event, req.account_id, by=current.username)),
                                       **changes)
                if updated is not None:
                    details |= {"state": updated.state, "approvals": len(updated.approvals),
                                "ends_at": rfc3339(updated.ends_at)}
                    return updated
            raise Conflict("the request kept changing while you decided: reload and try again")

        return self.flow._decide(f"access.{choice}", identity, ctx, str(request_id), step,
                                 target_type="access_request", uncached=True)  # the approver's groups now, past the cache

    def cancel_request(self, *, identity: Identity, request_id: int, ctx: DecisionContext) -> AccessRequest:
        """The requester withdraws a pending request (notified ``access.cancel``)."""
        store = self._request_store()

        def step(current: Identity, details: dict[str, Any]) -> AccessRequest:
            req = self._load(request_id)
            details |= self._about(req)
            if req.requester_id != current.id:
                raise UnknownRequest()
            if req.state != "pending":
                raise RequestNotPending(f"request {req.id} is {req.state}")
            updated = store.update(req, state="cancelled", decided_at=self.flow.clock(), decided_by=current.username,
                                   note=self._note("access.cancel", req.account_id, by=current.username))
            if updated is None:
                raise RequestNotPending("the request changed meanwhile: reload")
            return updated

        return self.flow._decide("access.cancel", identity, ctx, str(request_id), step, target_type="access_request")

    def end_grant(self, *, identity: Identity | None, request_id: int, ctx: DecisionContext,
                  admin: str | None = None) -> AccessRequest:
        """End an active grant early: by an approver of its policy (groups re-read now), by the
        person themselves, or by an admin (``admin``: the admin API's actor, ``identity`` None).
        Later issuances are refused at once; sessions already issued run on (README: Emergency
        revocation). Notified ``access.end``."""
        store = self._request_store()
        clock = self.flow.clock

        def end(req: AccessRequest, by: str, details: dict[str, Any]) -> AccessRequest:
            details |= self._about(req)
            if not req.active(clock()):
                raise GrantNotActive(f"request {req.id} is {req.state}" + (" (its end has passed)" if req.lapsed(
                    clock()) else ""))
            updated = store.update(req, state="ended", ended_at=clock(), ended_by=by,
                                   note=self._note("access.end", req.account_id, by=by))
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
                self.flow.audit.write(decision(ctx, "access.end", None, outcome=outcome_of(exc), actor=admin,
                                               target_type="access_request", target_id=str(request_id),
                                               details=details | refusal_details(exc)))
                raise
            self.flow.audit.write(decision(ctx, "access.end", None, outcome="allow", actor=admin,
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

        return self.flow._decide("access.end", identity, ctx, str(request_id), step, target_type="access_request",
                                 uncached=True)  # an approver's groups as the directory says now, past the cache

    # ---- listings ----

    def active_grants(self) -> dict[tuple[str, str, str], str]:
        """The just-in-time grants active now, for the access report and explain:
        (person's immutable id, account id, lower-cased role name) → end (RFC 3339)."""
        return grant_ends(self.flow.requests, self.flow.clock())

    def grants_of(self, person_id: str) -> dict[tuple[str, str], AccessRequest]:
        """One person's active grants: (account id, lower-cased role name) → the request (the portal)."""
        if self.flow.requests is None:
            return {}
        now = self.flow.clock()
        return {(r.account_id, r.role_name.lower()): r for r in reversed(self.flow.requests.of_requester(person_id))
                if r.active(now)}

    def policy_max(self, grant: RoleGrant) -> int | None:
        """The longest grant a request for this eligible role may ask (None: no usable policy)."""
        try:
            return self._policy_of(grant)[1].max_duration
        except NotEligible:
            return None

    def list_requests(self, *, identity: Identity, ctx: DecisionContext) -> dict[str, list[dict[str, Any]]]:
        """The person's own requests, and the open ones they may decide or end (approver groups
        read from the directory now); what has expired meanwhile is recorded so first (``_expire``)."""
        store = self._request_store()
        current = self.flow.current_identity(identity)
        mine = [self._expire(r, ctx) for r in store.of_requester(current.id)]
        approvable = []
        for r in store.open():
            policy = self.policies.get(r.policy)
            if r.requester_id == current.id or policy is None or not policy.approver_groups_of(current.groups):
                continue
            r = self._expire(r, ctx)
            if r.state in ("pending", "approved"):
                approvable.append(r)
        now = self.flow.clock()

        def view(r: AccessRequest, approver: bool) -> dict[str, Any]:
            return {**r.to_dict(), "active": r.active(now),
                    "can_approve": approver and r.state == "pending" and not r.approved_by(current.id),
                    "can_end": r.active(now)}

        return {"mine": [view(r, False) for r in mine], "to_decide": [view(r, True) for r in approvable]}
