"""The HTML pages every browser-facing router renders: the portal's layout (``page``), a message
page (``message``), and a broker error as a page a person understands (``error_page``).

Shared by the portal, the device-login page, the upstream sign-in refusals and the error
handlers (a dependency down on a page answers "Temporarily unavailable"); no router imports
another for them. Pages are never cached and never framed (``PAGE_HEADERS``).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from broker.errors import (
    BrokerError,
    CsrfFailed,
    DirectoryUnavailable,
    Forbidden,
    InvalidInput,
    TooManyRequests,
    Unavailable,
)
from broker.web.deps import services_of
from broker.web.sessions import Session

templates = Environment(
    loader=PackageLoader("broker.web", "templates"), autoescape=select_autoescape(default=True), trim_blocks=True,
    lstrip_blocks=True,
)

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # no form-action: the console form's answer is a 302 to the AWS federation endpoint
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
}


def page(request: Request, template: str, *, status: int = 200, session: Session | None = None, **values: Any) -> HTMLResponse:
    services = services_of(request)
    user = session.identity if session is not None else None
    html = templates.get_template(template).render(
        portal_title=services.config.portal.title,
        sandbox=getattr(services.aws.signin, "sandbox", False),
        user=user,
        csrf=session.csrf if session is not None else "",
        **values,
    )
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def message(request: Request, session: Session | None, *, title: str, text: str, status: int,
            kind: str = "error", links: list[tuple[str, str]] | None = None) -> HTMLResponse:
    return page(request, "message.html", status=status, session=session, title=title, text=text, kind=kind,
                links=links or [("/", "Back to your accounts")])


def error_page(request: Request, session: Session | None, exc: BrokerError) -> HTMLResponse:
    """A broker error as a page a person understands (never a stack trace, never a secret)."""
    if isinstance(exc, DirectoryUnavailable):
        title, text = "Directory unavailable", (
            "The company directory cannot be reached right now, so the broker cannot check your groups. "
            "Nothing was issued. Try again in a few minutes.")
    elif isinstance(exc, Forbidden) and not isinstance(exc, CsrfFailed):
        title, text = "Role denied", f"{exc.message}. Nothing was issued; your accounts page shows what you may use."
    elif isinstance(exc, CsrfFailed):
        title, text = "Please try again", exc.message
    elif isinstance(exc, TooManyRequests):
        title, text = "Too many attempts", exc.message
    elif isinstance(exc, InvalidInput):
        title, text = "Check the form", exc.message
    elif isinstance(exc, Unavailable):
        title, text = "Temporarily unavailable", exc.message
    else:
        title, text = "Something went wrong", exc.message
    response = message(request, session, title=title, text=text, status=exc.status)
    for key, value in (exc.headers or {}).items():
        if key.lower() == "retry-after":
            response.headers[key] = value
    return response
