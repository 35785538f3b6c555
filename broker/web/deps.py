"""Typed FastAPI dependencies (``Annotated`` aliases), all reading from ``app.state.services``
(a ``broker.services.Services``, set by ``broker.app.create_app``), and the one
``decision_context(request, via)`` every router hands to the flow.

FastAPI runs every plain ``def`` dependency in the thread pool, one hand-off each; so the
dependencies that do no I/O are ``async def`` (they run on the event loop at no hand-off), and
the user API's caller is resolved inside the endpoint's own worker thread (``Caller``).
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Depends, Request

from broker.admin_auth import AdminPrincipal
from broker.audit import AuditContext
from broker.domain import Identity
from broker.errors import Unauthenticated
from broker.flow import DecisionContext
from broker.services import Services


def services_of(request: Request) -> Services:
    """The app's services, for helpers that have the request but are no route (pages, hooks)."""
    services: Services = request.app.state.services
    return services


async def get_services(request: Request) -> Services:
    return services_of(request)


ServicesDep = Annotated[Services, Depends(get_services)]


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def request_id(request: Request) -> str | None:
    """The request id the middleware gave this request (``broker.web.middleware.RequestContext``)."""
    value = getattr(request.state, "request_id", None)
    return value if isinstance(value, str) else None


def decision_context(request: Request, via: str = "api") -> DecisionContext:
    """Who asks from where, for the flow's decisions and their audit events; ``via`` is the door
    (``api``, ``portal``, ``cli``, ``device``, ``admin-api``)."""
    return DecisionContext(source_ip=client_ip(request), request_id=request_id(request), via=via)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _basic(request: Request) -> tuple[str, str] | None:
    """(username, password) from ``Authorization: Basic ...``; None when absent or malformed."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


def require_admin(request: Request, services: ServicesDep) -> AdminPrincipal:
    token = _bearer(request)
    if token is None:
        basic = _basic(request) if services.admin_tokens.accepts_passwords else None
        if basic is not None:
            return _directory_admin(request, services, *basic)
        raise Unauthenticated("an admin bearer token is required (Authorization: Bearer <token>)")
    principal = services.admin_tokens.verify(token)
    if principal is None:
        raise Unauthenticated("the admin token is not valid for this broker")
    return principal


def _directory_admin(request: Request, services: Services, username: str, password: str) -> AdminPrincipal:
    """HTTP Basic on the admin API: ``Flow.admin_sign_in`` (the password sign-in of every other
    door, then the admin-group decision of ``AdminTokens.admit``)."""
    return services.flow.admin_sign_in(username, password, ctx=decision_context(request, via="admin-api"),
                                       check=services.admin_tokens.admit)


AdminDep = Annotated[AdminPrincipal, Depends(require_admin)]


async def audit_context(request: Request, admin: AdminDep) -> AuditContext:
    return AuditContext(actor=admin.actor, request_id=request_id(request), source_ip=client_ip(request))


AuditCtx = Annotated[AuditContext, Depends(audit_context)]


def _resolve_user(request: Request, services: Services) -> Identity:
    token = _bearer(request)
    if token is not None:
        identity = services.access.tokens.identity_for(token)
        if identity is None:
            raise Unauthenticated("the access token is invalid, expired or revoked (awsbroker refreshes it; else log in again)")
        return identity
    sessions = services.access.sessions
    session = sessions.load(request) if sessions.cookie_name(request) in request.cookies else None
    signed_in = session.identity if session is not None else None
    if signed_in is not None:
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            sessions.check_csrf(request, session, request.headers.get("x-csrf-token"))
        return signed_in
    basic = _basic(request) if services.config.api.password_login else None
    if basic is None:
        raise Unauthenticated("sign in first (the portal, or `awsbroker login`)")
    return services.flow.sign_in(*basic, ctx=decision_context(request))


class Caller:
    """The person behind a user-API request, as presented: a bearer access token (the CLI's
    device login), a portal session (unsafe methods also need the ``X-CSRF-Token`` header), or
    HTTP Basic with the directory password when ``api.password_login`` is on (each call a
    rate-limited, audited sign-in).

    Checking any of them is I/O (shared state, the directory), so it happens when the endpoint,
    already in its worker thread, calls ``identity()`` — not in a thread hand-off of its own.
    A request that presents nothing at all is refused before its body is read."""

    __slots__ = ("_request", "_services")

    def __init__(self, request: Request, services: Services) -> None:
        self._request = request
        self._services = services

    def identity(self) -> Identity:
        return _resolve_user(self._request, self._services)


async def caller(request: Request, services: ServicesDep) -> Caller:
    presented = (
        request.headers.get("authorization")
        or services.access.sessions.cookie_name(request) in request.cookies
    )
    if not presented:
        raise Unauthenticated("sign in first (the portal, or `awsbroker login`)")
    return Caller(request, services)


CallerDep = Annotated[Caller, Depends(caller)]
