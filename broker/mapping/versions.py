"""The mapping's history as values (pure): a version's state, the diff of two states, the mapping
document a state is, and the import document that restores a state.

A *state* is every object of the mapping keyed the way the database keys it (``State``: kind →
key → entry). An *entry* is the object as the mapping document spells it (its spec, in JSON) plus
``source`` (config | api) and, for a role, ``account``. A *diff* lists per kind the objects
created, updated (field by field) and deleted; ``apply(state, diff)`` gives the next state. The
database keeps each version's diff and, now and then, a whole state (``broker.db.history``).

The document of a state (``document``) is the export's (``MappingDocument``), in one canonical
order: accounts by id, each one's roles by name, mappings by account, role and group (then the OU/tag-targeted ones by target, role and group), rules by
name; ``canonical`` puts an export in that order, so the two compare equal.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from broker.groups import match_key
from broker.mapping.model import AccountSelector
from broker.mapping.store import KINDS

Entry = dict[str, Any]
State = dict[str, dict[str, Entry]]
Diff = dict[str, dict[str, list[dict[str, Any]]]]

OPS = ("created", "updated", "deleted")
CONFIG = "config"
API = "api"


# ---- keys: the database's identity of each object ----


def account_key(account_id: str) -> str:
    return account_id


def role_key(account_id: str, name: str) -> str:
    return f"{account_id}/{name.lower()}"


def mapping_key(group: str, account_id: str, role: str) -> str:
    """A mapping's identity: its group's match key, account and role (IAM role names ignore case)."""
    return f"{account_id}/{role.lower()}/{match_key(group)}"


def org_mapping_key(group: str, target: str, role: str) -> str:
    """A targeted mapping's identity: its target (``broker.mapping.org_targets.Target.key``), role
    and group's match key."""
    return f"{target}/{role.lower()}/{match_key(group)}"


def _target_key(accounts: dict[str, Any]) -> str:
    return AccountSelector.model_validate(accounts).target().key


def _mapping_order(m: dict[str, Any]) -> tuple[str, ...]:
    """Named-account mappings first, then the targeted ones (as ``document`` writes them)."""
    if m.get("accounts"):
        return ("~", *_order(org_mapping_key(m["group"], _target_key(m["accounts"]), m["role"])))
    return _order(mapping_key(m["group"], m["account"], m["role"]))


def rule_key(name: str) -> str:
    return name


def _order(key: str) -> tuple[str, ...]:
    return tuple(key.split("/", 2))


def empty() -> State:
    return {kind: {} for kind in KINDS}


def label(kind: str, entry: Entry) -> str:
    """The object as a person names it (the import plan's words)."""
    if kind == "accounts":
        return f"account {entry['id']}" + (f" ({entry['alias']})" if entry.get("alias") else "")
    if kind == "roles":
        return f"role {entry['account']}/{entry['name']}"
    if kind == "mappings":
        return (
            f"mapping {json.dumps(entry['group'], ensure_ascii=False)} -> {entry['account']}/{entry['role']}"
        )
    if kind == "org_mappings":
        via = AccountSelector.model_validate(entry["accounts"]).target().via
        return f"mapping {json.dumps(entry['group'], ensure_ascii=False)} -> {via}/{entry['role']}"
    if kind == "rules":
        return f"rule {json.dumps(entry['name'], ensure_ascii=False)}"
    return f"{kind} {entry.get('name') or entry.get('id') or ''}".rstrip()


# ---- diffs ----


def field_changes(before: Entry, after: Entry) -> dict[str, dict[str, Any]]:
    """The fields that differ, each with its value before and after (a field one side lacks: None)."""
    return {
        name: {"before": before.get(name), "after": after.get(name)}
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    }


def changes_of(pairs: dict[str, dict[str, tuple[Entry | None, Entry | None]]]) -> Diff:
    """A diff from (before, after) per object (None: absent); objects that ended as they began are left out."""
    out: Diff = {}
    for kind, objects in pairs.items():
        part: dict[str, list[dict[str, Any]]] = {op: [] for op in OPS}
        for key in sorted(objects, key=_order):
            before, after = objects[key]
            if before == after:
                continue
            if before is None:
                assert after is not None
                part["created"].append({"key": key, "label": label(kind, after), "after": after})
            elif after is None:
                part["deleted"].append({"key": key, "label": label(kind, before), "before": before})
            else:
                part["updated"].append(
                    {
                        "key": key,
                        "label": label(kind, after),
                        "changes": field_changes(before, after),
                        "after": after,
                    }
                )
        if any(part.values()):
            out[kind] = part
    return out


def diff(old: State, new: State) -> Diff:
    """What changed from ``old`` to ``new``."""
    pairs: dict[str, dict[str, tuple[Entry | None, Entry | None]]] = {}
    for kind in _kinds(old, new):
        a, b = old.get(kind, {}), new.get(kind, {})
        pairs[kind] = {key: (a.get(key), b.get(key)) for key in set(a) | set(b)}
    return changes_of(pairs)


def apply(state: State, d: Diff) -> State:
    """The state after ``d`` (``state`` itself is not changed)."""
    out = {kind: dict(objects) for kind, objects in state.items()}
    for kind, part in d.items():
        objects = out.setdefault(kind, {})
        for item in part.get("deleted", ()):
            objects.pop(item["key"], None)
        for item in (*part.get("created", ()), *part.get("updated", ())):
            objects[item["key"]] = item["after"]
    return out


