"""The break-glass sign-in page: ``GET /break-glass`` (username, password, TOTP code) and
``POST /break-glass``. Not linked from the portal, except by a small link on the sign-in page
while the directory is unavailable. CSRF as the sign-in form (a signed cookie pair); the decision
is ``broker.flow.Flow.break_glass_sign_in``; a success is a portal session like any sign-in's
(ending ``break_glass.session_seconds`` after it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from broker.errors import (
    BreakGlassUnavailable,
    BrokerError,
    CsrfFailed,
    InvalidCredentials,
    MfaCodeReused,
    NotFound,
    TooManyRequests,
    Unavailable,
)
from broker.web.deps import ServicesDep, decision_context, services_of
from broker.web.pages import page

router = APIRouter(include_in_schema=False, tags=["portal"])

Text = Annotated[str, Form(max_length=256)]


def _form(request: Request, *, username: str = "", error: str = "", status: int = 200,
          fresh: bool = False) -> HTMLResponse:
    sessions = services_of(request).access.sessions
    token, cookie = sessions.login_csrf(request, fresh=fresh)
    response = page(request, "break_glass.html", status=status, session=None, title="Break-glass sign-in",
                    csrf_login=token, username=username, error=error)
    if cookie is not None:
        sessions.set_login_cookie(request, response, cookie)
    return response


@router.get("/break-glass")
def break_glass_form(request: Request, services: ServicesDep) -> Response:
    if services.flow.break_glass is None:
        raise NotFound("break-glass sign-in is not configured here")
    return _form(request)


@router.post("/break-glass")
def break_glass(
    request: Request,
    services: ServicesDep,
    username: Text = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    code: Annotated[str, Form(max_length=16)] = "",
    csrf_token: Text = "",
) -> Response:
    if services.flow.break_glass is None:
        raise NotFound("break-glass sign-in is not configured here")
    sessions = services.access.sessions
    try:
        sessions.check_login_csrf(request, csrf_token)
    except CsrfFailed:
        return _form(request, username=username, status=403, fresh=True,
                     error="The form had expired. Please sign in again.")
    if not username.strip() or not password or not code.strip():
        return _form(request, username=username, status=400, error="Enter the username, password and one-time code.")
    try:
        identity = services.flow.break_glass_sign_in(username.strip(), password, code,
                                                     ctx=decision_context(request, "portal"))
    except InvalidCredentials:
        return _form(request, username=username, status=401, error="Invalid username, password or code.")
    except MfaCodeReused as exc:
        return _form(request, username=username, status=exc.status, error="That code was already used: wait for the next one.")
    except BreakGlassUnavailable as exc:
        return _form(request, username=username, status=exc.status,
                     error="The company directory answers: break-glass sign-in is closed. Sign in normally.")
    except TooManyRequests as exc:
        response = _form(request, username=username, status=429, error=exc.message)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except Unavailable:
        raise  # the shared state or the database is down: the portal's "Temporarily unavailable" page
    except BrokerError as exc:
        return _form(request, username=username, status=exc.status, error=exc.message)
    return sessions.login_response(request, identity, "/")
