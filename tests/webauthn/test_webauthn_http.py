"""WebAuthn without a browser: the relying party from ``server.public_url``, the ``mfa.webauthn``
configuration and check-config, the options the broker sends, and refusals no browser is needed
for (no session, a malformed answer, no credential registered)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from broker.mfa.webauthn import RelyingParty
from tests.portal.conftest import audit, build, clock, sign_in  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("url", "rp_id", "origin"), [
    ("https://aws.example.com", "aws.example.com", "https://aws.example.com"),
    ("https://AWS.example.com:8443/broker", "aws.example.com", "https://aws.example.com:8443"),
    ("http://localhost:8000", "localhost", "http://localhost:8000"),
])
def test_the_relying_party_is_the_public_address(url: str, rp_id: str, origin: str) -> None:
    rp = RelyingParty.of(url, name="AWS access broker")
    assert (rp.id, rp.origin) == (rp_id, origin)


def test_check_config_refuses_bad_webauthn_settings(tmp_path: Path) -> None:
    path = tmp_path / "broker.yaml"
    path.write_text("mfa:\n  webauthn:\n    user_verification: always\n    rp_name: ''\n    attestation: direct\n")
    bad = subprocess.run([sys.executable, "-m", "broker", "check-config", str(path)], capture_output=True, text=True,
                         check=False, cwd=ROOT)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "error: mfa.webauthn.user_verification: Input should be 'required', 'preferred' or 'discouraged'" in bad.stderr
    assert "error: mfa.webauthn.rp_name:" in bad.stderr
    assert "error: mfa.webauthn.attestation: unknown key" in bad.stderr


def _signed_in(build: Any, **extra: Any) -> tuple[Any, str]:  # noqa: F811
    client = build(**extra)
    sign_in(client, "bob", "bob-portal-pw-2")
    page = client.get("/mfa/webauthn")
    assert page.status_code == 200
    token = re.search(r'data-csrf="([^"]+)"', page.text)
    assert token is not None
    return client, token.group(1)


def test_without_a_session_nothing_answers(build: Any) -> None:  # noqa: F811
    client = build()
    assert client.get("/mfa/webauthn/credentials").json()["error"]["code"] == "unauthenticated"
    assert client.post("/mfa/webauthn/register/options").status_code == 401
    page = client.get("/mfa/webauthn")
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=/mfa/webauthn")


def test_registration_options_ask_for_a_passkey(build: Any) -> None:  # noqa: F811
    client, csrf = _signed_in(build, server={"public_url": "http://aws.example.com:8080"},
                              mfa={"webauthn": {"rp_name": "Example AWS", "user_verification": "required"}})
    options = client.post("/mfa/webauthn/register/options", headers={"X-CSRF-Token": csrf})
    assert options.status_code == 200 and options.headers["cache-control"] == "no-store"
    body = options.json()
    assert body["rp"] == {"id": "aws.example.com", "name": "Example AWS"}
    assert body["user"]["name"] == "bob" and "b0b0b0b0" not in body["user"]["id"]
    assert body["authenticatorSelection"]["residentKey"] == "preferred"
    assert body["authenticatorSelection"]["userVerification"] == "required"
    assert body["attestation"] == "none" and body["excludeCredentials"] == []
    assert body["challenge"] != client.post("/mfa/webauthn/register/options", headers={"X-CSRF-Token": csrf}).json()[
        "challenge"]


def test_malformed_answers_and_no_credential_are_refused(build: Any, admin_headers: dict[str, str]) -> None:  # noqa: F811
    client, csrf = _signed_in(build)
    headers = {"X-CSRF-Token": csrf}
    none = client.post("/mfa/webauthn/authenticate/options", headers=headers)
    assert none.status_code == 400 and none.json()["error"]["code"] == "webauthn_unknown_credential"
    for credential in ({}, {"id": "x", "rawId": "x", "response": {"clientDataJSON": "not base64 json"}}):
        answer = client.post("/mfa/webauthn/authenticate", json={"credential": credential}, headers=headers)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "webauthn_invalid"
        answer = client.post("/mfa/webauthn/register", json={"credential": credential}, headers=headers)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "webauthn_invalid"
    label = client.post("/mfa/webauthn/register", json={"credential": {}, "label": "x" * 65}, headers=headers)
    assert label.status_code == 422
    gone = client.post("/mfa/webauthn/credentials/7/remove", headers=headers)
    assert gone.status_code == 403 and gone.json()["error"]["code"] == "mfa_required"
    assert client.get("/mfa/webauthn/credentials").json() == {"credentials": [], "step_up": {"at": None, "methods": []}}
    events = audit(client, admin_headers, action="mfa.step_up")
    assert [e["details"]["code"] for e in events if e["outcome"] == "deny"].count("webauthn_invalid") == 2
    assert [e["details"]["code"] for e in audit(client, admin_headers, action="mfa.enrol")] == ["webauthn_invalid"] * 2
