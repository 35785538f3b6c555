"""Typed FastAPI dependencies (``Annotated`` aliases), all reading from ``app.state.services``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from broker.admin_auth import AdminPrincipal
from broker.audit import AuditContext
from broker.errors import Unauthenticated

if TYPE_CHECKING:
    from broker.app import Services


def get_services(request: Request) -> "Services":
    return request.app.state.services


ServicesDep = Annotated["Services", Depends(get_services)]


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def require_admin(request: Request, services: ServicesDep) -> AdminPrincipal:
    token = _bearer(request)
    if token is None:
        raise Unauthenticated("an admin bearer token is required (Authorization: Bearer <token>)")
    principal = services.admin_tokens.verify(token)
    if principal is None:
        raise Unauthenticated("the admin token is not valid for this broker")
    return principal


AdminDep = Annotated[AdminPrincipal, Depends(require_admin)]


def audit_context(request: Request, admin: AdminDep) -> AuditContext:
    return AuditContext(
        actor=f"admin:{admin.name}", request_id=getattr(request.state, "request_id", None), source_ip=client_ip(request)
    )


AuditCtx = Annotated[AuditContext, Depends(audit_context)]
