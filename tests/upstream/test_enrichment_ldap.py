"""Directory enrichment against a real OpenLDAP: the IdP proves who, the directory says which groups."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.directory.conftest import ldap_passwords, ldap_pki, ldap_settings, slapd, trap  # noqa: F401 - fixtures
from tests.upstream.conftest import saml_idp
from tests.upstream.saml_peer import SamlIdpPeer

pytestmark = [pytest.mark.ldap, pytest.mark.saml_peer]


@pytest.fixture
def enriched(sso: Any, saml_peer: SamlIdpPeer, saml_metadata_file: Path,
             ldap_settings: Callable[..., dict[str, Any]]) -> Any:  # noqa: F811 - the fixture above
    saml_peer.add_user("alice.archer@idp.test", email="alice@example.org", groups=["from-the-idp"])
    saml_peer.add_user("twin@idp.test", email="twin@example.org", groups=["from-the-idp"])
    saml_peer.add_user("star@idp.test", email="*", groups=["from-the-idp"])
    saml_peer.add_user("nobody@idp.test", email="nobody@example.org")
    entry = saml_idp(saml_metadata_file, enrich_from_directory={"attribute": "mail", "value": "email"})
    return sso([entry], peer=saml_peer, directory=ldap_settings())


def test_groups_and_account_come_from_ldap(enriched: Any) -> None:
    me = enriched.assert_signed_in(enriched.saml_sign_in("alice.archer@idp.test"), "alice")
    assert me["source"] == "corp-ldap"
    assert "from-the-idp" not in me["groups"]
    assert {"aws-admins", "developers", "engineering"} <= set(me["groups"])  # nested groups walked


@pytest.mark.parametrize(
    ("user", "reason"),
    [("twin@idp.test", "not_in_directory"),  # two entries share the mail: nobody
     ("star@idp.test", "not_in_directory"),  # "*" is escaped (RFC 4515): never a wildcard
     ("nobody@idp.test", "not_in_directory")],
)
def test_no_single_usable_entry_is_refused(enriched: Any, user: str, reason: str) -> None:
    enriched.assert_refused(enriched.saml_sign_in(user), "upstream_user_not_in_directory", reasons=reason)
