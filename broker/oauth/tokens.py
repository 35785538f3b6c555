"""RFC 6749 §6 (refresh), RFC 6750 (bearer access tokens), RFC 7009 (revocation), with the refresh
token rotation and reuse detection of RFC 9700 §4.14.

- An access token is opaque, short-lived (``oauth.access_token_ttl_seconds``, default 15 min).
- A refresh token is single-use: each use returns a new pair. The pair belongs to a *family*
  (one CLI login) whose lifetime is fixed at login (``oauth.refresh_token_ttl_seconds``);
  rotation never extends it. Presenting a refresh token a second time revokes the whole family
  (someone copied it).
- Revoking any token of a family (``awsbroker logout``) ends the family: its access and refresh
  tokens stop working at once, on every replica.

State keys: ``oauth:at:<sha256>``, ``oauth:rt:<sha256>``, ``oauth:rt-used:<sha256>``,
``oauth:fam:<family id>`` (indexed under its person: ``broker.logins``). Values carry the identity and epoch expiries (checked against the
service's clock, so tests own time).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict

from broker.access_config import OAuthConfig
from broker.domain import Identity
from broker.identity_json import identity_from_dict, identity_to_dict
from broker.logins import login_index
from broker.oauth import secret_hash
from broker.oauth.errors import InvalidClient, InvalidGrant
from broker.state.base import StateStore

ACCESS_PREFIX = "bat_"
REFRESH_PREFIX = "brt_"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int

    def response(self) -> dict[str, object]:
        """The RFC 6749 §5.1 token response."""
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "refresh_token_expires_in": self.refresh_expires_in,
        }


class _Record(TypedDict):
    """What ``oauth:at:<sha256>`` and ``oauth:rt:<sha256>`` hold (JSON)."""

    sub: dict[str, Any]
    """The identity (broker.identity_json)."""
    fam: str
    client: str
    exp: float


class TokenService:
    def __init__(self, state: StateStore, config: OAuthConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.state = state
        self.config = config
        self.clock = clock

    # -- issuing --

    def issue(self, identity: Identity, *, client_id: str) -> TokenPair:
        """A new login: a new family and its first pair. It ends with the sign-in it came from
        when that has an end of its own (``Identity.valid_until``)."""
        now = self.clock()
        family = secrets.token_urlsafe(16)
        expires = now + self.config.refresh_token_ttl_seconds
        if identity.valid_until is not None:
            expires = min(expires, identity.valid_until)
        self.state.set_indexed(f"oauth:fam:{family}", json.dumps({"user": identity.username}), ttl=self._left(expires, now),
                               index=login_index(identity.username))
        return self._pair(identity, client_id=client_id, family=family, family_expires=expires, now=now)

    def _pair(self, identity: Identity, *, client_id: str, family: str, family_expires: float, now: float) -> TokenPair:
        access, refresh = ACCESS_PREFIX + secrets.token_urlsafe(32), REFRESH_PREFIX + secrets.token_urlsafe(32)
        access_expires = min(now + self.config.access_token_ttl_seconds, family_expires)
        sub = identity_to_dict(identity)
        access_record: _Record = {"sub": sub, "fam": family, "client": client_id, "exp": access_expires}
        refresh_record: _Record = {"sub": sub, "fam": family, "client": client_id, "exp": family_expires}
        self.state.set(f"oauth:at:{secret_hash(access)}", json.dumps(access_record), ttl=self._left(access_expires, now))
        self.state.set(f"oauth:rt:{secret_hash(refresh)}", json.dumps(refresh_record), ttl=self._left(family_expires, now))
        return TokenPair(access, refresh, int(access_expires - now), int(family_expires - now))

    @staticmethod
    def _left(expires: float, now: float) -> float:
        return max(1.0, expires - now)

    def _load(self, key: str) -> _Record | None:
        raw = self.state.get(key)
        if raw is None:
            return None
        record: _Record = json.loads(raw)
        if record["exp"] <= self.clock() or self.state.get(f"oauth:fam:{record['fam']}") is None:
            return None
        return record

    # -- using --

    def identity_for(self, access_token: str) -> Identity | None:
        """The person behind a bearer access token; None when unknown, expired or revoked."""
        if not access_token.startswith(ACCESS_PREFIX) or len(access_token) > 200:
            return None
        record = self._load(f"oauth:at:{secret_hash(access_token)}")
        return None if record is None else identity_from_dict(record["sub"])

    def refresh(self, refresh_token: str, *, client_id: str) -> TokenPair:
        """Rotate: the presented refresh token is spent; a second use revokes the family."""
        if not refresh_token.startswith(REFRESH_PREFIX) or len(refresh_token) > 200:
            raise InvalidGrant("the refresh token is not valid")
        digest = secret_hash(refresh_token)
        record = self._load(f"oauth:rt:{digest}")
        if record is None:
            raise InvalidGrant("the refresh token is unknown, expired or revoked: log in again")
        if record["client"] != client_id:
            raise InvalidClient("this refresh token belongs to another client")
        now = self.clock()
        if not self.state.set_if_absent(f"oauth:rt-used:{digest}", "1", ttl=self._left(record["exp"], now)):
            self.revoke_family(record["fam"])
            raise InvalidGrant("the refresh token was already used: this login is revoked, log in again")
        # the spent token's record stays until the family ends, so a second use is recognised
        return self._pair(identity_from_dict(record["sub"]), client_id=client_id, family=record["fam"],
                          family_expires=record["exp"], now=now)

    # -- revoking (RFC 7009) --

    def revoke(self, token: str) -> bool:
        """Revoke the login (family) a token belongs to; True if it was a live token."""
        digest = secret_hash(token)
        for kind in ("at", "rt"):
            raw = self.state.get(f"oauth:{kind}:{digest}")
            if raw is not None:
                family = json.loads(raw)["fam"]
                self.state.delete(f"oauth:{kind}:{digest}")
                return self.revoke_family(family)
        return False

    def revoke_family(self, family: str) -> bool:
        return self.state.delete(f"oauth:fam:{family}")
