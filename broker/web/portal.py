"""The employee portal (server-rendered, Jinja2): sign in, see every account and role, open the
console, copy command-line snippets, favorites and recents, sign out.

Thin: every decision is ``broker.flow.Flow``'s (directory re-read, grants, mint, STS, audit);
sessions and CSRF are ``broker.web.sessions``; password guessing is ``broker.ratelimit``'s.
Every form carries the session's CSRF token. Pages are never cached and never framed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from awsbroker import delivery
from broker.aws.partitions import CONSOLE_SERVICES, PARTITIONS
from broker.break_glass import BREAK_GLASS_SOURCE
from broker.domain import ConsoleLink, Identity, RoleGrant
from broker.errors import (
    BrokerError,
    CsrfFailed,
    DirectoryUnavailable,
    Forbidden,
    InvalidCredentials,
    MfaRequired,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
)
from broker.jit.requests import AccessRequest, human_duration, rfc3339
from broker.mapping.model import MAX_SESSION
from broker.redirects import safe_next
from broker.web.access import role_key
from broker.web.break_glass_link import break_glass_offered
from broker.web.deps import ServicesDep, decision_context, services_of
from broker.web.mfa import remember_resume
from broker.web.pages import error_page, page
from broker.web.sessions import Session
from broker.web.sign_in_options import sign_in_options

router = APIRouter(include_in_schema=False, tags=["portal"])

_NO_REFERRER = {"Cache-Control": "no-store", "Pragma": "no-cache", "Referrer-Policy": "no-referrer"}
STATIC = {"portal.css": "text/css; charset=utf-8", "portal.js": "text/javascript; charset=utf-8",
          "webauthn.js": "text/javascript; charset=utf-8"}

Text = Annotated[str, Form(max_length=256)]
OptionalText = Annotated[str, Form(max_length=256)]


def _session(request: Request) -> Session | None:
    return services_of(request).access.sessions.load(request)


def _to_login(request: Request, next_url: str = "/") -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(safe_next(next_url) or '/', safe='/')}", status_code=303,
                            headers={"Cache-Control": "no-store"})


def _signed_in(request: Request) -> tuple[Session | None, Identity | None]:
    session = _session(request)
    return session, (session.identity if session is not None else None)


def console_redirect(link: ConsoleLink) -> RedirectResponse:
    """The console login URL, by 302 only: never in a body, never cached, never logged."""
    return RedirectResponse(link.url, status_code=302, headers=_NO_REFERRER)


def _opt(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


# ---- static files (an allow-list, from the package) ----


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC:
        return Response(status_code=404)
    body = resources.files("broker.web").joinpath("static", name).read_bytes()
    return Response(body, media_type=STATIC[name], headers={"Cache-Control": "public, max-age=300",
                                                            "X-Content-Type-Options": "nosniff"})


# ---- sign in / out ----


def _login_page(request: Request, *, next_url: str, username: str = "", error: str = "", status: int = 200,
                fresh: bool = False, directory_down: bool = False) -> HTMLResponse:
    """The sign-in form; its CSRF token is a signed cookie pair (broker.web.sessions): no stored session."""
    services = services_of(request)
    sessions = services.access.sessions
    token, cookie = sessions.login_csrf(request, fresh=fresh)
    response = page(
        request, "login.html", status=status, session=None, title="Sign in", csrf_login=token,
        next_url=next_url, username=username, error=error,
        password_login=services.directory is not None,
        upstream=[(o.display_name, o.href(next_url)) for o in sign_in_options(services.upstream)],
        break_glass_link=break_glass_offered(services, directory_down=directory_down),
    )
    if cookie is not None:
        sessions.set_login_cookie(request, response, cookie)
    return response


@router.get("/login")
def login_form(request: Request, services: ServicesDep, next: Annotated[str, Query(max_length=2048)] = "/") -> Response:
    next_url = safe_next(next) or "/"
    session = services.access.sessions.load(request)
    if session is not None and session.user is not None:
        return RedirectResponse(next_url, status_code=303, headers={"Cache-Control": "no-store"})
    return _login_page(request, next_url=next_url)


@router.post("/login")
def login(
    request: Request,
    services: ServicesDep,
    username: Text = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Text = "",
    next: Annotated[str, Form(max_length=2048)] = "/",
) -> Response:
    sessions = services.access.sessions
    next_url = safe_next(next) or "/"
    try:
        sessions.check_login_csrf(request, csrf_token)
    except CsrfFailed:
        return _login_page(request, next_url=next_url, username=username, status=403, fresh=True,
                           error="The sign-in form had expired. Please sign in again.")
    if not username.strip() or not password:
        return _login_page(request, next_url=next_url, username=username, status=400,
                           error="Enter your username and password.")
    try:
        identity = services.flow.sign_in(username.strip(), password, ctx=decision_context(request, "portal"))
    except InvalidCredentials:
        return _login_page(request, next_url=next_url, username=username, status=401,
                           error="Invalid username or password.")
    except TooManyRequests as exc:
        response = _login_page(request, next_url=next_url, username=username, status=429, error=exc.message)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except DirectoryUnavailable:
        return _login_page(request, next_url=next_url, username=username, status=503, directory_down=True,
                           error="The company directory cannot be reached right now. Try again in a few minutes.")
    except Unavailable:
        raise  # the shared state or the database is down: the portal's "Temporarily unavailable" page
    except BrokerError as exc:
        return _login_page(request, next_url=next_url, username=username, status=exc.status, error=exc.message)
    return sessions.login_response(request, identity, next_url)


@router.post("/logout")
def logout(request: Request, services: ServicesDep, csrf_token: Text = "") -> Response:
    sessions = services.access.sessions
    session = sessions.load(request)
    if session is None:
        return _to_login(request)
    try:
        sessions.check_csrf(request, session, csrf_token)
    except CsrfFailed as exc:
        return error_page(request, session, exc)
    sessions.destroy(session)
    response = RedirectResponse("/login", status_code=303, headers={"Cache-Control": "no-store"})
    sessions.clear_cookie(request, response)
    return response


# ---- home: accounts and roles ----


@dataclass(frozen=True)
class RoleRow:
    key: str
    account_id: str
    account: str
    """What the CLI and the forms name the account by: the alias when there is one."""
    alias: str | None
    environment: str | None
    role_name: str
    region: str
    partition: str
    console: bool
    cli: bool
    max_console: int
    max_cli: int
    favorite: bool
    description: str = ""
    eligible: bool = False
    """Just-in-time access: issued only under an approved request's active grant."""
    grant_ends: str | None = None
    """The end of the person's active grant of an eligible role (RFC 3339); None: none is active."""
    request_max: int | None = None
    """An eligible role: the longest grant a request may ask (its policy's max_duration)."""
    mfa: bool = False
    """Step-up MFA: issuance on some channel needs a second factor (``require_mfa`` / ``mfa_max_age``)."""

    @property
    def usable(self) -> bool:
        return not self.eligible or self.grant_ends is not None

    @property
    def durations(self) -> tuple[tuple[int, str], ...]:
        """The request form's choices: 15 min … the policy's maximum."""
        top = self.request_max or 0
        steps = [s for s in (900, 1800, 3600, 7200, 14400, 28800, 43200) if s < top] + ([top] if top else [])
        return tuple((s, human_duration(s)) for s in steps)

    @property
    def search(self) -> str:
        return " ".join(filter(None, [self.account_id, self.alias, self.environment, self.role_name,
                                      self.description])).lower()

    @property
    def profile(self) -> str:
        return f"{self.account}-{self.role_name}"

    @property
    def dom_id(self) -> str:
        """A page-unique id for this role's full row (shortcuts link to it)."""
        return "role-" + self.account_id + "-" + "".join(c if c.isalnum() else f"_{ord(c):02x}" for c in self.role_name.lower())

    @property
    def channel_label(self) -> str | None:
        if self.console and not self.cli:
            return "console only"
        if self.cli and not self.console:
            return "command line only"
        return None

    @property
    def max_session(self) -> str:
        """What the longest session is, said the way a person reads it: "up to 12 h"."""
        if self.console and self.cli and self.max_console != self.max_cli:
            return (f"console up to {human_duration(self.max_console)}, "
                    f"command line up to {human_duration(self.max_cli)}")
        return f"up to {human_duration(self.max_console if self.console else self.max_cli)}"

    @property
    def regions(self) -> tuple[str, ...]:
        """The console regions to offer: the partition's, the account's own first."""
        known = PARTITIONS[self.partition].regions if self.partition in PARTITIONS else ()
        return (self.region, *[r for r in known if r != self.region])


