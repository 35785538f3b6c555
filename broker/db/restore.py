"""Restoring a mapping version: an import of that version's document (``broker.db.sync``), made
by ``broker.mapping.versions.restore_document`` from the version and the mapping now, so a
restore never fights the configuration file. A version naming an account removed since is
refused (``RestoreAccountRemoved``), each account named."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError
from sqlalchemy.orm import Session

from broker.audit import AuditContext
from broker.db import history, sync
from broker.errors import InvalidImport, RestoreAccountRemoved
from broker.mapping import versions
from broker.mapping.model import MappingDocument
from broker.mapping.store import ImportPlan


def document(s: Session, *, number: int) -> tuple[MappingDocument, list[str]]:
    """The import document that restores version ``number``, and what the restore leaves as it is."""
    data, notices, removed = versions.restore_document(
        history.state_at(s, number), history.read_state(s), number
    )
    if removed:
        names = ", ".join(versions.label("accounts", a) for a in removed)
        raise RestoreAccountRemoved(
            f"version {number} names {names}, removed since; a restore does not register an AWS account again: "
            "register it again (POST /accounts, or the configuration file) if it is meant to come back, then restore",
            details=[
                {
                    "field": "account",
                    "value": a["id"],
                    "message": f"{versions.label('accounts', a)} "
                    f"({'configuration file' if a['source'] == versions.CONFIG else 'API'}) is not registered any more",
                }
                for a in removed
            ],
        )
    try:
        return MappingDocument.model_validate(data), notices
    except ValidationError as exc:
        raise InvalidImport(
            f"version {number}'s document does not pass today's validation; nothing was changed",
            details=[
                {
                    "field": ".".join(str(p) for p in ("document", *e["loc"])),
                    "code": e["type"],
                    "message": e["msg"],
                }
                for e in exc.errors(include_input=False, include_context=False)[:100]
            ],
        ) from None


def plan(s: Session, *, number: int) -> ImportPlan:
    doc, notices = document(s, number=number)
    planned = sync.plan_import(s, doc=doc)
    planned.notices += notices
    return planned


def apply(
    s: Session, *, number: int, ctx: AuditContext, check: Callable[[ImportPlan], None] | None = None
) -> ImportPlan:
    doc, notices = document(s, number=number)

    def checked(planned: ImportPlan) -> None:
        planned.notices += notices
        if check is not None:
            check(planned)

    return sync.apply_import(s, doc=doc, ctx=ctx, check=checked)
