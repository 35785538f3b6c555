"""Two replicas behind a load balancer share pending sign-ins and the SAML replay cache through Redis."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.upstream.conftest import Sso, oidc_idp, saml_idp
from tests.upstream.oidc_op import OidcProvider
from tests.upstream.saml_peer import SamlIdpPeer


def _replicas(sso: Any, upstream: list[dict[str, Any]], **kw: Any) -> tuple[Sso, Sso]:
    state = {"backend": "redis", "redis_url": os.environ["BROKER_TEST_REDIS_URL"]}
    return sso(upstream, state=state, **kw), sso(upstream, state=state, **kw)


@pytest.mark.redis
@pytest.mark.saml_peer
def test_saml_sign_in_across_replicas_and_replay_refused_by_the_other(
    sso: Any, saml_peer: SamlIdpPeer, saml_metadata_file: Path
) -> None:
    a, b = _replicas(sso, [saml_idp(saml_metadata_file)], peer=saml_peer)
    req = a.saml_start()  # the AuthnRequest was sent by replica A ...
    response = a.saml_response("alice@example.com", req)
    b.client.cookies.update(a.client.cookies)  # ... the same browser's POST lands on replica B
    b.assert_signed_in(b.saml_post(response, req.relay_state), "alice@example.com")
    # the same assertion replayed at replica A: A knows it was used
    a.assert_refused(a.saml_post(response, req.relay_state), "upstream_replay", reasons="assertion_replayed")
    a.assert_signed_in(a.saml_sign_in("bob@example.com"), "bob@example.com")


@pytest.mark.redis
@pytest.mark.saml_peer
def test_unsolicited_replay_across_replicas(sso: Any, saml_peer: SamlIdpPeer, saml_metadata_file: Path) -> None:
    a, b = _replicas(sso, [saml_idp(saml_metadata_file, allow_unsolicited=True)], peer=saml_peer)
    response = a.saml_response("alice@example.com", None)
    a.assert_signed_in(a.saml_post(response, "/"), "alice@example.com")
    b.assert_refused(b.saml_post(response, "/"), "upstream_replay", reasons="assertion_replayed")


@pytest.mark.redis
@pytest.mark.oidc_peer
def test_oidc_state_across_replicas(sso: Any, op1: OidcProvider) -> None:
    a, b = _replicas(sso, [oidc_idp(op1, "op1")], ops={"op1": op1})
    location = op1.authorize(a.oidc_start("op1"), "alice")
    b.client.cookies.update(a.client.cookies)
    b.assert_signed_in(b.oidc_callback(location), "alice")
    a.assert_refused(a.oidc_callback(location), "sso_request_invalid", reasons="unknown_or_used_request")
