"""Signing in through an OpenID provider (npm oidc-provider peer): the broker as RP, over HTTP."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.upstream.conftest import ACCOUNTS, SECRET, Sso, Tamper, oidc_idp, query
from tests.upstream.oidc_op import Client, OidcProvider, signing_key

pytestmark = pytest.mark.oidc_peer


def test_code_flow_maps_claims_and_opens_a_portal_session(oidc: Sso) -> None:
    r = oidc.oidc_sign_in("alice", next_url="/?tab=roles")
    me = oidc.assert_signed_in(r, "alice", next_url="/?tab=roles")
    assert me["groups"] == ["aws-admins", "developers"]
    assert me["email"] == "alice@example.com" and me["display_name"] == "Alice Archer"
    assert me["id"] == "op1:alice" and me["source"] == "op1"
    home = oidc.client.get("/")
    assert home.status_code == 200 and "sandbox-dev" in home.text


def test_authorization_request(oidc: Sso, op1: OidcProvider, op2: OidcProvider, broker_url: str) -> None:
    url = oidc.oidc_start("op1")
    assert url.startswith(f"{op1.issuer}/auth?")
    q = query(url)
    assert q["response_type"] == "code" and q["client_id"] == "broker"
    assert q["redirect_uri"] == f"{broker_url}/sso/op1/oidc/callback"
    assert q["scope"] == "openid profile email groups"
    assert q["code_challenge_method"] == "S256" and re.fullmatch(r"[A-Za-z0-9_-]{43}", q["code_challenge"])
    assert len(q["state"]) >= 43 and len(q["nonce"]) >= 43 and q["state"] != q["nonce"]
    second = query(oidc.oidc_start("op1"))
    assert second["state"] != q["state"] and second["nonce"] != q["nonce"]
    assert second["code_challenge"] != q["code_challenge"]
    # one redirect URI per provider
    assert query(oidc.oidc_start("op2"))["redirect_uri"] == f"{broker_url}/sso/op2/oidc/callback"


def test_options_and_login_page(oidc: Sso) -> None:
    names = [p["name"] for p in oidc.client.get("/sso").json()["providers"]]
    assert names == ["op1", "op2"]
    page = oidc.client.get("/login")
    assert "Provider op1" in page.text and "/sso/op2/login?next=/" in page.text


@pytest.mark.parametrize(
    ("groups_claim", "expected"),
    [
        ("realm_access.roles", ["kc-admins", "kc-devs"]),  # Keycloak's nested roles
        ("https://aws.example.com/groups", ["url-claim-group"]),  # a claim name with dots (Auth0 style)
        (["realm_access", "roles"], ["kc-admins", "kc-devs"]),
        ("no-such-claim", []),
    ],
)
def test_groups_claim_name_and_nested_paths(sso: Any, op1: OidcProvider, groups_claim: Any, expected: list[str]) -> None:
    app = sso([oidc_idp(op1, "op1", claims={"groups": groups_claim})], ops={"op1": op1})
    assert app.assert_signed_in(app.oidc_sign_in("alice"), "alice")["groups"] == expected


def test_username_from_email_and_required_claims(sso: Any, op1: OidcProvider) -> None:
    """Google Workspace: username = email, only the company's domain (``hd``)."""
    app = sso([oidc_idp(op1, "op1", claims={"username": "email"}, required_claims={"hd": "example.com"})],
              ops={"op1": op1})
    app.assert_signed_in(app.oidc_sign_in("alice"), "alice@example.com")
    app.client.cookies.clear()
    app.assert_refused(app.oidc_sign_in("mallory"), "upstream_rejected", reasons="required_claim:hd")
    app.assert_refused(app.oidc_sign_in("bob"), "upstream_rejected", reasons="required_claim:hd")


def test_unverified_email_is_not_an_identity(sso: Any, op1: OidcProvider) -> None:
    app = sso([oidc_idp(op1, "op1", claims={"username": "email"})], ops={"op1": op1})
    assert ACCOUNTS["mallory"]["email_verified"] is False
    app.assert_refused(app.oidc_sign_in("mallory"), "upstream_rejected", reasons="email_not_verified")


def test_userinfo_merged(sso: Any, op1: OidcProvider) -> None:
    tamper = Tamper()
    app = sso([oidc_idp(op1, "op1", userinfo=True)], ops={"op1": op1})
    app.rebuild("op1", transport=tamper)
    me = app.assert_signed_in(app.oidc_sign_in("alice"), "alice")
    assert me["groups"] == ["aws-admins", "developers"]
    assert tamper.calls["/me"] == 1


