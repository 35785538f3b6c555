"""WebAuthn ceremonies around py_webauthn (Duo's ``webauthn`` package): options to send to the
browser and verification of what it sends back. Pure: no storage, no clock, no audit
(``broker.mfa.passkeys`` sequences those).

The relying party is the broker's public address: RP ID = the host of ``server.public_url``,
the one expected origin = its scheme, host and port exactly. Every refusal is a
``WebAuthnInvalid`` (or a subclass with its own code): an answer made on another origin is
``WebAuthnOrigin``; a signature counter that did not grow is ``WebAuthnSignCount``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url, parse_client_data_json
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from broker.errors import WebAuthnInvalid, WebAuthnOrigin, WebAuthnSignCount

Ceremony = Literal["webauthn.create", "webauthn.get"]
MAX_CREDENTIAL_JSON = 64 * 1024
TIMEOUT_MS = 120_000
_TRANSPORTS = {t.value for t in AuthenticatorTransport}


@dataclass(frozen=True)
class RelyingParty:
    id: str
    """The RP ID: the host of ``server.public_url`` (no port)."""
    origin: str
    """The only origin an answer may come from: scheme://host[:port] of ``server.public_url``."""
    name: str
    user_verification: Literal["required", "preferred", "discouraged"] = "preferred"

    @classmethod
    def of(cls, public_url: str, *, name: str,
           user_verification: Literal["required", "preferred", "discouraged"] = "preferred") -> RelyingParty:
        parts = urlsplit(public_url)
        host = parts.hostname or ""
        return cls(id=host, origin=f"{parts.scheme}://{parts.netloc}".lower(), name=name,
                   user_verification=user_verification)

    @property
    def _uv(self) -> UserVerificationRequirement:
        return UserVerificationRequirement(self.user_verification)


@dataclass(frozen=True)
class Answer:
    """What a browser's answer says before it is verified: the credential and the challenge it signed."""

    credential_id: bytes
    challenge: bytes
    data: dict[str, Any]


@dataclass(frozen=True)
class NewCredential:
    credential_id: bytes
    public_key: bytes
    sign_count: int
    transports: tuple[str, ...]
    aaguid: str
    synced: bool
    """Backup eligible (a multi-device passkey, synced by its provider)."""


@dataclass(frozen=True)
class Assertion:
    credential_id: bytes
    sign_count: int
    synced: bool
    user_verified: bool

    @property
    def amr(self) -> str:
        """RFC 8176: ``swk`` (software-secured key) for a synced passkey, whose private key
        leaves the device; ``hwk`` (hardware-secured key) for one bound to its authenticator."""
        return "swk" if self.synced else "hwk"


def _descriptors(credentials: Iterable[tuple[bytes, Sequence[str]]]) -> list[PublicKeyCredentialDescriptor]:
    return [PublicKeyCredentialDescriptor(id=cid, transports=[AuthenticatorTransport(t) for t in transports
                                                              if t in _TRANSPORTS] or None)
            for cid, transports in credentials]


def registration_options(rp: RelyingParty, *, user_id: bytes, user_name: str, display_name: str, challenge: bytes,
                         exclude: Iterable[tuple[bytes, Sequence[str]]] = ()) -> str:
    """``navigator.credentials.create`` options (JSON): a passkey preferred, already registered
    credentials excluded, no attestation asked for."""
    options = generate_registration_options(
        rp_id=rp.id, rp_name=rp.name, user_id=user_id, user_name=user_name, user_display_name=display_name,
        challenge=challenge, timeout=TIMEOUT_MS, exclude_credentials=_descriptors(exclude),
        authenticator_selection=AuthenticatorSelectionCriteria(resident_key=ResidentKeyRequirement.PREFERRED,
                                                               user_verification=rp._uv),
    )
    return options_to_json(options)


def authentication_options(rp: RelyingParty, *, challenge: bytes,
                           allow: Iterable[tuple[bytes, Sequence[str]]]) -> str:
    """``navigator.credentials.get`` options (JSON) for the person's own credentials."""
    return options_to_json(generate_authentication_options(
        rp_id=rp.id, challenge=challenge, timeout=TIMEOUT_MS, allow_credentials=_descriptors(allow),
        user_verification=rp._uv))


def read_answer(rp: RelyingParty, raw: str | bytes, *, ceremony: Ceremony) -> Answer:
    """The credential id and challenge of a browser's answer, its origin checked
    (``WebAuthnOrigin``): enough to find the challenge issued and the credential stored."""
    if len(raw) > MAX_CREDENTIAL_JSON:
        raise WebAuthnInvalid(reason="too_large")
    try:
        data = json.loads(raw)
        response = data["response"]
        credential_id = base64url_to_bytes(data["rawId"])
        client = parse_client_data_json(base64url_to_bytes(response["clientDataJSON"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise WebAuthnInvalid(reason="malformed") from None
    if not isinstance(data, dict) or bytes_to_base64url(credential_id) != data.get("id"):
        raise WebAuthnInvalid(reason="malformed")
    if getattr(client.type, "value", client.type) != ceremony:
        raise WebAuthnInvalid(reason="wrong_ceremony")
    if client.origin != rp.origin or client.cross_origin:
        raise WebAuthnOrigin(reason="origin_mismatch")
    return Answer(credential_id=credential_id, challenge=client.challenge, data=data)


def verify_registration(rp: RelyingParty, answer: Answer) -> NewCredential:
    try:
        done = verify_registration_response(
            credential=answer.data, expected_challenge=answer.challenge, expected_rp_id=rp.id, expected_origin=rp.origin,
            require_user_verification=rp.user_verification == "required")
    except (InvalidRegistrationResponse, ValueError, KeyError, TypeError) as exc:
        raise WebAuthnInvalid(reason=_reason(exc)) from None
    transports = answer.data.get("response", {}).get("transports") or []
    return NewCredential(
        credential_id=done.credential_id, public_key=done.credential_public_key, sign_count=done.sign_count,
        transports=tuple(t for t in transports if isinstance(t, str) and t in _TRANSPORTS)[:8],
        aaguid=done.aaguid, synced=done.credential_device_type == CredentialDeviceType.MULTI_DEVICE)


def verify_assertion(rp: RelyingParty, answer: Answer, *, public_key: bytes, sign_count: int) -> Assertion:
    """Verify an assertion by the stored credential. The counter: when either the stored or the
    new count is non-zero, the new one must be greater (WebAuthn §6.1.1), else ``WebAuthnSignCount``."""
    try:
        done = verify_authentication_response(
            credential=answer.data, expected_challenge=answer.challenge, expected_rp_id=rp.id, expected_origin=rp.origin,
            credential_public_key=public_key, credential_current_sign_count=0,  # the counter is checked below
            require_user_verification=rp.user_verification == "required")
    except (InvalidAuthenticationResponse, ValueError, KeyError, TypeError) as exc:
        raise WebAuthnInvalid(reason=_reason(exc)) from None
    if (done.new_sign_count or sign_count) and done.new_sign_count <= sign_count:
        raise WebAuthnSignCount(reason="sign_count_not_increased")
    return Assertion(credential_id=done.credential_id, sign_count=done.new_sign_count,
                     synced=done.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
                     user_verified=done.user_verified)


def _reason(exc: Exception) -> str:
    """A short machine word for the audit log (py_webauthn's message names no secret)."""
    text = str(exc).lower()
    for word in ("rp id", "signature", "user verification", "user was not present", "challenge", "algorithm"):
        if word in text:
            return word.replace(" ", "_")
    return "invalid"
