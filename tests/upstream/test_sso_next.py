"""The local-redirect table (tests/redirect_cases.py) at the upstream sign-in's entries: the
start (``/sso/{idp}/login?next=``: the RelayState sent to the IdP), and an IdP-initiated
response's RelayState at the ACS."""

from __future__ import annotations

from typing import Any

import pytest

from tests.redirect_cases import FOLLOWED, REFUSED, TOO_LONG
from tests.upstream.conftest import Sso, decode_redirect_request

pytestmark = pytest.mark.saml_peer

CASES = [(v, v) for v in FOLLOWED] + [(v, "/") for v in REFUSED] + [(TOO_LONG, "/")]


def test_the_start_sends_only_a_local_path_to_the_idp(saml: Sso) -> None:
    for value, expected in CASES:
        r = saml.client.get("/sso/corp-saml/login", params={"next": value})
        if r.status_code == 422:  # longer than the parameter allows: followed nowhere
            assert len(value) > 2048
            continue
        assert r.status_code == 302, r.text
        _, relay = decode_redirect_request(r.headers["location"])
        assert relay == expected, value


def test_an_unsolicited_relay_state_is_a_local_path_or_home(sso: Any, saml_peer: Any, saml_metadata_file: Any) -> None:
    from tests.upstream.conftest import saml_idp

    unsolicited = sso([saml_idp(saml_metadata_file, allow_unsolicited=True)], peer=saml_peer)
    for value, expected in [("/roles", "/roles"), ("https://evil.example/", "/"), ("/caf\u00e9", "/"),
                            ("/x\r\nSet-Cookie: a=b", "/"), (TOO_LONG, "/")]:
        r = unsolicited.saml_post(unsolicited.saml_response("alice@example.com", None), value)
        assert r.status_code == 303 and r.headers["location"] == expected, (value, r.text)
        unsolicited.client.cookies.clear()