def test_public_client_with_pkce_only(sso: Any, tmp_path: Path, broker_url: str) -> None:
    """A provider registration without a client secret (token_endpoint_auth_method none)."""
    op = OidcProvider(tmp_path / "op", clients=[Client("broker-public", None, [f"{broker_url}/sso/pub/oidc/callback"])],
                      accounts=ACCOUNTS, keys=[signing_key("pub-1")]).start()
    try:
        entry = oidc_idp(op, "pub", client_id="broker-public")
        entry.pop("client_secret")
        app = sso([entry], ops={"pub": op})
        app.assert_signed_in(app.oidc_sign_in("alice", idp="pub"), "alice")
    finally:
        op.stop()


def test_discovery_must_name_the_configured_issuer(sso: Any, op1: OidcProvider) -> None:
    app = sso([{**oidc_idp(op1, "op1"), "issuer": op1.issuer + "/"}])
    r = app.client.get("/sso/op1/login")
    assert r.status_code == 503 and r.json()["error"]["code"] == "upstream_unavailable"


def test_provider_down_is_an_outage(sso: Any, op1: OidcProvider) -> None:
    from tests.conftest import free_port

    app = sso([{**oidc_idp(op1, "op1"), "issuer": f"http://127.0.0.1:{free_port()}"}])
    r = app.client.get("/sso/op1/login")
    assert r.status_code == 503 and r.json()["error"]["code"] == "upstream_unavailable"
    assert "Traceback" not in r.text


def test_provider_says_no(oidc: Sso, op1: OidcProvider) -> None:
    state = query(oidc.oidc_start("op1"))["state"]
    r = oidc.client.get("/sso/op1/oidc/callback", params={"error": "access_denied", "state": state, "iss": op1.issuer})
    oidc.assert_refused(r, "upstream_denied", reasons="provider_error:access_denied")


def test_static_directory_enrichment_by_username(sso: Any, op1: OidcProvider) -> None:
    import bcrypt

    pw = bcrypt.hashpw(b"unused-password-1", bcrypt.gensalt(rounds=4)).decode()
    directory = {"type": "static", "name": "people", "users": [
        {"username": "alice", "id": "a-1", "password_hash": pw, "groups": ["directory-devs"]}]}
    app = sso([oidc_idp(op1, "op1", enrich_from_directory={"attribute": "username"})], ops={"op1": op1},
              directory=directory)
    me = app.assert_signed_in(app.oidc_sign_in("alice"), "alice")
    assert me["groups"] == ["directory-devs"] and me["source"] == "people"
    app.client.cookies.clear()
    app.assert_refused(app.oidc_sign_in("bob"), "upstream_user_not_in_directory")


def test_cli_device_login_through_oidc(oidc: Sso) -> None:
    client = oidc.client
    grant = client.post("/oauth/device/authorization", data={"client_id": "awsbroker"}).json()
    next_url = f"/device?user_code={grant['user_code']}"
    r = oidc.oidc_sign_in("alice", next_url=next_url)
    assert r.status_code == 303 and r.headers["location"] == next_url
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get(next_url).text).group(1)
    done = client.post("/device", data={"user_code": grant["user_code"], "decision": "approve", "csrf_token": csrf})
    assert done.status_code == 200, done.text
    token = client.post("/oauth/token", data={"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                                              "device_code": grant["device_code"], "client_id": "awsbroker"})
    assert token.status_code == 200, token.text
    client.cookies.clear()
    me = client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert me.json()["username"] == "alice" and me.json()["groups"] == ["aws-admins", "developers"]


# ---- JWKS rotation ----


@pytest.fixture
def rotating(tmp_path: Path, broker_url: str) -> Any:
    op = OidcProvider(tmp_path / "rot", clients=[Client("broker", SECRET, [f"{broker_url}/sso/rot/oidc/callback"])],
                      accounts=ACCOUNTS, keys=[signing_key("rot-key-1")])
    yield op
    op.stop()


def test_jwks_rotation_refetches_on_unknown_kid(sso: Any, rotating: OidcProvider) -> None:
    """The provider restarts with a new signing key: the broker fetches the JWKS again, once."""
    import time

    rotating.start()
    app = sso([oidc_idp(rotating, "rot", jwks_refresh_min_seconds=30)], ops={"rot": rotating})
    clock = [time.time()]
    tamper = Tamper()
    app.rebuild("rot", transport=tamper, clock=lambda: clock[0])
    app.assert_signed_in(app.oidc_sign_in("alice", idp="rot"), "alice")
    assert tamper.calls["/jwks"] == 1
    app.client.cookies.clear()
    app.assert_signed_in(app.oidc_sign_in("alice", idp="rot"), "alice")
    assert tamper.calls["/jwks"] == 1  # cached
    # rotation: the same issuer (same port), a new signing key
    rotating.stop()
    rotating.port = int(rotating.issuer.rsplit(":", 1)[1])
    rotating.keys = [signing_key("rot-key-2")]
    rotating.start()
    clock[0] += 31
    app.client.cookies.clear()
    app.assert_signed_in(app.oidc_sign_in("alice", idp="rot"), "alice")
    assert tamper.calls["/jwks"] == 2
