"""The decision flow: the one module that sequences who → groups → grants (→ mint → STS → deliver).

Issue by issue this grows the issuance path; today it answers the admin's "explain".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from broker.mapping.rules import Resolution, resolve
from broker.mapping.store import MappingStore


@dataclass(frozen=True)
class Explanation:
    username: str
    resolution: Resolution

    def to_dict(self) -> dict[str, Any]:
        r = self.resolution
        return {
            "username": self.username,
            "groups": [{"given": g.given, "name": g.name} for g in r.groups],
            "grants": [g.to_dict() for g in r.grants],
            "unmatched_groups": list(r.unmatched),
            "notes": list(r.notes),
        }


class Flow:
    def __init__(self, *, store: MappingStore) -> None:
        self.store = store

    def grants_for(self, groups: Iterable[str]) -> Resolution:
        groups = list(groups)
        return resolve(groups, self.store.snapshot_for(groups))

    def explain(self, username: str, groups: Iterable[str]) -> Explanation:
        return Explanation(username, self.grants_for(groups))
