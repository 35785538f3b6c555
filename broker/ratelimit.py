"""Rate limits on shared state (OWASP ASVS V6.3.5): fixed windows, per user and per source address.

Counters live in ``broker.state`` (Redis when configured), so every replica sees the same count.
A window starts with its first hit and ends ``window_seconds`` later whatever happens meanwhile:
a lockout decays by itself and never lasts longer than one window, so an attacker can slow a
person down but never lock them out for good. Keys carry a hash of the user name or address,
never the value itself.
"""

from __future__ import annotations

import hashlib
import math

from broker.access_config import RateLimitsConfig
from broker.errors import TooManyRequests
from broker.state.base import StateStore


def _digest(value: str) -> str:
    return hashlib.sha256(value.strip().casefold().encode("utf-8")).hexdigest()[:32]


class RateLimiter:
    def __init__(self, state: StateStore, config: RateLimitsConfig) -> None:
        self.state = state
        self.config = config

    def _key(self, kind: str, subject: str) -> str:
        return f"rl:{kind}:{_digest(subject)}"

    def _count(self, kind: str, subject: str) -> int:
        value = self.state.get(self._key(kind, subject))
        return int(value) if value else 0

    def _retry_after(self, kind: str, subject: str) -> int:
        left = self.state.ttl(self._key(kind, subject))
        return max(1, math.ceil(left)) if left else self.config.window_seconds

    def _refuse_over(self, kind: str, subject: str | None, limit: int, message: str) -> None:
        if subject and self._count(kind, subject) >= limit:
            raise TooManyRequests(message, retry_after=self._retry_after(kind, subject))

    def hit(self, kind: str, subject: str | None) -> int:
        if not subject:
            return 0
        return self.state.increment(self._key(kind, subject), ttl=self.config.window_seconds)

    def clear(self, kind: str, subject: str | None) -> None:
        if subject:
            self.state.delete(self._key(kind, subject))

    # -- password sign-in (portal form, OAuth password grant, HTTP Basic) --

    def check_login(self, *, username: str, address: str | None) -> None:
        """Before any password check: refuse when the address or the user is over its limit of
        failures (successes never count, so busy addresses are not slowed down)."""
        c = self.config
        self._refuse_over("login-addr", address, c.login_failures_per_address,
                          "too many sign-in attempts from your address; wait a few minutes")
        self._refuse_over("login-user", username, c.login_failures_per_user,
                          "too many failed sign-ins for this account; wait a few minutes")

    def login_failed(self, *, username: str, address: str | None) -> None:
        self.hit("login-user", username)
        self.hit("login-addr", address)

    def login_succeeded(self, *, username: str) -> None:
        self.clear("login-user", username)

    # -- RFC 8628 user codes and device authorizations --

    def check_user_code(self, *, user: str, address: str | None) -> None:
        c = self.config
        for kind, subject in (("ucode-addr", address), ("ucode-user", user)):
            self._refuse_over(kind, subject, c.user_code_attempts_per_address,
                              "too many wrong codes; wait a few minutes and start the login again")

    def user_code_failed(self, *, user: str, address: str | None) -> None:
        self.hit("ucode-addr", address)
        self.hit("ucode-user", user)

    def device_authorization(self, *, address: str | None) -> None:
        self._refuse_over("devauth-addr", address, self.config.device_authorizations_per_address,
                          "too many device logins started from your address; wait a few minutes")
        self.hit("devauth-addr", address)
