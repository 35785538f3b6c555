"""What the broker signs: SAML Responses (AWS SAML federation) and OIDC ID tokens.

The interface, for the flow and the web layer (``broker.minting.factory.build_minting`` builds
the implementations once from the configuration):

- ``SamlIssuer``  — ``saml_idp.SamlIdp``: IdP metadata and signed AWS SAML Responses.
- ``TokenIssuer`` — ``oidc_issuer.OidcIssuer``: discovery, JWKS and RS256 ID tokens.

Every minting call takes ``now`` (tests own the clock). Role values come only from the
``RoleGrant`` objects the mapping produced, never from a request. This package imports neither
FastAPI, ``broker.web`` nor ``broker.db``; importing it (or ``.config``) loads no crypto library.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from broker.domain import Identity, RoleGrant
    from broker.minting.saml_idp import SamlResponse
    from broker.minting.tags import SessionTags


class SamlIssuer(Protocol):
    entity_id: str

    def metadata(self) -> bytes: ...

    def aws_response(
        self,
        *,
        identity: Identity,
        grants: Sequence[RoleGrant],
        session_duration: int,
        now: datetime,
        region: str | None = None,
        tags: SessionTags | None = None,
    ) -> SamlResponse: ...


class TokenIssuer(Protocol):
    issuer: str

    def discovery(self) -> dict[str, Any]: ...

    def jwks(self) -> dict[str, Any]: ...

    def id_token(
        self, *, identity: Identity, audience: str, now: datetime, tags: SessionTags | None = None
    ) -> str: ...
