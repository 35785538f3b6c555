"""Second factors: step-up MFA at issuance (``require_mfa`` / ``mfa_max_age`` on a mapping) and
the TOTP of break-glass accounts.

A second factor proved in a sign-in is carried on the identity (``Identity.mfa_at``,
``Identity.mfa_methods``) through the portal session and CLI tokens; ``stepped_up`` is the one
way a proof is added to it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from broker.domain import Identity
from broker.errors import MfaRequired
from broker.mapping.model import MIN_SESSION  # STS's shortest: a proof with less left is asked again

__all__ = ["FRESH_SECONDS", "fresh", "rfc3339", "stepped_up", "within_mfa"]

FRESH_SECONDS = 300
"""What a "fresh" step-up is: removing a factor, new recovery codes, approving a CLI login that
asked for MFA need a second factor proved at most this long ago."""


def rfc3339(at: float | None) -> str | None:
    """An ``mfa_at`` (epoch seconds) as the audit trail writes times: RFC 3339, UTC."""
    return None if at is None else datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


def fresh(identity: Identity, *, now: float) -> bool:
    """A second factor proved within ``FRESH_SECONDS``."""
    return identity.mfa_at is not None and now - identity.mfa_at <= FRESH_SECONDS


def stepped_up(identity: Identity, *, method: str, at: float) -> Identity:
    """The identity after a second factor proved at ``at`` (epoch seconds) by ``method``
    (an RFC 8176 ``amr`` value: ``otp`` for TOTP, ``hwk`` / ``swk`` for WebAuthn)."""
    methods = identity.mfa_methods if method in identity.mfa_methods else (*identity.mfa_methods, method)
    return replace(identity, mfa_at=at, mfa_methods=methods)


def within_mfa(identity: Identity, *, max_age: int | None, now: float, seconds: int, step_up_url: str,
               details: dict[str, Any]) -> int:
    """The session length an issuance may have under a role's MFA demand (``max_age`` None: none):
    ``MfaRequired`` when this sign-in has no second factor, or one older than ``max_age``; else
    ``seconds`` clamped so the session ends when the proof reaches its max age (AWS cannot cut a
    session later), and refused as well when that leaves less than STS's 900-second minimum.
    ``details`` (the audit event's) get ``mfa_at`` (RFC 3339) and ``mfa_methods``."""
    if identity.mfa_at is not None:
        details["mfa_at"] = rfc3339(identity.mfa_at)
        details["mfa_methods"] = list(identity.mfa_methods)
    if max_age is None:
        return seconds
    details["mfa_max_age"] = max_age
    left = None if identity.mfa_at is None else int(identity.mfa_at + max_age - now)
    if left is None or left < MIN_SESSION:
        why = "none" if identity.mfa_at is None else "too_old"
        raise MfaRequired(
            "this role needs a second factor proved in this sign-in" + (
                "" if identity.mfa_at is None else f" within the last {max_age} seconds, with 15 minutes to spare")
            + f": step up at {step_up_url} and try again",
            details=[{"field": "mfa_max_age", "code": "mfa_required", "value": max_age,
                      "message": "the oldest second factor (seconds) the role accepts"},
                     {"field": "step_up_url", "code": "mfa_required", "value": step_up_url,
                      "message": "step up there (or `awsbroker login --mfa`), then retry"}],
            reason=why,
        )
    if left < seconds:
        details["clamped_by_mfa"] = True
    return min(seconds, left)
