"""Signing in through a SAML IdP (pysaml2 peer): the broker as SP, end to end over its HTTP API."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from tests.upstream.conftest import ADMIN, Sso, saml_idp
from tests.upstream.saml_peer import NS, SamlIdpPeer, inflate, post_form

pytestmark = pytest.mark.saml_peer


def test_sp_initiated_sign_in_maps_attributes_and_opens_a_portal_session(saml: Sso) -> None:
    req = saml.saml_start(next_url="/?from=test")
    assert req.acs_url == "http://" + saml.acs_url().split("://", 1)[1]
    r = saml.saml_post(saml.saml_response("alice@example.com", req), req.relay_state)
    me = saml.assert_signed_in(r, "alice@example.com", next_url="/?from=test")
    assert me["groups"] == ["aws-admins", "developers"]
    assert me["email"] == "alice@example.com"
    assert me["display_name"] == "Alice"
    assert me["id"] == "corp-saml:pid-alice@example.com"
    assert me["source"] == "corp-saml"
    # the portal's own pages see the person too
    home = saml.client.get("/")
    assert home.status_code == 200 and "Alice" in home.text and "sandbox-dev" in home.text


def test_authn_request_is_what_an_idp_expects(saml: Sso, saml_peer: SamlIdpPeer) -> None:
    r = saml.client.get("/sso/corp-saml/login", params={"next": "/device"})
    assert r.status_code == 302
    assert r.headers["cache-control"] == "no-store"
    assert "broker-sso=" in r.headers["set-cookie"] and "httponly" in r.headers["set-cookie"].lower()
    saml_request = re.search(r"SAMLRequest=([^&]+)", r.headers["location"]).group(1)
    from urllib.parse import unquote

    xml = etree.fromstring(inflate(unquote(saml_request)))
    assert xml.get("Destination") == saml_peer.sso_url
    assert xml.get("AssertionConsumerServiceURL") == saml.acs_url()
    assert xml.get("ProtocolBinding") == "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
    assert xml.find("saml:Issuer", NS).text == saml.sp_entity_id()
    assert re.fullmatch(r"ONELOGIN_[0-9a-f]{40}", xml.get("ID"))
    assert "RelayState=%2Fdevice" in r.headers["location"]


def test_sp_metadata_per_idp(saml: Sso) -> None:
    r = saml.client.get("/sso/corp-saml/saml/metadata")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/samlmetadata+xml")
    xml = etree.fromstring(r.content)
    md = "urn:oasis:names:tc:SAML:2.0:metadata"
    assert xml.get("entityID") == f"{saml.services.config.server.public_url}/sso/corp-saml/saml/metadata"
    sp = xml.find(f"{{{md}}}SPSSODescriptor")
    assert sp.get("WantAssertionsSigned") == "true"
    acs = sp.find(f"{{{md}}}AssertionConsumerService")
    assert acs.get("Location") == saml.acs_url()
    assert acs.get("Binding") == "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
    assert saml.client.get("/sso/nope/saml/metadata").json()["error"]["code"] == "unknown_identity_provider"


def test_browser_walk_through_the_idp_pages(saml: Sso, saml_peer: SamlIdpPeer) -> None:
    """The HTTP-Redirect and HTTP-POST bindings as a browser carries them (the IdP's own pages)."""
    import httpx

    r = saml.client.get("/sso/corp-saml/login", params={"next": "/"})
    with httpx.Client() as idp_browser:
        form_page = idp_browser.get(r.headers["location"])
        assert form_page.status_code == 200 and 'name="username"' in form_page.text
        _, fields = post_form(form_page.text)
        answer = idp_browser.post(f"{saml_peer.base}/idp/login", data={**fields, "username": "bob@example.com"})
    action, posted = post_form(answer.text)
    assert action == saml.acs_url()
    r = saml.saml_post(posted["SAMLResponse"], posted.get("RelayState"))
    me = saml.assert_signed_in(r, "bob@example.com")
    assert me["groups"] == []


def test_metadata_from_url(sso: Any, saml_peer: SamlIdpPeer, saml_metadata_file: Path) -> None:
    over = saml_idp(saml_metadata_file)
    over.pop("metadata_file")
    app = sso([{**over, "metadata_url": f"{saml_peer.base}/idp/metadata"}], peer=saml_peer)
    app.assert_signed_in(app.saml_sign_in(), "alice@example.com")


def test_metadata_url_down_is_an_outage_not_a_refusal(sso: Any, saml_peer: SamlIdpPeer, saml_metadata_file: Path) -> None:
    from tests.conftest import free_port

    over = saml_idp(saml_metadata_file)
    over.pop("metadata_file")
    app = sso([{**over, "metadata_url": f"http://127.0.0.1:{free_port()}/metadata"}])
    r = app.client.get("/sso/corp-saml/login")
    assert r.status_code == 503 and r.json()["error"]["code"] == "upstream_unavailable"


def test_sign_in_options_listed_for_the_portal(saml: Sso) -> None:
    body = saml.client.get("/sso").json()
    assert body == {"providers": [{"name": "corp-saml", "display_name": "Corp ADFS", "protocol": "saml",
                                   "login_url": "/sso/corp-saml/login"}]}
    page = saml.client.get("/login", params={"next": "/device"})
    assert "Corp ADFS" in page.text and "/sso/corp-saml/login?next=/device" in page.text


def test_a_second_sign_in_replaces_the_session(saml: Sso) -> None:
    saml.assert_signed_in(saml.saml_sign_in("alice@example.com"), "alice@example.com")
    before = saml.client.cookies.get("broker")
    saml.assert_signed_in(saml.saml_sign_in("bob@example.com"), "bob@example.com")
    assert saml.client.cookies.get("broker") != before


def test_unknown_idp_and_wrong_protocol_endpoints(saml: Sso) -> None:
    assert saml.client.get("/sso/nope/login").json()["error"]["code"] == "unknown_identity_provider"
    r = saml.client.get("/sso/corp-saml/oidc/callback", params={"code": "x", "state": "y"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_identity_provider"


def test_static_directory_enrichment(sso: Any, saml_peer: SamlIdpPeer, saml_metadata_file: Path) -> None:
    app = _enriched(sso, saml_peer, saml_metadata_file)
    me = app.assert_signed_in(app.saml_sign_in("alice@example.com"), "alice")
    assert me["groups"] == ["directory-admins"]  # from the directory, not from the IdP
    assert me["source"] == "people" and me["id"] == "a-1"  # re-read by the directory at every issuance
    app.client.cookies.clear()
    app.assert_refused(app.saml_sign_in("mallory@example.com"), "upstream_user_not_in_directory",
                       reasons="not_in_directory")
    app.assert_refused(app.saml_sign_in("bob@example.com"), "upstream_user_not_in_directory")


def _device_login(saml: Sso, sign_in: Callable[[str], Any]) -> dict[str, Any]:
    """`awsbroker login`: the device code is approved in a browser that signs in (``sign_in``,
    given the page to come back to) through the IdP; the CLI's token response."""
    client = saml.client
    start = client.post("/oauth/device/authorization", data={"client_id": "awsbroker"})
    assert start.status_code == 200, start.text
    grant = start.json()
    page = client.get("/device", params={"user_code": grant["user_code"]})
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")
    next_url = f"/device?user_code={grant['user_code']}"
    r = sign_in(next_url)
    assert r.status_code == 303 and r.headers["location"] == next_url
    approval = client.get(next_url)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', approval.text).group(1)
    done = client.post("/device", data={"user_code": grant["user_code"], "decision": "approve", "csrf_token": csrf})
    assert done.status_code == 200, done.text
    token = client.post("/oauth/token", data={"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                                              "device_code": grant["device_code"], "client_id": "awsbroker"})
    assert token.status_code == 200, token.text
    return token.json()


def test_cli_device_login_through_saml(saml: Sso) -> None:
    token = _device_login(saml, lambda next_url: saml.saml_sign_in("alice@example.com", next_url=next_url))
    me = saml.client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert me.json()["username"] == "alice@example.com" and me.json()["source"] == "corp-saml"


def _enriched(sso: Any, saml_peer: SamlIdpPeer, saml_metadata_file: Path) -> Sso:
    """The SAML IdP with ``enrich_from_directory`` on a static directory: alice is ``alice`` there."""
    import bcrypt

    pw = bcrypt.hashpw(b"unused-password-1", bcrypt.gensalt(rounds=4)).decode()
    directory = {"type": "static", "name": "people", "users": [
        {"username": "alice", "id": "a-1", "email": "alice@example.com", "password_hash": pw,
         "groups": ["directory-admins"]},
        {"username": "mallory", "email": "mallory@example.com", "password_hash": pw, "disabled": True},
    ]}
    return sso([saml_idp(saml_metadata_file, enrich_from_directory={"attribute": "email", "value": "email"})],
               peer=saml_peer, directory=directory)


@pytest.mark.parametrize("enrichment", [False, True], ids=["upstream-groups", "directory-enriched"])
def test_the_idps_session_end_ends_the_brokers(
    saml: Sso, sso: Any, saml_peer: SamlIdpPeer, saml_metadata_file: Path, enrichment: bool
) -> None:
    """SessionNotOnOrAfter (SAML core 2.7.2): the portal session, a CLI login approved from it, and
    every issuance for that sign-in end when the IdP says its session ends — also when the
    directory re-reads the account at each request."""
    saml = _enriched(sso, saml_peer, saml_metadata_file) if enrichment else saml
    ends = time.time() + 600

    def session_end(root: etree._Element) -> None:
        (statement,) = root.xpath("//saml:AuthnStatement", namespaces=NS)
        statement.set("SessionNotOnOrAfter", datetime.fromtimestamp(ends, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))

    def sign_in(next_url: str) -> Any:
        req = saml.saml_start(next_url=next_url)
        return saml.saml_post(saml.saml_forge("alice@example.com", req, tweak=session_end), req.relay_state)

    token = _device_login(saml, sign_in)
    assert 590 <= token["refresh_token_expires_in"] <= 600  # not oauth.refresh_token_ttl_seconds
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert saml.client.get("/api/v1/whoami", headers=bearer).status_code == 200
    services = saml.services
    # past the end, nothing for this sign-in, whatever it holds (here a still-valid access token)
    services.flow.clock = lambda: datetime.fromtimestamp(ends + 1, UTC)
    r = saml.client.get("/api/v1/whoami", headers=bearer)
    assert r.status_code == 401 and "identity provider" in r.json()["error"]["message"]
    # and the portal session itself is over then
    services.flow.clock = lambda: datetime.now(UTC)
    assert saml.whoami().status_code == 200
    services.access.set_clock(lambda: ends + 1)
    assert saml.whoami().status_code == 401


def test_sign_ins_are_audited(saml: Sso) -> None:
    saml.saml_sign_in()
    event = saml.client.get("/api/v1/admin/audit", params={"action": "login"}, headers=ADMIN).json()["items"][0]
    assert event["actor"] == "user:alice@example.com"
    assert event["target_type"] == "identity_provider" and event["target_id"] == "corp-saml"
    assert event["details"]["via"] == "upstream" and event["details"]["protocol"] == "saml"


def test_an_upstream_sign_in_and_its_refusal_are_one_event_each_of_the_password_sign_in_shape(saml: Sso) -> None:
    req = saml.saml_start()
    response = saml.saml_response("alice@example.com", req)
    saml.assert_signed_in(saml.saml_post(response, req.relay_state), "alice@example.com")
    (allowed,) = saml.login_events()
    assert {"user", "immutable_id", "via"} <= set(allowed["details"]) and allowed["details"]["immutable_id"]
    assert allowed["details"]["groups"] == ["aws-admins", "developers"]  # a snapshot, as an issuance's
    saml.client.cookies.delete("broker")
    saml.assert_refused(saml.saml_post(response, req.relay_state), "upstream_replay")
    refused, again = saml.login_events()
    assert again == allowed and refused["actor"] == "upstream:corp-saml"
    assert {"user", "immutable_id", "via", "code", "reason"} <= set(refused["details"])
    assert refused["details"]["user"] is None and refused["details"]["via"] == "upstream"


def test_the_session_hook_receives_the_identity(saml: Sso) -> None:
    """``establish_session`` is a dependency: the identity it gets is the connector's, unchanged."""
    from fastapi.responses import JSONResponse

    from broker.web.upstream import session_hook

    seen: list[Any] = []

    def stub(request: Any, identity: Any, next_url: str) -> JSONResponse:
        seen.append((identity, next_url))
        return JSONResponse({"username": identity.username, "next": next_url})

    saml.client.app.dependency_overrides[session_hook] = lambda: stub
    try:
        r = saml.saml_sign_in("alice@example.com", next_url="/roles")
    finally:
        saml.client.app.dependency_overrides.clear()
    assert r.json() == {"username": "alice@example.com", "next": "/roles"}
    identity, _ = seen[0]
    assert identity.groups == ("aws-admins", "developers") and identity.source == "corp-saml"
    assert dict(identity.attributes)["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"] == (
        "alice@example.com",)
