"""An import plan as it is answered and applied (the admin import, a restore, `broker history
restore`): its deletions and hash, and the check an apply runs on the plan inside its
transaction (the dry run's plan hash; deletions only when allowed)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from broker.errors import Conflict, DeletesNotAllowed
from broker.mapping.plan_text import deletions
from broker.mapping.store import ImportPlan


def plan_hash(plan: dict[str, Any]) -> str:
    body = {k: v for k, v in plan.items() if k not in ("applied", "plan_hash")}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def answer(plan: ImportPlan) -> dict[str, Any]:
    """The plan's JSON answer: its parts, how many deletions, and its hash."""
    body = plan.to_dict()
    body["deletes"] = deletions(body)
    body["plan_hash"] = plan_hash(body)
    return body


def apply_check(*, expected_hash: str | None, allow_deletes: bool) -> Callable[[ImportPlan], None]:
    """What an apply checks inside its transaction, under the mapping lock, before any write."""

    def check(planned: ImportPlan) -> None:
        body = answer(planned)
        if expected_hash is not None and expected_hash != body["plan_hash"]:
            raise Conflict(
                "the mapping changed since that dry run; review a new dry run",
                details={"plan_hash": body["plan_hash"]},
            )
        if body["deletes"] and not allow_deletes:
            raise DeletesNotAllowed(
                f"the import would delete {body['deletes']} object(s) the document does not mention "
                "(see the dry run); nothing was changed. Apply with allow_deletes=true to delete them",
                details={"deletes": body["deletes"], "plan_hash": body["plan_hash"]},
            )

    return check
