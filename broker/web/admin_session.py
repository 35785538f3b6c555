"""Who may open the admin pages: a portal session (the normal sign-in) whose person is, as the
directory says now, in one of ``admin.directory_groups`` (``AdminTokens.is_admin``).

Not signed in: a redirect to the sign-in page that comes back here (``next``). Signed in but no
admin: a 403 page. A POST also needs the session's CSRF token (checked before anything else is
read). The audit actor of a page write is the admin API's for a directory admin,
``directory:<username>`` (``AdminPrincipal`` via "directory"), with the request id and the
source address (``AuditContext``, as ``broker.web.deps.audit_context`` builds it).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from broker.admin_auth import AdminPrincipal
from broker.audit import AuditContext
from broker.domain import Identity
from broker.errors import BrokerError, CsrfFailed, Unauthenticated
from broker.redirects import safe_next
from broker.web.deps import client_ip, request_id, services_of
from broker.web.pages import error_page, message, page
from broker.web.sessions import Session


@dataclass(frozen=True)
class AdminVisit:
    """A request of an admin, on an admin page."""

    request: Request
    session: Session
    identity: Identity
    principal: AdminPrincipal

    @property
    def ctx(self) -> AuditContext:
        return AuditContext(actor=self.principal.actor, request_id=request_id(self.request),
                            source_ip=client_ip(self.request))

    def render(self, template: str, *, status: int = 200, **values: object) -> Response:
        return page(self.request, template, status=status, session=self.session, admin_link=True, **values)

    def error(self, exc: BrokerError) -> Response:
        return error_page(self.request, self.session, exc)


def _to_login(request: Request) -> RedirectResponse:
    back = request.url.path + (f"?{request.url.query}" if request.url.query and request.method == "GET" else "")
    target = safe_next(back) or "/admin"
    return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303,
                            headers={"Cache-Control": "no-store"})


def admin_visit(request: Request, *, csrf_token: str | None = None) -> AdminVisit | Response:
    """The admin behind this request, or the response to give instead (sign in, 403).
    ``csrf_token``: a form POST's token, checked against the session's."""
    services = services_of(request)
    sessions = services.access.sessions
    session = sessions.load(request)
    user = session.identity if session is not None else None
    if session is None or user is None:
        return _to_login(request)
    if csrf_token is not None:
        try:
            sessions.check_csrf(request, session, csrf_token)
        except CsrfFailed as exc:
            return error_page(request, session, exc)
    try:
        current = services.flow.current_identity(user)
    except Unauthenticated:
        sessions.destroy(session)
        return _to_login(request)
    except BrokerError as exc:
        return error_page(request, session, exc)
    if not services.admin_tokens.is_admin(current):
        return message(request, session, title="Admins only", status=403,
                       text="The admin pages are for members of the broker's admin groups. Nothing was changed.")
    return AdminVisit(request, session, current, AdminPrincipal(current.username, "directory"))
