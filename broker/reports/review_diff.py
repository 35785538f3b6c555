"""What changed between two access reports, and why (pure): the diff of an access review.

Each side is an access report's rows, the directory membership it was computed from (every
usable person's effective groups) and the mapping state then (``broker.mapping.versions``).
Grants are keyed by (person's immutable id, account, role): a key only the new side has is
``gained``, one only the old side has is ``lost``, and one both have with different reasons (the
mapping row, rule or group that gives it) is ``reason_changed``.

Every reason that appeared or disappeared is explained, each explanation a ``cause``:

- ``directory``: the person's membership changed: ``left_group`` / ``joined_group`` (the groups
  of the reason's path the person is no longer / newly in), ``account_removed`` (not a usable
  account any more: deleted, disabled, outside the user search) / ``account_added``;
- ``mapping``: an object behind the reason changed between the two mapping states: the mapping
  row (named account or OU/tag target), the naming rule, the role or the account was
  ``created``, ``deleted``, ``updated`` (fields that decide who gets what) or ``replaced``
  (deleted and created again alike); with the versions (number, actor, time) that did it when the
  caller passes them (``touched``);
- ``other``: neither explains it (an account's OU placement moved, a role path changed the ARN).

A change's ``why`` lists its causes: ``["directory"]``, ``["mapping"]`` or both.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from broker.groups import match_key, normalize
from broker.mapping import versions
from broker.mapping.versions import Entry, State
from broker.reports.review_snapshot import People

VersionRef = dict[str, Any]
"""``{"number", "actor", "at", "via"}`` of a mapping version."""
Touched = Mapping[tuple[str, str], list[VersionRef]]
"""(kind, key) → the versions between the two sides that changed that object."""

_DECISIVE = {
    "mappings": {"group", "account", "role", "accounts"},
    "org_mappings": {"group", "role", "accounts"},
    "rules": {"pattern", "accounts", "name"},
    "roles": {"name", "account"},
    "accounts": {"id", "alias"},
}
"""Fields whose change can give or take a role (a description or a session cap cannot)."""


@dataclass(frozen=True)
class Side:
    rows: Iterable[dict[str, Any]]
    people: People
    mapping: State


@dataclass(slots=True)
class _Grant:
    username: str
    account_id: str
    account_alias: str
    role_name: str
    role_arn: str
    reasons: dict[tuple[str, str, str, str], tuple[Any, ...]] = field(default_factory=dict)
    """(kind, ref, group's match key, via) → (kind, ref, group, via, path): tuples, as 150,000 rows are held."""


GrantKey = tuple[str, str, str]


def _grants(rows: Iterable[dict[str, Any]]) -> dict[GrantKey, _Grant]:
    out: dict[GrantKey, _Grant] = {}
    shared: dict[Any, Any] = {}  # one object per distinct value (accounts, roles, groups repeat): memory
    keys: dict[str, str] = {}

    def one(value: Any) -> Any:
        return shared.setdefault(value, value)

    for r in rows:
        role = one(r["role_name"])
        key = (r["user_id"], one(r["account_id"]), role.lower())
        grant = out.get(key)
        if grant is None:
            grant = out[key] = _Grant(
                r["username"], key[1], one(r["account_alias"]), role, one(r["role_arn"])
            )
        group, via = one(r["group"]), one(r.get("via") or "")
        gkey = keys.get(group)
        if gkey is None:
            gkey = keys[group] = match_key(group)
        kind, ref = one(r["kind"]), one(r["ref"])
        grant.reasons[(kind, ref, gkey, via)] = (kind, ref, group, via, one(tuple(r["path"])))
    return out


def _reason(t: tuple[Any, ...]) -> dict[str, Any]:
    kind, ref, group, via, path = t
    return {"kind": kind, "ref": ref, "group": group, "via": via, "path": list(path)}


class _Index:
    """A mapping state looked up the way a report row names its reason."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.mappings: dict[tuple[str, str, str], str] = {}
        for key, e in state.get("mappings", {}).items():
            self.mappings[(e["account"], e["role"].lower(), normalize(e["group"])[1])] = key
        self.org: dict[tuple[str, str], list[str]] = {}
        for key, e in state.get("org_mappings", {}).items():
            self.org.setdefault((e["role"].lower(), normalize(e["group"])[1]), []).append(key)

    def behind(self, reason: dict[str, Any], account_id: str, role_name: str) -> dict[tuple[str, str], Entry]:
        """(kind, key) → entry of each object the reason rests on, in this state."""
        gkey, role = normalize(reason["group"])[1], role_name.lower()
        found: list[tuple[str, str]] = [("accounts", versions.account_key(account_id))]
        if reason["kind"] == "rule":
            found.append(("rules", versions.rule_key(reason["ref"])))
        elif str(reason["ref"]).startswith("org-"):
            found += [("org_mappings", k) for k in self.org.get((role, gkey), ())]
        else:
            key = self.mappings.get((account_id, role, gkey), versions.mapping_key(reason["group"], account_id, role))
            found.append(("mappings", key))
        found.append(("roles", versions.role_key(account_id, role_name)))
        return {(kind, key): e for kind, key in found if (e := self.state.get(kind, {}).get(key)) is not None}


def _mapping_events(
    reason: dict[str, Any], grant: _Grant, old: _Index, new: _Index, touched: Touched | None, *, gained: bool
) -> list[dict[str, Any]]:
    """What changed in the objects behind the reason: for a reason that came, what was created or
    updated; for one that went, what was deleted or updated."""
    a = old.behind(reason, grant.account_id, grant.role_name)
    b = new.behind(reason, grant.account_id, grant.role_name)
    events = []
    for kind, key in sorted(set(a) | set(b)):
        before, after = a.get((kind, key)), b.get((kind, key))
        refs = list((touched or {}).get((kind, key), ()))
        if before is None and after is not None:
            if not gained:
                continue  # something new cannot take a role away
            event, label = "created", versions.label(kind, after)
        elif after is None and before is not None:
            if gained:
                continue  # something gone cannot give one
            event, label = "deleted", versions.label(kind, before)
        else:
            assert before is not None and after is not None
            fields = sorted(n for n in versions.field_changes(before, after) if n in _DECISIVE.get(kind, set()))
            if fields:
                event, label = "updated", versions.label(kind, after)
            elif refs and kind in ("mappings", "org_mappings", "rules"):
                event, label = "replaced", versions.label(kind, after)
            else:
                continue
        item: dict[str, Any] = {"cause": "mapping", "event": event, "kind": kind, "key": key, "object": label}
        if event == "updated":
            item["fields"] = fields
        item["versions"] = refs
        by = "".join(f" in version {v['number']} by {v['actor']}" for v in refs[-1:])
        item["text"] = f"{label} {event}{by}"
        events.append(item)
    return events


def _directory_events(
    reason: dict[str, Any], user_id: str, username: str, then: People, now: People, *, gained: bool
) -> list[dict[str, Any]]:
    """What changed in the person's membership between ``then`` and ``now`` that this reason needs."""
    if user_id not in then:
        return [{"cause": "directory", "event": "account_added" if gained else "account_removed",
                 "text": f"{username}'s account " + ("became usable (new or enabled)" if gained
                                                      else "is no longer usable (removed, disabled or outside the user search)")}]
    had = {match_key(g) for g in then[user_id]["groups"]}
    missing = [g for g in reason["path"] if match_key(g) not in had]
    if not missing:
        return []
    verb = "joined" if gained else "left"
    return [{"cause": "directory", "event": f"{verb}_group", "groups": missing,
             "text": f"{username} {verb} group" + ("s " if len(missing) > 1 else " ") + ", ".join(missing)}]


def _explain(
    reason: dict[str, Any], user_id: str, grant: _Grant, old: Side, new: Side, oi: _Index, ni: _Index,
    touched: Touched | None, *, gained: bool,
) -> list[dict[str, Any]]:
    if gained:  # the person now has it: what the old side lacked
        directory = _directory_events(reason, user_id, grant.username, old.people, new.people, gained=True)
    else:  # the person had it: what the new side lacks
        directory = _directory_events(reason, user_id, grant.username, new.people, old.people, gained=False)
    return directory + _mapping_events(reason, grant, oi, ni, touched, gained=gained)


def changes(old: Side, new: Side, *, touched: Touched | None = None) -> dict[str, Any]:
    """``{"counts": {...}, "changes": [...]}``: every grant gained, lost or given for another reason,
    person by person (username), account, role; each with the reasons before and after, its
    explanations and ``why``."""
    before, after = _grants(old.rows), _grants(new.rows)
    oi, ni = _Index(old.mapping), _Index(new.mapping)
    out: list[dict[str, Any]] = []
    for key in set(before) | set(after):
        a, b = before.get(key), after.get(key)
        if a is not None and b is not None and a.reasons.keys() == b.reasons.keys():
            continue
        grant = b or a
        assert grant is not None
        gone = [_reason(r) for k, r in (a.reasons.items() if a else ()) if not b or k not in b.reasons]
        came = [_reason(r) for k, r in (b.reasons.items() if b else ()) if not a or k not in a.reasons]
        explanations: list[dict[str, Any]] = []
        for reason in gone:
            explanations += _explain(reason, key[0], a or grant, old, new, oi, ni, touched, gained=False)
        for reason in came:
            explanations += _explain(reason, key[0], grant, old, new, oi, ni, touched, gained=True)
        explanations = _unique(explanations)
        if not explanations:
            explanations = [{"cause": "other", "event": "unexplained",
                             "text": "neither the person's groups nor the objects behind the reason changed "
                                     "(an OU placement or a role path, for example)"}]
        change = "gained" if a is None else "lost" if b is None else "reason_changed"
        out.append(
            {
                "change": change,
                "user_id": key[0],
                "username": grant.username,
                "account_id": grant.account_id,
                "account_alias": grant.account_alias,
                "role_name": grant.role_name,
                "role_arn": grant.role_arn,
                "why": sorted({e["cause"] for e in explanations}),
                "before": [_reason(r) for r in (a.reasons.values() if a else ())],
                "after": [_reason(r) for r in (b.reasons.values() if b else ())],
                "explanations": explanations,
            }
        )
    out.sort(key=lambda c: (c["username"].casefold(), c["user_id"], c["account_id"], c["role_name"].lower()))
    counts = {"gained": 0, "lost": 0, "reason_changed": 0}
    for c in out:
        counts[c["change"]] += 1
    return {"counts": counts, "changes": out}


def _unique(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for item in items:
        mark = json.dumps(item, sort_keys=True, default=str)
        if mark not in seen:
            seen.add(mark)
            out.append(item)
    return out


def lines(result: dict[str, Any]) -> list[str]:
    """The diff as lines a reviewer reads: ``+`` gained, ``-`` lost, ``~`` reason changed, each
    followed by its explanations."""
    signs = {"gained": "+", "lost": "-", "reason_changed": "~"}
    out = []
    for c in result["changes"]:
        account = c["account_alias"] or c["account_id"]
        out.append(f"{signs[c['change']]} {c['username']}  {account}/{c['role_name']}  ({', '.join(c['why'])})")
        out += [f"    {e['cause']}: {e['text']}" for e in c["explanations"]]
    return out
