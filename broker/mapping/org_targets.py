"""Account targets from AWS Organizations: an OU (its accounts and those of its child OUs) or an
account tag (key and value equal; the key case-sensitive, as AWS compares it).

A target is stored and compared by its ``key`` (``ou:ou-ab12-cdef3456``, ``tag:["env","prod"]``).
Discovery records, for every registered account, the keys of every target it is under
(``placement_targets``: each OU on its path from the root, the root itself, each tag), so
resolution only looks up which accounts a target holds: nothing is derived per mapping, and an
account created under an OU is covered as soon as discovery has recorded where it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

OU_PREFIX, TAG_PREFIX = "ou:", "tag:"
MAX_TARGET_KEY = 400
"""Characters of a target key (an OU id is at most 68; a tag key 128 and a value 256, JSON-quoted)."""


@dataclass(frozen=True, slots=True)
class Target:
    """One OU (or the root) or one tag ``key=value``."""

    ou: str | None = None
    tag: tuple[str, str] | None = None

    @property
    def key(self) -> str:
        if self.ou is not None:
            return OU_PREFIX + self.ou
        assert self.tag is not None
        return TAG_PREFIX + json.dumps(list(self.tag), ensure_ascii=False, separators=(",", ":"))

    @property
    def via(self) -> str:
        """How explain, the plan and the audit log name it: ``OU ou-...``, ``root r-...``, ``tag env=prod``."""
        if self.ou is not None:
            return f"{'root' if self.ou.startswith('r-') else 'OU'} {self.ou}"
        assert self.tag is not None
        return f"tag {self.tag[0]}={self.tag[1]}"

    @classmethod
    def from_key(cls, key: str) -> Target:
        if key.startswith(OU_PREFIX):
            return cls(ou=key[len(OU_PREFIX) :])
        if key.startswith(TAG_PREFIX):
            k, v = json.loads(key[len(TAG_PREFIX) :])
            return cls(tag=(str(k), str(v)))
        raise ValueError(f"not an account target key: {key!r}")


def placement_targets(ou_path: Iterable[str], tags: Mapping[str, str]) -> set[str]:
    """The keys of every target an account placed so is under: each OU of ``ou_path`` (root
    first, down to the account's parent) and each of its tags."""
    keys = {Target(ou=ou).key for ou in ou_path}
    keys |= {Target(tag=(k, v)).key for k, v in tags.items()}
    return {k for k in keys if len(k) <= MAX_TARGET_KEY}


@dataclass(frozen=True)
class Placement:
    account_id: str
    ou_path: tuple[str, ...]
    """The root id, then each OU down to the account's parent."""
    tags: dict[str, str]


@dataclass
class PlacementChanges:
    placed: list[str] = field(default_factory=list)
    """Accounts placed for the first time."""
    moved: dict[str, dict[str, str]] = field(default_factory=dict)
    """Account → {"from": OU id, "to": OU id}."""
    retagged: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    """Account → {"from": tags, "to": tags}."""
    removed: list[str] = field(default_factory=list)
    """Placed before, no longer listed by the organization: the placement is removed (the account stays)."""
    unregistered: list[str] = field(default_factory=list)
    """Listed by the organization but not registered: nothing recorded."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "placed": self.placed,
            "moved": self.moved,
            "retagged": self.retagged,
            "removed": self.removed,
        }
