"""Configuration of second factors at the broker: the ``mfa:`` section (``mfa.webauthn``: passkeys
and security keys as a step-up factor, ``broker.mfa.passkeys``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


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

    webauthn: WebAuthnConfig = Field(default_factory=WebAuthnConfig)
