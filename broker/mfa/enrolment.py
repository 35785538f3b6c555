"""Who may enrol a first second factor (``mfa.enrolment``) and the admin's enrolment codes.

- ``open``: trust on first use — a signed-in person with no factor may enrol one. The enrolment
  is no step-up of that session: the person steps up with the new factor afterwards.
- ``invite``: a person with no factor enrols only with a one-time enrolment code an admin issued
  (``issue``). A code is 128 bits of randomness, kept only as its SHA-256 in the shared state
  store under the person's immutable id, for ``mfa.enrolment_code_ttl`` seconds, and taken with
  one ``delete`` (true once, on any replica). A wrong, used or expired code counts as a failed
  step-up in the rate limiter (``rate_limits.mfa_failures_per_user``) and is audited.

A session that took a code (or, under ``open``, any session of a person with no factor) may add
the first factor for ``WINDOW`` seconds: the mark lives in the portal session (``MARK``).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Literal

from broker.audit import AuditContext, Decision
from broker.decisions.log import AuditWriter, DecisionContext, decision, outcome_of, refusal_details
from broker.domain import Identity
from broker.errors import (
    BrokerError,
    EnrolmentCodeInvalid,
    EnrolmentCodeRequired,
    MfaNotEnrolled,
    TooManyRequests,
)
from broker.mfa import rfc3339
from broker.mfa.credentials import WebAuthnCredentialStore
from broker.mfa.store import FactorStore
from broker.ratelimit import RateLimiter
from broker.state.base import StateStore

Mode = Literal["open", "invite"]
WINDOW = 600
"""How long a session may finish a first enrolment after taking a code (seconds); also how long
an unconfirmed TOTP enrolment stays confirmable."""
MARK = "mfa_enrol_until"
"""Session ``extra``: until when (epoch seconds) this session may enrol a first factor."""


def _key(person_id: str, code: str) -> str:
    digest = hashlib.sha256(f"broker.mfa.enrolment:{person_id}:{code.strip()}".encode()).hexdigest()
    return f"mfa:enrolment_code:{digest}"


class EnrolmentCodes:
    def __init__(self, *, mode: Mode, ttl: int, state: StateStore, audit: AuditWriter, limits: RateLimiter,
                 clock: Callable[[], float] = time.time) -> None:
        self.mode = mode
        self.ttl = ttl
        self.state = state
        self.audit = audit
        self.limits = limits
        self.clock = clock

    def issue(self, person: Identity, *, by: AuditContext) -> tuple[str, str]:
        """A new code for ``person`` (the directory's account: its immutable id), shown once, and
        when it expires (RFC 3339). Audited ``mfa.enrolment_code`` under the admin ``by`` (never the code)."""
        code = secrets.token_urlsafe(16)
        expires = rfc3339(self.clock() + self.ttl) or ""
        self.state.set(_key(person.id, code), "1", ttl=self.ttl)
        self.audit.write(_admin_event(by, "mfa.enrolment_code", person, {"expires_at": expires}))
        return code, expires

    def reset(self, person: Identity, *, by: AuditContext, factors: FactorStore,
              credentials: WebAuthnCredentialStore) -> dict[str, object]:
        """The lost-phone path: remove ``person``'s TOTP factor (with its recovery codes) and every
        passkey; what was removed. ``MfaNotEnrolled`` (409) when there was nothing to remove (a
        typo of another username?). Audited ``mfa.reset`` (allow or deny) under the admin ``by``."""
        if factors.totp(person.id) is None and not credentials.of_person(person.id):
            exc = MfaNotEnrolled("that person has no second factor to reset", reason="nothing_enrolled")
            self.audit.write(_admin_event(by, "mfa.reset", person, refusal_details(exc), outcome="deny"),
                             required=False)
            raise exc
        totp = factors.remove_totp(person.id)
        passkeys = [c.label for c in credentials.of_person(person.id) if credentials.remove(person.id, c.id)]
        removed: dict[str, object] = {"totp": totp, "passkeys": len(passkeys)}
        self.audit.write(_admin_event(by, "mfa.reset", person, removed | {"passkey_labels": passkeys}))
        return removed

    def take(self, person: Identity, code: str, *, ctx: DecisionContext) -> None:
        """Use ``person``'s code: once. ``EnrolmentCodeRequired`` (none given), ``EnrolmentCodeInvalid``
        (wrong, used, expired), 429 after too many failures; all audited ``mfa.enrolment_code_used`` (deny), a success too (allow)."""
        try:
            try:
                self.limits.check_mfa(person=person.id)
            except TooManyRequests as exc:
                exc.reason = "mfa_failures"
                raise
            if not code.strip():
                raise EnrolmentCodeRequired(reason="missing")
            if len(code) > 64 or not self.state.delete(_key(person.id, code)):
                self.limits.mfa_failed(person=person.id)
                raise EnrolmentCodeInvalid(reason="unknown_used_or_expired")
        except BrokerError as exc:
            self.audit.write(decision(ctx, "mfa.enrolment_code_used", person, outcome=outcome_of(exc),
                                      details=refusal_details(exc)), required=False)
            raise
        self.audit.write(decision(ctx, "mfa.enrolment_code_used", person, outcome="allow"))


def _admin_event(by: AuditContext, action: str, person: Identity, details: dict[str, object], *,
                 outcome: str = "allow") -> Decision:
    return Decision(by, action, outcome, target_type="user", target_id=person.id,
                    details={"user": person.username, "immutable_id": person.id, "via": "admin-api", **details})
