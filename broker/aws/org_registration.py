"""What AWS Organizations' inventory means for the mapping: the accounts to register (active,
in scope, not in the mapping yet), those registered but no longer active there, and those the
mapping has that the organization does not list (``broker org discover``).

Pure: it compares an ``OrgInventory`` with a ``MappingSnapshot`` and builds the ``AccountSpec``
each new account is registered with (``organizations.registration``). Nothing registered is
ever changed or removed by discovery: an account that left the organization or was suspended is
reported, and stays as a person made it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydantic import ValidationError

from broker.aws.config import OrgRegistration
from broker.aws.organizations import OrgAccount, OrgInventory
from broker.aws.partitions import PartitionName
from broker.mapping.model import ACCOUNT_ID, ALIAS, AccountSpec
from broker.mapping.snapshot import MappingSnapshot


@dataclass(frozen=True)
class NewAccount:
    account: OrgAccount
    spec: AccountSpec
    via: str
    """Why it is in scope: "OU ou-...", or "the organization"."""


@dataclass
class RegistrationPlan:
    new: list[NewAccount] = field(default_factory=list)
    registered: list[OrgAccount] = field(default_factory=list)
    inactive: list[OrgAccount] = field(default_factory=list)
    """Registered, but not ACTIVE in the organization (suspended, closing): still mapped."""
    out_of_scope: list[OrgAccount] = field(default_factory=list)
    """Active and unregistered, but under none of registration.ous."""
    unlisted: list[str] = field(default_factory=list)
    """Accounts of the mapping the organization does not list (another organization, or gone)."""
    invalid: dict[str, str] = field(default_factory=dict)
    """New accounts the registration template cannot make a valid account of: why."""


def _alias(name: str, taken: set[str]) -> str | None:
    """The account's name as an alias (``Shop Prod`` -> ``shop-prod``) when it makes a valid,
    unused one; otherwise none (the account is then named by its id)."""
    alias = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63].strip("-")
    if not ALIAS.match(alias) or ACCOUNT_ID.match(alias) or alias in taken:
        return None
    taken.add(alias)
    return alias


def _scope(account: OrgAccount, inventory: OrgInventory, ous: list[str]) -> str | None:
    if not ous:
        return "the organization"
    for ou in ous:
        if ou == inventory.root_id or ou in account.ou_path:
            return f"OU {ou}" if ou != inventory.root_id else f"root {ou}"
    return None


def plan_registration(inventory: OrgInventory, snapshot: MappingSnapshot,
                      registration: OrgRegistration | None, partition: PartitionName = "aws") -> RegistrationPlan:
    plan = RegistrationPlan()
    taken = set(snapshot.aliases)
    listed = {a.id for a in inventory.accounts}
    for account in inventory.accounts:
        if account.id in snapshot.accounts:
            (plan.registered if account.active else plan.inactive).append(account)
            continue
        if not account.active:
            continue
        via = _scope(account, inventory, registration.ous if registration else [])
        if via is None:
            plan.out_of_scope.append(account)
            continue
        template = registration or OrgRegistration()
        environment = account.tags.get(template.environment_tag) if template.environment_tag else None
        try:
            spec = AccountSpec(
                id=account.id, alias=_alias(account.name, taken), partition=partition, federation=template.federation,
                default_region=template.default_region, environment=(environment or None) and environment[:64],
                description=f"registered from AWS Organizations ({via}): {account.name}"[:1024],
                roles=list(template.roles),
            )
        except ValidationError as exc:
            plan.invalid[account.id] = "; ".join(f"[{e['type']}] {e['msg']}" for e in exc.errors())
            continue
        plan.new.append(NewAccount(account, spec, via))
    plan.unlisted = sorted(set(snapshot.accounts) - listed)
    return plan
