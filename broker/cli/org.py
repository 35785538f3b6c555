"""`broker org discover`: the accounts AWS Organizations lists against the mapping, and on
``--apply`` the new ones registered (``organizations.registration``) and the placement of every
registered account recorded (its OU path and tags: what mappings and rules with ``accounts:``
resolve against), audited.

Read-only towards AWS (``broker.aws.organizations``). Without ``--apply`` nothing changes
anywhere; with it, each new account is created through the mapping store like an admin API
create (same validation, one audit event each, actor ``discovery:<who ran it>``), then one
``organizations.discover`` event records the run, with the placement changes (accounts placed
for the first time, moved to another OU, retagged).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from broker.audit import AuditContext, Decision
from broker.aws.org_registration import RegistrationPlan, plan_registration
from broker.aws.organizations import discover
from broker.cli.aws_setup import mapping_snapshot
from broker.cli.existing_database import existing_store
from broker.config import Config
from broker.errors import BrokerError
from broker.mapping.org_targets import Placement, PlacementChanges

ACTION = "organizations.discover"


class CannotRun(Exception):
    """The command cannot run as asked (a missing section or database): what to do instead."""


@dataclass
class Discovery:
    plan: RegistrationPlan
    applied: bool = False
    registered: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    placements: PlacementChanges | None = None
    """--apply: how the recorded placements changed (what OU/tag mappings and rules resolve against)."""

    @property
    def ok(self) -> bool:
        return not self.failed and not self.plan.invalid

    def lines(self) -> list[str]:
        p = self.plan
        out = [f"{len(p.registered)} account(s) of the organization are in the mapping"]
        verb = "registered" if self.applied else "would register (--apply)"
        for new in p.new:
            if new.account.id in self.failed:
                out.append(f"✘ {new.account.id} {new.account.name}: {self.failed[new.account.id]}")
            else:
                alias = f" as {new.spec.alias}" if new.spec.alias else ""
                out.append(f"+ {new.account.id} {new.account.name}{alias}: {verb}, via {new.via}, "
                           f"roles {', '.join(r.name for r in new.spec.roles) or 'none'}")
        out += [f"✘ {account}: the registration template cannot make it an account: {why}"
                for account, why in p.invalid.items()]
        out += [f"! {a.id} {a.name}: {a.status.lower()} in the organization, still in the mapping" for a in p.inactive]
        out += [f"- {a.id} {a.name}: under none of organizations.registration.ous" for a in p.out_of_scope]
        out += [f"? {account}: in the mapping, not listed by the organization" for account in p.unlisted]
        if self.placements is not None:
            c = self.placements
            out += [f"@ {account}: placed (OU and tag mappings now reach it)" for account in c.placed]
            out += [f"@ {account}: moved from {m['from']} to {m['to']}" for account, m in c.moved.items()]
            out += [f"@ {account}: tags {_tags(t['from'])} -> {_tags(t['to'])}" for account, t in c.retagged.items()]
            out += [f"@ {account}: no longer in the organization: OU and tag mappings no longer reach it"
                    for account in c.removed]
        return out


def _tags(tags: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(tags.items())) or "none"


def org_discover(config: Config, *, apply: bool, actor: str) -> Discovery:
    """Raises ``CannotRun`` (no section, or --apply without registration / a usable database)
    and ``broker.aws.iam_access.AccessProblem`` (AWS Organizations could not be read)."""
    org = config.organizations
    if org is None:
        raise CannotRun("no organizations: section in the configuration")
    if apply and org.registration is None:
        raise CannotRun("organizations.registration is not configured: discovery only reports")
    inventory = discover(org)
    if not apply:
        snapshot, note = mapping_snapshot(config)
        return Discovery(plan_registration(inventory, snapshot, org.registration, org.partition),
                         notes=[note] if note else [])
    with existing_store(config) as store:
        if isinstance(store, str):
            raise CannotRun(f"--apply needs the broker's database: {store}")
        result = Discovery(plan_registration(inventory, store.full_snapshot(), org.registration, org.partition),
                           applied=True)
        ctx = AuditContext(actor=f"discovery:{actor}")
        for new in result.plan.new:
            try:
                store.create_account(new.spec, ctx)
            except BrokerError as exc:
                result.failed[new.account.id] = f"[{exc.code}] {exc.message}"
            else:
                result.registered.append(new.account.id)
        result.placements = store.record_placements(
            [Placement(a.id, (inventory.root_id, *a.ou_path), dict(a.tags)) for a in inventory.accounts]
        )
        store.record_events([Decision(ctx, ACTION, "allow" if result.ok else "error", target_type="organization",
                                      target_id=org.management_account, details=_details(result))])
    return result


def _details(result: Discovery) -> dict[str, Any]:
    p = result.plan
    return {"registered": result.registered, "failed": {**p.invalid, **result.failed},
            "via": {n.account.id: n.via for n in p.new if n.account.id in result.registered},
            "inactive": [a.id for a in p.inactive], "unlisted": p.unlisted,
            "out_of_scope": [a.id for a in p.out_of_scope],
            "placements": result.placements.to_dict() if result.placements is not None else None}