def summary(d: Diff) -> dict[str, dict[str, int]]:
    """Per kind, how many objects were created, updated and deleted."""
    return {kind: {op: len(part.get(op, ())) for op in OPS} for kind, part in d.items()}


def count(d: Diff) -> int:
    return sum(len(part.get(op, ())) for part in d.values() for op in OPS)


def _kinds(*states: State) -> list[str]:
    extra = sorted({k for s in states for k in s} - set(KINDS))
    return [*KINDS, *extra]


def diff_lines(d: Diff) -> list[str]:
    """A diff as lines a reviewer reads (the import plan's signs): ``+`` created, ``~`` updated
    (each field before -> after), ``-`` deleted."""
    lines: list[str] = []
    for kind in [*KINDS, *sorted(set(d) - set(KINDS))]:
        part = d.get(kind, {})
        lines += [f"+ {item['label']}" for item in part.get("created", ())]
        for item in part.get("updated", ()):
            fields = ", ".join(
                f"{name} {json.dumps(c['before'], ensure_ascii=False)} -> {json.dumps(c['after'], ensure_ascii=False)}"
                for name, c in item["changes"].items()
            )
            lines.append(f"~ {item['label']}: {fields}")
        lines += [f"- {item['label']}" for item in part.get("deleted", ())]
    return lines


# ---- documents ----


def _spec(entry: Entry, *drop: str) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in ("source", *drop)}


def document(state: State) -> dict[str, Any]:
    """The mapping document (``MappingDocument``'s JSON) of a state, in the canonical order."""
    roles_of: dict[str, list[dict[str, Any]]] = {}
    for key in sorted(state.get("roles", {}), key=_order):
        entry = state["roles"][key]
        roles_of.setdefault(entry["account"], []).append(_spec(entry, "account"))
    doc: dict[str, Any] = {"version": 1}
    doc["accounts"] = [
        _spec(state["accounts"][key]) | {"roles": roles_of.get(state["accounts"][key]["id"], [])}
        for key in sorted(state.get("accounts", {}), key=_order)
    ]
    for kind in _kinds(state):
        if kind not in ("accounts", "roles", "org_mappings"):
            doc[kind] = [_spec(state[kind][key]) for key in sorted(state.get(kind, {}), key=_order)]
    # a targeted mapping is a mapping with ``accounts:`` in the document, after the named ones
    org = state.get("org_mappings", {})
    doc["mappings"] = doc.get("mappings", []) + [_spec(org[key]) for key in sorted(org, key=_order)]
    return doc


def canonical(doc: dict[str, Any]) -> dict[str, Any]:
    """An exported document (``MappingDocument`` JSON) in ``document``'s order."""
    out = dict(doc)
    out["accounts"] = sorted(
        (
            {**a, "roles": sorted(a.get("roles", []), key=lambda r: r["name"].lower())}
            for a in doc.get("accounts", [])
        ),
        key=lambda a: a["id"],
    )
    out["mappings"] = sorted(doc.get("mappings", []), key=_mapping_order)
    out["rules"] = sorted(doc.get("rules", []), key=lambda r: r["name"])
    return out


# ---- restoring a version: an import of its document ----


def restore_document(
    version: State, current: State, number: int
) -> tuple[dict[str, Any], list[str], list[Entry]]:
    """The import document that brings the API's objects back to ``version``, without fighting
    the configuration file: (document, notices, the version's accounts that no longer exist).

    - an object declared in the configuration file now stays as the file declares it (the
      import leaves config objects alone), whatever the version said;
    - an object the API managed in the version, or that the API manages now, gets the
      version's fields;
    - an object the configuration file declared in the version and no longer declares is not
      brought back (declare it in the file again, or create it through the API);
    - API objects the version does not have are deleted (the plan lists them);
    - an account of the version that was removed since is not registered again: the restore is
      refused (``removed``), as an account stands for an AWS account someone took away.
    """
    notices: list[str] = []
    removed = [
        entry
        for key, entry in sorted(version.get("accounts", {}).items())
        if key not in current.get("accounts", {})
    ]
    restored = empty()
    for kind in _kinds(version, current):
        then, now = version.get(kind, {}), current.get(kind, {})
        for key, entry in then.items():
            present = now.get(key)
            if present is not None and present["source"] == CONFIG:
                if _spec(present) != _spec(entry):
                    notices.append(
                        f"{label(kind, present)} is declared in the configuration file: it stays as the file declares "
                        f"it, not as in version {number}"
                    )
                if kind == "accounts":
                    restored[kind][key] = present  # the roles the API restores under it need their account
                continue
            if entry["source"] == API or present is not None:
                restored[kind][key] = entry | {"source": API}
                continue
            notices.append(
                f"{label(kind, entry)} was declared in the configuration file in version {number} and is not any "
                "more: the restore does not bring it back (declare it in the file again, or create it through the API)"
            )
    return document(restored), notices, removed


# ---- storage: compact JSON, compressed ----


def pack(value: Any) -> bytes:
    return zlib.compress(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(), 6)


def unpack(blob: bytes) -> Any:
    return json.loads(zlib.decompress(blob))
