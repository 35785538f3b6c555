"""The step-up decisions: TOTP enrolment, a step-up with a TOTP or recovery code, removal.

Each decision writes one audit event of the one shape (``broker.decisions.log``): ``mfa.enrol``,
``mfa.step_up`` (allow or deny, with the method), ``mfa.recovery_used``, ``mfa.remove``. A code,
a secret or a recovery code never reaches an event or a log. Wrong codes count per person in the
rate limiter (``rate_limits.mfa_failures_per_user``, then 429). The issuance check (a role's
``require_mfa`` / ``mfa_max_age``) is ``broker.flow``'s: this module only adds proofs, through
``broker.mfa.stepped_up``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from broker.decisions.log import AuditWriter, DecisionContext, decision, outcome_of, refusal_details
from broker.domain import Identity
from broker.errors import (
    BrokerError,
    MfaAlreadyEnrolled,
    MfaCodeInvalid,
    MfaCodeReused,
    MfaNotEnrolled,
    MfaRequired,
    TooManyRequests,
)
from broker.mfa import FRESH_SECONDS, fresh, recovery, stepped_up, totp
from broker.mfa.enrolment import WINDOW
from broker.mfa.secrets import SecretBox
from broker.mfa.store import FactorStore, TotpFactor
from broker.ratelimit import RateLimiter

Method = Literal["totp", "recovery"]
AMR = {"totp": "otp", "recovery": "otp"}
"""RFC 8176: a one-time password, whether from an app or a printed recovery code."""


@dataclass(frozen=True)
class Enrolment:
    secret: str
    uri: str


@dataclass(frozen=True)
class Status:
    totp: bool
    """A confirmed TOTP factor."""
    pending: bool
    """An enrolment started, not confirmed, in the last ``WINDOW`` seconds (an older one is void)."""
    recovery_codes_left: int


class StepUps:
    def __init__(self, *, store: FactorStore, box: SecretBox, audit: AuditWriter, limits: RateLimiter,
                 issuer: str, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = store
        self.box = box
        self.audit = audit
        self.limits = limits
        self.issuer = issuer
        self.clock = clock

    def status(self, identity: Identity) -> Status:
        factor = self.store.totp(identity.id)
        left = self.store.recovery_codes_left(identity.id) if factor is not None and factor.confirmed else 0
        return Status(factor is not None and factor.confirmed, self._pending(factor) is not None, left)

    def _pending(self, factor: TotpFactor | None) -> TotpFactor | None:
        """An unconfirmed factor started less than ``WINDOW`` seconds ago (an older one: re-enrol)."""
        if factor is None or factor.confirmed or self.clock() - factor.created_at > timedelta(seconds=WINDOW):
            return None
        return factor

    def fresh(self, identity: Identity) -> bool:
        """A step-up within ``FRESH_SECONDS``."""
        return fresh(identity, now=self.clock().timestamp())

    def refused(self, action: str, identity: Identity, ctx: DecisionContext, exc: BrokerError) -> None:
        """A refusal decided before this module was asked (who may add a factor: ``broker.web.mfa``)."""
        self.audit.write(decision(ctx, action, identity, outcome=outcome_of(exc),
                                  details={"method": "totp"} | refusal_details(exc)), required=False)

    def _audited(self, action: str, identity: Identity, ctx: DecisionContext, details: dict[str, object],
                 run: Callable[[], object]) -> object:
        try:
            result = run()
        except BrokerError as exc:
            self.audit.write(decision(ctx, action, identity, outcome=outcome_of(exc),
                                      details=details | refusal_details(exc)))
            raise
        self.audit.write(decision(ctx, action, identity, outcome="allow", details=details))
        return result

    # ---- enrolment ----

    def begin_totp(self, identity: Identity) -> Enrolment:
        """A new secret, unconfirmed until a code of it is typed (nothing audited yet: nothing counts)."""
        secret = totp.new_secret()
        sealed = self.box.seal(secret, person_id=identity.id)
        if not self.store.start_totp(person_id=identity.id, username=identity.username, sealed_secret=sealed,
                                     at=self.clock()):
            raise MfaAlreadyEnrolled()
        return Enrolment(secret, totp.provisioning_uri(secret, account=identity.username, issuer=self.issuer))

    def pending_enrolment(self, identity: Identity) -> Enrolment | None:
        """The secret of an enrolment under way; show it only to a session that may add a factor."""
        factor = self._pending(self.store.totp(identity.id))
        if factor is None:
            return None
        secret = self.box.open(factor.sealed_secret, person_id=identity.id)
        return Enrolment(secret, totp.provisioning_uri(secret, account=identity.username, issuer=self.issuer))

    def confirm_totp(self, identity: Identity, code: str, *, ctx: DecisionContext) -> list[str]:
        """The first code of the new secret: the factor counts from now and ten recovery codes are
        made (shown once). No step-up of this session: whoever enrolled proved nothing the password
        did not (the person steps up with the new factor next). Audited ``mfa.enrol``."""
        codes = recovery.new_codes()

        def run() -> None:
            self._limited(identity)
            factor = self.store.totp(identity.id)
            if factor is None:
                raise MfaNotEnrolled("start the enrolment first")
            if factor.confirmed:
                raise MfaAlreadyEnrolled()
            if self._pending(factor) is None:
                raise MfaNotEnrolled(f"the enrolment was not confirmed within {WINDOW // 60} minutes: start again",
                                     reason="enrolment_expired")
            now = self.clock()
            step = self._step(identity, factor, code, now)
            if not self.store.confirm_totp(identity.id, step=step, at=now,
                                           recovery_digests=[recovery.digest(c) for c in codes]):
                raise MfaCodeReused()

        self._audited("mfa.enrol", identity, ctx, {"method": "totp"}, run)
        return codes

    def regenerate_recovery_codes(self, identity: Identity, *, ctx: DecisionContext) -> list[str]:
        codes = recovery.new_codes()

        def run() -> None:
            self._enrolled(identity)
            if not self.fresh(identity):
                raise MfaRequired(details=self.fresh_details())
            self.store.replace_recovery_codes(identity.id, [recovery.digest(c) for c in codes], at=self.clock())

        self._audited("mfa.recovery_codes", identity, ctx, {"method": "recovery", "count": len(codes)}, run)
        return codes

    def remove_totp(self, identity: Identity, *, ctx: DecisionContext) -> None:
        def run() -> None:
            self._enrolled(identity)
            if not self.fresh(identity):
                raise MfaRequired(details=self.fresh_details())
            self.store.remove_totp(identity.id)

        self._audited("mfa.remove", identity, ctx, {"method": "totp"}, run)

    @staticmethod
    def fresh_details() -> list[dict[str, object]]:
        return [{"field": "mfa_at", "code": "mfa_required", "value": FRESH_SECONDS,
                 "message": f"step up again first (a second factor of the last {FRESH_SECONDS // 60} minutes)"}]

    # ---- a step-up ----

    def step_up(self, identity: Identity, *, method: Method, code: str, ctx: DecisionContext) -> Identity:
        """The identity with a second factor proved now (``stepped_up``), or a refusal: 429 after
        too many wrong codes, ``mfa_not_enrolled``, ``mfa_code_invalid``, ``mfa_code_reused``.
        Audited ``mfa.step_up`` (allow or deny, with the method); a recovery code also ``mfa.recovery_used``."""

        def run() -> Identity:
            self._limited(identity)
            factor = self._enrolled(identity)
            now = self.clock()
            if method == "recovery":
                if not recovery.looks_like_code(code) or not self.store.use_recovery_code(
                        identity.id, recovery.digest(code), at=now):
                    self.limits.mfa_failed(person=identity.id)
                    raise MfaCodeInvalid(reason="recovery_code")
                left = self.store.recovery_codes_left(identity.id)
                self.audit.write(decision(ctx, "mfa.recovery_used", identity, outcome="allow",
                                          details={"method": "recovery", "recovery_codes_left": left}))
            else:
                step = self._step(identity, factor, code, now)
                if not self.store.use_totp(identity.id, step=step, at=now):  # another request used it first
                    raise MfaCodeReused(reason="concurrent")
            return stepped_up(identity, method=AMR[method], at=now.timestamp())

        proved = self._audited("mfa.step_up", identity, ctx, {"method": method}, run)
        assert isinstance(proved, Identity)
        return proved

    def _limited(self, identity: Identity) -> None:
        try:
            self.limits.check_mfa(person=identity.id)
        except TooManyRequests as exc:
            exc.reason = "mfa_failures"
            raise

    def _enrolled(self, identity: Identity) -> TotpFactor:
        factor = self.store.totp(identity.id)
        if factor is None or not factor.confirmed:
            raise MfaNotEnrolled()
        return factor

    def _step(self, identity: Identity, factor: TotpFactor, code: str, now: datetime) -> int:
        secret = self.box.open(factor.sealed_secret, person_id=identity.id)
        try:
            step = totp.verify(secret, code, at=now.timestamp(), last_step=factor.last_step)
        except totp.TotpReplay:
            raise MfaCodeReused(reason="replay") from None
        if step is None:
            self.limits.mfa_failed(person=identity.id)
            raise MfaCodeInvalid(reason="totp")
        return step
