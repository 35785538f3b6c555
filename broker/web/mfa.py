"""Step-up MFA in the portal: ``/mfa`` (my factors: enrol an authenticator app, recovery codes,
removal) and ``/mfa/step-up?next=`` (prove a second factor now; then back to ``next``, a local
path only: ``broker.redirects.safe_next``).

Thin: the decisions are ``broker.mfa.steps.StepUps``' (audited, rate limited); this router
translates forms to them and saves the stepped-up identity into the portal session. Other
factors plug in through the two template hooks, ``_mfa_factors_extra.html`` (on ``/mfa``) and
``_mfa_methods_extra.html`` (on the step-up page; given ``next_url`` and ``csrf``): a factor's own
routes call ``broker.mfa.stepped_up`` and save the session with ``save_identity`` here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

import segno
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from broker.domain import Identity
from broker.errors import (
    BrokerError,
    EnrolmentCodeRequired,
    MfaNotEnrolled,
    MfaRequired,
    TooManyRequests,
    Unauthenticated,
)
from broker.mfa import rfc3339
from broker.mfa.enrolment import MARK, WINDOW
from broker.redirects import safe_next
from broker.web.deps import ServicesDep, decision_context, services_of
from broker.web.pages import error_page, page
from broker.web.sessions import Session

router = APIRouter(include_in_schema=False, tags=["portal"])

Text = Annotated[str, Form(max_length=256)]
Next = Annotated[str, Form(max_length=2048)]
RESUME_KEY = "mfa_resume"
"""Session ``extra``: the Console / CLI-credentials form a step-up interrupted (``/mfa/continue``)."""


def _no_store(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def step_up_redirect(next_url: str) -> RedirectResponse:
    return _no_store(f"/mfa/step-up?next={quote(safe_next(next_url) or '/', safe='/')}")


def save_identity(request: Request, session: Session, identity: Identity, response: Response) -> Session | None:
    """After a step-up: the session, under a new id (a change of privilege), carries ``identity``
    (``stepped_up``'s) and ``response`` sets its cookie. None: the session was ended meanwhile."""
    sessions = services_of(request).access.sessions
    renewed = sessions.renewed(session, identity)
    if renewed is not None:
        sessions.set_cookie(request, response, renewed)
    return renewed


def _enrolled(request: Request, user: Identity) -> bool:
    services = services_of(request)
    return services.step_ups.status(user).totp or bool(services.passkeys.credentials(user))


def _enrolment_window(request: Request, session: Session) -> bool:
    """This session took an enrolment code less than ``WINDOW`` seconds ago."""
    until = session.extra.get(MARK)
    return isinstance(until, int | float) and until > services_of(request).access.sessions.clock()


def needs_enrolment_code(request: Request, session: Session, user: Identity) -> bool:
    """A first factor here needs an admin's enrolment code first (``mfa.enrolment: invite``)."""
    return (services_of(request).enrolment.mode == "invite" and not _enrolment_window(request, session)
            and not _enrolled(request, user))


def check_may_add_factor(request: Request, session: Session, user: Identity, *, code: str | None = None) -> None:
    """Who may add a second factor (start, confirm or register one):
    - one is enrolled (an app, a passkey): only with a fresh step-up (a stolen session must not
      add a factor of its own); MfaRequired otherwise;
    - none is, ``mfa.enrolment: open``: anyone signed in (trust on first use);
    - none is, ``invite``: a session that took an enrolment code in the last ``WINDOW`` seconds,
      or takes ``code`` now (``EnrolmentCodes.take``: once; audited, rate limited; ``""``: none
      was typed, audited too); EnrolmentCodeRequired / EnrolmentCodeInvalid otherwise (``code``
      None: EnrolmentCodeRequired, not audited: the caller audits its own refusal)."""
    services = services_of(request)
    if _enrolled(request, user):
        if not services.step_ups.fresh(user):
            raise MfaRequired(details=services.step_ups.fresh_details())
        return
    if services.enrolment.mode == "open" or _enrolment_window(request, session):
        return
    if code is None:
        raise EnrolmentCodeRequired()
    services.enrolment.take(user, code, ctx=decision_context(request, "portal"))
    session.extra[MARK] = services.access.sessions.clock() + WINDOW
    services.access.sessions.save(session)


def may_add_factor(request: Request, session: Session, user: Identity) -> bool:
    """``check_may_add_factor`` without a code: whether this session may see an enrolment under way."""
    try:
        check_may_add_factor(request, session, user)
    except BrokerError:
        return False
    return True


def remember_resume(request: Request, session: Session, form: dict[str, str]) -> RedirectResponse:
    """An issuance refused with ``mfa_required``: keep its form, send the browser to the step-up,
    which comes back to ``/mfa/continue`` (one click re-posts the form with the session's token)."""
    session.extra[RESUME_KEY] = form
    services_of(request).access.sessions.save(session)
    return step_up_redirect("/mfa/continue")


def _signed_in(request: Request, next_url: str) -> tuple[Session | None, Identity | None, Response | None]:
    session = services_of(request).access.sessions.load(request)
    if session is None or session.identity is None:
        return None, None, _no_store(f"/login?next={quote(safe_next(next_url) or '/', safe='/')}")
    return session, session.identity, None


def _form(request: Request, csrf_token: str, next_url: str) -> tuple[Session | None, Identity | None, Response | None]:
    session, user, refusal = _signed_in(request, next_url)
    if refusal is not None or session is None:
        return session, user, refusal
    try:
        services_of(request).access.sessions.check_csrf(request, session, csrf_token)
    except BrokerError as exc:
        return session, user, error_page(request, session, exc)
    return session, user, None


def _qr(uri: str) -> str:
    """The enrolment QR code as inline SVG (segno: made here, from our own URI; no script, no image fetch)."""
    return str(segno.make(uri, error="m").svg_inline(scale=4, dark="#000", light="#fff"))


def _factors_page(request: Request, session: Session, user: Identity, *, status: int = 200, error: str = "",
                  notice: str = "", codes: list[str] | None = None, next_url: str = "") -> Response:
    services = services_of(request)
    steps = services.step_ups
    state = steps.status(user)
    # an enrolment under way is shown only to a session that may finish it (finding 3)
    pending = steps.pending_enrolment(user) if state.pending and may_add_factor(request, session, user) else None
    return page(request, "mfa.html", status=status, session=session, title="Second factors", state=state,
                webauthn=bool(services.passkeys.credentials(user)),
                enrolment_code_needed=needs_enrolment_code(request, session, user),
                pending=pending, qr=_qr(pending.uri) if pending is not None else "", error=error, notice=notice,
                codes=codes or [], mfa_at=rfc3339(user.mfa_at), mfa_methods=list(user.mfa_methods),
                fresh=steps.fresh(user), next_url=safe_next(next_url) or "")


@router.get("/mfa")
def factors(request: Request, next: Annotated[str, Query(max_length=2048)] = "") -> Response:
    """``next``: where to continue once enrolled (a step-up sent the person here)."""
    session, user, refusal = _signed_in(request, "/mfa")
    if refusal is not None:
        return refusal
    assert session is not None and user is not None
    try:
        return _factors_page(request, session, user, next_url=next)
    except BrokerError as exc:
        return error_page(request, session, exc)


@router.post("/mfa/totp/enrol")
def enrol(request: Request, services: ServicesDep, csrf_token: Text = "", next: Next = "",
          enrolment_code: Text = "") -> Response:
    """``enrolment_code``: an admin's one-time code, when a first factor needs one (``mfa.enrolment: invite``)."""
    session, user, refusal = _form(request, csrf_token, "/mfa")
    if refusal is not None:
        return refusal
    assert session is not None and user is not None
    try:
        check_may_add_factor(request, session, user, code=enrolment_code)
        services.step_ups.begin_totp(user)
    except BrokerError as exc:
        return _refused(request, session, user, exc,
                        lambda **kw: _factors_page(request, session, user, next_url=next, **kw))
    back = safe_next(next)
    return _no_store(f"/mfa?next={quote(back, safe='/')}#enrol" if back else "/mfa#enrol")


@router.post("/mfa/totp/confirm")
def confirm(request: Request, services: ServicesDep, code: Text = "", csrf_token: Text = "", next: Next = "") -> Response:
    session, user, refusal = _form(request, csrf_token, "/mfa")
    if refusal is not None:
        return refusal
    assert session is not None and user is not None
    try:
        ctx = decision_context(request, "portal")
        try:
            check_may_add_factor(request, session, user)  # finding 3: not from any later session
        except BrokerError as exc:
            services.step_ups.refused("mfa.enrol", user, ctx, exc)
            raise
        codes = services.step_ups.confirm_totp(user, code, ctx=ctx)
    except BrokerError as exc:
        return _refused(request, session, user, exc,
                        lambda **kw: _factors_page(request, session, user, next_url=next, **kw))
    # No step-up: the enrolment proved only the password. The page leads to one with the new factor.
    return _factors_page(request, session, user, codes=codes, next_url=next,
                         notice="Your authenticator app is enrolled. Keep these recovery codes somewhere safe: "
                                "they are shown only now, and each works once. Then confirm it is you with "
                                "the app's next code.")


@router.post("/mfa/recovery-codes")
def recovery_codes(request: Request, services: ServicesDep, csrf_token: Text = "") -> Response:
    session, user, refusal = _form(request, csrf_token, "/mfa")
    if refusal is not None:
        return refusal
    assert session is not None and user is not None
    try:
        codes = services.step_ups.regenerate_recovery_codes(user, ctx=decision_context(request, "portal"))
    except MfaRequired:
        return step_up_redirect("/mfa")
    except BrokerError as exc:
        return _factors_page(request, session, user, status=exc.status, error=exc.message)
    return _factors_page(request, session, user, codes=codes,
                         notice="New recovery codes: the earlier ones no longer work. They are shown only now.")


@router.post("/mfa/totp/remove")
def remove(request: Request, services: ServicesDep, csrf_token: Text = "") -> Response:
    session, user, refusal = _form(request, csrf_token, "/mfa")
    if refusal is not None:
        return refusal
    assert session is not None and user is not None
    try:
        services.step_ups.remove_totp(user, ctx=decision_context(request, "portal"))
    except MfaRequired:
        return step_up_redirect("/mfa")
    except BrokerError as exc:
        return _factors_page(request, session, user, status=exc.status, error=exc.message)
    return _factors_page(request, session, user, notice="The authenticator app is removed, with its recovery codes.")


# ---- the step-up ----


def _step_up_page(request: Request, session: Session, user: Identity, next_url: str, *, status: int = 200,
                  error: str = "") -> Response:
    services = services_of(request)
    return page(request, "mfa_step_up.html", status=status, session=session, title="Confirm it is you",
                state=services.step_ups.status(user), webauthn=bool(services.passkeys.credentials(user)),
                next_url=next_url, error=error, mfa_at=rfc3339(user.mfa_at))


def _refused(request: Request, session: Session, user: Identity, exc: BrokerError, render: Any) -> Response:
    if isinstance(exc, Unauthenticated):
        services_of(request).access.sessions.destroy(session)
        return _no_store("/login")
    response: Response = render(status=exc.status, error=exc.message)
    if isinstance(exc, TooManyRequests):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


@router.get("/mfa/step-up")
def step_up_form(request: Request, next: Annotated[str, Query(max_length=2048)] = "/") -> Response:
    next_url = safe_next(next) or "/"
    session, user, refusal = _signed_in(request, f"/mfa/step-up?next={quote(next_url, safe='/')}")
    if refusal is not None:
        return refusal
    assert session is not None and user is not None
    try:
        return _step_up_page(request, session, user, next_url)
    except BrokerError as exc:
        return error_page(request, session, exc)


@router.post("/mfa/step-up")
def step_up(request: Request, services: ServicesDep, method: Annotated[Literal["totp", "recovery"], Form()] = "totp",
            code: Text = "", next: Next = "/", csrf_token: Text = "") -> Response:
    next_url = safe_next(next) or "/"
    session, user, refusal = _form(request, csrf_token, next_url)
    if refusal is not None:
        return refusal
    assert session is not None and user is not None
    try:
        proved = services.step_ups.step_up(user, method=method, code=code, ctx=decision_context(request, "portal"))
    except BrokerError as exc:
        if isinstance(exc, MfaNotEnrolled):
            return _no_store("/mfa")
        return _refused(request, session, user, exc,
                        lambda **kw: _step_up_page(request, session, user, next_url, **kw))
    response = _no_store(next_url)
    return response if save_identity(request, session, proved, response) is not None else _no_store("/login")


@router.get("/mfa/continue")
def resume(request: Request) -> Response:
    """After a step-up an issuance asked for: the interrupted form, one click from done."""
    session, _user, refusal = _signed_in(request, "/mfa/continue")
    if refusal is not None:
        return refusal
    assert session is not None
    form = session.extra.get(RESUME_KEY)
    if not isinstance(form, dict) or form.get("action") not in ("/console", "/cli-credentials"):
        return _no_store("/")
    return page(request, "mfa_continue.html", session=session, title="Continue", form=form,
                fields={k: v for k, v in form.items() if k != "action"})
