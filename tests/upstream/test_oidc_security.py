"""SECURITY.md "Upstream OIDC": every row, as an attack on the running broker.

The attacks start from the oidc-provider peer's genuine output: its authorization responses
(replayed, swapped between browsers or providers), its ID tokens (taken from the token endpoint's
answer on the way to the broker by a tampering transport, then altered or re-signed), and
authorization requests changed before they reach the provider (no nonce, no PKCE). Each must end
in a clean refusal — 4xx with a stable code, no trace, no session, an audited denial — after
which a genuine sign-in still works.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.upstream.conftest import OTHER_SECRET, SECRET, Sso, Tamper, oidc_idp, query
from tests.upstream.oidc_op import OidcProvider

pytestmark = pytest.mark.oidc_peer


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def header_of(token: str) -> dict[str, Any]:
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))


def sign(claims: dict[str, Any], key: RSAKey, **header: Any) -> str:
    return jwt.encode({"alg": "RS256", "kid": key.kid, **header}, claims, key)


def with_url(url: str, **changes: str | None) -> str:
    """The authorization URL with parameters changed (None removes one)."""
    parts = urlsplit(url)
    params = query(url)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return urlunsplit(parts._replace(query=urlencode(params)))


def tampered(oidc: Sso, hook: Callable[[str], str], idp: str = "op1", **kw: Any) -> Tamper:
    """The broker's connector for ``idp`` talks through a transport that rewrites the ID token."""
    tamper = Tamper()
    tamper.token_hook = lambda body: {**body, "id_token": hook(body["id_token"])}
    oidc.rebuild(idp, transport=tamper, **kw)
    return tamper


def restore(oidc: Sso, idp: str = "op1") -> None:
    oidc.rebuild(idp)


# ---- state ----


def test_missing_state(oidc: Sso, op1: OidcProvider) -> None:
    location = op1.authorize(oidc.oidc_start("op1"), "alice")
    q = query(location)
    r = oidc.client.get("/sso/op1/oidc/callback", params={"code": q["code"], "iss": q["iss"]})
    oidc.assert_refused(r, "sso_request_invalid", reasons="missing_state")
    oidc.still_works()


def test_mismatched_state(oidc: Sso, op1: OidcProvider) -> None:
    location = op1.authorize(oidc.oidc_start("op1"), "alice")
    r = oidc.oidc_callback(with_url(location, state=secrets.token_urlsafe(32)))
    oidc.assert_refused(r, "sso_request_invalid", reasons="unknown_or_used_request")
    oidc.still_works()


def test_state_from_another_browser(oidc: Sso, op1: OidcProvider) -> None:
    """Login CSRF: the attacker's own finished authorization response, opened in the victim's browser."""
    from fastapi.testclient import TestClient

    with TestClient(oidc.client.app, raise_server_exceptions=False, follow_redirects=False) as attacker:
        location = op1.authorize(oidc.oidc_start("op1", client=attacker), "mallory")
    r = oidc.oidc_callback(location)  # the victim's browser, without the attacker's sign-in cookie
    oidc.assert_refused(r, "sso_request_invalid", reasons="other_browser")
    oidc.still_works()


def test_repeated_parameters(oidc: Sso, op1: OidcProvider) -> None:
    location = op1.authorize(oidc.oidc_start("op1"), "alice")
    path = urlsplit(location)
    r = oidc.client.get(f"{path.path}?{path.query}&state=another")
    oidc.assert_refused(r, "sso_request_invalid", reasons="duplicate_parameter")


# ---- nonce ----


@pytest.mark.parametrize(("nonce", "reason"), [(None, "nonce_missing"), ("attacker-chosen-nonce", "nonce_mismatch")])
def test_nonce_missing_or_mismatched(oidc: Sso, op1: OidcProvider, nonce: str | None, reason: str) -> None:
    """The authorization request is changed on its way to the provider, which then issues a
    genuine ID token with no nonce or another one."""
    url = with_url(oidc.oidc_start("op1"), nonce=nonce)
    r = oidc.oidc_callback(op1.authorize(url, "alice"))
    oidc.assert_refused(r, "upstream_rejected", reasons=reason)
    oidc.still_works()


# ---- PKCE ----


def test_pkce_s256_always_sent(oidc: Sso) -> None:
    for _ in range(3):
        q = query(oidc.oidc_start("op1"))
        assert q["code_challenge_method"] == "S256"
        assert len(q["code_challenge"]) == 43


def test_no_pkce_at_a_provider_that_requires_it(oidc: Sso, op1: OidcProvider) -> None:
    url = with_url(oidc.oidc_start("op1"), code_challenge=None, code_challenge_method=None)
    r = oidc.oidc_callback(op1.authorize(url, "alice"))
    oidc.assert_refused(r, "upstream_denied", reasons="provider_error:invalid_request")
    oidc.still_works()


