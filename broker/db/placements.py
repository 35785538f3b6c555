"""The placements ``broker org discover --apply`` records: where AWS Organizations has each
registered account (its parent, the OU path from the root, its tags) and, derived from it, the
targets it is under (``org_placement_targets``, what resolution looks up).

Discovered data, rewritten by every discovery (``found`` is the whole organization: discovery
never returns a partial inventory): an account that moved or was retagged is covered by the
OU/tag mappings of where it is now; a registered account the organization no longer lists loses
its placement (it is in none of its OUs), never its registration. The changes are listed for
the audit event. A placement goes with its account (deleting an account deletes it).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from broker.db.models import Account, OrgPlacement, OrgPlacementTarget, utcnow
from broker.mapping.org_targets import Placement, PlacementChanges, placement_targets

__all__ = ["Placement", "PlacementChanges", "record_placements"]


def record_placements(s: Session, *, found: Sequence[Placement]) -> PlacementChanges:
    changes = PlacementChanges()
    registered = set(s.scalars(select(Account.id).where(Account.id.in_([p.account_id for p in found]))))
    stored = {
        p.account_id: p
        for p in s.scalars(select(OrgPlacement).where(OrgPlacement.account_id.in_(registered)))
    }
    now = utcnow()
    for p in sorted(found, key=lambda p: p.account_id):
        if p.account_id not in registered:
            changes.unregistered.append(p.account_id)
            continue
        parent = p.ou_path[-1]
        row = stored.get(p.account_id)
        if row is None:
            row = OrgPlacement(account_id=p.account_id)
            s.add(row)
            changes.placed.append(p.account_id)
        else:
            if list(row.ou_path) != list(p.ou_path):
                changes.moved[p.account_id] = {"from": row.ou_id, "to": parent}
            if dict(row.tags) != p.tags:
                changes.retagged[p.account_id] = {"from": dict(row.tags), "to": dict(p.tags)}
        row.ou_id, row.ou_path, row.tags, row.discovered_at = parent, list(p.ou_path), dict(p.tags), now
        s.flush()
        s.execute(delete(OrgPlacementTarget).where(OrgPlacementTarget.account_id == p.account_id))
        s.add_all(
            OrgPlacementTarget(account_id=p.account_id, target=t)
            for t in sorted(placement_targets(p.ou_path, p.tags))
        )
    listed = {p.account_id for p in found}
    for row in s.scalars(select(OrgPlacement).where(OrgPlacement.account_id.not_in(listed))):
        changes.removed.append(row.account_id)  # left the organization: in none of its OUs any more
        s.delete(row)
    s.flush()
    return changes
