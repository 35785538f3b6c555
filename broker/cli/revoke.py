"""`broker revoke`: end sessions already issued, in AWS and in the broker — the emergency step
when credentials leaked or a person must lose access now.

AWS side: on every affected role, the inline policy ``BrokerRevokeOlderSessions``
(``broker.aws.revoke``) denies everything to sessions issued before now — all of them, or one
person's. Broker side (``--user``): that person's portal sessions, CLI logins and approved device
codes end (``broker.logins``), so no new session comes from a login made before.

Which roles: ``--role ARN`` (a mapped role), ``--account ID|alias`` (every declared role there),
``--user NAME`` (every role the person reaches now, from the directory's groups and the mapping;
when that cannot be told, every declared role: a deny scoped to one person harms no one else).

Without ``apply`` nothing is written anywhere: IAM is only read (GetRolePolicy, to show the policy
as it would be after the merge). IAM is reached like ``broker doctor`` does (``revoke:`` section,
``broker.aws.iam_access``); a problem in one account is that account's, the others proceed.
With ``apply`` one audit event records who ran it, the scope, the time and every role's outcome.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from broker.audit import AuditContext, AuditFilter, Decision
from broker.aws.iam_access import AccessProblem, IamAccess, access_problem
from broker.aws.revoke import POLICY_NAME, Person, merge, revocation_time
from broker.aws.trust import role_grant
from broker.cli.aws_setup import mapping_snapshot
from broker.cli.existing_database import existing_store
from broker.config import Config
from broker.connectors.base import InspectConnector, LookupConnector
from broker.connectors.registry import build_connector
from broker.domain import Identity
from broker.errors import BrokerError, DirectoryUnavailable, InvalidInput, UnknownAccount, UnknownRole
from broker.logins import end_logins
from broker.mapping.rules import resolve
from broker.mapping.snapshot import AccountRecord, MappingSnapshot
from broker.state import open_state

Scope = Literal["user", "role", "account"]
ACTION = "sessions.revoke"
_ROLE_ARN = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):role(/(?:[\x21-\x7e]*/)?)([\w+=,.@-]{1,64})$")
_WRITE_FIX = "let the revoke role (revoke.assume_role) call iam:GetRolePolicy and iam:PutRolePolicy on the mapped roles"


@dataclass(frozen=True)
class Target:
    account: AccountRecord
    role_name: str
    role_arn: str


@dataclass
class Plan:
    scope: Scope
    subject: str
    """What was asked for: the username, the role ARN or the account."""
    before: datetime
    """Sessions issued before this time are revoked (``revocation_time``)."""
    targets: list[Target]
    person: Person | None = None
    notes: list[str] = field(default_factory=list)


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


# ---- which roles ----


def _declared(snapshot: MappingSnapshot, account: AccountRecord) -> list[Target]:
    roles = sorted((r for (a, _), r in snapshot.roles.items() if a == account.id), key=lambda r: r.name.lower())
    return [Target(account, r.name, role_grant(account, r).role_arn) for r in roles]


def _every_declared(snapshot: MappingSnapshot) -> list[Target]:
    return [t for acc_id in sorted(snapshot.accounts) for t in _declared(snapshot, snapshot.accounts[acc_id])]


def _role_targets(snapshot: MappingSnapshot, arn: str) -> list[Target]:
    m = _ROLE_ARN.match(arn)
    if m is None:
        raise InvalidInput(f"--role takes a role ARN (arn:aws:iam::123456789012:role/Name), not {arn!r}")
    account = snapshot.accounts.get(m[2])
    if account is None or account.partition != m[1]:
        raise UnknownAccount(f"account {m[2]} ({m[1]}) is not registered in the mapping: {arn} is not a mapped role")
    declared = _declared(snapshot, account)
    for t in declared:
        if t.role_arn.lower() == arn.lower():
            return [t]
    known = ", ".join(t.role_name for t in declared) or "none"
    raise UnknownRole(f"{arn} is not a mapped role (declared in {account.alias or account.id}: {known})")


def _account_targets(snapshot: MappingSnapshot, ref: str) -> list[Target]:
    account = snapshot.account(ref)
    if account is None:
        known = ", ".join(sorted(a.alias or a.id for a in snapshot.accounts.values())) or "none"
        raise UnknownAccount(f"no account {ref!r} is registered in the mapping (known: {known})")
    targets = _declared(snapshot, account)
    if not targets:
        raise UnknownRole(f"account {ref} declares no roles: there is nothing to revoke")
    return targets


def _directory_person(config: Config, username: str) -> tuple[Identity | None, str | None]:
    """The person as the directory has them (a disabled account too, where the directory can
    inspect), or None and why not."""
    d = config.directory
    if d is None:
        return None, "there is no directory: section"
    try:
        connector = build_connector(d)
        try:
            if isinstance(connector, InspectConnector):
                found = connector.inspect(username)
                identity = None if found is None else found.identity
            elif isinstance(connector, LookupConnector):
                identity = connector.lookup(username)
            else:
                return None, f"the {d.type} directory cannot look people up"
        finally:
            connector.close()
    except DirectoryUnavailable as exc:
        return None, f"the directory {d.name!r} cannot be reached ({exc.message})"
    if identity is None:
        return None, f"the directory {d.name!r} has no account {username!r}"
    return identity, None


def _recorded_id(config: Config, username: str) -> str | None:
    """The immutable id of the person's latest sign-in in the audit trail, if the database has one."""
    with existing_store(config) as store:
        if isinstance(store, str):
            return None
        try:
            events = store.audit_events(AuditFilter(actor=f"user:{username}"), limit=100, before_id=None)
        except BrokerError:
            return None
    for event in events:
        found = (event.get("details") or {}).get("immutable_id")
        if isinstance(found, str) and found:
            return found
    return None


