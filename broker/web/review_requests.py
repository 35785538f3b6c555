"""The request bodies of the access reviews (``POST /api/v1/admin/reviews/...``), shared by the
admin API's router (``broker.web.admin_reviews``) and the admin pages' forms
(``broker.web.admin_review_pages``), so a page refuses exactly what the API refuses."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from broker.reports.review_snapshot import MAX_COMMENT

Decision = Literal["approved", "changes_requested", "rejected", "noted"]
"""``broker.reports.review_snapshot.DECISIONS``."""


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid")


Name = Annotated[str | None, Field(min_length=1, max_length=1024)]


class ReviewFilter(_View):
    """The access report's filters (each optional; one that names nothing gives an empty snapshot)."""

    account: Name = Field(default=None, description="12-digit account id or alias")
    role: Name = Field(default=None, description="role name or role ARN")
    group: Name = Field(default=None, description="rows whose membership path passes through this group")
    user: Name = Field(default=None, description="username or immutable id")


class SnapshotRequest(_View):
    filter: ReviewFilter = Field(default_factory=ReviewFilter)
    title: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="e.g. 'Q4 2026 review, production'")


class AttestRequest(_View):
    decision: Decision | None = None
    comment: Annotated[str, Field(max_length=MAX_COMMENT)] = ""
