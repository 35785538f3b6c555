"""The OIDC issuer: discovery and JWKS served over HTTP by a running broker; every ID token
verified by PyJWT with the key fetched from that JWKS."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import jwt as pyjwt
import pytest

from broker.domain import Identity
from broker.errors import ConfigError, InvalidInput
from broker.minting.keys import KeyRing
from broker.minting.names import source_identity
from broker.minting.oidc_issuer import OidcIssuer
from broker.minting.tags import TagPolicy
from tests.conftest import make_config
from tests.federation.conftest import ALICE, TAGS, KeyFilesOnDisk, LiveBroker, utcnow


@pytest.fixture
def broker(live_broker: Callable[..., LiveBroker], key_files: KeyFilesOnDisk) -> LiveBroker:
    return live_broker(keys=key_files.section(), session_tags=TAGS.model_dump())


def _issuer(b: LiveBroker) -> OidcIssuer:
    return b.app.state.services.minting.oidc


def _verify(b: LiveBroker, token: str, audience: str = "sts.amazonaws.com") -> dict[str, Any]:
    discovery = httpx.get(b.url + "/.well-known/openid-configuration").json()
    jwks_client = pyjwt.PyJWKClient(discovery["jwks_uri"], cache_keys=False)
    key = jwks_client.get_signing_key_from_jwt(token)
    return pyjwt.decode(token, key.key, algorithms=["RS256"], audience=audience, issuer=discovery["issuer"])


def test_discovery_names_the_issuer_and_jwks_aws_fetches(broker: LiveBroker) -> None:
    answer = httpx.get(broker.url + "/.well-known/openid-configuration")
    assert answer.status_code == 200
    doc = answer.json()
    assert doc["issuer"] == broker.url
    assert doc["jwks_uri"] == broker.url + "/.well-known/jwks.json"
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]


def test_jwks_publishes_current_and_next_keys_with_their_kids(broker: LiveBroker, keyring: KeyRing) -> None:
    keys = httpx.get(broker.url + "/.well-known/jwks.json").json()["keys"]
    assert [k["kid"] for k in keys] == [keyring.current.kid, keyring.next.kid]  # type: ignore[union-attr]
    for k in keys:
        assert k["kty"] == "RSA" and k["alg"] == "RS256" and k["use"] == "sig"
        assert "d" not in k and "p" not in k and "q" not in k  # public parts only


def test_id_token_verifies_with_pyjwt_against_the_served_jwks(broker: LiveBroker) -> None:
    now = utcnow()
    token = _issuer(broker).id_token(identity=ALICE, audience="sts.amazonaws.com", now=now)
    claims = _verify(broker, token)
    assert claims["iss"] == broker.url and claims["sub"] == ALICE.id and claims["aud"] == "sts.amazonaws.com"
    assert claims["iat"] == int(now.timestamp()) and claims["exp"] - claims["iat"] == 300
    assert claims["https://aws.amazon.com/tags"] == {
        "principal_tags": {"Department": ["Platform"], "CostCenter": ["CC-1234"]},
        "transitive_tag_keys": ["Department"],
    }
    # STS sets the session's SourceIdentity from this claim: the same value the SAML path sends
    assert claims["https://aws.amazon.com/source_identity"] == source_identity(ALICE.id)
    header = pyjwt.get_unverified_header(token)
    assert header["alg"] == "RS256" and header["kid"] == broker.app.state.services.minting.keys.current.kid
    other = _issuer(broker).id_token(identity=ALICE, audience="sts.amazonaws.com", now=now)
    assert pyjwt.decode(other, options={"verify_signature": False})["jti"] != claims["jti"]


def test_audience_is_the_accounts_client_id(broker: LiveBroker) -> None:
    token = _issuer(broker).id_token(identity=ALICE, audience="broker-prod-client", now=utcnow())
    assert _verify(broker, token, audience="broker-prod-client")["aud"] == "broker-prod-client"
    with pytest.raises(pyjwt.InvalidAudienceError):
        _verify(broker, token)
    with pytest.raises(InvalidInput):
        _issuer(broker).id_token(identity=ALICE, audience="x" * 256, now=utcnow())


def test_an_expired_token_is_refused(broker: LiveBroker) -> None:
    token = _issuer(broker).id_token(identity=ALICE, audience="sts.amazonaws.com", now=utcnow() - timedelta(minutes=6))
    with pytest.raises(pyjwt.ExpiredSignatureError):
        _verify(broker, token)


def test_rotation_a_token_signed_by_the_next_key_verifies_against_the_served_jwks(
    broker: LiveBroker, keyring: KeyRing
) -> None:
    rotated = OidcIssuer(keys=KeyRing(current=keyring.next), issuer=broker.url, tags=TagPolicy(TAGS))  # type: ignore[arg-type]
    token = rotated.id_token(identity=ALICE, audience="sts.amazonaws.com", now=utcnow())
    assert pyjwt.get_unverified_header(token)["kid"] == keyring.next.kid  # type: ignore[union-attr]
    assert _verify(broker, token)["sub"] == ALICE.id


def test_a_token_from_another_key_is_refused(broker: LiveBroker) -> None:
    from broker.minting.keys import ephemeral_key

    stranger = OidcIssuer(keys=KeyRing(current=ephemeral_key()), issuer=broker.url, tags=TagPolicy(TAGS))
    token = stranger.id_token(identity=ALICE, audience="sts.amazonaws.com", now=utcnow())
    with pytest.raises(pyjwt.PyJWKClientError):
        _verify(broker, token)


def test_no_tags_configured_no_tags_claim(live_broker: Callable[..., LiveBroker], key_files: KeyFilesOnDisk) -> None:
    b = live_broker(keys=key_files.section(with_next=False))
    token = _issuer(b).id_token(identity=Identity(id="id-9", username="bob"), audience="sts.amazonaws.com", now=utcnow())
    claims = _verify(b, token)
    assert "https://aws.amazon.com/tags" not in claims and claims["sub"] == "id-9"
    assert len(httpx.get(b.url + "/.well-known/jwks.json").json()["keys"]) == 1


def test_token_lifetime_is_at_most_five_minutes(tmp_path: Any) -> None:
    assert make_config(tmp_path, oidc={"token_lifetime": 60}).oidc.token_lifetime == 60
    with pytest.raises(ConfigError, match="token_lifetime"):
        make_config(tmp_path, oidc={"token_lifetime": 301})
