"""LDAP and Active Directory: the whole directory's membership in two paged searches.

One search for every group with its direct members (``member`` / ``uniqueMember`` / ``memberUid``,
Active Directory's ranged values followed), one for every account the user search finds; nesting
is then computed in Python (``broker.connectors.membership``), the same closure the login's
strategy gives:

- ``member_of``: a person's direct groups are their ``memberOf``; nesting walks the groups'
  member attributes up, ``max_depth`` levels.
- ``group_search``: the groups (``groups.filter``) listing the person's DN (or, posixGroup, the
  ``member_value`` attribute); nesting for DN members only.
- ``in_chain`` / ``token_groups`` (AD): groups (``objectClass=group``) listing the person's DN,
  nesting without a depth limit (what LDAP_MATCHING_RULE_IN_CHAIN returns). The primary group
  (``primaryGroupID``, "Domain Users") is never listed in ``member``: as with ``in_chain``, it is
  not reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from broker.connectors.config import GroupSearchGroups, InChainGroups, MemberOfGroups, TokenGroups
from broker.connectors.ldap_pool import Entry, LdapPool
from broker.connectors.membership import Membership, Person
from broker.domain import Identity
from broker.groups import display_name

AD_UNLIMITED_DEPTH = 64
"""In-chain nesting has no depth limit; a longest chain this long is far beyond any real directory."""
_RANGE = re.compile(r"^(?P<attr>[^;]+);range=(?P<low>\d+)-(?P<high>\d+|\*)$", re.IGNORECASE)


def _key(dn: str) -> str:
    return dn.strip().lower()


def _values(pool: LdapPool, entry: Entry, attribute: str, deadline: float) -> list[str]:
    """Every value of ``attribute``, following Active Directory's ranged retrieval
    (``member;range=0-1499``: the rest is asked for in further base searches)."""
    values = entry.text(attribute)
    ranged = [
        (k, m) for k in entry.attrs if (m := _RANGE.match(k)) and m["attr"].lower() == attribute.lower()
    ]
    while ranged:
        key, m = ranged[0]
        values.extend(v.decode("utf-8", "replace") for v in entry.attrs[key])
        if m["high"] == "*":
            break
        wanted = f"{attribute};range={int(m['high']) + 1}-*"
        found = pool.search(entry.dn, "(objectClass=*)", attributes=[wanted], scope="base", deadline=deadline)
        if not found:
            break
        entry = found[0]
        ranged = [
            (k, m) for k in entry.attrs if (m := _RANGE.match(k)) and m["attr"].lower() == attribute.lower()
        ]
    return values


def read_membership(
    pool: LdapPool,
    *,
    groups: MemberOfGroups | GroupSearchGroups | InChainGroups | TokenGroups,
    default_base: str,
    user_base: str,
    user_filter: str,
    user_attributes: list[str],
    person: Callable[[Entry], Identity | None],
    deadline: float,
) -> Membership:
    """Groups, then accounts (``person`` turns an entry into an identity, or None when the
    account may not get credentials), then each account's direct groups."""
    if isinstance(groups, MemberOfGroups):
        attrs = list(groups.member_attributes)
        flt = "(|" + "".join(f"({a}=*)" for a in attrs) + ")"
        base, depth = groups.base or default_base, groups.max_depth if groups.nested else 0
    elif isinstance(groups, GroupSearchGroups):
        attrs, flt, base = list(groups.member_attributes), groups.filter, groups.base
        depth = groups.max_depth if groups.nested and groups.member_value == "dn" else 0
    else:
        attrs = ["member"]
        flt = groups.filter if isinstance(groups, InChainGroups) else "(objectClass=group)"
        base, depth = groups.base or default_base, AD_UNLIMITED_DEPTH

    names: dict[str, str] = {}
    parents: dict[str, list[str]] = {}
    listed_by: dict[str, list[str]] = {}
    """A member value (lower-cased DN, or memberUid as it is) → the groups that list it."""
    for entry in pool.search(base, flt, attributes=attrs, deadline=deadline):
        group = _key(entry.dn)
        names[group] = display_name(entry.dn)
        for attr in attrs:
            for value in _values(pool, entry, attr, deadline):
                member = (
                    value
                    if isinstance(groups, GroupSearchGroups) and groups.member_value != "dn"
                    else _key(value)
                )
                listed_by.setdefault(member, []).append(group)
    for member, holders in listed_by.items():
        if member in names:
            parents[member] = holders

    membership = Membership(names=names, parents=parents, max_depth=depth)
    for entry in pool.search(user_base, user_filter, attributes=user_attributes, deadline=deadline):
        identity = person(entry)
        if identity is None:
            membership.skipped += 1
            continue
        if isinstance(groups, MemberOfGroups):
            direct = [_key(dn) for dn in entry.text(groups.attribute)]
            for dn in entry.text(
                groups.attribute
            ):  # a group the group search did not find (no members listed)
                names.setdefault(_key(dn), display_name(dn))
        elif isinstance(groups, GroupSearchGroups) and groups.member_value != "dn":
            direct = [g for value in entry.text(groups.member_value) for g in listed_by.get(value, ())]
        else:
            direct = list(listed_by.get(_key(entry.dn), ()))
        membership.people.append(Person(identity, tuple(dict.fromkeys(direct))))
    return membership
