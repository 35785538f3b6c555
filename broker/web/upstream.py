"""Sign-in through an upstream identity provider (the broker as SAML SP / OIDC RP).

    GET  /sso                         the configured sign-in options (the portal's buttons)
    GET  /sso/{idp}/login?next=/path  start: 302 to the IdP; the pending request goes to shared state
    POST /sso/{idp}/saml/acs          SAML: the IdP's HTTP-POST (SAMLResponse, RelayState)
    GET  /sso/{idp}/saml/metadata     SAML: this SP's metadata, for the IdP's administrator
    GET  /sso/{idp}/oidc/callback     OIDC: the authorization response (code, state, iss)

A thin router: the connectors (``broker.connectors.saml_sp`` / ``oidc_rp``) do the protocol work.
The browser that starts a sign-in gets a random cookie (``__Host-broker-sso`` over https); the
pending request stores its hash, and the callback must come from the same browser. Over https
the cookie is ``SameSite=None`` because the SAML ACS is a cross-site POST from the IdP.

On success the verified ``Identity`` goes to ``establish_session`` (``SessionStore.login_response``),
which answers with a redirect to the validated local ``next`` path. Every outcome is audited
(action ``login``, via ``upstream``) by ``broker.flow.Flow.upstream_sign_in``: allow with who and
which IdP, deny with the reason.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from broker.connectors.base import CallbackConnector, SAMLConnector, SignIn, UpstreamConnector
from broker.connectors.upstream import binding_of
from broker.domain import Identity
from broker.errors import (
    BrokerError,
    SsoRequestInvalid,
    UnknownIdentityProvider,
    UpstreamRejected,
)
from broker.redirects import safe_next
from broker.services import Services
from broker.web.deps import ServicesDep, decision_context, services_of
from broker.web.pages import message
from broker.web.sessions import host_cookie_name
from broker.web.sign_in_options import sign_in_options

router = APIRouter(prefix="/sso", tags=["sign-in"])

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache", "Referrer-Policy": "no-referrer"}
_COOKIE_VALUE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_COOKIE_MAX_AGE = 3600


# ---- the session hook (the portal owns sessions) ----

EstablishSession = Callable[[Request, Identity, str], Response]


def establish_session(request: Request, identity: Identity, next_url: str) -> Response:
    """Sign the browser in as ``identity`` and send it on to ``next_url`` (a validated local path).

    The portal's ``broker.web.sessions.SessionStore.login_response``: a new session id (never the one the
    browser came with), the session cookie, and a 303 to ``next_url``. Called for every upstream
    sign-in, once the IdP's answer and the directory enrichment passed. Tests may replace it
    through ``app.dependency_overrides[session_hook]``.
    """
    return services_of(request).access.sessions.login_response(request, identity, next_url)


def session_hook() -> EstablishSession:
    return establish_session


SessionHook = Annotated[EstablishSession, Depends(session_hook)]


# ---- helpers ----


def _connector(services: Services, idp: str) -> UpstreamConnector:
    connector = services.upstream.get(idp)
    if connector is None:
        raise UnknownIdentityProvider()
    return connector


def _secure(services: Services) -> bool:
    """The sign-in cookie is Secure (and ``SameSite=None``, for the IdP's cross-site POST) over https."""
    return services.config.server.public_url.startswith("https://")


def _cookie_name(services: Services) -> str:
    return host_cookie_name("__Host-broker-sso", secure=_secure(services))


def _binding(request: Request, services: Services) -> str | None:
    value = request.cookies.get(_cookie_name(services))
    return binding_of(value) if value and _COOKIE_VALUE.match(value) else None


def _protocol(services: Services, idp: str) -> str | None:
    connector = services.upstream.get(idp)
    return connector.kind if connector else None


def _refused(request: Request, services: Services, idp: str, exc: BrokerError) -> Response:
    """A refusal before the connector saw the answer (an unreadable form): audited, then answered."""
    services.flow.upstream_refused(idp=idp, protocol=_protocol(services, idp), ctx=decision_context(request, "upstream"), error=exc)
    return _refusal(request, services, exc)


def _wants_page(request: Request, services: Services) -> bool:
    """A person's browser (it asks for HTML) on a broker that serves the portal."""
    return services.config.portal.enabled and "text/html" in request.headers.get("accept", "")


def _refusal(request: Request, services: Services, exc: BrokerError) -> Response:
    """A browser gets a page saying the sign-in failed (and a way to start again); API clients
    get the JSON error (re-raised to the error handlers)."""
    if not _wants_page(request, services):
        raise exc
    services.metrics.errors.labels(exc.code).inc()  # as broker.web.errors counts the JSON answers

    text = f"{exc.message}. Nothing was signed in." if exc.status < 500 else exc.message
    return message(request, None, title="Sign-in failed", text=text, status=exc.status,
                   links=[("/login", "Sign in again")])


def _finish(request: Request, services: Services, idp: str, hook: EstablishSession,
            work: Callable[[], SignIn]) -> Response:
    # The sign-in cookie stays (it expires by itself): another tab's sign-in may still be under way,
    # and it proves nothing without a pending request, which is single-use.
    return services.flow.upstream_sign_in(
        idp=idp, protocol=_protocol(services, idp), ctx=decision_context(request, "upstream"), verify=work,
        establish=lambda signed_in: hook(request, signed_in.identity, signed_in.next_url),
        refuse=lambda exc: _refusal(request, services, exc),
    )


def _single(items: list[tuple[str, str]]) -> Mapping[str, str]:
    """Parameters given once each; a repeated one (two ``state``s, two SAMLResponses) is refused."""
    out: dict[str, str] = {}
    for key, value in items:
        if key in out:
            raise SsoRequestInvalid(reason="duplicate_parameter")
        out[key] = value
    return out


# ---- routes ----


@router.get("", summary="The configured upstream sign-in options")
def options(services: ServicesDep) -> JSONResponse:
    return JSONResponse({"providers": [option.to_dict() for option in sign_in_options(services.upstream)]})


@router.get("/{idp}/login", summary="Start signing in through an upstream identity provider")
def login(
    idp: str,
    request: Request,
    services: ServicesDep,
    next: Annotated[str | None, Query(max_length=2048)] = None,
) -> Response:
    connector = _connector(services, idp)
    name = _cookie_name(services)
    cookie = request.cookies.get(name)
    if not cookie or not _COOKIE_VALUE.match(cookie):
        cookie = secrets.token_urlsafe(32)
    binding = binding_of(cookie)
    assert binding is not None
    try:
        url = connector.login_url(next_url=safe_next(next) or "/", binding=binding)
    except BrokerError as exc:  # the IdP's metadata or discovery cannot be had
        return _refusal(request, services, exc)
    response = RedirectResponse(url, status_code=302, headers=_NO_STORE)
    secure = _secure(services)
    response.set_cookie(name, cookie, max_age=_COOKIE_MAX_AGE, path="/", secure=secure, httponly=True,
                        samesite="none" if secure else "lax")
    return response


@router.post("/{idp}/saml/acs", summary="SAML assertion consumer service (HTTP-POST binding)")
async def saml_acs(idp: str, request: Request, services: ServicesDep, hook: SessionHook) -> Response:
    connector = _connector(services, idp)
    if not isinstance(connector, SAMLConnector):
        raise UnknownIdentityProvider()
    binding = _binding(request, services)
    try:
        async with request.form(max_files=0, max_fields=8) as form:
            fields = _single([(k, v) for k, v in form.multi_items() if isinstance(v, str)])
    except BrokerError as exc:
        return _refused(request, services, idp, exc)
    except Exception:  # noqa: BLE001 - starlette's parser refusing the body (too many fields, a file, bad encoding)
        return _refused(request, services, idp, UpstreamRejected(reason="unreadable_form"))
    return await run_in_threadpool(
        _finish, request, services, idp, hook, lambda: connector.handle_post(fields, binding=binding)
    )


@router.get("/{idp}/saml/metadata", summary="This service provider's SAML metadata for that IdP")
def saml_metadata(idp: str, services: ServicesDep) -> Response:
    connector = _connector(services, idp)
    if not isinstance(connector, SAMLConnector):
        raise UnknownIdentityProvider()
    return Response(connector.metadata(), media_type="application/samlmetadata+xml",
                    headers={"Cache-Control": "public, max-age=300"})


@router.get("/{idp}/oidc/callback", summary="OpenID Connect redirect URI (authorization response)")
def oidc_callback(idp: str, request: Request, services: ServicesDep, hook: SessionHook) -> Response:
    connector = _connector(services, idp)
    if not isinstance(connector, CallbackConnector):
        raise UnknownIdentityProvider()
    binding = _binding(request, services)

    def work() -> SignIn:
        params = _single(list(request.query_params.multi_items()))
        return connector.handle_callback(params, binding=binding)

    return _finish(request, services, idp, hook, work)
