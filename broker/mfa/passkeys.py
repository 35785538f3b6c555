"""Passkeys and security keys as a step-up factor: the ceremonies' sequence (challenge, verify,
store, audit) around the pure ``broker.mfa.webauthn``.

- Challenges: 32 random bytes, bound to the portal session (the hash of its id) and the ceremony,
  kept in the shared state for 5 minutes under a key naming the challenge itself; an answer's
  challenge is taken with one ``delete`` (true once), so two posts of one answer succeed once.
- A verified assertion gives ``stepped_up(identity, method="hwk" | "swk", at=now)``; the caller
  saves it in the session. Every refusal is audited (deny) and changes nothing; an assertion
  or attestation never reaches the audit log, a credential's label and row id do.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from webauthn.helpers import bytes_to_base64url

from broker.decisions.log import AuditWriter, DecisionContext, decision, outcome_of, refusal_details
from broker.domain import Identity
from broker.errors import (
    BrokerError,
    MfaRequired,
    WebAuthnChallenge,
    WebAuthnInvalid,
    WebAuthnSignCount,
    WebAuthnUnknownCredential,
)
from broker.mfa import fresh, stepped_up
from broker.mfa.config import WebAuthnConfig
from broker.mfa.credentials import NewStoredCredential, StoredCredential, WebAuthnCredentialStore
from broker.mfa.webauthn import (
    Answer,
    Ceremony,
    RelyingParty,
    authentication_options,
    read_answer,
    registration_options,
    verify_assertion,
    verify_registration,
)
from broker.state.base import StateStore

CHALLENGE_TTL = 300
CHALLENGE_BYTES = 32
METHOD = "webauthn"


def user_handle(person_id: str) -> bytes:
    """The WebAuthn user handle: stable per person, and no personal data (WebAuthn §14.6.1)."""
    return hashlib.sha256(b"broker.webauthn.user:" + person_id.encode()).digest()


class Passkeys:
    def __init__(self, *, rp: RelyingParty, state: StateStore, store: WebAuthnCredentialStore,
                 audit: AuditWriter) -> None:
        self.rp = rp
        self.state = state
        self.store = store
        self.audit = audit

    @classmethod
    def of(cls, public_url: str, config: WebAuthnConfig, *, state: StateStore, store: WebAuthnCredentialStore,
           audit: AuditWriter) -> Passkeys:
        """The relying party of ``server.public_url`` with ``mfa.webauthn``'s name and user verification."""
        rp = RelyingParty.of(public_url, name=config.rp_name, user_verification=config.user_verification)
        return cls(rp=rp, state=state, store=store, audit=audit)

    # -- challenges --

    def _key(self, ceremony: Ceremony, binding: str, challenge: bytes) -> str:
        return f"webauthn:challenge:{ceremony}:{binding}:{bytes_to_base64url(challenge)}"

    def _issue(self, ceremony: Ceremony, binding: str) -> bytes:
        challenge = secrets.token_bytes(CHALLENGE_BYTES)
        self.state.set(self._key(ceremony, binding, challenge), "1", ttl=CHALLENGE_TTL)
        return challenge

    def _take(self, ceremony: Ceremony, binding: str, answer: Answer) -> None:
        if len(answer.challenge) != CHALLENGE_BYTES or not self.state.delete(self._key(ceremony, binding,
                                                                                         answer.challenge)):
            raise WebAuthnChallenge(reason="unknown_used_or_expired")

    # -- audit --

    def refused(self, ctx: DecisionContext, action: str, who: Identity, exc: BrokerError) -> None:
        self.audit.write(decision(ctx, action, who, outcome=outcome_of(exc), target_type="webauthn_credential",
                                  details={"method": METHOD, **refusal_details(exc)}), required=False)

    # -- the person's credentials --

    def credentials(self, identity: Identity) -> list[StoredCredential]:
        return self.store.of_person(identity.id)

    def registration_options(self, identity: Identity, *, binding: str) -> str:
        mine = self.store.of_person(identity.id)
        return registration_options(
            self.rp, user_id=user_handle(identity.id), user_name=identity.username,
            display_name=identity.display_name or identity.username, challenge=self._issue("webauthn.create", binding),
            exclude=[(c.credential_id, c.transports) for c in mine])

    def register(self, identity: Identity, raw: str, *, label: str, binding: str, ctx: DecisionContext,
                 now: float) -> StoredCredential:
        try:
            answer = read_answer(self.rp, raw, ceremony="webauthn.create")
            self._take("webauthn.create", binding, answer)
            new = verify_registration(self.rp, answer)
            stored = self.store.add(NewStoredCredential(
                person_id=identity.id, username=identity.username, credential_id=new.credential_id,
                public_key=new.public_key, sign_count=new.sign_count, transports=new.transports, aaguid=new.aaguid,
                label=label, created_at=datetime.fromtimestamp(now, UTC)))
            if stored is None:
                raise WebAuthnInvalid("that security key or passkey is registered already", reason="duplicate")
        except BrokerError as exc:
            self.refused(ctx, "mfa.enrol", identity, exc)
            raise
        self.audit.write(decision(ctx, "mfa.enrol", identity, outcome="allow", target_type="webauthn_credential",
                                  target_id=str(stored.id),
                                  details={"method": METHOD, "label": stored.label, "aaguid": stored.aaguid,
                                           "synced": new.synced}))
        return stored

    def authentication_options(self, identity: Identity, *, binding: str) -> str:
        mine = self.store.of_person(identity.id)
        if not mine:
            raise WebAuthnUnknownCredential("register a security key or passkey first", reason="none_registered")
        return authentication_options(self.rp, challenge=self._issue("webauthn.get", binding),
                                      allow=[(c.credential_id, c.transports) for c in mine])

    def authenticate(self, identity: Identity, raw: str, *, binding: str, ctx: DecisionContext,
                     now: float) -> Identity:
        """The identity stepped up by a verified assertion of one of the person's credentials."""
        label: str | None = None
        try:
            answer = read_answer(self.rp, raw, ceremony="webauthn.get")
            self._take("webauthn.get", binding, answer)
            stored = self.store.by_credential_id(answer.credential_id)
            if stored is None or stored.person_id != identity.id:
                raise WebAuthnUnknownCredential(reason="not_registered" if stored is None else "another_person")
            label = stored.label
            done = verify_assertion(self.rp, answer, public_key=stored.public_key, sign_count=stored.sign_count)
            if not self.store.used(stored, sign_count=done.sign_count, at=datetime.fromtimestamp(now, UTC)):
                raise WebAuthnSignCount(reason="concurrent_use")
        except BrokerError as exc:
            self.refused(ctx, "mfa.step_up", identity, exc)
            raise
        self.audit.write(decision(ctx, "mfa.step_up", identity, outcome="allow", target_type="webauthn_credential",
                                  target_id=str(stored.id),
                                  details={"method": METHOD, "amr": done.amr, "label": label,
                                           "user_verified": done.user_verified}))
        return stepped_up(identity, method=done.amr, at=now)

    def remove(self, identity: Identity, id: int, *, ctx: DecisionContext, now: float) -> StoredCredential:
        try:
            if not fresh(identity, now=now):  # a factor is removed only with a step-up of the last 5 minutes
                raise MfaRequired("confirm with a second factor first (a step-up in the last 5 minutes)",
                                  reason="step_up_stale")
            gone = self.store.remove(identity.id, id)
            if gone is None:
                raise WebAuthnUnknownCredential(reason="not_registered")
        except BrokerError as exc:
            self.refused(ctx, "mfa.remove", identity, exc)
            raise
        self.audit.write(decision(ctx, "mfa.remove", identity, outcome="allow", target_type="webauthn_credential",
                                  target_id=str(gone.id), details={"method": METHOD, "label": gone.label}))
        return gone