def _rows(grants: list[RoleGrant], favorites: set[str], descriptions: dict[str, str] | None = None,
          active: dict[tuple[str, str], AccessRequest] | None = None,
          request_max: Callable[[RoleGrant], int | None] | None = None) -> list[RoleRow]:
    descriptions = descriptions or {}
    active = active or {}

    def ends(g: RoleGrant) -> str | None:
        found = active.get((g.account_id, g.role_name.lower())) if g.eligible else None
        return rfc3339(found.ends_at) if found is not None else None

    rows = [
        RoleRow(
            key=role_key(g.account_id, g.role_name), account_id=g.account_id, account=g.account_alias or g.account_id,
            alias=g.account_alias, environment=g.environment, role_name=g.role_name, region=g.region,
            partition=g.partition, console=g.allows("console"), cli=g.allows("cli"),
            max_console=g.max_duration("console"), max_cli=g.max_duration("cli"),
            favorite=role_key(g.account_id, g.role_name) in favorites,
            description=descriptions.get(role_key(g.account_id, g.role_name), ""),
            eligible=g.eligible, grant_ends=ends(g),
            request_max=request_max(g) if g.eligible and request_max is not None else None,
            mfa=any(g.allows(c) and g.mfa_max_age(c, MAX_SESSION) is not None for c in ("console", "cli")),
        )
        for g in grants
    ]
    return sorted(rows, key=lambda r: (r.account.lower(), r.role_name.lower()))


