"""Upstream MFA: an IdP's answer counts as the sign-in's second factor only when the config says
so — SAML: the signed AuthnStatement's AuthnContextClassRef in ``mfa.authn_context_class_refs``
(``mfa_at`` = AuthnInstant); OIDC: a listed ``amr`` value or ``acr`` in the signed ID token
(``mfa_at`` = ``auth_time``, else ``iat``). Seen in the login's audit event and at issuance."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from tests.upstream.conftest import ADMIN, MAPPING, Sso, Tamper, oidc_idp, saml_idp
from tests.upstream.oidc_op import OidcProvider
from tests.upstream.saml_peer import SamlIdpPeer
from tests.upstream.test_oidc_security import claims_of, sign

REFEDS_MFA = "https://refeds.org/profile/mfa"
PPT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
SAML_NS = "urn:oasis:names:tc:SAML:2.0:assertion"
MFA_MAPPING = {**MAPPING, "mappings": [{**m, "require_mfa": True} if m["role"] == "Admin" else m
                                       for m in MAPPING["mappings"]]}


def _credentials(app: Sso) -> Any:
    return app.client.post("/cli-credentials", data={"account": "sandbox-dev", "role": "Admin",
                                                     "csrf_token": _csrf(app)})


def _csrf(app: Sso) -> str:
    from tests.portal.conftest import csrf_of

    return csrf_of(app.client.get("/").text)


def _with_class_ref(ref: str) -> Any:
    def tweak(root: etree._Element) -> None:
        for node in root.iter(f"{{{SAML_NS}}}AuthnContextClassRef"):
            node.text = ref

    return tweak


@pytest.mark.saml_peer
def test_saml_counts_only_the_configured_authn_context_class_refs(sso, saml_peer: SamlIdpPeer,
                                                                  saml_metadata_file: Path):
    app = sso([saml_idp(saml_metadata_file, mfa={"authn_context_class_refs": [REFEDS_MFA]})], peer=saml_peer,
              mapping=MFA_MAPPING)
    app.assert_signed_in(app.saml_sign_in(), "alice@example.com")  # PasswordProtectedTransport: not MFA
    assert "mfa_at" not in app.login_events()[0]["details"]
    refused = _credentials(app)
    assert refused.status_code == 303 and refused.headers["location"].startswith("/mfa/step-up")

    app.client.cookies.clear()
    req = app.saml_start()
    signed_in = app.saml_post(app.saml_forge("alice@example.com", req, tweak=_with_class_ref(REFEDS_MFA)),
                              req.relay_state)
    app.assert_signed_in(signed_in, "alice@example.com")
    details = app.login_events()[0]["details"]
    assert details["mfa_methods"] == [REFEDS_MFA]
    assert abs(datetime.fromisoformat(details["mfa_at"]).timestamp() - time.time()) < 120  # the AuthnInstant
    assert _credentials(app).status_code == 200
    issued = app.client.get("/api/v1/admin/audit", params={"action": "issue.credentials"}, headers=ADMIN).json()
    assert issued["items"][0]["outcome"] == "allow" and issued["items"][0]["details"]["mfa_methods"] == [REFEDS_MFA]


@pytest.mark.saml_peer
def test_saml_without_mfa_config_counts_nothing(sso, saml_peer: SamlIdpPeer, saml_metadata_file: Path):
    app = sso([saml_idp(saml_metadata_file)], peer=saml_peer, mapping=MFA_MAPPING)
    req = app.saml_start()
    app.assert_signed_in(app.saml_post(app.saml_forge("alice@example.com", req, tweak=_with_class_ref(REFEDS_MFA)),
                                       req.relay_state), "alice@example.com")
    assert "mfa_at" not in app.login_events()[0]["details"]


def _resigned(op: OidcProvider, **claims: Any) -> Tamper:
    """The provider's genuine ID token with ``claims`` added, signed with the provider's own key
    (as a provider that did MFA would sign it)."""
    tamper = Tamper()
    tamper.token_hook = lambda body: {**body, "id_token": sign({**claims_of(body["id_token"]), **claims}, op.key)}
    return tamper


@pytest.mark.oidc_peer
@pytest.mark.parametrize(("added", "counted"), [
    ({"amr": ["pwd", "mfa"]}, ["mfa"]),
    ({"acr": "urn:example:loa:mfa"}, ["urn:example:loa:mfa"]),
    ({"amr": ["pwd"], "acr": "urn:example:loa:1"}, None),
])
def test_oidc_counts_listed_amr_or_acr_values_at_auth_time(sso, op1: OidcProvider, added: dict[str, Any],
                                                           counted: list[str] | None):
    app = sso([oidc_idp(op1, "op1", mfa={"amr": ["mfa", "otp"], "acr": ["urn:example:loa:mfa"]})],
              ops={"op1": op1}, mapping=MFA_MAPPING)
    auth_time = int(time.time()) - 300
    app.rebuild("op1", transport=_resigned(op1, auth_time=auth_time, **added))
    app.assert_signed_in(app.oidc_sign_in("alice"), "alice")
    details = app.login_events()[0]["details"]
    if counted is None:
        assert "mfa_at" not in details
        assert _credentials(app).status_code == 303
        return
    assert details["mfa_methods"] == counted
    assert details["mfa_at"] == datetime.fromtimestamp(auth_time, UTC).isoformat().replace("+00:00", "Z")
    assert _credentials(app).status_code == 200
