"""Upstream sign-in in real headless Chromium (Debian's, driven by Playwright): the portal's
sign-in page → the IdP's own pages → back to the portal, signed in. SAML through the pysaml2 IdP
(HTTP-Redirect out, auto-submitted HTTP-POST back), OIDC through oidc-provider's sign-in and
consent pages, and a CLI device-code approval that signs in through the IdP on the way."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_config
from tests.upstream.conftest import MAPPING, oidc_idp, saml_idp
from tests.upstream.oidc_op import OidcProvider
from tests.upstream.saml_peer import SamlIdpPeer

pytestmark = [pytest.mark.browser, pytest.mark.saml_peer, pytest.mark.oidc_peer]

@pytest.fixture
def live_broker(tmp_path: Path, broker_url: str, saml_peer: SamlIdpPeer, saml_metadata_file: Path,
                op1: OidcProvider, serve_app: Any) -> Iterator[Callable[[], Any]]:
    """The broker served by uvicorn at ``broker_url`` (the URL the providers know), in a thread."""
    from broker.app import create_app

    def start() -> Any:
        port = int(broker_url.rsplit(":", 1)[1])
        data = {
            "server": {"public_url": broker_url, "port": port},
            "logging": {"level": "info", "format": "json", "access_log": False},
            "mapping": MAPPING,
            "upstream": [saml_idp(saml_metadata_file), oidc_idp(op1, "op1")],
        }
        app = create_app(make_config(tmp_path, **data), env={}, configure_logging=False)
        for connector in app.state.services.upstream.values():
            if connector.kind == "saml":
                saml_peer.trust_sp(connector.metadata())
        serve_app(app, port)
        return app

    yield start


def _portal_sign_in_page(page: Any, url: str, button: str, next_path: str = "/") -> None:
    page.goto(url + next_path)
    assert "/login" in page.url
    page.get_by_role("link", name=button).click()


def test_saml_sign_in_from_the_portal(browser: Any, live_broker: Any, broker_url: str, saml_peer: SamlIdpPeer) -> None:
    live_broker()
    context = browser.new_context()
    page = context.new_page()
    _portal_sign_in_page(page, broker_url, "Corp ADFS")
    page.wait_for_url(saml_peer.sso_url + "*")
    page.get_by_label("Username").fill("alice@example.com")
    page.get_by_role("button", name="Sign in").click()  # the IdP's page auto-POSTs to the ACS
    page.get_by_role("heading", name="Your AWS accounts").wait_for()
    assert page.url == broker_url + "/"
    assert "sandbox-dev" in page.content()
    context.close()


def test_oidc_sign_in_from_the_portal(browser: Any, live_broker: Any, broker_url: str, op1: OidcProvider) -> None:
    live_broker()
    context = browser.new_context()
    page = context.new_page()
    _portal_sign_in_page(page, broker_url, "Provider op1")
    page.wait_for_url(op1.issuer + "/**")
    page.locator("input[name=login]").fill("alice")
    page.locator("input[name=password]").fill("any password")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()  # the provider's consent page
    page.get_by_role("heading", name="Your AWS accounts").wait_for()
    assert page.url == broker_url + "/"
    assert "sandbox-dev" in page.content()
    context.close()


def test_device_login_approved_after_an_upstream_sign_in(browser: Any, live_broker: Any, broker_url: str,
                                                         saml_peer: SamlIdpPeer) -> None:
    import httpx

    live_broker()
    grant = httpx.post(f"{broker_url}/oauth/device/authorization", data={"client_id": "awsbroker"}).json()
    context = browser.new_context()
    page = context.new_page()
    page.goto(grant["verification_uri_complete"])
    page.get_by_role("link", name="Corp ADFS").click()
    page.get_by_label("Username").fill("bob@example.com")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{broker_url}/device?user_code=*")
    page.get_by_role("button", name="Approve").click()
    page.get_by_text("Command line signed in").wait_for()
    token = httpx.post(f"{broker_url}/oauth/token", data={
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": grant["device_code"],
        "client_id": "awsbroker"})
    assert token.status_code == 200, token.text
    me = httpx.get(f"{broker_url}/api/v1/whoami", headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert me.json()["username"] == "bob@example.com" and me.json()["source"] == "corp-saml"
    context.close()
