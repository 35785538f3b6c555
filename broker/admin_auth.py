"""Admin API authentication: bearer tokens, stored only as SHA-256 hashes.

Admin tokens are random 256-bit values (``broker admin-token`` makes one), so a fast hash
is the right tool: there is nothing to brute-force, and comparing digests in constant time
keeps a timing side channel shut. A token from another deployment has another hash: 401.

Optionally (``admin.directory_groups``), members of directory groups are admins too: they send
HTTP Basic with their directory username and password, checked against the directory at every
request (so a removed membership ends admin access at once) through the same rate-limited,
audited sign-in as the portal's (``broker.flow.Flow.admin_sign_in``); ``admit`` then decides on
the groups. The audit actor is ``directory:<username>``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from broker.config import AdminConfig
from broker.connectors.base import Connector, PasswordConnector
from broker.domain import Identity
from broker.errors import Forbidden
from broker.groups import normalize
from broker.logs import get_logger

log = get_logger("broker.admin")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return "bka_" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class AdminPrincipal:
    name: str
    via: str  # "token" | "bootstrap" | "directory"

    @property
    def actor(self) -> str:
        """Who the audit log names: ``admin:<token name>`` or ``directory:<username>``."""
        return f"directory:{self.name}" if self.via == "directory" else f"admin:{self.name}"


class AdminTokens:
    def __init__(
        self, config: AdminConfig, env: Mapping[str, str], *, directory: Connector | None = None
    ) -> None:
        self._admin_groups = frozenset(normalize(g)[1] for g in config.directory_groups)
        usable = self._admin_groups and isinstance(directory, PasswordConnector)
        self._directory = directory if usable else None
        self._hashes: list[tuple[bytes, AdminPrincipal]] = [
            (bytes.fromhex(t.sha256), AdminPrincipal(t.name, "token")) for t in config.tokens
        ]
        bootstrap = env.get(config.bootstrap_token_env, "")
        if bootstrap:
            self._hashes.append((hashlib.sha256(bootstrap.encode()).digest(), AdminPrincipal("bootstrap", "bootstrap")))

    @property
    def configured(self) -> bool:
        return bool(self._hashes) or self._directory is not None

    @property
    def accepts_passwords(self) -> bool:
        """True when directory admin groups are configured (HTTP Basic is accepted)."""
        return self._directory is not None

    def is_admin(self, identity: Identity) -> bool:
        """Whether ``identity`` is in an admin group (the portal shows its admin pages to them)."""
        return any(normalize(g)[1] in self._admin_groups for g in identity.groups)

    def admit(self, identity: Identity) -> AdminPrincipal:
        """A signed-in directory identity as an admin; Forbidden (403) when it is in no admin group."""
        if not self.is_admin(identity):
            log.warning("admin_sign_in_not_admin", username=identity.username)
            raise Forbidden("you are not in a directory group that may use the admin API")
        return AdminPrincipal(identity.username, "directory")

    def verify(self, token: str) -> AdminPrincipal | None:
        digest = hashlib.sha256(token.encode("utf-8", errors="replace")).digest()
        found = None
        for expected, principal in self._hashes:  # no early exit: same work for every token
            if hmac.compare_digest(digest, expected) and found is None:
                found = principal
        return found
