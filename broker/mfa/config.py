"""The ``mfa:`` section: step-up MFA at issuance (``require_mfa`` / ``mfa_max_age`` on mappings),
its TOTP secrets' encryption key, and ``mfa.webauthn`` (passkeys and security keys, ``broker.mfa.passkeys``)."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from broker.config_sources import from_env, from_file
from broker.mapping.model import MAX_SESSION, MIN_MFA_AGE

KEY_BYTES = 32
"""AES-256-GCM: the TOTP secrets' encryption key is 32 bytes, given base64-encoded."""


class WebAuthnConfig(BaseModel):
    """``mfa.webauthn``. The relying party's id and origin are not configured: they are
    ``server.public_url``'s host and origin (``broker.mfa.webauthn.RelyingParty.of``)."""

    model_config = ConfigDict(extra="forbid")

    rp_name: Annotated[str, Field(min_length=1, max_length=64)] = "AWS access broker"
    """The name browsers and authenticators show when a passkey is made."""
    user_verification: Literal["required", "preferred", "discouraged"] = "preferred"
    """Whether the authenticator must verify the person (PIN, biometrics): ``required`` refuses
    an answer without it."""


class MfaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_max_age: Annotated[int, Field(ge=MIN_MFA_AGE, le=MAX_SESSION)] = MAX_SESSION
    """How old a second factor ``require_mfa: true`` accepts (seconds; default 43200, the longest
    AWS session: any second factor of this sign-in). ``mfa_max_age`` on a mapping says its own."""
    issuer: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^:]+$")] = "AWS access broker"
    """The name authenticator apps show beside the account (the ``otpauth://`` URI's issuer)."""
    encryption_key_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    """An environment variable holding the key that encrypts TOTP secrets at rest (AES-256-GCM;
    32 random bytes, base64: ``openssl rand -base64 32``)."""
    encryption_key_file: Path | None = None
    """... or a file holding it. Neither: secrets are stored as they are (check-config warns when
    ``server.public_url`` is https://, i.e. in production)."""

    enrolment: Literal["open", "invite"] = "open"
    """Who may enrol a first second factor: ``open`` (anyone signed in who has none: trust on
    first use; check-config warns when ``server.public_url`` is https://) or ``invite`` (only with
    a one-time enrolment code an admin issued: ``POST /api/v1/admin/mfa/enrolment-codes``)."""
    enrolment_code_ttl: Annotated[int, Field(ge=300, le=30 * 86400)] = 86400
    """How long an enrolment code works (seconds; default 24 hours)."""
    webauthn: WebAuthnConfig = Field(default_factory=WebAuthnConfig)
    """Passkeys and security keys as a step-up factor."""

    @model_validator(mode="after")
    def _one_key_source(self) -> MfaConfig:
        if self.encryption_key_env is not None and self.encryption_key_file is not None:
            raise ValueError("give encryption_key_env or encryption_key_file, not both")
        return self

    @property
    def encrypts(self) -> bool:
        return self.encryption_key_env is not None or self.encryption_key_file is not None

    def encryption_key(self, env: Mapping[str, str] | None = None) -> bytes | None:
        """The key (32 bytes), None when none is configured; ValueError saying what is wrong."""
        problems: list[str] = []
        if self.encryption_key_env is not None:
            raw = from_env("mfa.encryption_key_env", self.encryption_key_env, os.environ if env is None else env,
                           problems)
            where = f"environment variable {self.encryption_key_env}"
        elif self.encryption_key_file is not None:
            raw = from_file("mfa.encryption_key_file", self.encryption_key_file, problems)
            where = str(self.encryption_key_file)
        else:
            return None
        if raw is None:
            raise ValueError(problems[0])
        try:
            key = base64.b64decode(raw.strip(), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise ValueError(f"mfa: the key in {where} is not {KEY_BYTES} bytes, base64-encoded "
                             "(make one with `openssl rand -base64 32`)")
        return key
