"""An import plan as the admin API answers it (the import, a restore of a mapping version): JSON
with its hash and deletions (``broker.mapping.plans``), or readable text."""

from __future__ import annotations

from fastapi import Response
from fastapi.responses import JSONResponse, PlainTextResponse

from broker.mapping import plan_text, plans
from broker.mapping.store import ImportPlan


def plan_response(plan: ImportPlan, format: str) -> Response:
    """The plan's answer, built whole (hash, text or JSON encoding) in the caller's worker thread:
    a large plan costs its encoding off the event loop."""
    body = plans.answer(plan)
    if format == "text":
        return PlainTextResponse(plan_text.render(body))
    return JSONResponse(body)
