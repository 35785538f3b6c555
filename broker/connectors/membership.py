"""The directory's groups and usable people read once, for one report (``MembersConnector``).

A connector reads "every group with its direct members" and "every usable account with its
direct groups" in a few paged searches; ``Membership`` computes nesting in Python, as the
login's own group strategies would: a person's groups are their direct groups and every group
reached from them by walking up at most ``max_depth`` levels (cycles visited once). Each group a
person reaches comes with its *path*, the shortest chain ``(direct group, parent, ..., group)``.

Groups are keyed by a node key (a lower-cased DN for LDAP/AD, the match key of a name for static)
and named as ``broker.groups.display_name`` names them, so a person's ``Identity.groups`` here are
what ``lookup`` gives at issuance.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from broker.domain import Identity
from broker.groups import match_key


@dataclass(frozen=True)
class Member:
    """One usable account and the groups it is in (nested included), each with its path."""

    identity: Identity
    """As ``lookup`` returns it: ``groups`` are every group, nested included."""
    paths: Mapping[str, tuple[str, ...]]
    """``match_key(group name)`` → the group names from the person's direct group to that group."""

    def path(self, group: str) -> tuple[str, ...]:
        return self.paths.get(match_key(group), (group,))


@dataclass(frozen=True)
class Person:
    """An account as read (no groups yet) and the node keys of its direct groups."""

    identity: Identity
    direct: tuple[str, ...]


@dataclass
class Membership:
    """Everything one report needs from the directory: group names and who is in what."""

    names: dict[str, str]
    """Node key → group name, every group the directory has."""
    parents: dict[str, list[str]] = field(default_factory=dict)
    """Node key → node keys of the groups that list it as a member (nesting)."""
    people: list[Person] = field(default_factory=list)
    max_depth: int = 0
    """Levels walked up from a direct group (0: no nesting)."""
    skipped: int = 0
    """Accounts the directory returned that could not be used (no immutable id...)."""
    _up: dict[str, list[tuple[str, tuple[str, ...]]]] = field(default_factory=dict, repr=False)

    def group_names(self) -> tuple[str, ...]:
        """Every group's name, once per match key."""
        by_key: dict[str, str] = {}
        for name in self.names.values():
            by_key.setdefault(match_key(name), name)
        return tuple(by_key.values())

    def _ancestors(self, node: str) -> list[tuple[str, tuple[str, ...]]]:
        """(match key, path of group names) of every group reached from ``node`` (itself included),
        breadth first (shortest paths); computed once per group and report."""
        known = self._up.get(node)
        if known is not None:
            return known
        paths: dict[str, tuple[str, ...]] = {node: (node,)}
        queue = deque([node])
        while queue:
            current = queue.popleft()
            here = paths[current]
            if len(here) > self.max_depth:
                continue
            for parent in self.parents.get(current, ()):
                if parent not in paths:
                    paths[parent] = (*here, parent)
                    queue.append(parent)
        named = []
        for path in paths.values():
            names = tuple(self.names.get(n, n) for n in path)
            named.append((match_key(names[-1]), names))
        self._up[node] = named
        return named

    def member(self, person: Person) -> Member:
        """The person with every group they are in, each with its shortest path."""
        best: dict[str, tuple[str, ...]] = {}
        for direct in person.direct:
            for key, names in self._ancestors(direct):
                if key not in best or len(names) < len(best[key]):
                    best[key] = names
        groups = tuple(sorted((p[-1] for p in best.values()), key=match_key))
        return Member(replace(person.identity, groups=groups), best)

    def members_of(self, groups: Iterable[str]) -> Iterator[Member]:
        """Every usable account in at least one of ``groups`` (names, nested membership counts),
        in the order the directory listed them."""
        wanted = {match_key(g) for g in groups}
        if not wanted:
            return
        for person in self.people:
            member = self.member(person)
            if wanted.intersection(member.paths):
                yield member
