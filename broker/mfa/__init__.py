"""Second factors: step-up MFA at issuance (``require_mfa`` / ``mfa_max_age`` on a mapping) and
the TOTP of break-glass accounts.

A second factor proved in a sign-in is carried on the identity (``Identity.mfa_at``,
``Identity.mfa_methods``) through the portal session and CLI tokens; ``stepped_up`` is the one
way a proof is added to it.
"""

from __future__ import annotations

from dataclasses import replace

from broker.domain import Identity

__all__ = ["stepped_up"]


def stepped_up(identity: Identity, *, method: str, at: float) -> Identity:
    """The identity after a second factor proved at ``at`` (epoch seconds) by ``method``
    (an RFC 8176 ``amr`` value: ``otp`` for TOTP, ``hwk`` / ``swk`` for WebAuthn)."""
    methods = identity.mfa_methods if method in identity.mfa_methods else (*identity.mfa_methods, method)
    return replace(identity, mfa_at=at, mfa_methods=methods)
