"""The grants a set of directory groups gives, from a mapping store: one read, then ``resolve``;
and ``Explanation``, that answer for one person (the admin API's explain).

What every issuance asks (``broker.flow.Flow.grants_for``) and what the operator tools ask
without a running broker (``broker check-directory``, ``broker preview``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from broker.domain import Identity, RoleGrant
from broker.mapping.rules import Resolution, resolve
from broker.mapping.store import MappingStore


def grants_for(store: MappingStore, groups: Iterable[str]) -> Resolution:
    """The roles ``groups`` reach, each with the mappings or rules that grant it."""
    groups = list(groups)
    return resolve(groups, store.snapshot_for(groups))


@dataclass(frozen=True)
class Explanation:
    """Which roles ``username`` gets and why."""

    username: str
    resolution: Resolution
    identity: Identity | None = None
    """Set when the groups were read from the directory rather than given."""
    active: dict[tuple[str, str], str] = field(default_factory=dict)
    """The person's just-in-time grants active now: (account id, lower-cased role) → end (RFC 3339)."""

    def to_dict(self) -> dict[str, Any]:
        r = self.resolution
        body: dict[str, Any] = {
            "username": self.username,
            "groups_from": "request" if self.identity is None else "directory",
            "groups": [{"given": g.given, "name": g.name} for g in r.groups],
            "grants": [self._grant(g) for g in r.grants],
            "unmatched_groups": list(r.unmatched),
            "notes": list(r.notes),
        }
        if self.identity is not None:
            i = self.identity
            body["directory"] = {
                "id": i.id, "username": i.username, "display_name": i.display_name, "source": i.source
            }
        return body

    def _grant(self, grant: RoleGrant) -> dict[str, Any]:
        out = grant.to_dict()
        if grant.eligible:
            out["grant_ends_at"] = self.active.get((grant.account_id, grant.role_name.lower()))
        return out
