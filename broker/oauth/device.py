"""RFC 8628, the OAuth 2.0 Device Authorization Grant: `awsbroker login` without a password in the terminal.

1. The CLI asks for a device code (§3.1-3.2): a long secret ``device_code`` it keeps, and a short
   ``user_code`` the person types (or follows in ``verification_uri_complete``).
2. The person signs in to the portal and approves (or denies) the code at /device (§3.3).
3. The CLI polls the token endpoint (§3.4-3.5) with the device code: ``authorization_pending``
   until approved; polling faster than ``interval`` answers ``slow_down`` and adds 5 s to the
   interval for good; ``access_denied`` when denied; ``expired_token`` after
   ``oauth.device_code_ttl_seconds`` (at most 10 minutes). On approval the device code is
   spent: the first poll gets the tokens, any later one ``invalid_grant``.

User codes: 8 characters from a 20-letter alphabet without vowels (§6.1: no words, no
look-alikes), shown as XXXX-XXXX; case, dashes and spaces are ignored when typed. Guessing is
limited by broker.ratelimit (per source address and per signed-in person). Records are keyed by
the SHA-256 of each code: ``oauth:dc:<sha256(device_code)>``, ``oauth:uc:<sha256(user_code)>``;
an approved code, until collected, is one of its person's logins (``broker.logins``).

Against a phished ``verification_uri_complete`` link (§5.4, §3.3.1): the record keeps what the
approval page shows before anyone approves — the client, the address and user agent that
started the login, when it started and when it expires — so a person can tell that a login
they are asked to approve is not the one their own terminal started.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

from broker.access_config import OAuthConfig
from broker.domain import Identity
from broker.identity_json import identity_from_dict, identity_to_dict
from broker.logins import login_index
from broker.oauth import secret_hash
from broker.oauth.errors import (
    AccessDenied,
    AuthorizationPending,
    ExpiredToken,
    InvalidClient,
    InvalidGrant,
    SlowDown,
)
from broker.state.base import StateStore

__all__ = ["DEVICE_CODE_GRANT_TYPE", "DeviceAuthorization", "DeviceFlow", "PendingDevice", "normalize_user_code"]

DEVICE_CODE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
"""RFC 8628 §3.4: the token request's ``grant_type``."""
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
SLOW_DOWN_STEP = 5
_NOT_CODE = re.compile(r"[\s-]+")
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]+")
USER_AGENT_MAX = 120


def normalize_user_code(value: str) -> str | None:
    """``bcdf-ghjk`` → ``BCDFGHJK``; None when it cannot be a user code at all."""
    code = _NOT_CODE.sub("", value or "").upper()
    if len(code) != USER_CODE_LENGTH or any(c not in USER_CODE_ALPHABET for c in code):
        return None
    return code


def format_user_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def clean_user_agent(value: str | None) -> str | None:
    """What the approval page may show of a User-Agent: printable ASCII, at most 120 characters."""
    text = _NOT_PRINTABLE.sub(" ", value or "").strip()
    if len(text) > USER_AGENT_MAX:
        text = text[: USER_AGENT_MAX - 1] + "…"
    return text or None


@dataclass(frozen=True)
class DeviceAuthorization:
    device_code: str
    user_code: str
    expires_in: int
    interval: int

    def response(self, verification_uri: str) -> dict[str, object]:
        """The §3.2 device authorization response."""
        return {
            "device_code": self.device_code,
            "user_code": self.user_code,
            "verification_uri": verification_uri,
            "verification_uri_complete": f"{verification_uri}?user_code={self.user_code}",
            "expires_in": self.expires_in,
            "interval": self.interval,
        }


@dataclass(frozen=True)
class PendingDevice:
    """A user code waiting for the person's decision (what the approval page shows)."""

    user_code: str
    client_id: str
    expires_at: float
    created_at: float
    address: str | None
    """The source address of the device authorization request (who started the login)."""
    user_agent: str | None
    mfa: bool = False
    """The CLI asked for a login with a second factor (``mfa=required``: a role needs step-up MFA):
    approved only after a fresh step-up, so the tokens carry its ``mfa_at``."""


class _Record(TypedDict):
    """What ``oauth:dc:<sha256(device_code)>`` holds (JSON)."""

    status: Literal["pending", "approved", "denied"]
    client: str
    exp: float
    interval: int
    last_poll: float | None
    user_code: str
    """The SHA-256 of the user code (its key is deleted once the person decided)."""
    sub: dict[str, Any] | None
    """The approved identity (broker.identity_json)."""
    created: NotRequired[float]
    addr: NotRequired[str | None]
    ua: NotRequired[str | None]
    mfa: NotRequired[bool]


