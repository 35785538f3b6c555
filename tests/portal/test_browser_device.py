"""RFC 8628 in real Chromium, as a phished person would meet it: the CLI side starts a device login
over HTTP, its ``verification_uri_complete`` is opened by a signed-in person, the confirmation page
shows client, address and times, and only the Approve click lets the token poll succeed."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.conftest import AWSBROKER, Laptop
from tests.portal.conftest import ALICE_PW, DEVICE_GRANT
from tests.portal.test_browser import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.sts]


def test_the_complete_link_opens_a_confirmation_page_and_approve_lets_the_poll_succeed(browser: Any, live: Any) -> None:
    server = live()
    grant = httpx.post(f"{server.url}/oauth/device/authorization", data={"client_id": "awsbroker"},
                       headers={"User-Agent": "awsbroker"}).json()

    def token() -> httpx.Response:
        return httpx.post(f"{server.url}/oauth/token", data={"grant_type": DEVICE_GRANT, "client_id": "awsbroker",
                                                              "device_code": grant["device_code"]})

    context = browser.new_context(viewport={"width": 1000, "height": 720})
    page = context.new_page()
    sign_in(page, server.url)
    page.get_by_role("heading", name="Your AWS accounts").wait_for()
    page.goto(grant["verification_uri_complete"])
    page.get_by_role("heading", name="Approve this command-line sign-in?").wait_for()
    assert page.locator("#device-code").inner_text() == grant["user_code"]
    assert page.locator("#device-client").inner_text() == "awsbroker, the command-line client"
    assert page.locator("#device-address").inner_text() == "127.0.0.1"
    assert re.search(r" UTC \((just now|\d+ seconds? ago)\)$", page.locator("#device-started").inner_text())
    assert " UTC (in " in page.locator("#device-expires").inner_text()
    assert page.locator("#device-elsewhere").count() == 0  # started from this address
    page.reload()  # opening the link again approves nothing either
    assert token().json()["error"] == "authorization_pending"

    page.get_by_role("button", name="Approve").click()
    page.get_by_text("You can close this tab").wait_for()
    r = token()
    assert r.status_code == 200 and r.json()["token_type"] == "Bearer"
    me = httpx.get(f"{server.url}/api/v1/whoami", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
    assert me.json()["username"] == "alice"
    context.close()


def test_awsbroker_login_prints_and_opens_the_complete_link(browser: Any, live: Any, tmp_path: Path) -> None:
    """`awsbroker login` prints the address, the code and the complete link, and hands the complete
    link to the browser ($BROWSER); the person approves it on the confirmation page in Chromium."""
    server = live()
    home = tmp_path / "home"
    home.mkdir()
    opened = tmp_path / "opened"
    recorder = tmp_path / "browser.sh"
    recorder.write_text(f'#!/bin/sh\nprintf %s "$1" > {opened}\n')
    recorder.chmod(0o755)
    env = Laptop(home, server.url).env | {"BROWSER": str(recorder), "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([AWSBROKER, "login"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = ""
    while (m := re.search(r"code:\s+([A-Z]{4}-[A-Z]{4})", seen)) is None:
        line = proc.stderr.readline()
        assert line, f"awsbroker login ended early: {seen}"
        seen += line
    code = m.group(1)
    link = f"{server.url}/device?user_code={code}"
    for _ in range(1000):  # wait for the browser the CLI starts (not a timed assertion: it just waits)
        if opened.exists() and opened.read_text():
            break
        time.sleep(0.01)
    assert opened.read_text() == link  # the link with the code filled in: the confirmation page protects it

    context = browser.new_context()
    page = context.new_page()
    page.goto(opened.read_text())
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(ALICE_PW)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Approve this command-line sign-in?").wait_for()
    assert page.locator("#device-code").inner_text() == code
    page.get_by_role("button", name="Approve").click()
    page.get_by_text("You can close this tab").wait_for()
    err = proc.stderr.read()  # (not communicate(): it would skip what readline() already buffered)
    assert proc.wait(timeout=60) == 0, seen + err
    printed = seen + err
    assert f"open {server.url}/device\n" in printed and f"or open {link}\n" in printed  # all three printed
    assert "as alice" in err
    context.close()
