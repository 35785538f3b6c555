"""Admins and people's second factors: ``POST /api/v1/admin/mfa/enrolment-codes``
(a one-time code a person with no factor enrols with under ``mfa.enrolment: invite``; shown
once) and ``DELETE /api/v1/admin/mfa/{username}`` (the lost-phone path: the person's TOTP,
recovery codes and passkeys removed). Either with an admin token (or HTTP Basic, as the rest of
the admin API) or from an admin's portal session (its CSRF token in ``X-CSRF-Token``). The
person is resolved in the directory to their immutable id. Both audited under the admin."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from broker.admin_auth import AdminPrincipal
from broker.audit import AuditContext
from broker.errors import Forbidden, Unauthenticated
from broker.web.admin_schema import COMMON, NOT_FOUND, Timestamp, documented_error
from broker.web.deps import ServicesDep, client_ip, request_id, require_admin
from broker.web.sessions import CSRF_HEADER

router = APIRouter(prefix="/api/v1/admin/mfa", tags=["admin"], responses=COMMON)

Username = Annotated[str, Field(min_length=1, max_length=256, pattern=r"\S")]


def admin_context(request: Request, services: ServicesDep) -> AuditContext:
    """The admin behind this request: an ``Authorization`` header (token, Basic) as on every admin
    route, else an admin's portal session with its CSRF token (the admin pages' JavaScript)."""
    if "authorization" in request.headers:
        actor = require_admin(request, services).actor
    else:
        sessions = services.access.sessions
        session = sessions.load(request)
        user = session.identity if session is not None else None
        if session is None or user is None:
            raise Unauthenticated("an admin bearer token or an admin's portal session is required")
        sessions.check_csrf(request, session, request.headers.get(CSRF_HEADER))
        current = services.flow.current_identity(user)
        if not services.admin_tokens.is_admin(current):
            raise Forbidden("only the broker's admins manage other people's second factors")
        actor = AdminPrincipal(current.username, "directory").actor
    return AuditContext(actor=actor, request_id=request_id(request), source_ip=client_ip(request))


AdminCtx = Annotated[AuditContext, Depends(admin_context)]


class CodeFor(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Username


class EnrolmentCode(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str
    code: str = Field(description="the one-time enrolment code: shown only now; give it to the person")
    expires_at: Timestamp


class Reset(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str
    totp: bool = Field(description="an authenticator app (and its recovery codes) was removed")
    passkeys: int = Field(description="how many security keys and passkeys were removed")


@router.post("/enrolment-codes", status_code=201, response_model=EnrolmentCode, responses=NOT_FOUND,
             summary="A one-time code a person enrols their first second factor with (mfa.enrolment: invite)")
def issue_code(body: CodeFor, ctx: AdminCtx, services: ServicesDep) -> dict[str, Any]:
    person = services.flow.person(body.username.strip(), none="enrolment codes are for directory accounts")
    code, expires = services.enrolment.issue(person, by=ctx)
    return {"username": person.username, "code": code, "expires_at": expires}


@router.delete("/{username}", response_model=Reset,
               responses={**NOT_FOUND, 409: documented_error("mfa_not_enrolled: the person has no second factor")},
               summary="Remove a person's second factors (a lost phone): TOTP, recovery codes, passkeys")
def reset(username: Annotated[str, Path(min_length=1, max_length=256)], ctx: AdminCtx,
          services: ServicesDep) -> dict[str, Any]:
    person = services.flow.person(username.strip(), none="factor resets are for directory accounts")
    removed = services.enrolment.reset(person, by=ctx, factors=services.step_ups.store,
                                       credentials=services.passkeys.store)
    return {"username": person.username, **removed}
