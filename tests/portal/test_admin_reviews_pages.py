"""The access-review pages of the admin portal (TestClient, real app on SQLite): a snapshot taken
through the page (audited as the directory admin), refused without the CSRF token, its CSV the
API's bytes with the hash the page shows, what changed since (a deleted mapping, with its reason),
attestations refused then saved, non-admins and unknown snapshots."""

from __future__ import annotations

import hashlib
import html
import re
from typing import Any

import pytest

from tests.portal.conftest import BOB_PW, audit, csrf_of, sign_in
from tests.portal.test_admin_pages import ADMINS, field_error, new_mapping


@pytest.fixture
def admin(build: Any) -> Any:
    client = build(admin=ADMINS)
    assert sign_in(client).status_code == 303
    return client


def take(client: Any, **fields: str) -> Any:
    form = client.get("/admin/reviews")
    return client.post("/admin/reviews", data={"csrf_token": csrf_of(form.text), **fields})


def number_of(response: Any) -> int:
    m = re.fullmatch(r"/admin/reviews/(\d+)\?taken=1", response.headers["location"])
    assert m, response.headers["location"]
    return int(m.group(1))


def text_of(page: str) -> str:
    """The page as a person reads it: tags gone, entities decoded, spaces collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def change_rows(page: str) -> list[str]:
    body = page.split('<table class="list changes">')[1].split("</tbody>")[0]
    return [text_of(row) for row in re.findall(r"<tr class=\"change-[a-z_]+\">(.*?)</tr>", body, re.DOTALL)]


def test_take_a_snapshot_through_the_page_audited_as_the_directory_admin(admin: Any, admin_headers: dict[str, str]) -> None:
    r = take(admin, title="Q4 2026, production", account="sandbox-prod")
    assert r.status_code == 303
    n = number_of(r)
    (event,) = audit(admin, admin_headers, action="review.snapshot", target_id=str(n))
    assert event["actor"] == "directory:alice" and event["details"]["filter"] == {"account": "sandbox-prod"}
    api = admin.get(f"/api/v1/admin/reviews/snapshots/{n}", headers=admin_headers).json()
    assert (api["actor"], api["title"], api["rows"]) == ("directory:alice", "Q4 2026, production", 3)
    page = admin.get(r.headers["location"])
    assert page.status_code == 200 and "Snapshot taken." in page.text
    assert f'<code class="hash" id="snapshot-hash">{api["hash"]}</code>' in page.text
    listing = admin.get("/admin/reviews").text
    assert f'<code class="hash-short" title="{api["hash"]}">{api["hash"][:12]}…</code>' in listing
    row = text_of(listing.split(f'<tr id="snapshot-{n}">')[1].split("</tr>")[0])
    assert "Q4 2026, production" in row and "directory:alice" in row and "account: sandbox-prod" in row
    assert 'href="/admin/reviews" aria-current="page"' in listing


def test_a_snapshot_refused_by_the_api_model_keeps_the_input(admin: Any, admin_headers: dict[str, str]) -> None:
    r = take(admin, title="x" * 201, group="developers")
    assert r.status_code == 422
    assert "string_too_long" in field_error(r.text, "title") or "at most 200" in field_error(r.text, "title")
    assert 'name="group" type="text" value="developers"' in r.text
    assert admin.get("/api/v1/admin/reviews/snapshots", headers=admin_headers).json()["items"] == []


def test_posts_without_the_csrf_token_create_nothing(admin: Any, admin_headers: dict[str, str]) -> None:
    r = admin.post("/admin/reviews", data={"title": "forged"})
    assert r.status_code == 403
    r = admin.post("/admin/reviews", data={"title": "forged", "csrf_token": "not-the-token"})
    assert r.status_code == 403
    assert admin.get("/api/v1/admin/reviews/snapshots", headers=admin_headers).json()["items"] == []
    n = number_of(take(admin))
    assert admin.post(f"/admin/reviews/{n}/attestations", data={"decision": "approved"}).status_code == 403
    assert admin.get(f"/api/v1/admin/reviews/snapshots/{n}", headers=admin_headers).json()["attestations"] == []
    assert audit(admin, admin_headers, action="review.attest") == []


def test_csv_is_the_apis_bytes_and_its_sha256_is_the_shown_hash(admin: Any, admin_headers: dict[str, str]) -> None:
    n = number_of(take(admin))
    page = admin.get(f"/admin/reviews/{n}").text
    assert f'href="/admin/reviews/{n}.csv"' in page
    shown = re.search(r'<code class="hash" id="snapshot-hash">([0-9a-f]{64})</code>', page)
    assert shown
    csv = admin.get(f"/admin/reviews/{n}.csv")
    api = admin.get(f"/api/v1/admin/reviews/snapshots/{n}", params={"format": "csv"}, headers=admin_headers)
    assert csv.status_code == api.status_code == 200
    assert csv.content == api.content and csv.content.count(b"\r\n") == 1 + 6
    assert hashlib.sha256(csv.content).hexdigest() == shown.group(1)
    assert csv.headers["content-disposition"] == f'attachment; filename="access-review-{n}.csv"'
    assert csv.headers["cache-control"] == "no-store"


def test_a_deleted_mapping_shows_in_the_changes_with_its_reason(admin: Any, admin_headers: dict[str, str]) -> None:
    made = new_mapping(admin, group="developers", account="sandbox-dev", role="Admin")
    ref = made.headers["location"].split("/")[-1].split("?")[0]
    n = number_of(take(admin, title="before"))
    unasked = admin.get(f"/admin/reviews/{n}").text  # a snapshot's page compares only when asked
    assert "Choose what to compare with" in unasked and "Nothing changed" not in unasked
    assert "Nothing changed" in admin.get(f"/admin/reviews/{n}", params={"against": "now"}).text
    confirm = admin.get(f"/admin/mappings/{ref}/delete")
    assert admin.post(f"/admin/mappings/{ref}/delete", data={"csrf_token": csrf_of(confirm.text)}).status_code == 303
    version = max(v["number"] for v in admin.get("/api/v1/admin/history/versions", headers=admin_headers).json()["items"])

    page = admin.get(f"/admin/reviews/{n}", params={"against": "now"})
    assert page.status_code == 200
    assert "1 gained" not in page.text and "0 gained, 1 lost, 1 with another reason" in text_of(page.text)
    changed, lost = change_rows(page.text)  # person by person: alice, then bob
    assert lost.startswith(" Lost bob sandbox-dev 111111111111 Admin")
    reason = f'Mapping: mapping "developers" -> 111111111111/Admin deleted in version {version} by directory:alice'
    assert reason in lost and reason in changed
    assert changed.startswith(" Reason changed alice") and "mapping " + ref in changed

    m = number_of(take(admin, title="after"))
    between = admin.get(f"/admin/reviews/{n}", params={"against": str(m)})
    assert f'<option value="{m}" selected>' in between.text
    assert change_rows(between.text) == [changed, lost]
    assert "0 gained, 0 lost, 0 with another reason" in text_of(admin.get(f"/admin/reviews/{m}?against=now").text)


def test_changes_against_a_snapshot_of_another_filter_is_said_on_the_page(admin: Any) -> None:
    n, m = number_of(take(admin)), number_of(take(admin, user="bob"))
    r = admin.get(f"/admin/reviews/{n}", params={"against": str(m)})
    assert r.status_code == 422 and "different filters" in r.text
    assert f'<option value="{m}"' not in r.text  # only snapshots of the same filter are offered
    r = admin.get(f"/admin/reviews/{n}", params={"against": "9999"})
    assert r.status_code == 404 and "unknown_snapshot" in r.text and "Review snapshot" in r.text


def test_attest_refused_then_saved(admin: Any, admin_headers: dict[str, str]) -> None:
    n = number_of(take(admin))
    form = admin.get(f"/admin/reviews/{n}")
    r = admin.post(f"/admin/reviews/{n}/attestations",
                   data={"csrf_token": csrf_of(form.text), "decision": "maybe", "comment": "looked at prod"})
    assert r.status_code == 422
    assert "approved" in field_error(r.text, "decision")
    assert 'aria-invalid="true"' in r.text.split('id="f-decision"')[1].split(">")[0]
    assert ">looked at prod</textarea>" in r.text
    r = admin.post(f"/admin/reviews/{n}/attestations",
                   data={"csrf_token": csrf_of(form.text), "decision": "approved", "comment": "x" * 4001})
    assert r.status_code == 422 and field_error(r.text, "comment")
    assert admin.get(f"/api/v1/admin/reviews/snapshots/{n}", headers=admin_headers).json()["attestations"] == []

    r = admin.post(f"/admin/reviews/{n}/attestations",
                   data={"csrf_token": csrf_of(form.text), "decision": "approved", "comment": "looked at prod"})
    assert r.status_code == 303 and r.headers["location"] == f"/admin/reviews/{n}?attested=1#attestations"
    page = text_of(admin.get(r.headers["location"]).text)
    assert "Attestation saved." in page and "directory:alice Approved looked at prod" in page
    (a,) = admin.get(f"/api/v1/admin/reviews/snapshots/{n}", headers=admin_headers).json()["attestations"]
    assert (a["actor"], a["decision"], a["comment"]) == ("directory:alice", "approved", "looked at prod")
    (event,) = audit(admin, admin_headers, action="review.attest")
    assert event["actor"] == "directory:alice" and event["target_id"] == str(n)
    row = text_of(admin.get("/admin/reviews").text.split(f'<tr id="snapshot-{n}">')[1].split("</tr>")[0])
    assert "1 latest: Approved by directory:alice" in row


def test_a_person_in_no_admin_group_gets_403(build: Any, admin_headers: dict[str, str]) -> None:
    client = build(admin=ADMINS)
    n = client.post("/api/v1/admin/reviews/snapshots", json={}, headers=admin_headers).json()["id"]
    sign_in(client, "bob", BOB_PW)
    for path in ("/admin/reviews", f"/admin/reviews/{n}", f"/admin/reviews/{n}.csv", f"/admin/reviews/{n}?against=now"):
        r = client.get(path)
        assert r.status_code == 403, path
        assert "Admins only" in r.text and "access-review" not in r.text
    token = csrf_of(client.get("/").text)
    assert client.post("/admin/reviews", data={"csrf_token": token}).status_code == 403
    assert client.post(f"/admin/reviews/{n}/attestations", data={"csrf_token": token, "decision": "approved"}).status_code == 403
    assert len(client.get("/api/v1/admin/reviews/snapshots", headers=admin_headers).json()["items"]) == 1
    assert audit(client, admin_headers, action="review.attest") == []


def test_unknown_snapshot_is_a_404_page(admin: Any) -> None:
    for path in ("/admin/reviews/1", "/admin/reviews/abc", "/admin/reviews/0", "/admin/reviews/99999999999999999999999",
                 "/admin/reviews/1.csv", "/admin/reviews/x.csv"):
        r = admin.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("text/html")
        assert "no access-review snapshot" in html.unescape(r.text)
    token = csrf_of(admin.get("/admin/reviews").text)
    assert admin.post("/admin/reviews/7/attestations", data={"csrf_token": token, "decision": "approved"}).status_code == 404


def test_a_long_list_of_changes_is_cut_and_says_where_the_rest_is(admin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from broker.web import admin_review_pages

    made = new_mapping(admin, group="developers", account="sandbox-dev", role="Admin")
    n = number_of(take(admin))
    ref = made.headers["location"].split("/")[-1].split("?")[0]
    confirm = admin.get(f"/admin/mappings/{ref}/delete")
    admin.post(f"/admin/mappings/{ref}/delete", data={"csrf_token": csrf_of(confirm.text)})
    monkeypatch.setattr(admin_review_pages, "CHANGES_SHOWN", 1)
    page = admin.get(f"/admin/reviews/{n}?against=now").text
    assert len(change_rows(page)) == 1 and "1 lost, 1 with another reason" in text_of(page)
    assert f"GET /api/v1/admin/reviews/snapshots/{n}/changes" in page


def test_the_list_pages_by_keyset_like_the_api(admin: Any, admin_headers: dict[str, str]) -> None:
    for i in range(51):
        assert admin.post("/api/v1/admin/reviews/snapshots", json={"title": f"s{i}"}, headers=admin_headers).status_code == 201
    first = admin.get("/admin/reviews").text
    assert first.count('<tr id="snapshot-') == 50 and '<tr id="snapshot-51">' in first and '<tr id="snapshot-1">' not in first
    older = re.search(r'<a href="(/admin/reviews\?cursor=\d+)" rel="next">Older snapshots</a>', first)
    assert older and older.group(1) == "/admin/reviews?cursor=2"
    last = admin.get(older.group(1)).text
    assert last.count('<tr id="snapshot-') == 1 and '<tr id="snapshot-1">' in last
    assert "Older snapshots" not in last and '<a href="/admin/reviews">Newest</a>' in last
    assert admin.get("/admin/reviews", params={"cursor": "-1"}).status_code == 422


def test_review_pages_are_never_cached_nor_framed_and_run_no_inline_code(admin: Any) -> None:
    n = number_of(take(admin))
    for path in ("/admin/reviews", f"/admin/reviews/{n}", f"/admin/reviews/{n}?against=now"):
        r = admin.get(path)
        assert r.status_code == 200, path
        assert r.headers["cache-control"] == "no-store" and r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert "<script>" not in r.text and "style=" not in r.text and "<style" not in r.text
        assert r.text.count('name="csrf_token"') == r.text.count('method="post"') >= 1
