"""Passkeys and security keys in the portal (WebAuthn step-up): JSON routes for the browser's
``static/webauthn.js`` and a page of their own (``/mfa/webauthn``, the ``_webauthn.html`` include).

Thin: the ceremonies are ``broker.mfa.passkeys.Passkeys``'s. Every route needs the portal session;
every POST its CSRF token (the ``X-CSRF-Token`` header) and, when the browser sends one, this
site's Origin. A challenge is bound to the session (the hash of its id, never the id).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from broker.domain import Identity
from broker.errors import BrokerError, CsrfFailed, Unauthenticated
from broker.oauth import secret_hash
from broker.redirects import safe_next
from broker.services import Services
from broker.web.deps import ServicesDep, decision_context, services_of
from broker.web.mfa import check_may_add_factor, needs_enrolment_code
from broker.web.pages import page
from broker.web.sessions import CSRF_HEADER, Session

router = APIRouter(prefix="/mfa/webauthn", include_in_schema=False, tags=["portal"])
_NO_STORE = {"Cache-Control": "no-store"}

CredentialId = Annotated[int, Path(ge=1, le=2**62)]
Next = Annotated[str, Field(max_length=2048)]


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    credential: dict[str, Any]
    label: Annotated[str, Field(min_length=1, max_length=64, pattern=r"\S")] = "Passkey"


class RegistrationStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enrolment_code: Annotated[str, Field(max_length=64)] = ""
    """An admin's one-time code, when a first factor needs one (``mfa.enrolment: invite``)."""


class Assertion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    credential: dict[str, Any]
    next: Next | None = None


def _signed_in(request: Request, *, action: str | None = None) -> tuple[Session, Identity]:
    """The portal session and its identity; ``action`` (a write): its CSRF token checked, a
    refusal audited under that action."""
    services = services_of(request)
    session = services.access.sessions.load(request)
    identity = session.identity if session is not None else None
    if session is None or identity is None:
        raise Unauthenticated("sign in to the portal first")
    if action is not None:
        try:
            services.access.sessions.check_csrf(request, session, request.headers.get(CSRF_HEADER))
        except CsrfFailed as exc:
            services.passkeys.refused(decision_context(request, "portal"), action, identity, exc)
            raise
    return session, identity


def _binding(session: Session) -> str:
    return secret_hash("webauthn:" + session.id)


def _json(body: Any, status: int = 200) -> Response:
    text = body if isinstance(body, str) else json.dumps(body)
    return Response(text, status_code=status, media_type="application/json", headers=_NO_STORE)


def _mine(services: Services, identity: Identity) -> dict[str, Any]:
    return {"credentials": [c.to_dict() for c in services.passkeys.credentials(identity)],
            "step_up": {"at": identity.mfa_at, "methods": list(identity.mfa_methods)}}


@router.get("")
def webauthn_page(request: Request, services: ServicesDep,
                  next: Annotated[str, Query(max_length=2048)] = "") -> Response:
    """The include on a page of its own; ``next``: where a step-up returns to (none: stay here)."""
    session = services.access.sessions.load(request)
    if session is None or session.user is None:
        return RedirectResponse("/login?next=/mfa/webauthn", status_code=303, headers=_NO_STORE)
    identity = session.identity
    return page(request, "webauthn.html", session=session, title="Security keys and passkeys",
                next_url=(safe_next(next) or "") if next else "",
                enrolment_code_needed=identity is not None and needs_enrolment_code(request, session, identity))


@router.get("/credentials")
def credentials(request: Request, services: ServicesDep) -> Response:
    """Mine (never a public key) and the session's step-up: when, by which methods."""
    _, identity = _signed_in(request)
    return _json(_mine(services, identity))


@router.post("/register/options")
def register_options(request: Request, services: ServicesDep, body: RegistrationStart | None = None) -> Response:
    session, identity = _signed_in(request, action="mfa.enrol")
    check_may_add_factor(request, session, identity, code=body.enrolment_code if body is not None else "")
    return _json(services.passkeys.registration_options(identity, binding=_binding(session)))


@router.post("/register")
def register(body: Registration, request: Request, services: ServicesDep) -> Response:
    session, identity = _signed_in(request, action="mfa.enrol")
    try:
        check_may_add_factor(request, session, identity)  # finding 5: not only when the options were asked
    except BrokerError as exc:
        services.passkeys.refused(decision_context(request, "portal"), "mfa.enrol", identity, exc)
        raise
    stored = services.passkeys.register(identity, json.dumps(body.credential), label=body.label.strip(),
                                        binding=_binding(session), ctx=decision_context(request, "portal"),
                                        now=services.access.sessions.clock())
    return _json(stored.to_dict(), status=201)


@router.post("/authenticate/options")
def authenticate_options(request: Request, services: ServicesDep) -> Response:
    session, identity = _signed_in(request, action="mfa.step_up")
    return _json(services.passkeys.authentication_options(identity, binding=_binding(session)))


@router.post("/authenticate")
def authenticate(body: Assertion, request: Request, services: ServicesDep) -> Response:
    sessions = services.access.sessions
    session, identity = _signed_in(request, action="mfa.step_up")
    stepped = services.passkeys.authenticate(identity, json.dumps(body.credential), binding=_binding(session),
                                             ctx=decision_context(request, "portal"), now=sessions.clock())
    renewed = sessions.renewed(session, stepped)  # a new session id and CSRF token, as every step-up
    if renewed is None:
        raise Unauthenticated("the portal session ended: sign in again")
    response = _json({"step_up": {"at": stepped.mfa_at, "methods": list(stepped.mfa_methods)},
                      "next": safe_next(body.next) if body.next else None, "csrf": renewed.csrf})
    sessions.set_cookie(request, response, renewed)
    return response


@router.post("/credentials/{credential_id}/remove")
def remove(credential_id: CredentialId, request: Request, services: ServicesDep) -> JSONResponse:
    _, identity = _signed_in(request, action="mfa.remove")
    services.passkeys.remove(identity, credential_id, ctx=decision_context(request, "portal"),
                             now=services.access.sessions.clock())
    return JSONResponse(_mine(services, identity), headers=_NO_STORE)
