"""RFC 6749 §5.2 and RFC 8628 §3.5 error responses as classes (the authlib style): each names
its ``error`` code and HTTP ``status``; broker.web.errors answers every one of them the same way,
``{"error", "error_description"?}`` with ``Cache-Control: no-store`` (and ``Retry-After`` when set).

    OAuthError (400)                 server_error
    ├── InvalidRequest               invalid_request         (a parameter missing or malformed)
    ├── InvalidClient                invalid_client          (an unknown client_id, or another client's code or token)
    ├── InvalidGrant                 invalid_grant           (a spent, revoked or unknown device code or refresh token; a wrong password)
    ├── UnsupportedGrantType         unsupported_grant_type
    ├── AccessDenied                 access_denied           (RFC 8628 §3.5: the person denied the login)
    ├── AuthorizationPending         authorization_pending   (RFC 8628 §3.5: not decided yet, poll again)
    ├── SlowDown                     slow_down               (RFC 8628 §3.5: polling faster than the interval)
    │   └── DeviceStartsLimited (429)                        (the device authorization endpoint's rate limit; Retry-After)
    ├── ExpiredToken                 expired_token           (RFC 8628 §3.5: run the login again)
    └── PasswordGrantLimited (429)   rate_limited            (password guessing on the password grant; Retry-After; not an RFC code)

The two 429s are the broker's rate limits (broker.ratelimit.TooManyRequests) as the device
endpoints answer them, status and code as they were before these classes: RFC 8628 §3.5 puts
``slow_down`` in a 400, and RFC 6749 has no code for a rate limit.

These are not BrokerErrors: their body is the RFC's, not the broker's ``{"error": {"code", ...}}``.
"""

from __future__ import annotations

import re
from typing import ClassVar

__all__ = [
    "AccessDenied",
    "AuthorizationPending",
    "DeviceStartsLimited",
    "ExpiredToken",
    "InvalidClient",
    "InvalidGrant",
    "InvalidRequest",
    "OAuthError",
    "PasswordGrantLimited",
    "SlowDown",
    "UnsupportedGrantType",
]

_NOT_DESCRIPTION = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")
"""What RFC 6749 §5.2 does not allow in ``error_description`` (outside %x20-21 / %x23-5B / %x5D-7E)."""

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
"""RFC 6749 §5.1/§5.2: token endpoint answers, errors included, are never cached."""


class OAuthError(Exception):
    """``OAuthError(description=None, *, retry_after=None)``: ``error`` and ``status`` are the
    class's; ``description`` becomes ``error_description`` (the class's own when None)."""

    error: ClassVar[str] = "server_error"
    status: ClassVar[int] = 400
    description: str = ""

    def __init__(self, description: str | None = None, *, retry_after: int | None = None) -> None:
        if description is not None:
            self.description = description
        self.retry_after = None if retry_after is None else max(1, int(retry_after))
        super().__init__(f"{self.error}: {self.description}" if self.description else self.error)

    def body(self) -> dict[str, str]:
        """The RFC 6749 §5.2 body (a disallowed character in the description becomes ``?``)."""
        body = {"error": self.error}
        if self.description:
            body["error_description"] = _NOT_DESCRIPTION.sub("?", self.description)
        return body

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return dict(NO_STORE)
        return NO_STORE | {"Retry-After": str(self.retry_after)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r})"


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    """400, not 401: the CLI is a public client and authenticates with nothing but its client_id
    (RFC 6749 §5.2 asks for a 401 only when the client authenticated via the Authorization header)."""

    error = "invalid_client"


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class AccessDenied(OAuthError):
    error = "access_denied"


class AuthorizationPending(OAuthError):
    error = "authorization_pending"


class SlowDown(OAuthError):
    error = "slow_down"


class DeviceStartsLimited(SlowDown):
    """Too many device logins started from one address (broker.ratelimit): 429 with Retry-After."""

    status = 429


class ExpiredToken(OAuthError):
    error = "expired_token"


class PasswordGrantLimited(OAuthError):
    """Too many failed password grants (broker.ratelimit): 429 with Retry-After."""

    error, status = "rate_limited", 429
