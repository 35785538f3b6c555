"""TOTP secrets at rest: AES-256-GCM when ``mfa.encryption_key_*`` is configured.

A stored value says how it is kept: ``aesgcm:`` + base64(nonce ‖ ciphertext ‖ tag), the person's
immutable id as associated data (a ciphertext copied to another person's row does not decrypt),
or ``plain:`` + the base32 secret (no key configured). A key configured later still reads the
plain rows; a plain-only broker refuses encrypted rows (the key is missing).
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.errors import MfaUnavailable

_ENC, _PLAIN = "aesgcm:", "plain:"
_NONCE = 12


class SecretUnreadable(MfaUnavailable):
    """A stored secret that this key cannot read (another key, or none configured): 503
    ``mfa_unavailable`` to the person (an operator's key problem, not theirs), never a 500."""


class SecretBox:
    def __init__(self, key: bytes | None) -> None:
        self._aead = AESGCM(key) if key is not None else None

    @property
    def encrypts(self) -> bool:
        return self._aead is not None

    def seal(self, secret: str, *, person_id: str) -> str:
        if self._aead is None:
            return _PLAIN + secret
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, secret.encode(), person_id.encode())
        return _ENC + base64.b64encode(nonce + sealed).decode()

    def open(self, stored: str, *, person_id: str) -> str:
        if stored.startswith(_PLAIN):
            return stored[len(_PLAIN):]
        if not stored.startswith(_ENC) or self._aead is None:
            raise SecretUnreadable("the TOTP secret is encrypted and no mfa.encryption_key is configured")
        raw = base64.b64decode(stored[len(_ENC):])
        try:
            return self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], person_id.encode()).decode()
        except InvalidTag:
            raise SecretUnreadable("the TOTP secret does not decrypt with the configured mfa.encryption_key") from None
