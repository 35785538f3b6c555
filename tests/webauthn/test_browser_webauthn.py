"""Passkeys as a step-up factor in real headless Chromium with a DevTools virtual authenticator:
register, list, step up, remove; and every refusal (another origin, a replayed or unknown
challenge, an unknown credential, a counter that went back, no CSRF token) answered with its
code, audited, and nothing changed."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.webauthn.conftest import ASSERT, SCRIPT, Broker, Person

pytestmark = [pytest.mark.browser]


def _code(answer: dict[str, Any]) -> str:
    code: str = answer["body"]["error"]["code"]
    return code


def _denied(server: Broker, action: str, code: str) -> dict[str, Any]:
    events = [e for e in server.audit(action) if e["outcome"] == "deny" and e["details"].get("code") == code]
    assert len(events) == 1, server.audit(action)
    return events[0]


def test_register_see_it_step_up_then_remove(browser: Any, broker: Any) -> None:
    server: Broker = broker()
    bob = Person(browser, server, "bob")
    bob.page.get_by_text("No security key or passkey yet.").wait_for()
    bob.register("Work laptop")
    listed = bob.page.locator("#webauthn-list li.webauthn-credential")
    assert listed.count() == 1 and "Work laptop" in listed.inner_text()
    # another one without a fresh step-up: refused (a stolen session cannot add a factor of its own)
    bob.page.get_by_role("button", name="Register a security key or passkey").click()
    bob.status("mfa_required")
    assert listed.count() == 1 and len(bob.mine()["credentials"]) == 1
    assert bob.mine()["step_up"] == {"at": None, "methods": []}
    enrol = server.audit("mfa.enrol")
    assert [(e["outcome"], e["details"]["label"], e["details"]["method"]) for e in enrol] == [
        ("allow", "Work laptop", "webauthn")]

    # removal needs a fresh step-up: refused, still listed
    bob.page.get_by_role("button", name="Remove Work laptop").click()
    bob.status("mfa_required")
    assert len(bob.mine()["credentials"]) == 1
    _denied(server, "mfa.remove", "mfa_required")

    # the step-up button returns to `next`
    bob.page.goto(server.url + "/mfa/webauthn?next=/requests")
    bob.page.get_by_role("button", name="Use a security key or passkey").click()
    bob.page.get_by_role("heading", name="Access requests").wait_for()
    step_up = bob.mine()["step_up"]
    assert step_up["methods"] == ["hwk"] and step_up["at"] is not None  # a key bound to its authenticator
    allowed = [e for e in server.audit("mfa.step_up") if e["outcome"] == "allow"]
    assert len(allowed) == 1 and allowed[0]["details"]["label"] == "Work laptop"
    assert allowed[0]["details"]["amr"] == "hwk"
    text = json.dumps(server.audit("mfa.step_up"))
    assert "signature" not in text and "clientDataJSON" not in text and "authenticatorData" not in text
    assert bob.mine()["credentials"][0]["last_used_at"] is not None

    # stepped up, the same authenticator again: the broker excluded it, the browser refuses
    bob.page.goto(server.url + "/mfa/webauthn")
    bob.page.get_by_role("button", name="Register a security key or passkey").click()
    bob.status("already registered")
    assert len(bob.mine()["credentials"]) == 1

    bob.page.goto(server.url + "/mfa/webauthn")
    bob.page.get_by_role("button", name="Remove Work laptop").click()
    bob.status("Removed Work laptop.")
    bob.page.get_by_text("No security key or passkey yet.").wait_for()
    assert bob.mine()["credentials"] == [] and server.credentials_in_database() == 0
    removed = [e for e in server.audit("mfa.remove") if e["outcome"] == "allow"]
    assert [e["details"]["label"] for e in removed] == ["Work laptop"]
    bob.close()


def test_a_synced_passkey_steps_up_as_swk(browser: Any, broker: Any) -> None:
    server: Broker = broker()
    bob = Person(browser, server, "bob", backup_eligible=True)
    bob.register("Phone passkey")
    bob.page.get_by_role("button", name="Use a security key or passkey").click()
    bob.status("Confirmed")
    assert bob.mine()["step_up"]["methods"] == ["swk"]
    assert server.audit("mfa.enrol")[0]["details"]["synced"] is True
    bob.close()


def test_an_assertion_made_for_another_origin_is_refused(browser: Any, broker: Any, other_site: str) -> None:
    server: Broker = broker()
    bob = Person(browser, server, "bob")
    bob.register("Laptop")
    options = bob.post("/mfa/webauthn/authenticate/options")["body"]
    bob.page.goto(other_site + "/")  # same host (RP ID localhost), another port: another origin
    bob.page.add_script_tag(content=SCRIPT)
    foreign = bob.page.evaluate(ASSERT, [options, None])
    assert json.loads(base64.urlsafe_b64decode(foreign["response"]["clientDataJSON"] + "==")
                      )["origin"] == other_site
    bob.page.goto(server.url + "/mfa/webauthn")
    answer = bob.post("/mfa/webauthn/authenticate", {"credential": foreign})
    assert answer["status"] == 400 and _code(answer) == "webauthn_origin"
    assert bob.mine()["step_up"] == {"at": None, "methods": []}
    assert bob.mine()["credentials"][0]["last_used_at"] is None
    _denied(server, "mfa.step_up", "webauthn_origin")
    bob.close()


TOGETHER = """async ([body, csrf]) => Promise.all([0, 1].map(async () => {
  const r = await fetch('/mfa/webauthn/authenticate', {method: 'POST', body: JSON.stringify(body),
    headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf}});
  return {status: r.status, body: await r.json()};
}))"""


@pytest.mark.parametrize("backend", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_a_challenge_counts_once_and_only_the_brokers(browser: Any, broker: Any, backend: str) -> None:
    state = {"backend": "redis", "redis_url": os.environ["BROKER_TEST_REDIS_URL"]} if backend == "redis" else {}
    server: Broker = broker(state=state)
    bob = Person(browser, server, "bob")
    bob.register("Laptop")
    made = bob.assertion()
    first = bob.post("/mfa/webauthn/authenticate", {"credential": made})
    assert first["status"] == 200, first
    bob.page.reload()  # the step-up renewed the session id and its CSRF token
    again = bob.post("/mfa/webauthn/authenticate", {"credential": made})
    assert again["status"] == 400 and _code(again) == "webauthn_challenge"
    assert bob.mine()["step_up"]["at"] == first["body"]["step_up"]["at"]
    _denied(server, "mfa.step_up", "webauthn_challenge")

    # one assertion posted twice at once: one step-up
    csrf = bob.page.locator("#webauthn").get_attribute("data-csrf")
    both = bob.page.evaluate(TOGETHER, [{"credential": bob.assertion()}, csrf])
    first_wins, other = sorted(a["status"] for a in both)
    # the other: its challenge already taken (400 webauthn_challenge) or, when the winner's step-up
    # has renewed the session first, its session gone (401) or its CSRF token no longer the
    # session's (403): refused either way, and one step-up counted
    assert first_wins == 200 and other in (400, 401, 403), both
    assert len([e for e in server.audit("mfa.step_up") if e["outcome"] == "allow"]) == 2
    bob.page.reload()  # renewed again

    # a challenge the broker never issued
    options = bob.post("/mfa/webauthn/authenticate/options")["body"]
    options["challenge"] = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    forged = bob.page.evaluate(ASSERT, [options, None])
    answer = bob.post("/mfa/webauthn/authenticate", {"credential": forged})
    assert answer["status"] == 400 and _code(answer) == "webauthn_challenge"
    assert len([e for e in server.audit("mfa.step_up") if e["outcome"] == "allow"]) == 2
    bob.close()


def _add_credential(person: Person, credential: dict[str, Any]) -> None:
    person.cdp.send("WebAuthn.addCredential", {"authenticatorId": person.authenticator, "credential": credential})


def test_an_unknown_credential_or_another_persons_is_refused(browser: Any, broker: Any) -> None:
    server: Broker = broker()
    bob, alice = Person(browser, server, "bob"), Person(browser, server, "alice")
    bob.register("Laptop")
    alice.register("Alice key")

    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    raw_id = os.urandom(16)
    _add_credential(bob, {"credentialId": base64.b64encode(raw_id).decode(), "isResidentCredential": False,
                          "rpId": "localhost", "privateKey": base64.b64encode(der).decode(), "signCount": 0})
    stray = bob.assertion(allow=[base64.urlsafe_b64encode(raw_id).rstrip(b"=").decode()])
    answer = bob.post("/mfa/webauthn/authenticate", {"credential": stray})
    assert answer["status"] == 400 and _code(answer) == "webauthn_unknown_credential"

    alices = alice.stored()[0]
    _add_credential(bob, {k: alices[k] for k in ("credentialId", "isResidentCredential", "rpId", "privateKey",
                                                 "userHandle", "signCount")})
    borrowed = bob.assertion(allow=[base64.urlsafe_b64encode(base64.b64decode(alices["credentialId"]))
                                    .rstrip(b"=").decode()])
    answer = bob.post("/mfa/webauthn/authenticate", {"credential": borrowed})
    assert answer["status"] == 400 and _code(answer) == "webauthn_unknown_credential"

    assert bob.mine()["step_up"] == {"at": None, "methods": []}
    assert alice.mine()["credentials"][0]["last_used_at"] is None
    denied = [e for e in server.audit("mfa.step_up") if e["details"].get("code") == "webauthn_unknown_credential"]
    assert len(denied) == 2 and all(e["outcome"] == "deny" and e["details"]["user"] == "bob" for e in denied)
    bob.close()
    alice.close()


def test_a_counter_that_went_back_is_refused(browser: Any, broker: Any) -> None:
    server: Broker = broker()
    bob = Person(browser, server, "bob")
    bob.register("Laptop")
    original = bob.stored()[0]
    assert original["signCount"] >= 1
    # a clone: the same key, its counter behind the original's
    bob.cdp.send("WebAuthn.removeCredential", {"authenticatorId": bob.authenticator,
                                                "credentialId": original["credentialId"]})
    _add_credential(bob, {**{k: original[k] for k in ("credentialId", "isResidentCredential", "rpId", "privateKey",
                                                      "userHandle")}, "signCount": 0})
    cloned = bob.assertion()
    answer = bob.post("/mfa/webauthn/authenticate", {"credential": cloned})
    assert answer["status"] == 400 and _code(answer) == "webauthn_sign_count"
    assert bob.mine()["step_up"] == {"at": None, "methods": []}
    stored = server.app.state.services.passkeys.store.of_person("b0b0b0b0-0000-4000-8000-000000000002")[0]
    assert stored.sign_count == original["signCount"] and stored.last_used_at is None
    event = _denied(server, "mfa.step_up", "webauthn_sign_count")
    assert event["details"]["user"] == "bob"
    bob.close()


def test_posts_without_the_csrf_token_are_refused(browser: Any, broker: Any) -> None:
    server: Broker = broker()
    bob = Person(browser, server, "bob")
    bob.register("Laptop")
    for path in ("/mfa/webauthn/register/options", "/mfa/webauthn/authenticate/options"):
        answer = bob.post(path, csrf=None)
        assert answer["status"] == 403 and _code(answer) == "csrf_failed"
    made = bob.assertion()
    answer = bob.post("/mfa/webauthn/authenticate", {"credential": made}, csrf="not-the-token")
    assert answer["status"] == 403 and _code(answer) == "csrf_failed"
    assert bob.mine()["step_up"] == {"at": None, "methods": []}
    credential_id = bob.mine()["credentials"][0]["id"]
    answer = bob.post(f"/mfa/webauthn/credentials/{credential_id}/remove", csrf=None)
    assert answer["status"] == 403 and _code(answer) == "csrf_failed"
    assert len(bob.mine()["credentials"]) == 1
    assert len([e for e in server.audit("mfa.step_up") if e["details"].get("code") == "csrf_failed"]) == 2
    _denied(server, "mfa.enrol", "csrf_failed")
    _denied(server, "mfa.remove", "csrf_failed")
    # the challenge of the refused post is still unused: the same assertion with the token counts
    answer = bob.post("/mfa/webauthn/authenticate", {"credential": made})
    assert answer["status"] == 200 and bob.mine()["step_up"]["methods"] == ["hwk"]
    bob.close()


def test_a_challenge_of_another_session_or_expired_is_refused(browser: Any, broker: Any) -> None:
    from broker.state.memory import MemoryState
    from tests.portal.conftest import Clock

    server: Broker = broker()
    bob, bob_elsewhere = Person(browser, server, "bob"), Person(browser, server, "bob")
    bob.register("Laptop")
    options = bob_elsewhere.post("/mfa/webauthn/authenticate/options")["body"]  # bound to the other session
    made = bob.page.evaluate(ASSERT, [options, None])
    answer = bob.post("/mfa/webauthn/authenticate", {"credential": made})
    assert answer["status"] == 400 and _code(answer) == "webauthn_challenge"
    answer = bob_elsewhere.post("/mfa/webauthn/authenticate", {"credential": made})
    assert answer["status"] == 200  # where it was issued, it still counts once

    clock = Clock()
    server.app.state.services.passkeys.state = MemoryState(clock=clock)
    options = bob.post("/mfa/webauthn/authenticate/options")["body"]
    made = bob.page.evaluate(ASSERT, [options, None])
    clock.advance(301)  # challenges live 5 minutes
    answer = bob.post("/mfa/webauthn/authenticate", {"credential": made})
    assert answer["status"] == 400 and _code(answer) == "webauthn_challenge"
    assert bob.mine()["step_up"] == {"at": None, "methods": []}
    assert len([e for e in server.audit("mfa.step_up") if e["details"].get("code") == "webauthn_challenge"]) == 2
    bob.close()
    bob_elsewhere.close()
