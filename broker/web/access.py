"""How people reach the broker over the web, built once by create_app: portal sessions, CLI
tokens (RFC 8628 device login, rotating refresh tokens), rate limits and the portal's per-person
preferences — all on the shared state store, so replicas are interchangeable; the CLI tokens on
the durable one with the portal preferences (``state.durable``: the database by default, so a
Redis restart keeps them). It lives in the
web layer because its sessions are the web's (cookies, CSRF: ``broker.web.sessions``).

The password sign-in with its rate limits is ``broker.flow.Flow.sign_in``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from broker.errors import StateUnavailable
from broker.oauth import secret_hash
from broker.oauth.device import DeviceFlow
from broker.oauth.tokens import TokenService
from broker.ratelimit import RateLimiter
from broker.state.base import StateStore
from broker.web.sessions import SessionStore

if TYPE_CHECKING:
    from broker.config import Config
    from broker.domain import Identity

PREFS_TTL = 400 * 86400


def role_key(account_id: str, role_name: str) -> str:
    return f"{account_id}/{role_name.lower()}"


@dataclass
class Preferences:
    """Favorites and recently used roles of one person, kept server-side (shared state)."""

    favorites: list[str] = field(default_factory=list)
    recents: list[str] = field(default_factory=list)


class PreferenceStore:
    def __init__(self, state: StateStore, *, max_recents: int, earlier: StateStore | None = None) -> None:
        """``earlier``: where the preferences were kept before (the shared state, before
        ``state.durable: database``): a person's are carried over from it the first time they are read."""
        self.state = state
        self.earlier = earlier
        self.max_recents = max_recents

    def _key(self, identity: Identity) -> str:
        return f"portal:prefs:{secret_hash(identity.source + ':' + identity.id)}"

    def get(self, identity: Identity) -> Preferences:
        key = self._key(identity)
        raw = self.state.get(key)
        if raw is None and self.earlier is not None:
            raw = self._carry_over(key)
        if raw is None:
            return Preferences()
        data = json.loads(raw)
        return Preferences(list(data.get("favorites", [])), list(data.get("recents", [])))

    def _carry_over(self, key: str) -> str | None:
        """What a person made before the upgrade is kept: copied from the earlier store, once."""
        assert self.earlier is not None
        try:
            raw = self.earlier.get(key)
        except StateUnavailable:
            return None  # Redis down: nothing carried over this time; the page still works
        if raw is not None:
            self.state.set(key, raw, ttl=PREFS_TTL)
        return raw

    def _put(self, identity: Identity, prefs: Preferences) -> None:
        self.state.set(self._key(identity), json.dumps({"favorites": prefs.favorites, "recents": prefs.recents}),
                       ttl=PREFS_TTL)

    def toggle_favorite(self, identity: Identity, key: str) -> bool:
        """True when ``key`` is a favorite afterwards."""
        prefs = self.get(identity)
        if key in prefs.favorites:
            prefs.favorites.remove(key)
        else:
            prefs.favorites.append(key)
        self._put(identity, prefs)
        return key in prefs.favorites

    def used(self, identity: Identity, key: str) -> None:
        if self.max_recents == 0:
            return
        prefs = self.get(identity)
        prefs.recents = [key, *[k for k in prefs.recents if k != key]][: self.max_recents]
        self._put(identity, prefs)


class Access:
    def __init__(self, config: Config, state: StateStore, *, durable: StateStore | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """``durable``: where CLI logins (token families) live (``state.durable``); default ``state``."""
        self.config = config
        self.state = state
        self.durable = state if durable is None else durable
        self.sessions = SessionStore(state, config.sessions, public_url=config.server.public_url, clock=clock)
        self.tokens = TokenService(self.durable, config.oauth, clock=clock)
        self.devices = DeviceFlow(state, config.oauth, clock=clock)
        self.limits = RateLimiter(state, config.rate_limits)
        self.prefs = PreferenceStore(self.durable, max_recents=config.portal.max_recents,  # kept 400 days
                                     earlier=None if self.durable is state else state)

    def set_clock(self, clock: Callable[[], float]) -> None:
        """Tests own time: one clock for sessions, tokens and device codes."""
        self.sessions.clock = self.tokens.clock = self.devices.clock = clock
