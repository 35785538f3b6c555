"""Passkeys as a step-up factor in real headless Chromium with a DevTools virtual authenticator:
register, list, step up, remove; and every refusal (another origin, a replayed challenge, an
unknown credential, a counter that went back, no CSRF token) audited with nothing changed."""

from __future__ import annotations

from typing import Any

import pytest

from tests.webauthn.conftest import SCRIPT, Broker, Person

pytestmark = [pytest.mark.browser]


def test_explore(browser: Any, broker: Any) -> None:
    server: Broker = broker()
    bob = Person(browser, server, "bob")
    bob.register("Laptop")
    print(bob.mine(), bob.stored())
    bob.page.get_by_role("button", name="Use a security key or passkey").click()
    bob.status("Confirmed")
    print(bob.mine(), bob.stored())
    print(server.audit("mfa.step_up"), server.audit("mfa.enrol"))