def _find_grant(grants: Iterable[RoleGrant], account: str, role: str) -> RoleGrant | None:
    """The grant a form names, by account id or alias (any case) and role name (any case)."""
    wanted, role_wanted = account.strip().lower(), role.strip().lower()
    for g in grants:
        if (g.account_id == wanted or (g.account_alias or "").lower() == wanted) and g.role_name.lower() == role_wanted:
            return g
    return None


def _once(keys: list[str]) -> list[str]:
    return list(dict.fromkeys(keys))


@router.get("/")
def home(request: Request, services: ServicesDep, q: Annotated[str, Query(max_length=100)] = "") -> Response:
    session, user = _signed_in(request)
    if session is None or user is None:
        return _to_login(request, "/")
    try:
        current = services.flow.current_identity(user)
        grants = list(services.flow.roles_of(current).grants)
    except Unauthenticated:
        services.access.sessions.destroy(session)
        return _to_login(request, "/")
    except BrokerError as exc:
        return error_page(request, session, exc)
    prefs = services.access.prefs.get(current)
    try:
        descriptions = services.store.role_descriptions({g.account_id for g in grants})
    except BrokerError:  # the descriptions are a nicety: the page works without them
        descriptions = {}
    try:
        active = services.access_requests.grants_of(current.id) if any(g.eligible for g in grants) else {}
    except BrokerError as exc:
        return error_page(request, session, exc)
    rows = _rows(grants, set(prefs.favorites), descriptions, active, services.access_requests.policy_max)
    query = q.strip().lower()
    shown = [r for r in rows if all(word in r.search for word in query.split())] if query else rows
    by_key = {r.key: r for r in shown}
    accounts: dict[str, list[RoleRow]] = {}
    for row in shown:
        accounts.setdefault(row.account_id, []).append(row)
    # Favorites and recently used are shortcuts (one line each, each role once per list) to the
    # full rows under "All accounts", where every role appears exactly once.
    return page(
        request, "home.html", session=session, title="Your AWS accounts", q=q, rows=shown, total=len(rows),
        accounts=list(accounts.values()),
        favorites=[by_key[k] for k in _once(prefs.favorites) if k in by_key],
        recents=[by_key[k] for k in _once(prefs.recents) if k in by_key],
        groups=list(current.groups), services=CONSOLE_SERVICES,
        admin_link=services.admin_tokens.is_admin(current), break_glass=current.source == BREAK_GLASS_SOURCE,
    )


def _form_session(request: Request, csrf_token: str) -> tuple[Session | None, Identity | None, Response | None]:
    """The signed-in session of a form POST with a valid CSRF token, or the response to give instead."""
    session, user = _signed_in(request)
    if session is None or user is None:
        return None, None, _to_login(request, "/")
    try:
        services_of(request).access.sessions.check_csrf(request, session, csrf_token)
    except CsrfFailed as exc:
        return session, user, error_page(request, session, exc)
    return session, user, None


@router.post("/favorites")
def favorites(request: Request, services: ServicesDep, account: Text, role: Text, csrf_token: Text = "") -> Response:
    session, user, refusal = _form_session(request, csrf_token)
    if refusal is not None:
        return refusal
    assert user is not None
    try:
        current = services.flow.current_identity(user)
        grant = _find_grant(services.flow.roles_of(current).grants, account, role)
    except BrokerError as exc:
        return error_page(request, session, exc)
    if grant is None:
        return error_page(request, session, Forbidden("that role is not one of yours"))
    services.access.prefs.toggle_favorite(current, role_key(grant.account_id, grant.role_name))
    return RedirectResponse("/", status_code=303, headers={"Cache-Control": "no-store"})


@router.post("/console")
def console(
    request: Request,
    services: ServicesDep,
    account: Text,
    role: Text,
    csrf_token: Text = "",
    service: OptionalText = "",
    region: OptionalText = "",
) -> Response:
    """The Console button: a 302 to the console sign-in URL (in the sandbox: the local SANDBOX page)."""
    session, user, refusal = _form_session(request, csrf_token)
    if refusal is not None:
        return refusal
    assert user is not None
    try:  # the service and region are checked by the flow (a console name, a region of the partition)
        grant = _find_grant(services.flow.roles_of(user).grants, account, role)
        link = services.flow.console(identity=user, account=account, role=role, service=_opt(service),
                                     region=_opt(region), ctx=decision_context(request, "portal"))
    except MfaRequired:  # step up, then one click re-posts this form (broker.web.mfa)
        assert session is not None
        return remember_resume(request, session, {"action": "/console", "account": account, "role": role,
                                                  "service": service, "region": region})
    except BrokerError as exc:
        return error_page(request, session, exc)
    if grant is not None:  # recorded by account id, however the form named the account
        services.access.prefs.used(user, role_key(grant.account_id, grant.role_name))
    return console_redirect(link)


