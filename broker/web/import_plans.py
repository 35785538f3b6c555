"""An import plan as the admin API answers it (the import, a restore of a mapping version): its
hash, its deletions, JSON or readable text; and the check an apply runs on the plan inside its
transaction (the dry run's plan hash, deletions only with allow_deletes=true)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from fastapi import Response
from fastapi.responses import JSONResponse, PlainTextResponse

from broker.errors import Conflict, DeletesNotAllowed
from broker.mapping import plan_text
from broker.mapping.plan_text import deletions
from broker.mapping.store import ImportPlan


def plan_hash(plan: dict[str, Any]) -> str:
    body = {k: v for k, v in plan.items() if k not in ("applied", "plan_hash")}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def plan_answer(plan: dict[str, Any], format: str) -> Any:
    plan["deletes"] = deletions(plan)
    plan["plan_hash"] = plan_hash(plan)
    if format == "text":
        return PlainTextResponse(plan_text.render(plan))
    return plan


def plan_response(plan: ImportPlan, format: str) -> Response:
    """The plan's answer, built whole (hash, text or JSON encoding) in the caller's worker thread:
    a large plan costs its encoding off the event loop."""
    answer = plan_answer(plan.to_dict(), format)
    return answer if isinstance(answer, Response) else JSONResponse(answer)


def apply_check(*, expected_hash: str | None, allow_deletes: bool) -> Callable[[ImportPlan], None]:
    """What an apply checks inside its transaction, under the mapping lock, before any write."""

    def check(planned: ImportPlan) -> None:
        answer = plan_answer(planned.to_dict(), "json")
        if expected_hash is not None and expected_hash != answer["plan_hash"]:
            raise Conflict(
                "the mapping changed since that dry run; review a new dry run",
                details={"plan_hash": answer["plan_hash"]},
            )
        if answer["deletes"] and not allow_deletes:
            raise DeletesNotAllowed(
                f"the import would delete {answer['deletes']} object(s) the document does not mention "
                "(see the dry run); nothing was changed. Apply with allow_deletes=true to delete them",
                details={"deletes": answer["deletes"], "plan_hash": answer["plan_hash"]},
            )

    return check
