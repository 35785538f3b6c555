"""`broker revoke`: end sessions already issued, in AWS and in the broker — the emergency step
when credentials leaked or a person must lose access now.

AWS side: on every affected role, the inline policy ``BrokerRevokeOlderSessions``
(``broker.aws.revoke``) denies everything to sessions issued before now — all of them, or one
person's. Broker side (``--user``): that person's portal sessions, CLI logins and approved device
codes end (``broker.logins``), so no new session comes from a login made before.

Which roles, and whose sessions: ``broker.cli.revoke_targets``.

Without ``apply`` nothing is written anywhere: IAM is only read (GetRolePolicy, to show the policy
as it would be after the merge). IAM is reached like ``broker doctor`` does (``revoke:`` section,
``broker.aws.iam_access``); a problem in one account is that account's, the others proceed.
With ``apply`` one audit event records who ran it, the scope, the time and every role's outcome.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from broker.audit import AuditContext, Decision
from broker.aws.iam_access import AccessProblem, IamAccess, access_problem
from broker.aws.revoke import POLICY_NAME, merge, revocation_time
from broker.cli.existing_database import existing_store
from broker.cli.revoke_targets import Plan, Target
from broker.config import Config
from broker.db.durable_state import DatabaseState
from broker.errors import BrokerError
from broker.logins import end_logins
from broker.mapping.snapshot import AccountRecord
from broker.state import open_state

ACTION = "sessions.revoke"
_FIXES = {
    "access.denied": ("let the identity this command runs as assume revoke.assume_role's role in the account, and "
                      "that role call iam:GetRolePolicy and iam:PutRolePolicy on the mapped roles"),
    "access.wrong_account": ("set revoke.assume_role (arn:aws:iam::{account}:role/BrokerRevoke) to reach every "
                             "account, or run with credentials of this account"),
}
"""The fixes ``broker.aws.iam_access`` gives name the doctor's read-only role; revoke writes."""


@dataclass
class RoleOutcome:
    role_arn: str
    policy: dict[str, Any] | None
    """The policy written (or, dry run, that would be); None when it could not be."""
    error: str | None = None


@dataclass
class AccountOutcome:
    account: AccountRecord
    roles: list[RoleOutcome] = field(default_factory=list)
    problem: AccessProblem | None = None

    @property
    def label(self) -> str:
        a = self.account
        return f"{a.alias} ({a.id})" if a.alias else a.id

    @property
    def ok(self) -> bool:
        return self.problem is None and all(r.error is None for r in self.roles)


@dataclass
class Result:
    plan: Plan
    applied: bool
    accounts: list[AccountOutcome]
    logins_ended: int | None = None
    """--user with --apply: how many of the person's logins the broker ended (None: not done)."""
    errors: list[str] = field(default_factory=list)
    """Broker-side failures (state store, audit trail)."""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and all(a.ok for a in self.accounts)


# ---- writing ----


