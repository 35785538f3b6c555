"""Which roles `broker revoke` acts on, and for whom: ``--role ARN`` (a role the mapping
declares), ``--account ID|alias`` (every role declared there), ``--user NAME`` (every role the
person reaches now: their directory groups through the mapping, as ``broker check-directory``
resolves them). When the roles a person reaches cannot be told (no directory, the directory
unreachable, the account gone from it, no role reachable now), every declared role: a deny
scoped to one person harms no one else.

The person's SourceIdentity comes from the directory's immutable id, else from their latest
sign-in in the audit trail, else from ``--id``; web identity roles need none (their sessions are
matched by the RoleSessionName, from the username).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from broker.audit import AuditFilter
from broker.aws.revoke import Person, revocation_time
from broker.aws.trust import role_grant
from broker.cli.aws_setup import mapping_snapshot
from broker.cli.existing_database import existing_store
from broker.config import Config
from broker.connectors.base import InspectConnector, LookupConnector
from broker.connectors.registry import build_connector
from broker.domain import Identity
from broker.errors import BrokerError, DirectoryUnavailable, InvalidInput, UnknownAccount, UnknownRole
from broker.mapping.rules import resolve
from broker.mapping.snapshot import AccountRecord, MappingSnapshot

Scope = Literal["user", "role", "account"]
_ROLE_ARN = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):role(/(?:[\x21-\x7e]*/)?)([\w+=,.@-]{1,64})$")


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


def _declared(snapshot: MappingSnapshot, account: AccountRecord) -> list[Target]:
    roles = snapshot.account_roles(account.id)
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
    # Every declared role, not only those the person reaches now: the sessions that matter most
    # are on roles whose groups were just taken away (the README's first step), and a deny scoped
    # to one person's sessions denies no one else.
    targets = _every_declared(snapshot)
    if identity is not None:
        username = identity.username
        now = sorted({f"{g.account_id}/{g.role_name}" for g in resolve(identity.groups, snapshot).grants})
        reach = f"reaches {', '.join(now)} now" if now else "reaches no role now"
        notes.append(f"{username} {reach}; every declared role gets the revocation (sessions issued before the "
                     f"groups were removed run on otherwise), scoped to {username}'s sessions: it denies no one else")
    else:
        notes.append(f"{why}: every declared role gets the revocation, scoped to {username}'s sessions "
                     "(it denies no one else)")
    if immutable_id is None and identity is not None:
        immutable_id = identity.id
    if immutable_id is None:
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
