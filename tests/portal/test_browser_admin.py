"""The admin pages in real headless Chromium (Debian's, driven by Playwright): the matrix's cell
leads to its mapping, a mapping refused then created, the audit log filtered, the access report's
CSV downloaded with the session, a mapping created with the keyboard alone, and a 375 px screen
with no sideways scrolling of the page (only the matrix scrolls, inside its own box); a review snapshot
taken, a deleted mapping seen as a loss with its reason, and the snapshot attested, with the keyboard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.portal.conftest import ALICE_PW

pytestmark = [pytest.mark.browser]

ADMINS = {"directory_groups": ["aws-admins"]}


def signed_in(browser: Any, server: Any, **context: Any) -> tuple[Any, Any]:
    ctx = browser.new_context(**({"viewport": {"width": 1100, "height": 800}} | context))
    page = ctx.new_page()
    page.goto(server.url + "/admin")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(ALICE_PW)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Access matrix").wait_for()
    return ctx, page


def test_matrix_cell_leads_to_its_mapping_and_the_environment_filter(browser: Any, live: Any) -> None:
    server = live(admin=ADMINS)
    ctx, page = signed_in(browser, server)
    assert page.get_by_role("columnheader", name="developers").count() == 1
    page.get_by_label("ReadOnly in sandbox-prod for developers").click()
    page.get_by_role("heading", name="Mapping", level=1).wait_for()
    assert page.get_by_label("Directory group").input_value() == "developers"
    assert page.get_by_label("Role name").input_value() == "ReadOnly"
    assert page.get_by_text("Declared in the config file; change it there.").is_visible()
    assert page.get_by_role("button", name="Save").count() == 0

    page.get_by_role("link", name="Access matrix").click()
    page.get_by_label("Environment").select_option("dev")
    page.get_by_role("button", name="Filter").click()
    page.get_by_role("heading", name="Access matrix").wait_for()
    assert "environment=dev" in page.url
    assert page.get_by_role("rowheader").count() == 1 and "sandbox-dev" in page.get_by_role("rowheader").inner_text()
    ctx.close()


def test_create_a_mapping_refused_then_accepted(browser: Any, live: Any) -> None:
    server = live(admin=ADMINS)
    ctx, page = signed_in(browser, server)
    page.get_by_role("link", name="Mappings", exact=True).click()
    page.get_by_label("Directory group").fill("qa-team")
    page.get_by_label("Account (12-digit id or alias)").fill("sandbox-dev")
    page.get_by_label("Role name").fill("Not a role!")
    page.get_by_role("button", name="Create mapping").click()
    role = page.get_by_label("Role name")
    role.wait_for()
    assert role.get_attribute("aria-invalid") == "true"
    assert "invalid_role_name" in page.locator("#role-error").inner_text()
    assert page.get_by_label("Directory group").input_value() == "qa-team"  # the input is kept
    role.fill("Developer")
    page.get_by_role("button", name="Create mapping").click()
    page.get_by_text("Saved.").wait_for()
    assert page.get_by_label("Role name").input_value() == "Developer"
    page.get_by_role("link", name="Access matrix").click()
    assert page.get_by_role("columnheader", name="qa-team").count() == 1
    ctx.close()


def test_audit_filter(browser: Any, live: Any) -> None:
    server = live(admin=ADMINS)
    ctx, page = signed_in(browser, server)
    page.get_by_role("link", name="Naming rules").click()
    page.get_by_label("Name", exact=True).fill("adfs")
    page.get_by_label("Pattern (RE2)").fill(r"^AWS-(?P<account>\d{12})-(?P<role>\w+)$")
    page.get_by_role("button", name="Create rule").click()
    page.get_by_text("Saved.").wait_for()
    page.get_by_role("link", name="Audit log").click()
    page.get_by_label("Actor").fill("directory:alice")
    page.get_by_label("Outcome").select_option("allow")
    page.get_by_role("button", name="Filter").click()
    page.get_by_role("heading", name="Audit log").wait_for()
    rows = page.locator("table.audit tbody tr")
    assert rows.count() == 1
    assert "rule.create" in rows.first.inner_text() and "directory:alice" in rows.first.inner_text()
    page.get_by_text("Details").first.click()
    assert page.locator("table.audit pre").first.is_visible()
    ctx.close()


def test_report_csv_downloads_with_the_session(browser: Any, live: Any, tmp_path: Path) -> None:
    server = live(admin=ADMINS)
    ctx, page = signed_in(browser, server, accept_downloads=True)
    page.get_by_role("link", name="Access report").click()
    page.get_by_label("Account (id or alias)").fill("sandbox-prod")
    page.get_by_role("button", name="Filter").click()
    page.get_by_role("link", name="Download CSV").wait_for()
    assert page.locator("table.report tbody tr").count() == 3
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    saved = tmp_path / "report.csv"
    download.value.save_as(saved)
    api = httpx.get(server.url + "/api/v1/admin/reports/access", params={"account": "sandbox-prod", "format": "csv"},
                    auth=("alice", ALICE_PW))
    assert api.status_code == 200
    assert saved.read_bytes() == api.content
    assert download.value.suggested_filename == "access-report.csv"
    ctx.close()


def _focused_label(page: Any) -> str:
    return str(page.evaluate(
        "() => { const e = document.activeElement; if (!e) return '';"
        " const l = e.id ? document.querySelector('label[for=\"' + e.id + '\"]') : null;"
        " return (l ? l.textContent : e.textContent || '').trim(); }"))


def _tab_to(page: Any, label: str, limit: int = 80) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if _focused_label(page) == label:
            outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
            assert outline != "none", f"{label}: no visible focus"
            return
    raise AssertionError(f"{label!r} is not reachable with Tab")


def test_create_a_mapping_with_the_keyboard_alone(browser: Any, live: Any) -> None:
    server = live(admin=ADMINS)
    ctx, page = signed_in(browser, server)
    page.locator("body").focus()
    _tab_to(page, "Mappings")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Mappings", exact=True).wait_for()
    for label, text in (("Directory group", "kb-team"), ("Account (12-digit id or alias)", "sandbox-prod"),
                        ("Role name", "ReadOnly")):
        _tab_to(page, label)
        page.keyboard.type(text)
    _tab_to(page, "Command line")
    page.keyboard.press("Space")  # console only
    _tab_to(page, "Create mapping")
    page.keyboard.press("Enter")
    page.get_by_text("Saved.").wait_for()
    assert page.get_by_label("Command line").is_checked() is False
    assert page.get_by_label("Console").is_checked()
    _tab_to(page, "Delete this mapping")
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Delete").wait_for()
    _tab_to(page, "Delete")
    page.keyboard.press("Enter")
    page.get_by_text("was deleted").wait_for()
    ctx.close()


def test_narrow_screen_never_scrolls_sideways(browser: Any, live: Any) -> None:
    server = live(admin=ADMINS, mapping={
        "mappings": [{"group": f"a-rather-long-group-name-{i}", "account": "sandbox-dev", "role": "Developer"}
                     for i in range(12)]})
    ctx, page = signed_in(browser, server, viewport={"width": 375, "height": 740})
    fits = "document.documentElement.scrollWidth <= window.innerWidth + 1"
    assert page.evaluate(fits), "/admin"
    matrix = page.locator(".matrix-scroll")
    assert matrix.evaluate("e => e.scrollWidth > e.clientWidth")  # the matrix scrolls inside its own box
    for path in ("/admin/mappings", "/admin/rules", "/admin/audit", "/admin/explain?user=alice", "/admin/report",
                 "/admin/mappings/1", "/admin/mappings/1/delete", "/"):
        page.goto(server.url + path)
        assert page.evaluate(fits), path
    ctx.close()


def test_review_snapshot_loss_and_attestation_with_the_keyboard(browser: Any, live: Any) -> None:
    server = live(admin=ADMINS)
    made = httpx.post(server.url + "/api/v1/admin/mappings", auth=("alice", ALICE_PW),
                      json={"group": "developers", "account": "sandbox-dev", "role": "Admin"})
    assert made.status_code == 201
    ctx, page = signed_in(browser, server)
    page.locator("body").focus()
    _tab_to(page, "Reviews")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Access reviews").wait_for()
    _tab_to(page, "Title (optional)")
    page.keyboard.type("Q4 review")
    _tab_to(page, "Take snapshot")
    page.keyboard.press("Enter")
    page.get_by_text("Snapshot taken.").wait_for()
    number = page.url.split("/admin/reviews/")[1].split("?")[0]
    full = page.locator("#snapshot-hash").inner_text()
    assert len(full) == 64

    page.goto(f"{server.url}/admin/mappings/{made.json()['id']}/delete")
    page.get_by_role("button", name="Delete").click()
    page.get_by_text("was deleted").wait_for()

    page.get_by_role("link", name="Reviews").click()
    row = page.locator(f"#snapshot-{number}")
    assert full[:12] in row.inner_text() and row.locator("code.hash-short").get_attribute("title") == full
    row.get_by_role("link").click()
    page.get_by_role("button", name="Compare").click()  # up to: now, the first choice
    lost = page.locator("table.changes tr.change-lost")
    assert lost.count() == 1
    text = lost.inner_text()
    assert "bob" in text and "Admin" in text
    assert 'mapping "developers" -> 111111111111/Admin deleted in version' in text and "by directory:alice" in text

    page.locator("body").focus()
    _tab_to(page, "Decision")
    page.keyboard.press("ArrowDown")
    assert page.get_by_label("Decision").input_value() == "approved"
    _tab_to(page, "Comment")
    page.keyboard.type("bob's loss is intended")
    _tab_to(page, "Attest")
    page.keyboard.press("Enter")
    page.get_by_text("Attestation saved.").wait_for()
    attestations = page.locator("table.attestations tbody tr")
    assert attestations.count() == 1
    assert "Approved" in attestations.inner_text() and "bob's loss is intended" in attestations.inner_text()

    page.set_viewport_size({"width": 375, "height": 740})
    fits = "document.documentElement.scrollWidth <= window.innerWidth + 1"
    for path in ("/admin/reviews", f"/admin/reviews/{number}", f"/admin/reviews/{number}?against=now"):
        page.goto(server.url + path)
        assert page.evaluate(fits), path
    ctx.close()