def test_code_issued_without_pkce_is_refused(sso: Any, op1: OidcProvider) -> None:
    """A provider that lets this client skip PKCE: a code obtained without a challenge is never
    redeemed (the broker always sends its verifier, which the provider then refuses)."""
    app = sso([oidc_idp(op1, "op1-lax", client_id="lax-app", secret=OTHER_SECRET)], ops={"op1-lax": op1})
    url = with_url(app.oidc_start("op1-lax"), code_challenge=None, code_challenge_method=None)
    r = app.oidc_callback(op1.authorize(url, "alice"))
    app.assert_refused(r, "upstream_rejected", reasons="code_refused:invalid_grant")
    app.client.cookies.clear()
    app.assert_signed_in(app.oidc_sign_in("alice", idp="op1-lax"), "alice")


def test_code_injection_with_another_pkce_challenge(oidc: Sso, op1: OidcProvider) -> None:
    """The attacker's code (from the attacker's own flow, its own challenge) injected into the
    victim's callback with the victim's state: the victim's verifier does not match."""
    from fastapi.testclient import TestClient

    with TestClient(oidc.client.app, raise_server_exceptions=False, follow_redirects=False) as attacker:
        stolen = query(op1.authorize(oidc.oidc_start("op1", client=attacker), "mallory"))
    victim = query(op1.authorize(oidc.oidc_start("op1"), "alice"))
    r = oidc.client.get("/sso/op1/oidc/callback",
                        params={"code": stolen["code"], "state": victim["state"], "iss": victim["iss"]})
    oidc.assert_refused(r, "upstream_rejected", reasons="code_refused:invalid_grant")
    oidc.still_works()


# ---- the ID token: algorithms, keys, headers ----


def test_alg_none(oidc: Sso) -> None:
    def none(token: str) -> str:
        return f"{_b64url(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{token.split('.')[1]}."

    tampered(oidc, none)
    oidc.assert_refused(oidc.oidc_sign_in("alice"), "upstream_rejected", reasons="algorithm_not_allowed")
    restore(oidc)
    oidc.still_works()


@pytest.mark.parametrize("form", ["pem", "jwk-json"])
def test_hs256_signed_with_the_providers_public_key(oidc: Sso, op1: OidcProvider, form: str) -> None:
    public = RSAKey.import_key(op1.key.as_dict(private=False))
    secret = public.as_pem(private=False) if form == "pem" else json.dumps(public.as_dict(private=False)).encode()

    def confused(token: str) -> str:
        head = _b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": op1.key.kid}).encode())
        body = token.split(".")[1]
        mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64url(mac)}"

    tampered(oidc, confused)
    oidc.assert_refused(oidc.oidc_sign_in("alice"), "upstream_rejected", reasons="algorithm_not_allowed")
    restore(oidc)
    oidc.still_works()


def test_unknown_kid_refetches_the_jwks_at_most_once_per_interval(oidc: Sso) -> None:
    attacker = RSAKey.generate_key(2048, parameters={"kid": "attacker-1"}, private=True)
    clock = [time.time()]
    tamper = tampered(oidc, lambda token: sign(claims_of(token), attacker), clock=lambda: clock[0])
    oidc.assert_refused(oidc.oidc_sign_in("alice"), "upstream_rejected", reasons="unknown_kid")
    fetched = tamper.calls["/jwks"]
    assert fetched == 1  # the first load; the unknown kid waits for the refresh interval
    oidc.client.cookies.clear()
    oidc.assert_refused(oidc.oidc_sign_in("alice"), "upstream_rejected", reasons="unknown_kid")
    assert tamper.calls["/jwks"] == 1
    clock[0] += 61  # jwks_refresh_min_seconds (60) later: one more fetch, still unknown
    oidc.client.cookies.clear()
    oidc.assert_refused(oidc.oidc_sign_in("alice"), "upstream_rejected", reasons="unknown_kid")
    assert tamper.calls["/jwks"] == 2
    restore(oidc)
    oidc.still_works()


@pytest.mark.parametrize("header", ["jku", "x5u", "jwk", "x5c"])
@pytest.mark.parametrize("signer", ["attacker", "provider"])
def test_key_location_headers_refused(oidc: Sso, op1: OidcProvider, header: str, signer: str) -> None:
    attacker = RSAKey.generate_key(2048, parameters={"kid": op1.key.kid}, private=True)
    key = attacker if signer == "attacker" else op1.key
    value: Any = {
        "jku": "http://127.0.0.1:9/attacker/jwks.json",
        "x5u": "http://127.0.0.1:9/attacker/cert.pem",
        "jwk": attacker.as_dict(private=False),
        "x5c": ["MIIBszCCAVmgAwIBAgIUB"],
    }[header]
    tampered(oidc, lambda token: sign(claims_of(token), key, **{header: value}))
    oidc.assert_refused(oidc.oidc_sign_in("alice"), "upstream_rejected", reasons=f"{header}_header_refused")
    restore(oidc)
    oidc.still_works()


