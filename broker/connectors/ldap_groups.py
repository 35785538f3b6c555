"""Group strategies: from a user's entry to the DNs of every group they are in, nested included.

- ``member_of``: the user's memberOf (read with the user, no extra request), then one search
  per nesting level for groups that list those groups as members.
- ``group_search``: groups whose member / uniqueMember is the user's DN (or whose memberUid is
  the user's uid, posixGroup), then the same walk up for nesting (DN members only).
- ``in_chain`` (AD): one search with LDAP_MATCHING_RULE_IN_CHAIN (1.2.840.113556.1.4.1941).
- ``token_groups`` (AD): the user's constructed tokenGroups SIDs, then one search to name them.

Each level is one paged search whatever the number of groups (filters carry up to
``_CHUNK`` terms), so a user in 500 groups costs one or two requests, not 500.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from broker.connectors.config import GroupSearchGroups, InChainGroups, MemberOfGroups, TokenGroups
from broker.connectors.ldap_escape import any_of, filter_bytes, filter_value
from broker.connectors.ldap_pool import Entry, LdapPool

IN_CHAIN = "1.2.840.113556.1.4.1941"
_CHUNK = 1000


class GroupResolver(Protocol):
    user_attributes: tuple[str, ...]
    """Attributes the user search must read for this strategy."""

    def group_dns(self, pool: LdapPool, user: Entry) -> list[str]: ...


def _chunks(items: list[str], size: int = _CHUNK) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _walk_up(
    pool: LdapPool, base: str, member_attributes: list[str], direct: list[str], max_depth: int
) -> list[str]:
    """Breadth-first up the nesting: one search per level; cycles and repeats visited once."""
    seen = {dn.lower(): dn for dn in direct}
    frontier = list(seen.values())
    for _ in range(max_depth):
        if not frontier:
            break
        found: list[str] = []
        for chunk in _chunks(frontier):
            for entry in pool.search(base, any_of(member_attributes, chunk)):
                key = entry.dn.lower()
                if key not in seen:
                    seen[key] = entry.dn
                    found.append(entry.dn)
        frontier = found
    return list(seen.values())


class MemberOf:
    def __init__(self, config: MemberOfGroups, default_base: str) -> None:
        self._c = config
        self._base = config.base or default_base
        self.user_attributes: tuple[str, ...] = (config.attribute,)

    def group_dns(self, pool: LdapPool, user: Entry) -> list[str]:
        direct = user.text(self._c.attribute)
        if not self._c.nested:
            return direct
        return _walk_up(pool, self._base, self._c.member_attributes, direct, self._c.max_depth)


class GroupSearch:
    def __init__(self, config: GroupSearchGroups) -> None:
        self._c = config
        self.user_attributes: tuple[str, ...] = () if config.member_value == "dn" else (config.member_value,)

    def group_dns(self, pool: LdapPool, user: Entry) -> list[str]:
        values = [user.dn] if self._c.member_value == "dn" else user.text(self._c.member_value)
        if not values:
            return []
        flt = f"(&{self._c.filter}{any_of(self._c.member_attributes, values)})"
        direct = [e.dn for e in pool.search(self._c.base, flt)]
        if not self._c.nested or self._c.member_value != "dn" or not direct:
            return direct
        return _walk_up(pool, self._c.base, self._c.member_attributes, direct, self._c.max_depth)


class InChain:
    user_attributes: tuple[str, ...] = ()

    def __init__(self, config: InChainGroups, default_base: str) -> None:
        self._filter = config.filter
        self._base = config.base or default_base

    def group_dns(self, pool: LdapPool, user: Entry) -> list[str]:
        flt = f"(&{self._filter}(member:{IN_CHAIN}:={filter_value(user.dn)}))"
        return [e.dn for e in pool.search(self._base, flt)]


class TokenGroupsResolver:
    user_attributes: tuple[str, ...] = ()

    def __init__(self, config: TokenGroups, default_base: str) -> None:
        self._base = config.base or default_base

    def group_dns(self, pool: LdapPool, user: Entry) -> list[str]:
        # tokenGroups is constructed: only a base-scope read returns it.
        entries = pool.search(user.dn, "(objectClass=*)", attributes=["tokenGroups"], scope="base")
        sids = entries[0].raw("tokenGroups") if entries else []
        dns: list[str] = []
        for chunk in _chunks([filter_bytes(s) for s in sids]):
            terms = "".join(f"(objectSid={s})" for s in chunk)
            dns.extend(e.dn for e in pool.search(self._base, f"(|{terms})"))
        return dns


def resolver_for(config: object, default_base: str) -> GroupResolver:
    if isinstance(config, MemberOfGroups):
        return MemberOf(config, default_base)
    if isinstance(config, GroupSearchGroups):
        return GroupSearch(config)
    if isinstance(config, InChainGroups):
        return InChain(config, default_base)
    if isinstance(config, TokenGroups):
        return TokenGroupsResolver(config, default_base)
    raise TypeError(f"unknown group strategy {config!r}")
