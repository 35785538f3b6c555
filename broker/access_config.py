"""Configuration of how people reach the broker: `portal:`, `sessions:`, `oauth:`, `rate_limits:`.

Kept apart from broker.config (which composes them) so the sections stay small and documented
next to each other; every option is described in config/broker.example.yaml.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PortalConfig(_Section):
    enabled: bool = True
    """Serve the employee portal (/, /login, /logout, /device)."""
    title: Annotated[str, Field(min_length=1, max_length=80)] = "AWS access"
    """Shown in the page header and the browser tab."""
    max_recents: Annotated[int, Field(ge=0, le=50)] = 8
    """How many recently used roles the home page remembers per person (server-side)."""


class SessionsConfig(_Section):
    cookie_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = "__Host-broker"
    """Over TLS the cookie keeps this name (``__Host-``: Secure, Path=/, no Domain). Over plain http
    (a laptop demo) browsers refuse ``__Host-`` cookies, so the prefix is dropped there."""
    secure: Literal["auto", "true", "false"] = "auto"
    """auto: Secure when server.public_url is https or the request came over TLS."""
    idle_timeout_seconds: Annotated[int, Field(ge=60, le=86400)] = 3600
    """A session unused for this long ends."""
    absolute_timeout_seconds: Annotated[int, Field(ge=300, le=7 * 86400)] = 43200
    """A session ends this long after sign-in, used or not."""

    @model_validator(mode="after")
    def _order(self) -> SessionsConfig:
        if self.idle_timeout_seconds > self.absolute_timeout_seconds:
            raise ValueError("idle_timeout_seconds must not exceed absolute_timeout_seconds")
        return self


class OAuthConfig(_Section):
    client_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")] = "awsbroker"
    """The public client id the awsbroker CLI sends (device flow, refresh)."""
    access_token_ttl_seconds: Annotated[int, Field(ge=60, le=3600)] = 900
    """Bearer access tokens are short-lived; the CLI refreshes them by itself."""
    refresh_token_ttl_seconds: Annotated[int, Field(ge=300, le=30 * 86400)] = 43200
    """How long a CLI login lasts (absolute: rotation does not extend it)."""
    device_code_ttl_seconds: Annotated[int, Field(ge=60, le=600)] = 600
    """RFC 8628 device codes: short-lived (at most 10 minutes) and single-use."""
    interval_seconds: Annotated[int, Field(ge=1, le=60)] = 5
    """The minimum polling interval the CLI is told; polling faster earns ``slow_down`` (+5 s)."""


class RateLimitsConfig(_Section):
    window_seconds: Annotated[int, Field(ge=10, le=86400)] = 300
    """Fixed window of every counter below. A lockout ends when its window ends: it decays by
    itself and never locks anyone out for longer than this."""
    login_failures_per_user: Annotated[int, Field(ge=1, le=1000)] = 5
    """Failed password sign-ins per username per window (portal, password grant, HTTP Basic)."""
    known_address_days: Annotated[int, Field(ge=0, le=400)] = 30
    """A person over ``login_failures_per_user`` is still let in from an address they signed in
    from successfully within this many days, with that address's own allowance of failures: an
    attacker guessing from elsewhere cannot keep them locked out; and ``login_failures_per_address``
    never refuses them there. 0 turns this off (the lockout then holds for everyone, window after
    window, while the guessing goes on)."""
    login_failures_per_address: Annotated[int, Field(ge=1, le=100000)] = 50
    """Failed password sign-ins per source address per window (whatever the username: it stops
    one address trying many accounts). Successful sign-ins do not count, so an office behind one
    NAT address and a CI job signing in often are not slowed down. An address over this limit is
    not blocked for everybody (everyone behind one proxy or NAT shares it): a person who signed
    in from it within ``known_address_days`` is never refused by it, and anyone else gets
    ``over_address_limit_failures_per_user`` failures of their own there."""
    over_address_limit_failures_per_user: Annotated[int, Field(ge=1, le=1000)] = 3
    """Once an address is over ``login_failures_per_address`` (or ``user_code_attempts_per_address``),
    the slower bucket it degrades into: failures per window per username (per signed-in person
    for device codes) from that address. One guesser behind a shared address exhausts only the
    buckets of the names they try, never everybody's."""
    mfa_failures_per_user: Annotated[int, Field(ge=1, le=1000)] = 5
    """Wrong TOTP or recovery codes per person per window at a step-up (``broker.mfa``): then 429.
    Per person, not per address: the person is signed in already, the code is all that is guessed."""
    user_code_attempts_per_address: Annotated[int, Field(ge=1, le=1000)] = 10
    """Wrong device user codes entered per source address (and per signed-in person) per window."""
    device_authorizations_per_address: Annotated[int, Field(ge=1, le=10000)] = 30
    """Device logins started per source address per window and not completed: a start whose login
    completes (approved in the browser, picked up by the CLI from that address) gives its place
    back, so a company behind one proxy signing in all morning never reaches it; only abandoned
    starts (a script in a loop, a flood) do. An address where device logins completed within
    ``known_address_days`` has ten times this allowance, so a stranger's abandoned starts from a
    shared address do not stop its people's logins (``server.trusted_proxies`` gives each person
    their own address in the first place)."""
