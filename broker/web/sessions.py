"""Server-side portal sessions on shared state, the session cookie, and CSRF tokens (OWASP ASVS V3 / V7).

- The cookie holds only a random id (256 bits); the state store holds ``session:<sha256(id)>``
  → the signed-in identity, a CSRF token, and creation / last-use times. A dump of Redis gives
  no usable cookie.
- Cookie: HttpOnly, SameSite=Lax, Path=/; Secure and the ``__Host-`` name when served over TLS
  (``sessions.secure``: auto = public_url https or the request came over TLS). Over plain http
  the prefix is dropped, because browsers refuse ``__Host-`` cookies without Secure
  (``host_cookie_name``: the one rule, for the upstream sign-in cookie too).
- A new id at every sign-in (``login_response``), the old session destroyed: no fixation.
- A signed-in session is one of its person's logins (``broker.logins``: ``broker revoke --user``
  ends them all); once ended or destroyed, no request in flight writes it back.
- Idle and absolute timeouts (``sessions.*_timeout_seconds``) are checked against the store's
  clock, and the state TTL follows them, so an abandoned session disappears by itself.
- CSRF: a per-session synchronizer token in every form (``csrf_token``) or the
  ``X-CSRF-Token`` header, compared in constant time, plus an Origin check when the browser
  sends one.
- The login form, before anyone has signed in, keeps no server state at all (a cookieless
  GET /login writes nothing): its token is a signed double-submit pair — a random nonce in
  the form, and the nonce signed with a timestamp (itsdangerous, HMAC-SHA256) in an HttpOnly
  ``<cookie_name>-login`` cookie (SameSite=Strict, 30 minutes). The signing key is random,
  made once per deployment and kept in the shared state (``sessions:login-key``, written
  with set-if-absent so replicas agree; read again every 5 minutes, kept 30 days, then a new one).

``SessionStore.login_response(request, identity, next_url)`` is the one way a sign-in becomes a
session (portal password form, upstream SAML/OIDC callbacks).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer

from broker.access_config import SessionsConfig
from broker.domain import Identity
from broker.errors import CsrfFailed
from broker.identity_json import identity_from_dict, identity_to_dict
from broker.logins import login_index
from broker.oauth import secret_hash
from broker.redirects import safe_next
from broker.state.base import StateStore

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
ANONYMOUS_TTL = 1800
"""The login form's token (and a pre-sign-in session, where one is still stored) lives at most 30 minutes."""
LOGIN_KEY = "sessions:login-key"
LOGIN_KEY_TTL = 30 * 86400
LOGIN_KEY_REREAD = 300
HOST_PREFIX = "__Host-"


def host_cookie_name(name: str, *, secure: bool) -> str:
    """A cookie's name as set: ``__Host-<name>`` keeps its prefix only on a Secure cookie (over
    plain http browsers refuse such cookies, so the prefix is dropped; a bare prefix becomes
    ``broker``). The session cookie and the upstream sign-in cookie are both named by it."""
    if not secure and name.startswith(HOST_PREFIX):
        return name[len(HOST_PREFIX):] or "broker"
    return name


