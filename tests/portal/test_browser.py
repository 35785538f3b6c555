"""The portal in real headless Chromium (Debian's, driven by Playwright): sign in, search as you
type, favorite, the Console button landing on the SANDBOX console, and a device-code approval
while `awsbroker login` polls. Saves the README's screenshots to docs/screenshots/ only when asked
(`make screenshots` sets BROKER_SCREENSHOTS=1): otherwise running the tests changes no tracked file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Laptop
from tests.conftest import ROOT, SCREENSHOTS
from tests.portal.conftest import ALICE_PW

pytestmark = [pytest.mark.browser, pytest.mark.sts]

SHOTS = ROOT / "docs" / "screenshots"


def shot(page: Any, name: str) -> None:
    if not SCREENSHOTS:
        return
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def sign_in(page: Any, url: str) -> None:
    page.goto(url + "/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(ALICE_PW)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_search_favorite_and_console(browser: Any, live: Any) -> None:
    server = live()
    context = browser.new_context(viewport={"width": 1000, "height": 720})
    page = context.new_page()
    page.goto(server.url + "/")
    assert page.url.startswith(server.url + "/login")
    shot(page, "login")
    sign_in(page, server.url)
    page.get_by_role("heading", name="Your AWS accounts").wait_for()
    roles = page.locator("#roles li.role")
    assert roles.count() == 4

    page.get_by_label("Search accounts and roles").press_sequentially("prod read")
    assert page.locator("#roles li.role:visible").count() == 1
    assert page.locator("#count").inner_text() == "1 of 4 roles"
    page.get_by_label("Search accounts and roles").fill("")
    page.get_by_label("Search accounts and roles").press("Backspace")

    page.get_by_role("button", name="Add sandbox-dev Admin to favorites").click()
    page.get_by_role("heading", name="Favorites").wait_for()
    shot(page, "home")

    with context.expect_page() as new_tab:
        page.get_by_role("button", name="Open the AWS console as Admin in sandbox-dev (new tab)").first.click()
    console = new_tab.value
    console.wait_for_load_state()
    assert "/sandbox/console/" in console.url
    assert "SANDBOX" in console.content() and "arn:aws:iam::111111111111:role/Admin" in console.content()
    shot(console, "console-sandbox")

    narrow = browser.new_context(viewport={"width": 390, "height": 800}, storage_state=context.storage_state())
    phone = narrow.new_page()
    phone.goto(server.url + "/")
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")  # no sideways scrolling
    shot(phone, "home-narrow")
    narrow.close()
    context.close()


def test_device_approval_while_the_cli_polls(browser: Any, live: Any, tmp_path: Path) -> None:
    server = live()
    home = tmp_path / "home"
    home.mkdir()
    laptop = Laptop(home, server.url)
    context = browser.new_context(viewport={"width": 1000, "height": 640})
    page = context.new_page()

    def approve(code: str) -> None:
        page.goto(f"{server.url}/device?user_code={code}")
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill(ALICE_PW)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name="Approve this command-line sign-in?").wait_for()
        assert page.locator("#device-code").inner_text() == code
        shot(page, "device-approval")
        page.get_by_role("button", name="Approve").click()
        page.get_by_text("You can close this tab").wait_for()

    proc, err, _ = laptop.device_login(approve)
    assert proc.returncode == 0, err
    assert re.search(r"Logged in to .* as alice", err)
    assert laptop.run("roles").returncode == 0
    context.close()


def test_role_rows_labels_region_panel_copy_buttons_and_favorites_once(browser: Any, live: Any) -> None:
    server = live()
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    page = context.new_page()
    sign_in(page, server.url)
    page.get_by_role("heading", name="Your AWS accounts").wait_for()

    prod_admin = page.locator('#roles li.role[data-key="222222222222/admin"]')
    assert prod_admin.locator(".channel").inner_text() == "console only"
    assert prod_admin.get_by_text("Command line", exact=True).count() == 0
    dev_admin = page.locator('#roles li.role[data-key="111111111111/admin"]')
    assert dev_admin.locator(".max-session").inner_text() == "up to 12 h"

    # the service/region panel opens below the row: the buttons keep their place and size
    console = dev_admin.get_by_role("button", name="Open the AWS console as Admin in sandbox-dev (new tab)")
    before = console.bounding_box()
    dev_admin.get_by_text("Service / region").click()
    region = dev_admin.get_by_label("Region", exact=True)
    assert region.input_value() == "eu-west-1"
    options = region.locator("option").all_inner_texts()
    assert "us-east-1" in options and not [o for o in options if o.startswith("cn-")]
    assert console.bounding_box() == before
    dev_admin.get_by_label("Service", exact=True).fill("cloudwatch")
    region.select_option("eu-north-1")
    with context.expect_page() as new_tab:
        dev_admin.get_by_role("button", name="on this service and region").click()
    landing = new_tab.value
    landing.wait_for_load_state()
    assert "eu-north-1.console.aws.amazon.com/cloudwatch/home" in landing.content()
    landing.close()

    # Copy puts exactly the command on the clipboard
    dev_admin.get_by_text("Command line", exact=True).click()
    dev_admin.get_by_role("button", name="Copy the awsbroker command for Admin in sandbox-dev").click()
    dev_admin.get_by_role("button", name="Copy the awsbroker command for Admin in sandbox-dev").filter(has_text="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == \
        'eval "$(awsbroker credentials --account sandbox-dev --role Admin --format env)"'

    # a favorite is one shortcut in Favorites (and the role is still once under All accounts)
    page.reload()
    page.get_by_role("button", name="Add sandbox-dev Admin to favorites").click()
    page.get_by_role("heading", name="Favorites").wait_for()
    favorites = page.locator("section", has=page.get_by_role("heading", name="Favorites"))
    assert favorites.locator('li[data-key="111111111111/admin"]').count() == 1
    recents = page.locator("section", has=page.get_by_role("heading", name="Recently used"))
    assert recents.locator('li[data-key="111111111111/admin"]').count() == 1
    assert page.locator('#roles li.role:not(.shortcut)[data-key="111111111111/admin"]').count() == 1

    # on a phone, with both panels open, nothing runs off the screen; credentials wrap
    narrow = browser.new_context(viewport={"width": 360, "height": 800}, storage_state=context.storage_state())
    phone = narrow.new_page()
    phone.goto(server.url + "/")
    row = phone.locator('#roles li.role:not(.shortcut)[data-key="111111111111/admin"]')
    row.get_by_text("Service / region").click()
    row.get_by_text("Command line", exact=True).click()
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    with narrow.expect_page() as creds_tab:
        row.get_by_role("button", name="Show temporary credentials as export lines").click()
    creds = creds_tab.value
    creds.wait_for_load_state()
    creds.get_by_role("button", name="Copy AWS_SESSION_TOKEN").wait_for()
    assert creds.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    narrow.close()
    context.close()
