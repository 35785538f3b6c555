"""OpenID Connect Core 1.0 and Discovery 1.0, RFC 7517/7518/7519, as AWS IAM id_roles_providers_oidc reads them.

The broker as the OIDC provider AWS trusts for AssumeRoleWithWebIdentity: the discovery
document, the JWKS (every published key, each with its RFC 7638 kid) and short RS256 ID tokens
signed with the current key, whose joserfc key object is built once and reused.

Each token carries the person's SourceIdentity in ``https://aws.amazon.com/source_identity``
(STS AssumeRoleWithWebIdentity takes it from that claim: its ``SourceIdentity`` answer is "the
value of the source identity that is returned in the JSON web token"), the same value the SAML
path sends, so CloudTrail and ``broker revoke``'s ``aws:SourceIdentity`` condition name a person
the same way on both paths; the role's trust must allow ``sts:SetSourceIdentity``.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from joserfc import jwt

from broker.domain import Identity
from broker.errors import InvalidInput
from broker.minting.keys import KeyRing
from broker.minting.names import sts_names
from broker.minting.tags import AWS_TAGS_CLAIM, SessionTags, TagPolicy

MAX_LIFETIME = 300
MAX_AUDIENCE = 255
JWKS_PATH = "/.well-known/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"
AWS_SOURCE_IDENTITY_CLAIM = "https://aws.amazon.com/source_identity"


class OidcIssuer:
    """Implements ``broker.minting.TokenIssuer``."""

    def __init__(self, *, keys: KeyRing, issuer: str, tags: TagPolicy, token_lifetime: int = MAX_LIFETIME) -> None:
        if not 0 < token_lifetime <= MAX_LIFETIME:
            raise ValueError(f"token_lifetime must be 1-{MAX_LIFETIME} seconds")
        self.keys = keys
        self.issuer = issuer.rstrip("/")
        self.tags = tags
        self.lifetime = timedelta(seconds=token_lifetime)
        self._key = keys.current.jwk
        self._header = {"alg": "RS256", "typ": "JWT", "kid": keys.current.kid}
        self._jwks = {"keys": [k.public_jwk() for k in keys.published]}

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": self.issuer + JWKS_PATH,
            "authorization_endpoint": self.issuer + "/login",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", AWS_TAGS_CLAIM,
                                 AWS_SOURCE_IDENTITY_CLAIM],
        }

    def jwks(self) -> dict[str, Any]:
        return self._jwks

    def id_token(self, *, identity: Identity, audience: str, now: datetime, tags: SessionTags | None = None) -> str:
        """An RS256 ID token for ``identity`` with ``aud`` = the IAM OIDC provider's client id."""
        if not 1 <= len(audience) <= MAX_AUDIENCE:
            raise InvalidInput(f"an OIDC audience (client id) is 1-{MAX_AUDIENCE} characters")
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        tags = self.tags.tags_for(identity) if tags is None else tags
        iat = int(now.timestamp())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": identity.id,
            "aud": audience,
            "iat": iat,
            "nbf": iat,
            "exp": iat + int(self.lifetime.total_seconds()),
            "jti": secrets.token_urlsafe(16),
            AWS_SOURCE_IDENTITY_CLAIM: sts_names(
                username=identity.username, immutable_id=identity.id
            ).source_identity,
        }
        if tags.tags:
            claims[AWS_TAGS_CLAIM] = tags.claim()
        return jwt.encode(self._header, claims, self._key)