@dataclass
class Session:
    id: str = field(repr=False)
    csrf: str = field(repr=False)
    created: float
    seen: float
    user: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Small values the login flow keeps between requests (e.g. the page to return to)."""

    @property
    def identity(self) -> Identity | None:
        return None if self.user is None else identity_from_dict(self.user)

    def to_json(self) -> str:
        return json.dumps({"csrf": self.csrf, "created": self.created, "seen": self.seen, "user": self.user,
                           "extra": self.extra})


class SessionStore:
    def __init__(self, state: StateStore, config: SessionsConfig, *, public_url: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.state = state
        self.config = config
        self.public_url = public_url
        self.clock = clock
        self._login_keys: list[str] = []
        self._login_keys_read = float("-inf")
        store = self

        class _Signer(TimestampSigner):
            def get_timestamp(self) -> int:  # the store's clock: tests own time
                return int(store.clock())

        self._signer = _Signer

    # -- cookie --

    def secure(self, request: Request) -> bool:
        if self.config.secure != "auto":
            return self.config.secure == "true"
        return self.public_url.startswith("https://") or request.url.scheme == "https"

    def cookie_name(self, request: Request) -> str:
        return host_cookie_name(self.config.cookie_name, secure=self.secure(request))

    def set_cookie(self, request: Request, response: Response, session: Session) -> None:
        response.set_cookie(self.cookie_name(request), session.id, path="/", httponly=True, samesite="lax",
                            secure=self.secure(request))

    def clear_cookie(self, request: Request, response: Response) -> None:
        response.delete_cookie(self.cookie_name(request), path="/", httponly=True, samesite="lax",
                               secure=self.secure(request))

    # -- store --

    def _key(self, sid: str) -> str:
        return f"session:{secret_hash(sid)}"

    def _ends(self, session: Session) -> float:
        """When a signed-in session ends at the latest: the absolute timeout, or sooner the end
        the sign-in's source gave it (a SAML IdP's SessionNotOnOrAfter)."""
        end = session.created + self.config.absolute_timeout_seconds
        valid_until = (session.user or {}).get("valid_until")
        return end if valid_until is None else min(end, float(valid_until))

    def _ttl(self, session: Session, now: float) -> float:
        if session.user is None:
            return float(min(ANONYMOUS_TTL, self.config.idle_timeout_seconds))
        return max(1.0, min(float(self.config.idle_timeout_seconds), self._ends(session) - now))

    def save(self, session: Session, *, new: bool = False) -> bool:
        """Write the session; a signed-in one only when ``new`` or while it still exists, so that a
        request in flight never brings back a session that was ended meanwhile (``destroy``,
        ``broker.logins.end_logins``: a signed-in session is one of the person's logins). False:
        it was ended."""
        key, value, ttl = self._key(session.id), session.to_json(), self._ttl(session, self.clock())
        if session.user is None:
            self.state.set(key, value, ttl=ttl)
            return True
        return self.state.set_indexed(key, value, ttl=ttl, index=login_index(session.user["username"]),
                                      existing_only=not new)

    def create(self, identity: Identity | None = None) -> Session:
        now = self.clock()
        session = Session(id=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32), created=now, seen=now,
                          user=None if identity is None else identity_to_dict(identity))
        self.save(session, new=True)
        return session

    def get(self, sid: str | None) -> Session | None:
        """The live session for a cookie value; None when unknown, timed out or malformed."""
        if not sid or len(sid) > 128:
            return None
        raw = self.state.get(self._key(sid))
        if raw is None:
            return None
        data = json.loads(raw)
        session = Session(id=sid, csrf=data["csrf"], created=data["created"], seen=data["seen"], user=data.get("user"),
                          extra=data.get("extra") or {})
        now = self.clock()
        idle = ANONYMOUS_TTL if session.user is None else self.config.idle_timeout_seconds
        if now - session.seen > idle or (session.user is not None and now >= self._ends(session)):
            self.destroy(session)
            return None
        if now - session.seen >= 30 or session.user is None:  # do not rewrite the record on every request
            session.seen = now
            if not self.save(session):
                return None
        return session

    def destroy(self, session: Session) -> None:
        self.state.delete(self._key(session.id))

    def load(self, request: Request) -> Session | None:
        return self.get(request.cookies.get(self.cookie_name(request)))

    # -- the login form's token: no server state before sign-in --

    def login_cookie_name(self, request: Request) -> str:
        return self.cookie_name(request) + "-login"

    def _read_login_keys(self) -> list[str]:
        key = self.state.get(LOGIN_KEY)
        if key is None:
            self.state.set_if_absent(LOGIN_KEY, secrets.token_urlsafe(32), ttl=LOGIN_KEY_TTL)
            key = self.state.get(LOGIN_KEY)
        assert key is not None
        keys = [k for k in self._login_keys if k != key][-1:] + [key]  # the previous one still verifies
        self._login_keys, self._login_keys_read = keys, self.clock()
        return keys

    def _login_serializer(self, *, fresh: bool = False) -> URLSafeTimedSerializer:
        keys = self._login_keys
        if fresh or not keys or self.clock() - self._login_keys_read >= LOGIN_KEY_REREAD:
            keys = self._read_login_keys()
        return URLSafeTimedSerializer(keys, salt="broker.login-csrf", signer=self._signer,
                                      signer_kwargs={"digest_method": hashlib.sha256})

    def _login_nonce(self, cookie: str | None) -> str | None:
        """The nonce a login cookie signs, or None (absent, forged, from another deployment, expired)."""
        if not cookie or len(cookie) > 256:
            return None
        for fresh in (False, True):  # a key made meanwhile by another replica: read it once more
            try:
                nonce = self._login_serializer(fresh=fresh).loads(cookie, max_age=ANONYMOUS_TTL)
            except BadData:
                continue
            return nonce if isinstance(nonce, str) else None
        return None

    def login_csrf(self, request: Request, *, fresh: bool = False) -> tuple[str, str | None]:
        """The login form's token, and the cookie value to set (None: the browser's cookie still holds)."""
        nonce = None if fresh else self._login_nonce(request.cookies.get(self.login_cookie_name(request)))
        if nonce is not None:
            return nonce, None
        nonce = secrets.token_urlsafe(24)
        return nonce, self._login_serializer().dumps(nonce)

    def set_login_cookie(self, request: Request, response: Response, value: str) -> None:
        response.set_cookie(self.login_cookie_name(request), value, max_age=ANONYMOUS_TTL, path="/", httponly=True,
                            samesite="strict", secure=self.secure(request))

    def check_login_csrf(self, request: Request, token: str | None) -> None:
        """Refuse a sign-in POST unless ``token`` is the nonce this browser's login cookie signs."""
        origin = request.headers.get("origin")
        if origin is not None and origin not in self._origins(request):
            raise CsrfFailed()
        nonce = self._login_nonce(request.cookies.get(self.login_cookie_name(request)))
        if nonce is None or not token or not hmac.compare_digest(nonce.encode(), token.encode()):
            raise CsrfFailed()

    # -- CSRF --

    def check_csrf(self, request: Request, session: Session | None, token: str | None) -> None:
        """Refuse unless ``token`` is this session's CSRF token and the Origin (if sent) is this site."""
        origin = request.headers.get("origin")
        if origin is not None and origin not in self._origins(request):
            raise CsrfFailed()
        if session is None or not token or not hmac.compare_digest(session.csrf.encode(), token.encode()):
            raise CsrfFailed()

    def _origins(self, request: Request) -> set[str]:
        public = urlsplit(self.public_url)
        own = f"{request.url.scheme}://{request.url.netloc}"
        return {f"{public.scheme}://{public.netloc}", own}

    def renewed(self, session: Session, identity: Identity) -> Session | None:
        """The session under a new id and CSRF token, now for ``identity`` (a step-up: a change of
        privilege, OWASP ASVS 3.2.1), keeping its start (the absolute timeout still counts from the
        sign-in) and its ``extra``; the old id stops working. None: it was ended meanwhile."""
        now = self.clock()
        fresh = Session(id=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32), created=session.created,
                        seen=now, user=identity_to_dict(identity), extra=dict(session.extra))
        if self.state.get(self._key(session.id)) is None:
            return None
        self.save(fresh, new=True)
        self.destroy(session)
        return fresh

    # -- a sign-in becomes a session --

    def login_response(self, request: Request, identity: Identity, next_url: str | None) -> Response:
        """Establish a portal session for ``identity`` (any sign-in method) and redirect (303) to
        ``next_url`` if it is a relative path on this site (``safe_next``), else to the portal's home page.

        The session id is always new: whatever session the browser had is destroyed first.
        """
        old = self.load(request)
        if old is not None:
            self.destroy(old)
        session = self.create(identity)
        response = RedirectResponse(safe_next(next_url) or "/", status_code=303, headers={"Cache-Control": "no-store"})
        self.set_cookie(request, response, session)
        if self.login_cookie_name(request) in request.cookies:
            response.delete_cookie(self.login_cookie_name(request), path="/", httponly=True, samesite="strict",
                                   secure=self.secure(request))
        return response
