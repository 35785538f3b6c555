"""An import plan (``ImportPlan.to_dict()``) as lines a reviewer reads, one per change:

    + mapping "aws-admins" -> 111122223333/Admin
    + mapping "platform-admins" -> OU ou-ab12-cdef3456/Admin
    ~ role 111122223333/Admin: max_session_duration 3600 -> 7200
    - rule "old-adfs"
"""

from __future__ import annotations

import json
from typing import Any

from broker.mapping.model import AccountSelector
from broker.mapping.store import KINDS


def deletions(plan: dict[str, Any]) -> int:
    """How many objects the plan deletes."""
    return sum(len(plan[k]["delete"]) for k in KINDS)


def _v(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _name(kind: str, d: dict[str, Any], key: str = "") -> str:
    if kind == "accounts":
        return f"account {d['id']}" + (f" ({d['alias']})" if d.get("alias") else "")
    if kind == "roles":
        account = d.get("account") or key.partition(" ")[2].partition("/")[0]
        return f"role {account}/{d['name']}"
    if kind == "mappings":
        return f"mapping {_v(d['group'])} -> {d['account']}/{d['role']}"
    if kind == "org_mappings":
        return f"mapping {_v(d['group'])} -> {_via(d['accounts'])}/{d['role']}"
    return f"rule {_v(d['name'])}"


def _via(accounts: dict[str, Any]) -> str:
    """An ``accounts:`` target as explain names it (``OU ou-...``, ``tag env=prod``)."""
    return AccountSelector.of_dump(accounts).target().via


def _created(kind: str, d: dict[str, Any]) -> str:
    if kind == "roles":
        policies = f", managed_policy_arns {_v(d['managed_policy_arns'])}" if d.get("managed_policy_arns") else ""
        return f" (path {d['path']}, max_session_duration {d['max_session_duration']}{policies})"
    if kind == "rules":
        return f": {d['pattern']}" + (f" (accounts via {_via(d['accounts'])})" if d.get("accounts") else "")
    if kind in ("mappings", "org_mappings"):
        channels = [c for c in ("console", "cli") if d.get(c)]
        cap = f", session_duration {d['session_duration']}" if d.get("session_duration") else ""
        return f" ({'+'.join(channels)}{cap})"
    return ""


def _changed(before: dict[str, Any], after: dict[str, Any]) -> str:
    fields = [k for k in after if before.get(k) != after.get(k)] + [k for k in before if k not in after]
    return ", ".join(f"{k} {_v(before.get(k))} -> {_v(after.get(k))}" for k in fields)


def render(plan: dict[str, Any]) -> str:
    state = "applied" if plan.get("applied") else "dry run, nothing changed"
    lines = [f"import plan: {plan['changes']} change(s) ({state})"]
    for kind in KINDS:
        part = plan[kind]
        lines += [f"+ {_name(kind, d)}{_created(kind, d)}" for d in part["create"]]
        lines += [
            f"~ {_name(kind, u['after'], u['key'])}: {_changed(u['before'], u['after'])}" for u in part["update"]
        ]
        lines += [f"- {_name(kind, d)}" for d in part["delete"]]
    lines += [f"! conflict: {c}" for c in plan.get("conflicts", ())]
    unchanged = ", ".join(f"{kind} {plan[kind]['unchanged']}" for kind in KINDS)
    lines.append(f"unchanged: {unchanged}")
    removed = deletions(plan)
    if removed and not plan.get("applied"):
        lines.append(f"{removed} deletion(s): applying needs allow_deletes=true")
    if plan.get("plan_hash"):
        lines.append(f"plan_hash: {plan['plan_hash']}")
    return "\n".join(lines) + "\n"
