"""The WebAuthn credentials people registered (passkeys, security keys): what is stored and the
store's interface (``broker.db.webauthn_store.SqlWebAuthnStore`` keeps them in the database)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from webauthn.helpers import bytes_to_base64url


@dataclass(frozen=True)
class NewStoredCredential:
    person_id: str
    username: str
    credential_id: bytes
    public_key: bytes
    sign_count: int
    transports: tuple[str, ...]
    aaguid: str
    label: str
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class StoredCredential(NewStoredCredential):
    """A registered credential: what was stored, its row id and when it was last used."""

    id: int
    last_used_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """What the person's list shows: never the public key."""
        return {"id": self.id, "label": self.label, "credential_id": bytes_to_base64url(self.credential_id),
                "transports": list(self.transports), "aaguid": self.aaguid,
                "created_at": self.created_at.isoformat(), "last_used_at": self.last_used_at and
                self.last_used_at.isoformat()}


class WebAuthnCredentialStore(Protocol):
    def add(self, new: NewStoredCredential) -> StoredCredential | None:
        """Store a credential; None when its credential id is registered already (to anyone)."""

    def of_person(self, person_id: str) -> list[StoredCredential]:
        """The person's credentials, oldest first."""

    def by_credential_id(self, credential_id: bytes) -> StoredCredential | None: ...

    def used(self, credential: StoredCredential, *, sign_count: int, at: datetime) -> bool:
        """Record a verified assertion: the new counter and when, only if the stored counter is
        still ``credential.sign_count`` (two assertions at once: one wins). True if recorded."""

    def remove(self, person_id: str, id: int) -> StoredCredential | None:
        """Delete one of the person's credentials; what was deleted, None if there was none."""