def test_same_kid_other_key(oidc: Sso, op1: OidcProvider) -> None:
    attacker = RSAKey.generate_key(2048, parameters={"kid": op1.key.kid}, private=True)
    tampered(oidc, lambda token: sign(claims_of(token), attacker))
    oidc.assert_refused(oidc.oidc_sign_in("alice"), "upstream_rejected", reasons="invalid_signature")
    restore(oidc)
    oidc.still_works()


def test_claims_changed_after_signing(oidc: Sso) -> None:
    def forged(token: str) -> str:
        head, _, sig = token.split(".")
        claims = claims_of(token) | {"groups": ["aws-admins", "break-glass"], "preferred_username": "root"}
        return f"{head}.{_b64url(json.dumps(claims).encode())}.{sig}"

    tampered(oidc, forged)
    oidc.assert_refused(oidc.oidc_sign_in("bob"), "upstream_rejected", reasons="invalid_signature")
    restore(oidc)
    oidc.still_works()


def test_an_encrypted_or_malformed_token(oidc: Sso) -> None:
    tampered(oidc, lambda token: "a.b.c.d.e")
    oidc.assert_refused(oidc.oidc_sign_in("alice"), "upstream_rejected", reasons="not_a_signed_jwt")
    oidc.client.cookies.clear()
    tampered(oidc, lambda token: "eyJ.eyJ.sig")
    oidc.assert_refused(oidc.oidc_sign_in("alice"), "upstream_rejected", reasons="malformed_token")


# ---- the ID token: iss, aud, azp, exp ----


def test_wrong_issuer_signed_with_the_providers_key(oidc: Sso, op1: OidcProvider, op2: OidcProvider) -> None:
    tampered(oidc, lambda token: sign(claims_of(token) | {"iss": op2.issuer}, op1.key))
    oidc.assert_refused(oidc.oidc_sign_in("alice"), "upstream_rejected", reasons="wrong_issuer")
    restore(oidc)
    oidc.still_works()


def _token_for_other_client(op: OidcProvider, nonce: str, user: str = "alice") -> str:
    """A genuine ID token the provider issued to another application (client other-app)."""
    verifier = secrets.token_urlsafe(48)
    challenge = _b64url(hashlib.sha256(verifier.encode()).digest())
    redirect = "http://127.0.0.1:9/other-app/callback"
    url = f"{op.issuer}/auth?" + urlencode({
        "response_type": "code", "client_id": "other-app", "redirect_uri": redirect, "scope": "openid profile groups",
        "state": "s" * 16, "nonce": nonce, "code_challenge": challenge, "code_challenge_method": "S256"})
    code = query(op.authorize(url, user))["code"]
    r = httpx.post(f"{op.issuer}/token", auth=("other-app", OTHER_SECRET),
                   data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
                         "code_verifier": verifier})
    assert r.status_code == 200, r.text
    return r.json()["id_token"]


def test_wrong_audience_genuine_token_of_another_client(oidc: Sso, op1: OidcProvider) -> None:
    captured: dict[str, str] = {}

    def swap(token: str) -> str:
        other = _token_for_other_client(op1, claims_of(token)["nonce"])
        assert claims_of(other)["aud"] == "other-app"
        captured["token"] = other
        return other

    tampered(oidc, swap)
    oidc.assert_refused(oidc.oidc_sign_in("alice"), "upstream_rejected", reasons="wrong_audience")
    assert header_of(captured["token"])["kid"] == op1.key.kid  # genuinely signed by the provider
    restore(oidc)
    oidc.still_works()


@pytest.mark.parametrize(("aud", "azp"), [(["broker", "other-app"], "other-app"), (["broker", "other-app"], None),
                                          ("broker", "other-app")])
def test_azp_not_ours(oidc: Sso, op1: OidcProvider, aud: Any, azp: str | None) -> None:
    def forged(token: str) -> str:
        claims = claims_of(token) | {"aud": aud}
        claims.pop("azp", None)
        if azp is not None:
            claims["azp"] = azp
        return sign(claims, op1.key)

    tampered(oidc, forged)
    oidc.assert_refused(oidc.oidc_sign_in("alice"), "upstream_rejected", reasons="wrong_azp")
    restore(oidc)
    oidc.still_works()


