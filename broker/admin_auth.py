"""Admin API authentication: bearer tokens, stored only as SHA-256 hashes.

Admin tokens are random 256-bit values (``broker admin-token`` makes one), so a fast hash
is the right tool: there is nothing to brute-force, and comparing digests in constant time
keeps a timing side channel shut. A token from another deployment has another hash: 401.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Mapping

from broker.config import AdminConfig


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return "bka_" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class AdminPrincipal:
    name: str
    via: str  # "token" | "bootstrap"


class AdminTokens:
    def __init__(self, config: AdminConfig, env: Mapping[str, str]) -> None:
        self._hashes: list[tuple[bytes, AdminPrincipal]] = [
            (bytes.fromhex(t.sha256), AdminPrincipal(t.name, "token")) for t in config.tokens
        ]
        bootstrap = env.get(config.bootstrap_token_env, "")
        if bootstrap:
            self._hashes.append((hashlib.sha256(bootstrap.encode()).digest(), AdminPrincipal("bootstrap", "bootstrap")))

    @property
    def configured(self) -> bool:
        return bool(self._hashes)

    def verify(self, token: str) -> AdminPrincipal | None:
        digest = hashlib.sha256(token.encode("utf-8", errors="replace")).digest()
        found = None
        for expected, principal in self._hashes:  # no early exit: same work for every token
            if hmac.compare_digest(digest, expected) and found is None:
                found = principal
        return found