@router.post("/cli-credentials")
def cli_credentials(request: Request, services: ServicesDep, account: Text, role: Text, csrf_token: Text = "") -> Response:
    """Temporary credentials as ready-to-paste shell lines (a page that is never cached)."""
    session, user, refusal = _form_session(request, csrf_token)
    if refusal is not None:
        return refusal
    assert user is not None
    try:
        issued = services.flow.credentials(identity=user, account=account, role=role, ctx=decision_context(request, "portal"))
    except MfaRequired:
        assert session is not None
        return remember_resume(request, session, {"action": "/cli-credentials", "account": account, "role": role})
    except BrokerError as exc:
        return error_page(request, session, exc)
    services.access.prefs.used(user, role_key(issued.grant.account_id, issued.grant.role_name))
    creds = issued.credentials
    region = issued.grant.region
    shells = [
        ("bash / zsh", delivery.env(creds, shell="bash", region=region)),
        ("fish", delivery.env(creds, shell="fish", region=region)),
        ("PowerShell", delivery.env(creds, shell="powershell", region=region)),
    ]
    values = [("AWS_ACCESS_KEY_ID", creds.access_key_id), ("AWS_SECRET_ACCESS_KEY", creds.secret_access_key),
              ("AWS_SESSION_TOKEN", creds.session_token)]
    return page(request, "cli_credentials.html", session=session, title="Temporary credentials",
                account=issued.grant.account_alias or issued.grant.account_id, role=issued.grant.role_name,
                expires=delivery.rfc3339(creds.expiration), shells=shells, values=values)


# ---- just-in-time access: request an eligible role; approvers approve or deny ----

LongText = Annotated[str, Form(max_length=1024)]
_DONE = {"Cache-Control": "no-store"}


@router.get("/requests")
def requests_page(request: Request, services: ServicesDep) -> Response:
    """My requests (status, cancel) and those I may decide (approve, deny) or end."""
    session, user = _signed_in(request)
    if session is None or user is None:
        return _to_login(request, "/requests")
    try:
        lists = services.access_requests.list_requests(identity=user, ctx=decision_context(request, "portal"))
    except Unauthenticated:
        services.access.sessions.destroy(session)
        return _to_login(request, "/requests")
    except BrokerError as exc:
        return error_page(request, session, exc)
    return page(request, "requests.html", session=session, title="Access requests", mine=lists["mine"],
                to_decide=lists["to_decide"], human=human_duration)


@router.post("/requests")
def request_access(request: Request, services: ServicesDep, account: Text, role: Text, csrf_token: Text = "",
                   reason: LongText = "", duration: OptionalText = "", ticket: OptionalText = "") -> Response:
    """The Request access form of an eligible role."""
    session, user, refusal = _form_session(request, csrf_token)
    if refusal is not None:
        return refusal
    assert user is not None
    try:
        services.access_requests.request_access(identity=user, account=account, role=role, duration=_opt(duration),
                                     reason=reason, ticket=_opt(ticket), ctx=decision_context(request, "portal"))
    except BrokerError as exc:
        return error_page(request, session, exc)
    return RedirectResponse("/requests", status_code=303, headers=_DONE)


@router.post("/requests/{request_id}/{choice}")
def decide(request: Request, services: ServicesDep, request_id: int, choice: str, csrf_token: Text = "") -> Response:
    """Approve, deny or cancel a request, or end a grant (``end``)."""
    session, user, refusal = _form_session(request, csrf_token)
    if refusal is not None:
        return refusal
    assert user is not None
    ctx = decision_context(request, "portal")
    requests = services.access_requests
    try:
        if choice in ("approve", "deny"):
            requests.decide_request(identity=user, request_id=request_id,
                                    choice="approve" if choice == "approve" else "deny", ctx=ctx)
        elif choice == "cancel":
            requests.cancel_request(identity=user, request_id=request_id, ctx=ctx)
        elif choice == "end":
            requests.end_grant(identity=user, request_id=request_id, ctx=ctx)
        else:
            return error_page(request, session, Forbidden("approve, deny, cancel or end"))
    except BrokerError as exc:
        return error_page(request, session, exc)
    return RedirectResponse("/requests", status_code=303, headers=_DONE)
