"""RFC 8628 over HTTP: /oauth/device/authorization, /oauth/token (device_code, refresh_token and,
only when ``api.password_login`` is on, password), /oauth/revoke (RFC 7009), and the /device
approval page behind the portal sign-in.

The grant logic is broker.oauth (device codes, rotating refresh tokens); its errors are the
classes of broker.oauth.errors, raised here too, and answered by broker.web.errors in the
RFC 6749 §5.2 shape ``{"error", "error_description"}`` with ``Cache-Control: no-store``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from broker.errors import BrokerError, CsrfFailed, InvalidCredentials, MfaRequired, TooManyRequests
from broker.mfa import fresh
from broker.oauth.device import DEVICE_CODE_GRANT_TYPE, PendingDevice, format_user_code, normalize_user_code
from broker.oauth.errors import (
    NO_STORE,
    DeviceStartsLimited,
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    PasswordGrantLimited,
    UnsupportedGrantType,
)
from broker.redirects import safe_next
from broker.services import Services
from broker.web.deps import ServicesDep, client_ip, decision_context
from broker.web.mfa import step_up_redirect
from broker.web.pages import error_page, message, page
from broker.web.sessions import Session

router = APIRouter(tags=["device login (RFC 8628)"])

DEVICE_PATH = "/device"
_NO_STORE = NO_STORE
Param = Annotated[str | None, Form(max_length=4096)]
_UNKNOWN_CODE = "That code is unknown, already used or expired. Check it, or run awsbroker login again."
_CLIENTS = {"awsbroker": "awsbroker, the command-line client"}


@router.post("/oauth/device/authorization", summary="RFC 8628 §3.1: start a device login (the awsbroker CLI)")
def device_authorization(request: Request, services: ServicesDep, client_id: Param = None, scope: Param = None,
                         mfa: Param = None) -> Response:
    """``mfa=required``: a login with a second factor (the CLI after ``mfa_required``): the person
    steps up before the approval counts, and the tokens carry it (``mfa_at``)."""
    if not client_id:
        raise InvalidRequest("client_id is required")
    if mfa not in (None, "", "required"):
        raise InvalidRequest("mfa is 'required' or absent")
    try:
        grant = services.flow.start_device(client_id=client_id, user_agent=request.headers.get("user-agent"),
                                           ctx=decision_context(request, "cli"), mfa=mfa == "required")
    except TooManyRequests as exc:
        raise DeviceStartsLimited(exc.message, retry_after=exc.retry_after) from None
    return JSONResponse(grant.response(services.config.server.public_url + DEVICE_PATH), headers=_NO_STORE)


@router.post("/oauth/token", summary="RFC 6749 token endpoint: device_code (RFC 8628), refresh_token, password (if enabled)")
def token(
    request: Request,
    services: ServicesDep,
    grant_type: Param = None,
    client_id: Param = None,
    device_code: Param = None,
    refresh_token: Param = None,
    username: Param = None,
    password: Param = None,
) -> Response:
    access = services.access
    if not grant_type:
        raise InvalidRequest("grant_type is required")
    if client_id != services.config.oauth.client_id:
        raise InvalidClient("unknown client_id")
    if grant_type == DEVICE_CODE_GRANT_TYPE:
        identity = services.flow.complete_device(device_code=device_code or "", client_id=client_id,
                                                 ctx=decision_context(request, "cli"))
        pair = access.tokens.issue(identity, client_id=client_id)
    elif grant_type == "refresh_token":
        pair = access.tokens.refresh(refresh_token or "", client_id=client_id)
    elif grant_type == "password" and services.config.api.password_login:
        if not username or not password:
            raise InvalidRequest("username and password are required")
        try:
            identity = services.flow.sign_in(username, password, ctx=decision_context(request, "cli"))
        except InvalidCredentials:
            raise InvalidGrant("invalid username or password") from None
        except TooManyRequests as exc:
            raise PasswordGrantLimited(exc.message, retry_after=exc.retry_after) from None
        pair = access.tokens.issue(identity, client_id=client_id)
    else:
        raise UnsupportedGrantType(f"unsupported grant_type {grant_type[:64]}")
    return JSONResponse(pair.response(), headers=_NO_STORE)


@router.post("/oauth/revoke", summary="RFC 7009: revoke a CLI login (access or refresh token); always 200")
def revoke(services: ServicesDep, token: Param = None, token_type_hint: Param = None, client_id: Param = None) -> Response:
    if token:
        services.access.tokens.revoke(token)
    return Response(status_code=200, headers=_NO_STORE)


# ---- the approval page (a person, signed in to the portal) ----


def _when(at: float, now: float) -> tuple[str, str]:
    """(``2026-12-02 03:14:05 UTC``, ``in 9 minutes`` / ``2 minutes ago``)."""
    stamp = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    seconds = round(at - now)
    span = abs(seconds)
    if span < 60:
        words = f"{span} second{'s' if span != 1 else ''}"
    else:
        minutes = span // 60
        words = f"{minutes} minute{'s' if minutes != 1 else ''}"
    return stamp, (f"in {words}" if seconds >= 0 else f"{words} ago")


def _entry_page(request: Request, session: Session, *, user_code: str = "", error: str = "", status: int = 200) -> Response:
    return page(request, "device.html", session=session, title="Command-line sign-in", user_code=user_code,
                pending=None, error=error, status=status)


def _confirm_page(request: Request, services: Services, session: Session, pending: PendingDevice, *, error: str = "",
                  status: int = 200) -> Response:
    """RFC 8628 §5.4: what is being approved, before anything is: the client, where and when the
    login started, when it expires — and a warning when it started from another address."""
    now = services.access.devices.clock()
    here = client_ip(request)
    started, started_ago = _when(pending.created_at, now)
    expires, expires_in = _when(pending.expires_at, now)
    return page(request, "device.html", session=session, title="Approve command-line sign-in", pending=pending,
                user_code=pending.user_code, client_name=_CLIENTS.get(pending.client_id, pending.client_id),
                started=started, started_ago=started_ago, expires=expires, expires_in=expires_in, here=here,
                elsewhere=pending.address is not None and here is not None and pending.address != here,
                error=error, status=status)


@router.get(DEVICE_PATH, include_in_schema=False)
def device_page(request: Request, services: ServicesDep, user_code: Annotated[str, Query(max_length=32)] = "") -> Response:
    """Code entry (``/device``), or the confirmation page of a typed or linked code (``?user_code=``):
    a GET shows what would be approved and never approves anything."""
    session = services.access.sessions.load(request)
    if session is None or session.user is None:
        target = DEVICE_PATH + (f"?user_code={user_code}" if user_code.replace("-", "").isalnum() else "")
        return RedirectResponse(f"/login?next={safe_next(target) or '/'}", status_code=303, headers=_NO_STORE)
    if not user_code.strip():
        return _entry_page(request, session)
    identity = session.identity
    assert identity is not None
    try:
        pending = services.flow.device_code(identity, user_code, ctx=decision_context(request, "device"))
    except TooManyRequests as exc:
        return error_page(request, session, exc)
    if pending is None:
        return _entry_page(request, session, user_code=user_code, status=400, error=_UNKNOWN_CODE)
    if pending.mfa and not fresh(identity, now=services.access.devices.clock()):
        return step_up_redirect(f"{DEVICE_PATH}?user_code={pending.user_code}")  # then back to this page
    return _confirm_page(request, services, session, pending)


@router.post(DEVICE_PATH, include_in_schema=False)
def device_decide(
    request: Request,
    services: ServicesDep,
    user_code: Annotated[str, Form(max_length=32)] = "",
    decision: Annotated[str, Form(max_length=16)] = "",
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    access = services.access
    session = access.sessions.load(request)
    if session is None or session.user is None:
        return RedirectResponse(f"/login?next={DEVICE_PATH}", status_code=303, headers=_NO_STORE)
    try:
        access.sessions.check_csrf(request, session, csrf_token)
    except CsrfFailed as exc:
        return error_page(request, session, exc)
    identity = session.identity
    assert identity is not None
    try:
        outcome = services.flow.decide_device(identity, user_code, decision, ctx=decision_context(request, "device"))
    except MfaRequired:
        code = normalize_user_code(user_code) or ""
        return step_up_redirect(f"{DEVICE_PATH}?user_code={format_user_code(code)}" if code else DEVICE_PATH)
    except BrokerError as exc:  # rate limited, or the directory no longer accepts the account
        return error_page(request, session, exc)
    if outcome == "no_choice":
        pending = access.devices.pending(user_code)
        if pending is None:
            return _entry_page(request, session, user_code=user_code, error=_UNKNOWN_CODE, status=400)
        return _confirm_page(request, services, session, pending, error="Choose Approve or Deny.", status=400)
    if outcome == "unknown_code":
        return _entry_page(request, session, user_code=user_code, error=_UNKNOWN_CODE, status=400)
    if outcome == "approved":
        return message(request, session, title="Command line signed in", kind="ok", status=200,
                       text="Your terminal is signed in as you. You can close this tab and return to it.")
    return message(request, session, title="Sign-in denied", kind="ok", status=200,
                   text="The command-line sign-in was denied; nothing was issued to it.")