def test_expired_id_token_by_the_brokers_clock(oidc: Sso) -> None:
    """Tests own the clock: the provider's genuine token (10 minutes), the broker two hours later."""
    oidc.rebuild("op1", clock=lambda: time.time() + 7200)
    oidc.assert_refused(oidc.oidc_sign_in("alice"), "upstream_rejected", reasons="expired")
    restore(oidc)
    oidc.still_works()


def test_expired_id_token_signed_with_the_providers_key(oidc: Sso, op1: OidcProvider) -> None:
    past = int(time.time()) - 3600
    tampered(oidc, lambda token: sign(claims_of(token) | {"iat": past - 600, "exp": past}, op1.key))
    oidc.assert_refused(oidc.oidc_sign_in("alice"), "upstream_rejected", reasons="expired")
    restore(oidc)


@pytest.mark.parametrize(("behind", "accepted"), [(100, True), (200, False)])
def test_issued_in_the_future_beyond_the_clock_skew(oidc: Sso, behind: int, accepted: bool) -> None:
    oidc.rebuild("op1", clock=lambda: time.time() - behind)
    r = oidc.oidc_sign_in("alice")
    if accepted:
        oidc.assert_signed_in(r, "alice")
    else:
        oidc.assert_refused(r, "upstream_rejected", reasons="not_yet_valid")


# ---- code replay and mix-up ----


def test_authorization_response_replayed(oidc: Sso, op1: OidcProvider) -> None:
    location = op1.authorize(oidc.oidc_start("op1"), "alice")
    oidc.assert_signed_in(oidc.oidc_callback(location), "alice")
    oidc.client.cookies.delete("broker")
    oidc.assert_refused(oidc.oidc_callback(location), "sso_request_invalid", reasons="unknown_or_used_request")


def test_code_replayed_with_a_fresh_state(oidc: Sso, op1: OidcProvider) -> None:
    first = query(op1.authorize(oidc.oidc_start("op1"), "alice"))
    oidc.assert_signed_in(oidc.client.get("/sso/op1/oidc/callback", params=first), "alice")
    oidc.client.cookies.delete("broker")
    fresh = query(oidc.oidc_start("op1"))
    r = oidc.client.get("/sso/op1/oidc/callback", params={**first, "state": fresh["state"]})
    oidc.assert_refused(r, "upstream_rejected", reasons="code_refused:invalid_grant")


def test_mix_up_state_of_one_provider_at_the_others_callback(oidc: Sso, op1: OidcProvider) -> None:
    location = op1.authorize(oidc.oidc_start("op1"), "alice")
    parts = urlsplit(location)
    r = oidc.client.get(f"/sso/op2/oidc/callback?{parts.query}")
    oidc.assert_refused(r, "sso_request_invalid", reasons="unknown_or_used_request")
    oidc.still_works()


def test_mix_up_response_of_another_provider(oidc: Sso, op1: OidcProvider, op2: OidcProvider) -> None:
    """op2's genuine authorization response (code and iss) delivered with op1's state at op1."""
    from_op2 = query(op2.authorize(oidc.oidc_start("op2"), "alice"))
    op1_state = query(oidc.oidc_start("op1"))["state"]
    r = oidc.client.get("/sso/op1/oidc/callback", params={**from_op2, "state": op1_state})
    oidc.assert_refused(r, "upstream_rejected", reasons="issuer_mismatch")
    oidc.client.cookies.clear()
    # without the iss parameter: op1 announces it always sends one, so its absence is refused too
    from_op2 = query(op2.authorize(oidc.oidc_start("op2"), "alice"))
    op1_state = query(oidc.oidc_start("op1"))["state"]
    r = oidc.client.get("/sso/op1/oidc/callback", params={"code": from_op2["code"], "state": op1_state})
    oidc.assert_refused(r, "upstream_rejected", reasons="issuer_mismatch")
    oidc.still_works()


def test_mix_up_token_of_another_provider(oidc: Sso, op2: OidcProvider) -> None:
    """A genuine ID token of op2 (its key, its issuer) handed to op1's callback."""
    holder: dict[str, str] = {}
    tamper = Tamper()
    tamper.token_hook = lambda body: holder.setdefault("token", body["id_token"]) and body
    oidc.rebuild("op2", transport=tamper)
    oidc.assert_signed_in(oidc.oidc_sign_in("alice", idp="op2"), "alice")
    oidc.client.cookies.clear()
    tampered(oidc, lambda token: holder["token"])
    oidc.assert_refused(oidc.oidc_sign_in("alice"), "upstream_rejected",
                        reasons=("unknown_kid", "wrong_issuer", "nonce_mismatch"))
    restore(oidc)
    oidc.still_works()


def test_client_secret_is_never_in_the_authorization_url(oidc: Sso) -> None:
    assert SECRET not in oidc.oidc_start("op1")
