"""`broker history list|show|diff|restore`: the mapping's versions in the configured database,
as text (or JSON). Only a database that exists and is migrated is looked at
(``broker.cli.existing_database``); a restore writes only with --apply."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from broker.audit import AuditContext
from broker.cli.existing_database import usable_store
from broker.config import Config
from broker.mapping import plan_text, plans, versions


def _counts(summary: dict[str, dict[str, int]]) -> str:
    signs = {"created": "+", "updated": "~", "deleted": "-"}
    return ", ".join(
        f"{kind} " + " ".join(f"{signs[op]}{n}" for op, n in ops.items() if n)
        for kind, ops in summary.items()
    )


def list_lines(config: Config, *, limit: int) -> list[str]:
    with usable_store(config) as store:
        items = store.list_versions(limit=limit)
    if not items:
        return ["no versions yet: the mapping has not changed since its history began"]
    return [
        f"{v['number']:>6}  {v['at']}  {v['actor']}  ({v['via']})  {_counts(v['summary'])}" for v in items
    ]


def show(config: Config, *, number: int, as_json: bool, document: bool) -> str:
    with usable_store(config) as store:
        version = store.get_version(number)
    if document:
        return json.dumps(version["document"], indent=2)
    if as_json:
        return json.dumps(version, indent=2)
    head = f"version {version['number']}: {version['at']} by {version['actor']} ({version['via']})"
    if version["details"]:
        head += f" {json.dumps(version['details'])}"
    return "\n".join([head, *versions.diff_lines(version["diff"])])


def diff(config: Config, *, old: int, new: int, as_json: bool) -> str:
    with usable_store(config) as store:
        d = store.diff_versions(old, new)
    if as_json:
        return json.dumps(d, indent=2)
    return "\n".join(
        [f"from version {old} to {new}: {d['changes']} change(s)", *versions.diff_lines(d["diff"])]
    )


def restore(
    config: Config, *, number: int, apply: bool, plan_hash: str | None, allow_deletes: bool, actor: str
) -> str:
    """The restore's plan (dry run), or applied (with --apply: exactly the plan of ``plan_hash`` when given)."""
    with usable_store(config) as store:
        if not apply:
            return plan_text.render(plans.answer(store.plan_restore(number)))
        check: Callable[[Any], None] = plans.apply_check(expected_hash=plan_hash, allow_deletes=allow_deletes)
        planned = store.apply_restore(number, AuditContext(actor=actor), check=check)
        return plan_text.render(plans.answer(planned))
