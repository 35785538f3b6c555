"""Rate limits on shared state (OWASP ASVS V6.3.5): fixed windows, per user and per source address.

Counters live in ``broker.state`` (Redis when configured), so every replica sees the same count.
A window starts with its first hit and ends ``window_seconds`` later whatever happens meanwhile:
a lockout decays by itself and never lasts longer than one window. An attacker who keeps guessing
could renew it window after window, so the per-user lockout only holds against addresses the
person has not signed in from lately (``known_address_days``): from an address they used, they
get their own allowance of failures, and a stranger's guesses elsewhere do not lock them out.

Per-address limits never lock out everybody behind one address (a load balancer, a NAT, an
ingress whose proxy is not in ``server.trusted_proxies``): a person who signed in from the address
lately is never refused by it, and over its limit the address degrades into a slower bucket per
(address, username) — ``over_address_limit_failures_per_user`` — so a guesser behind the shared
address exhausts only the buckets of the names they try. Device-login starts count only while
they are not completed: a finished login gives its place back.
Keys carry a hash of the user name or address, never the value itself.
"""

from __future__ import annotations

import hashlib
import math

from broker.access_config import RateLimitsConfig
from broker.errors import TooManyRequests
from broker.state.base import StateStore


def _digest(value: str) -> str:
    return hashlib.sha256(value.strip().casefold().encode("utf-8")).hexdigest()[:32]


KNOWN_ADDRESS_DEVICE_FACTOR = 10
"""How many times device_authorizations_per_address an address with completed device logins has."""

class RateLimiter:
    def __init__(self, state: StateStore, config: RateLimitsConfig) -> None:
        self.state = state
        self.config = config

    def _key(self, kind: str, subject: str) -> str:
        return f"rl:{kind}:{_digest(subject)}"

    @staticmethod
    def _pair(username: str, address: str | None) -> str | None:
        return f"{username.strip().casefold()}\0{address}" if address else None

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

    def _known(self, pair: str | None) -> bool:
        return pair is not None and self.state.get(self._key("login-known", pair)) is not None

    def check_login(self, *, username: str, address: str | None) -> None:
        """Before any password check: refuse when the user, or this user at this address, is over
        its limit of failures (successes never count, so busy addresses are not slowed down).
        An address over its limit refuses nobody who signed in from it lately and, for anyone
        else, only a name that failed ``over_address_limit_failures_per_user`` times there. A user
        over the per-user limit is still let in from an address they signed in from within
        ``known_address_days``, until that address has failed as often for them."""
        c = self.config
        pair = self._pair(username, address)
        known: bool | None = None  # read only when a limit is reached: most sign-ins never need it
        if address and self._count("login-addr", address) >= c.login_failures_per_address:
            known = self._known(pair)
            if not known:
                self._refuse_over("login-pair", pair, c.over_address_limit_failures_per_user,
                                  "too many failed sign-ins for this account from your address; wait a few minutes")
        if self._count("login-user", username) < c.login_failures_per_user:
            return
        if known is None:
            known = self._known(pair)
        if known:
            self._refuse_over("login-pair", pair, c.login_failures_per_user,
                              "too many failed sign-ins for this account; wait a few minutes")
            return
        self._refuse_over("login-user", username, c.login_failures_per_user,
                          "too many failed sign-ins for this account; wait a few minutes")

    def login_failed(self, *, username: str, address: str | None) -> None:
        self.hit("login-user", username)
        self.hit("login-addr", address)
        self.hit("login-pair", self._pair(username, address))

    def login_succeeded(self, *, username: str, address: str | None) -> None:
        self.clear("login-user", username)
        pair = self._pair(username, address)
        if pair is not None and self.config.known_address_days:
            self.state.set(self._key("login-known", pair), "1", ttl=self.config.known_address_days * 86400)

    def first_refusal(self, *, username: str, address: str | None) -> bool:
        """True for the first refused sign-in of this user from this address in a window: the
        one the audit log records (a flood of refused attempts must not flood the log)."""
        subject = self._pair(username, address) or username
        return self.state.set_if_absent(self._key("login-refused", subject), "1", ttl=self.config.window_seconds)

    # -- step-up MFA codes (broker.mfa): wrong TOTP or recovery codes per person --

    def check_mfa(self, *, person: str) -> None:
        self._refuse_over("mfa-user", person, self.config.mfa_failures_per_user,
                          "too many wrong codes; wait a few minutes and try again")

    def mfa_failed(self, *, person: str) -> None:
        self.hit("mfa-user", person)

    # -- RFC 8628 user codes and device authorizations --

    def check_user_code(self, *, user: str, address: str | None) -> None:
        """Wrong codes per signed-in person; per address too, where an address over its limit
        degrades into a bucket per (address, person) instead of refusing everybody behind it."""
        c = self.config
        message = "too many wrong codes; wait a few minutes and start the login again"
        self._refuse_over("ucode-user", user, c.user_code_attempts_per_address, message)
        if address and self._count("ucode-addr", address) >= c.user_code_attempts_per_address:
            self._refuse_over("ucode-pair", self._pair(user, address), c.over_address_limit_failures_per_user, message)

    def user_code_failed(self, *, user: str, address: str | None) -> None:
        self.hit("ucode-addr", address)
        self.hit("ucode-user", user)
        self.hit("ucode-pair", self._pair(user, address))

    def device_authorization(self, *, address: str | None) -> None:
        """A device login starts: refused when the address has too many starts not completed. An
        address where device logins completed lately (``known_address_days``) has ten times the
        allowance, so abandoned starts from a stranger there do not stop its people's logins."""
        c = self.config
        limit = c.device_authorizations_per_address
        if address and self._count("devauth-addr", address) >= limit and self._known_device_address(address):
            limit *= KNOWN_ADDRESS_DEVICE_FACTOR
        self._refuse_over("devauth-addr", address, limit,
                          "too many device logins started from your address; wait a few minutes")
        self.hit("devauth-addr", address)

    def _known_device_address(self, address: str) -> bool:
        return self.state.get(self._key("devauth-known", address)) is not None

    def device_login_completed(self, *, address: str | None) -> None:
        """The CLI at ``address`` picked up an approved login: its start no longer counts, and the
        address is one where people complete device logins."""
        if not address:
            return
        if self._count("devauth-addr", address) > 0:
            self.state.increment(self._key("devauth-addr", address), ttl=self.config.window_seconds, amount=-1)
        if self.config.known_address_days:
            self.state.set(self._key("devauth-known", address), "1", ttl=self.config.known_address_days * 86400)
