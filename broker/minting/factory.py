"""Builds the signing side once from the configuration: keys parsed once, signers holding them."""

from __future__ import annotations

from dataclasses import dataclass

from broker import logs
from broker.minting.config import KeysConfig, OidcConfig, SamlIdpConfig, SessionTagsConfig
from broker.minting.keys import KeyRing, load_keyring
from broker.minting.oidc_issuer import OidcIssuer
from broker.minting.saml_idp import SamlIdp
from broker.minting.tags import TagPolicy

log = logs.get_logger("broker.minting")


@dataclass(frozen=True)
class Minting:
    keys: KeyRing
    saml: SamlIdp
    oidc: OidcIssuer
    tags: TagPolicy


def build_minting(
    *,
    public_url: str,
    keys: KeysConfig | None,
    saml_idp: SamlIdpConfig,
    oidc: OidcConfig,
    session_tags: SessionTagsConfig,
) -> Minting:
    ring = load_keyring(keys)
    if ring.ephemeral:
        log.warning(
            "ephemeral_signing_key",
            kid=ring.current.kid,
            hint="no `keys:` configured: this key lives only as long as the process; AWS trusts nothing it signs "
            "unless its metadata/JWKS is re-uploaded after every restart (fine for the sandbox and demo only)",
        )
    else:
        log.info("signing_keys_loaded", current=ring.current.kid, next=ring.next.kid if ring.next else None)
    public_url = public_url.rstrip("/")
    tags = TagPolicy(session_tags)
    return Minting(
        keys=ring,
        saml=SamlIdp(
            keys=ring,
            entity_id=saml_idp.entity_id or f"{public_url}/saml/metadata",
            sso_url=f"{public_url}/login",
            tags=tags,
            assertion_lifetime=saml_idp.assertion_lifetime,
            regional_recipient=saml_idp.recipient == "regional",
        ),
        oidc=OidcIssuer(keys=ring, issuer=public_url, tags=tags, token_lifetime=oidc.token_lifetime),
        tags=tags,
    )
