"""Break-glass in real headless Chromium: slapd is killed, a directory sign-in fails, the sign-in
page now offers the break-glass link; through /break-glass (username, password, one-time code)
the on-call engineer lands on the portal and opens the console of the one listed role; both uses
are alerted to a real webhook receiver."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyotp
import pytest

from broker.mfa.totp import new_secret
from tests.break_glass.conftest import (
    BG_PASSWORD,
    LDAP_PASSWORD,
    MAPPING,
    break_glass_section,
    directory_section,
    notifications_section,
)
from tests.conftest import free_port, make_config
from tests.notify.receiver import Receiver

pytestmark = [pytest.mark.browser, pytest.mark.ldap, pytest.mark.sts]


def test_break_glass_in_the_browser(browser: Any, receiver: Receiver, tmp_path: Path, own_slapd: Any, bg_pki: Any, serve_app: Any) -> None:
    from broker.app import create_app

    secret = new_secret()
    (tmp_path / "oncall.totp").write_text(secret)
    port = free_port()
    config = make_config(tmp_path, server={"public_url": f"http://127.0.0.1:{port}", "port": port},
                         logging={"level": "info", "format": "json", "access_log": False},
                         directory=directory_section(own_slapd, bg_pki.ca), mapping=MAPPING,
                         break_glass=break_glass_section(tmp_path / "oncall.totp"),
                         notifications=notifications_section(receiver.url()))
    app = create_app(config, env={}, configure_logging=False)
    serve_app(app, port)
    url = f"http://127.0.0.1:{port}"

    context = browser.new_context(viewport={"width": 1000, "height": 800})
    page = context.new_page()
    page.goto(url + "/")
    assert page.get_by_role("link", name="Emergency (break-glass) sign-in").count() == 0
    own_slapd.stop()  # the directory goes down
    page.get_by_label("Username").fill("bench0000")
    page.get_by_label("Password").fill(LDAP_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("The company directory cannot be reached right now").wait_for()
    page.get_by_role("link", name="Emergency (break-glass) sign-in").click()
    page.get_by_role("heading", name="Break-glass sign-in").wait_for()
    page.get_by_label("Username").fill("oncall")
    page.get_by_label("Password").fill(BG_PASSWORD)
    page.get_by_label("One-time code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Your AWS accounts").wait_for()
    assert "Break-glass: oncall" in page.content()
    rows = page.locator("li.role")
    assert rows.count() == 1 and "BreakGlassAdmin" in rows.first.inner_text()
    with context.expect_page() as new_tab:
        rows.first.get_by_role("button", name="Open the AWS console as BreakGlassAdmin in sandbox-prod (new tab)").click()
    console = new_tab.value
    console.wait_for_load_state()
    assert "/sandbox/console/" in console.url
    assert "arn:aws:iam::222222222222:role/BreakGlassAdmin" in console.content()
    # the alerts reach the webhook (Slack's shape): the sign-in, then the console
    deadline = time.monotonic() + 15
    while len(receiver.accepted()) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    alerts = receiver.accepted()
    assert [a.event for a in alerts] == ["break_glass.use", "break_glass.use"]
    assert "oncall" in alerts[0].body["text"] and "BreakGlassAdmin" in json.dumps(alerts[1].body)
    context.close()