def _user_plan(config: Config, snapshot: MappingSnapshot, username: str, immutable_id: str | None,
               before: datetime) -> Plan:
    identity, why = _directory_person(config, username)
    notes: list[str] = []
    targets: list[Target] = []
    if identity is not None:
        username = identity.username
        grants = resolve(identity.groups, snapshot).grants
        targets = [Target(snapshot.accounts[g.account_id], g.role_name, g.role_arn) for g in grants]
        if not targets:
            why = f"{username} reaches no role now (their groups give none)"
    if not targets:
        targets = _every_declared(snapshot)
        notes.append(f"{why}: every declared role gets the revocation, scoped to {username}'s sessions "
                     "(it denies no one else)")
    if immutable_id is None and identity is not None:
        immutable_id = identity.id
    if immutable_id is None and any(t.account.federation_path == "saml" for t in targets):
        immutable_id = _recorded_id(config, username)
        if immutable_id is None:
            raise InvalidInput(
                f"cannot tell {username}'s SourceIdentity: {why} and the audit trail has no sign-in of theirs; "
                "give --id IMMUTABLE_ID (the directory's immutable id: `broker check-directory` shows it)"
            )
        notes.append(f"{username}'s immutable id {immutable_id} comes from their latest sign-in in the audit trail")
    return Plan("user", username, before, targets, Person(username, immutable_id), notes)


def plan_revocation(config: Config, *, user: str | None = None, role: str | None = None,
                    account: str | None = None, immutable_id: str | None = None,
                    now: datetime | None = None) -> Plan:
    """Exactly one of ``user``, ``role``, ``account``; raises the ``BrokerError`` that says what is wrong."""
    if sum(x is not None for x in (user, role, account)) != 1:
        raise InvalidInput("give exactly one of --user, --role and --account")
    if immutable_id is not None and user is None:
        raise InvalidInput("--id goes with --user")
    before = revocation_time(now or datetime.now(UTC))
    snapshot, note = mapping_snapshot(config)
    if user is not None:
        plan = _user_plan(config, snapshot, user, immutable_id, before)
    elif role is not None:
        plan = Plan("role", role, before, _role_targets(snapshot, role))
    else:
        assert account is not None
        plan = Plan("account", account, before, _account_targets(snapshot, account))
    if note:
        plan.notes.insert(0, note)
    return plan


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


def _account(access: IamAccess, account: AccountRecord, targets: list[Target], plan: Plan,
             apply: bool) -> AccountOutcome:
    outcome = AccountOutcome(account)
    match = plan.person.match(account.federation_path) if plan.person is not None else None
    try:
        client = access.client(account.id, account.partition)
    except AccessProblem as problem:
        outcome.problem = problem
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
            outcome.problem = found or AccessProblem("access.failed", account.id, f"{doing} failed: {exc}",
                                                       "run it again")
            if outcome.problem.code == "access.denied":
                outcome.problem.fix = _WRITE_FIX
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
        match = person.match(outcome.account.federation_path) if person is not None else None
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
    if config.state.backend == "memory":
        result.errors.append("state.backend is memory: the portal sessions and CLI logins live inside the running "
                             "server, out of this command's reach; restart it to end every login")
        return
    try:
        result.logins_ended = end_logins(open_state(config.state), username)
    except BrokerError as exc:
        result.errors.append(f"the portal sessions and CLI logins were not ended: {exc.message}")


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