class DeviceFlow:
    def __init__(self, state: StateStore, config: OAuthConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.state = state
        self.config = config
        self.clock = clock

    def _left(self, record: _Record, now: float) -> float:
        return max(1.0, record["exp"] - now)

    def _save(self, digest: str, record: _Record, now: float, *, person: str | None = None) -> None:
        """``person``: the record is one of that person's logins (an approved code, until collected)."""
        key, value, ttl = f"oauth:dc:{digest}", json.dumps(record), self._left(record, now)
        if person is None:
            self.state.set(key, value, ttl=ttl)
        else:
            self.state.set_indexed(key, value, ttl=ttl, index=login_index(person))

    # -- §3.1/3.2 --

    def authorize(self, *, client_id: str, address: str | None = None, user_agent: str | None = None,
                  mfa: bool = False) -> DeviceAuthorization:
        """A new device code; ``address`` and ``user_agent`` of the starting request are kept for the
        approval page, ``mfa``: approved only with a fresh second factor."""
        if client_id != self.config.client_id:
            raise InvalidClient("unknown client_id")
        now = self.clock()
        ttl = self.config.device_code_ttl_seconds
        device_code = secrets.token_urlsafe(32)
        for _ in range(5):
            user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
            if self.state.set_if_absent(f"oauth:uc:{secret_hash(user_code)}", secret_hash(device_code), ttl=ttl):
                break
        else:  # pragma: no cover - 20^8 codes
            raise RuntimeError("could not allocate a unique user code")
        record: _Record = {"status": "pending", "client": client_id, "exp": now + ttl, "interval": self.config.interval_seconds,
                  "last_poll": None, "user_code": secret_hash(user_code), "sub": None,
                  "created": now, "addr": address, "ua": clean_user_agent(user_agent), "mfa": mfa}
        self._save(secret_hash(device_code), record, now)
        return DeviceAuthorization(device_code, format_user_code(user_code), ttl, self.config.interval_seconds)

    # -- §3.3: the person's decision --

    def _by_user_code(self, user_code: str) -> tuple[str, _Record] | None:
        code = normalize_user_code(user_code)
        if code is None:
            return None
        digest = self.state.get(f"oauth:uc:{secret_hash(code)}")
        raw = self.state.get(f"oauth:dc:{digest}") if digest else None
        if digest is None or raw is None:
            return None
        record: _Record = json.loads(raw)
        if record["status"] != "pending" or record["exp"] <= self.clock():
            return None
        return digest, record

    def pending(self, user_code: str) -> PendingDevice | None:
        """The pending request behind a typed code, or None (unknown, expired or already decided)."""
        found = self._by_user_code(user_code)
        if found is None:
            return None
        code = normalize_user_code(user_code)
        assert code is not None
        record = found[1]
        return PendingDevice(format_user_code(code), record["client"], record["exp"],
                             created_at=record.get("created", record["exp"] - self.config.device_code_ttl_seconds),
                             address=record.get("addr"), user_agent=record.get("ua"), mfa=bool(record.get("mfa")))

    def decide(self, user_code: str, *, identity: Identity, approve: bool) -> bool:
        """Approve (bind ``identity``) or deny; the user code is spent either way. False if not pending."""
        found = self._by_user_code(user_code)
        if found is None:
            return False
        digest, record = found
        if not self.state.delete(f"oauth:uc:{record['user_code']}"):
            return False  # decided meanwhile (another tab, another replica)
        record["status"] = "approved" if approve else "denied"
        record["sub"] = identity_to_dict(identity) if approve else None
        self._save(digest, record, self.clock(), person=identity.username if approve else None)
        return True

    # -- §3.4/3.5: the CLI polls --

    def poll(self, *, device_code: str, client_id: str) -> Identity:
        """The approved identity (once); otherwise raises the RFC 8628 / RFC 6749 error to answer."""
        if not device_code or len(device_code) > 200:
            raise InvalidGrant("device_code is missing or malformed")
        now = self.clock()
        digest = secret_hash(device_code)
        raw = self.state.get(f"oauth:dc:{digest}")
        if raw is None:
            raise ExpiredToken("the device code is unknown or expired: run the login again")
        record: _Record = json.loads(raw)
        if record["client"] != client_id:
            raise InvalidClient("this device code belongs to another client")
        if record["exp"] <= now:
            raise ExpiredToken("the device code expired: run the login again")
        if record["status"] == "denied":
            self.state.delete(f"oauth:dc:{digest}")
            raise AccessDenied("the login was denied in the browser")
        if record["status"] == "approved" and record["sub"] is not None:  # decide() binds the identity
            if not self.state.set_if_absent(f"oauth:dc-used:{digest}", "1", ttl=self._left(record, now)):
                raise InvalidGrant("the device code was already used")
            self.state.delete(f"oauth:dc:{digest}")
            return identity_from_dict(record["sub"])
        last = record["last_poll"]
        record["last_poll"] = now
        if last is not None and now - last < record["interval"]:
            record["interval"] += SLOW_DOWN_STEP
            self._save(digest, record, now)
            raise SlowDown(f"polling too fast: wait {record['interval']} seconds between requests")
        self._save(digest, record, now)
        raise AuthorizationPending("waiting for approval in the browser")
