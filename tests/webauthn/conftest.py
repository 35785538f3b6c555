"""WebAuthn in real headless Chromium: the broker served on ``http://localhost:<port>`` (RP ID
``localhost``: browsers refuse an IP address as RP ID, and treat localhost as a secure context),
a DevTools virtual authenticator (CTAP2, internal transport, resident keys, user verification),
and helpers that drive the portal's /mfa/webauthn page and its JSON routes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, free_port, make_config
from tests.portal.conftest import ALICE_PW, BOB_PW, sections

PASSWORDS = {"alice": ALICE_PW, "bob": BOB_PW}
SCRIPT = (Path(__file__).resolve().parents[2] / "broker" / "web" / "static" / "webauthn.js").read_text()

POST = """async ([url, body, token]) => {
  const csrf = token === undefined ? document.getElementById('webauthn').dataset.csrf : token;
  const headers = {'Content-Type': 'application/json'};
  if (csrf !== null) headers['X-CSRF-Token'] = csrf;
  const r = await fetch(url, {method: 'POST', headers, body: JSON.stringify(body || {})});
  return {status: r.status, body: await r.json()};
}"""
GET_JSON = "async (url) => (await fetch(url)).json()"
ASSERT = """async ([options, allow]) => {
  const w = window.brokerWebAuthn;
  const o = w.getOptions(options);
  if (allow) o.publicKey.allowCredentials = allow.map((id) => ({type: 'public-key', id: w.toBuffer(id)}));
  return w.credentialJSON(await navigator.credentials.get(o));
}"""


@dataclass
class Broker:
    url: str
    app: Any

    def audit(self, action: str) -> list[dict[str, Any]]:
        answer = httpx.get(self.url + "/api/v1/admin/audit", params={"action": action, "limit": 100},
                           headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        return items

    def credentials_in_database(self) -> int:
        return len([c for p in ("a1b2c3d4-0000-4000-8000-000000000001", "b0b0b0b0-0000-4000-8000-000000000002")
                    for c in self.app.state.services.passkeys.store.of_person(p)])


@pytest.fixture
def broker(tmp_path: Path, serve_app: Any) -> Iterator[Callable[..., Broker]]:
    from broker.app import create_app

    def start(**extra: Any) -> Broker:
        port = free_port()
        data = sections()
        data["server"] = {"public_url": f"http://localhost:{port}", "port": port}
        data["logging"] = {"level": "info", "format": "json", "access_log": False}
        for key, value in extra.items():
            data[key] = {**data.get(key, {}), **value}
        app = create_app(make_config(tmp_path, **data), env={"BROKER_ADMIN_TOKEN": ADMIN_TOKEN},
                         configure_logging=False)
        serve_app(app, port)
        return Broker(f"http://localhost:{port}", app)

    yield start


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>Another site</title><h1>Another site</h1>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def other_site() -> Iterator[str]:
    """A second loopback site, ``http://localhost:<another port>``: same host (so the same RP ID), another origin."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class Person:
    """A signed-in browser tab with a virtual authenticator."""

    def __init__(self, browser: Any, broker: Broker, username: str, *, backup_eligible: bool = False) -> None:
        self.broker = broker
        self.context = browser.new_context(viewport={"width": 1000, "height": 800})
        self.page = self.context.new_page()
        self.cdp = self.context.new_cdp_session(self.page)
        self.cdp.send("WebAuthn.enable", {"enableUI": False})
        self.authenticator = self.cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
            "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
            "isUserVerified": True, "automaticPresenceSimulation": True,
            "defaultBackupEligibility": backup_eligible, "defaultBackupState": backup_eligible}})["authenticatorId"]
        page = self.page
        page.goto(broker.url + "/login?next=/mfa/webauthn")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORDS[username])
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name="Security keys and passkeys", level=1).wait_for()

    def status(self, text: str) -> None:
        self.page.locator("#webauthn-status", has_text=text).wait_for()

    def register(self, label: str) -> None:
        self.page.get_by_label("Name").fill(label)
        self.page.get_by_role("button", name="Register a security key or passkey").click()
        self.status(f"Registered {label}.")
        # the list is read again after the status says so: wait for the new entry in it
        self.page.locator("#webauthn-list li.webauthn-credential", has_text=label).first.wait_for()

    def post(self, path: str, body: dict[str, Any] | None = None, *, csrf: str | None | bool = True) -> Any:
        token = None if csrf is None else (csrf if isinstance(csrf, str) else None)
        args = [path, body or {}] + ([] if csrf is True else [token])
        return self.page.evaluate(POST, args)

    def mine(self) -> dict[str, Any]:
        result: dict[str, Any] = self.page.evaluate(GET_JSON, "/mfa/webauthn/credentials")
        return result

    def assertion(self, allow: list[str] | None = None) -> dict[str, Any]:
        """An assertion for a fresh challenge of the broker, made here but not posted."""
        options = self.post("/mfa/webauthn/authenticate/options")
        assert options["status"] == 200, options
        result: dict[str, Any] = self.page.evaluate(ASSERT, [options["body"], allow])
        return result

    def stored(self) -> list[dict[str, Any]]:
        creds: list[dict[str, Any]] = self.cdp.send("WebAuthn.getCredentials",
                                                    {"authenticatorId": self.authenticator})["credentials"]
        return creds

    def close(self) -> None:
        self.context.close()