def _current(client: Any, role_name: str) -> dict[str, Any] | None:
    try:
        document = client.get_role_policy(RoleName=role_name, PolicyName=POLICY_NAME)["PolicyDocument"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchEntity":
            return None
        raise
    return json.loads(document) if isinstance(document, str) else dict(document)


def _refused(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    code = error.get("Code", "")
    if code == "NoSuchEntity":
        return "the role does not exist in the account (`broker doctor` checks every mapped role)"
    return f"IAM refused: {code}: {error.get('Message', '')}".rstrip(": ")


def _revoke_fix(problem: AccessProblem) -> AccessProblem:
    problem.fix = _FIXES.get(problem.code, problem.fix)
    return problem


def _account(access: IamAccess, account: AccountRecord, targets: list[Target], plan: Plan,
             apply: bool) -> AccountOutcome:
    outcome = AccountOutcome(account)
    match = plan.person.match() if plan.person is not None else None
    try:
        client = access.client(account.id, account.partition)
    except AccessProblem as problem:
        outcome.problem = _revoke_fix(problem)
        return outcome
    for t in targets:
        doing = "GetRolePolicy"
        try:
            document = merge(_current(client, t.role_name), plan.before, match, role=t.role_arn)
            if apply:
                doing = "PutRolePolicy"
                client.put_role_policy(RoleName=t.role_name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(document))
        except BrokerError as exc:
            outcome.roles.append(RoleOutcome(t.role_arn, None, exc.message))
            continue
        except (ClientError, BotoCoreError) as exc:
            found = access_problem(exc, account.id, f"{doing} on {t.role_name}")
            if found is None and isinstance(exc, ClientError):  # about this role: NoSuchEntity, LimitExceeded, ...
                outcome.roles.append(RoleOutcome(t.role_arn, None, _refused(exc)))
                continue
            outcome.problem = _revoke_fix(found or AccessProblem("access.failed", account.id, f"{doing} failed: {exc}",
                                                                 "run it again"))
            return outcome
        outcome.roles.append(RoleOutcome(t.role_arn, document))
    return outcome


def _show_unread(result: Result, by_account: dict[str, list[Target]]) -> None:
    """Dry run: where IAM could not be read, the policy as written on a role without one (the
    merge with what the role has is not shown)."""
    person = result.plan.person
    for outcome in result.accounts:
        if outcome.problem is None:
            continue
        done = {r.role_arn for r in outcome.roles}
        match = person.match() if person is not None else None
        outcome.roles += [RoleOutcome(t.role_arn, merge(None, result.plan.before, match))
                          for t in by_account[outcome.account.id] if t.role_arn not in done]
        result.notes.append(f"{outcome.label}: IAM could not be read; its policies are shown as written on a role "
                            f"without {POLICY_NAME} (an existing one would be merged)")


def _audit(config: Config, result: Result, actor: str) -> str | None:
    """One event for the whole revocation; the reason it could not be written, or None."""
    plan = result.plan
    details: dict[str, Any] = {
        "scope": plan.scope,
        "issued_before": plan.before.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "revoked": [r.role_arn for a in result.accounts for r in a.roles if r.error is None and a.problem is None],
        "failed": {a.account.id: (a.problem.reason if a.problem else "; ".join(
            f"{r.role_arn}: {r.error}" for r in a.roles if r.error)) for a in result.accounts if not a.ok},
    }
    if plan.person is not None:
        details |= {"user": plan.person.username, "immutable_id": plan.person.immutable_id,
                    "logins_ended": result.logins_ended}
    event = Decision(AuditContext(actor=f"operator:{actor}"), ACTION, "allow" if result.ok else "error",
                     target_type=plan.scope, target_id=plan.subject, details=details)
    with existing_store(config) as store:
        if isinstance(store, str):
            return store
        try:
            store.record_events([event])
        except BrokerError as exc:
            return exc.message
    return None


def _end_logins(config: Config, username: str, result: Result) -> None:
    ended = 0
    if config.state.durable == "database":  # the CLI logins (broker.db.durable_state)
        with existing_store(config) as store:
            if isinstance(store, str):
                result.errors.append(f"the CLI logins were not ended: {store}")
            else:
                try:
                    ended += end_logins(DatabaseState(store.engine), username)
                except BrokerError as exc:
                    result.errors.append(f"the CLI logins were not ended: {exc.message}")
    if config.state.backend == "memory":
        result.errors.append("state.backend is memory: the portal sessions and approved device codes live inside "
                             "the running server, out of this command's reach; restart it to end them")
    else:
        try:
            ended += end_logins(open_state(config.state), username)
        except BrokerError as exc:
            result.errors.append(f"the portal sessions and device codes were not ended: {exc.message}")
    result.logins_ended = ended


def revoke(config: Config, plan: Plan, *, apply: bool, actor: str) -> Result:
    """Carry out ``plan`` (``apply``) or show what it would write; never raises for one account's problem.

    The person's logins in the broker end first and the time is taken after that, so that no CLI
    login of theirs fetches credentials issued after the time while the policies are written."""
    result = Result(plan, apply, [])
    if apply and plan.person is not None:
        _end_logins(config, plan.person.username, result)
        plan.before = revocation_time(datetime.now(UTC))
    access = IamAccess(config.revoke, session_name="broker-revoke")
    by_account: dict[str, list[Target]] = {}
    for t in plan.targets:
        by_account.setdefault(t.account.id, []).append(t)
    result.accounts = [_account(access, ts[0].account, ts, plan, apply) for _, ts in sorted(by_account.items())]
    if not apply:
        _show_unread(result, by_account)
        return result
    problem = _audit(config, result, actor)
    if problem is not None:
        result.errors.append(f"the audit event was not written: {problem}")
    return result


# ---- output ----


def lines(result: Result) -> list[str]:
    """What a person reads: per account and role, the policy written (or that would be)."""
    plan = result.plan
    who = {"user": f"sessions of {plan.subject}", "role": f"every session of {plan.subject}",
           "account": f"every session of the declared roles of account {plan.subject}"}[plan.scope]
    stamp = plan.before.strftime("%Y-%m-%dT%H:%M:%SZ")
    out = [f"revoke {who} issued before {stamp}"
           + ("" if result.applied else " (dry run: nothing is changed; --apply writes)")]
    out += [f"note: {n}" for n in plan.notes + result.notes]
    for a in result.accounts:
        out.append(f"account {a.label}")
        for r in a.roles:
            if r.error is not None:
                out.append(f"  ✘ {r.role_arn}: {r.error}")
                continue
            verb = "wrote" if result.applied else "would write"
            out.append(f"  {'✔ ' if result.applied else ''}{r.role_arn}: {verb} {POLICY_NAME}")
            if not result.applied:
                out += ["    " + line for line in json.dumps(r.policy, indent=2).splitlines()]
        if a.problem is not None:
            p = a.problem
            out.append(f"  ✘ [{p.code}] {p.reason} (fix: {p.fix})")
    if plan.person is not None:
        if not result.applied:
            out.append(f"broker: would end {plan.subject}'s portal sessions, CLI logins and approved device codes")
        elif result.logins_ended is not None:
            out.append(f"broker: ended {result.logins_ended} portal session(s), CLI login(s) and approved "
                       f"device code(s) of {plan.subject}")
    out += [f"✘ {e}" for e in result.errors]
    if result.applied:
        out.append("sessions issued from now on are not affected; the README says how to remove the policy later")
    return out
