"""Every request for admins: ``GET /api/v1/admin/requests`` (filters, newest first, pages) and the
admin requests page (/admin/requests: the same list with its approvals, End now for an active
grant behind the session's CSRF token, audited with the admin's name)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import ADMIN_TOKEN
from tests.jit.conftest import Jit
from tests.portal.conftest import BOB_PW, csrf_of, sign_in

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _history(j: Jit) -> dict[str, int]:
    """Four requests of bob's: denied, cancelled, approved then past its end, and one active grant;
    a fifth pending one is made by the test when it needs it."""
    ids = {}
    ids["denied"] = j.request().json()["id"]
    assert j.decide("alice", ids["denied"], "deny").status_code == 200
    ids["cancelled"] = j.request().json()["id"]
    assert j.call("bob", "POST", f"/api/v1/requests/{ids['cancelled']}/cancel").status_code == 200
    ids["expired"] = j.request(duration="1h").json()["id"]
    assert j.decide("alice", ids["expired"], "approve").status_code == 200
    j.clock.advance(3601)  # its end passed: nobody listed it since, so the row still says approved
    ids["approved"] = j.request(duration="1h").json()["id"]
    assert j.decide("alice", ids["approved"], "approve").status_code == 200
    return ids


def _page(j: Jit, **params: Any) -> Any:
    return j.client.get("/api/v1/admin/requests", params=params, headers=ADMIN)


def test_the_admin_api_lists_every_request_newest_first_filtered_and_paged(jit: Any) -> None:
    j: Jit = jit()
    ids = _history(j)
    everything = _page(j)
    assert everything.status_code == 200, everything.text
    items = everything.json()["items"]
    assert [r["id"] for r in items] == sorted(ids.values(), reverse=True)
    assert everything.json()["next_cursor"] is None
    by_id = {r["id"]: r for r in items}
    assert {name: by_id[rid]["state"] for name, rid in ids.items()} == {n: n for n in ids}
    assert by_id[ids["approved"]]["active"] and not by_id[ids["expired"]]["active"]
    assert by_id[ids["approved"]]["approvals"][0]["by"] == "alice"
    assert by_id[ids["approved"]]["approvals"][0]["groups"] == ["aws-admins"]  # the approver's groups then
    assert "by_id" not in by_id[ids["approved"]]["approvals"][0]

    for state, name in (("approved", "approved"), ("expired", "expired"), ("denied", "denied")):
        assert [r["id"] for r in _page(j, state=state).json()["items"]] == [ids[name]], state
    assert [r["id"] for r in _page(j, requester="BOB", state="cancelled").json()["items"]] == [ids["cancelled"]]
    assert _page(j, requester="alice").json()["items"] == []
    assert len(_page(j, account="sandbox-prod").json()["items"]) == 4  # the alias
    account_id = items[0]["account_id"]
    assert len(_page(j, account=account_id, role="readonly").json()["items"]) == 4
    assert _page(j, account="sandbox-dev").json()["items"] == []
    assert _page(j, role="Admin").json()["items"] == []

    first = _page(j, limit=3).json()
    assert [r["id"] for r in first["items"]] == sorted(ids.values(), reverse=True)[:3]
    rest = _page(j, limit=3, cursor=first["next_cursor"]).json()
    assert [r["id"] for r in rest["items"]] == [min(ids.values())] and rest["next_cursor"] is None


def test_the_admin_api_refuses_a_bad_state_and_anyone_without_the_admin_token(jit: Any) -> None:
    j: Jit = jit()
    j.request()
    bad = _page(j, state="active")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_value"
    assert _page(j, cursor=-1).status_code == 422
    assert j.client.get("/api/v1/admin/requests").status_code == 401
    bob = j.client.get("/api/v1/admin/requests", auth=("bob", BOB_PW))
    assert bob.status_code == 403 and "items" not in bob.text


def test_the_admin_page_lists_the_requests_and_ends_an_active_grant_as_the_admin(jit: Any) -> None:
    j: Jit = jit()
    ids = _history(j)
    client = TestClient(j.client.app)  # alice's browser: its own cookies, apart from the API calls' client
    assert j.credentials().status_code == 200  # bob's active grant works
    assert sign_in(client).status_code in (200, 303)  # alice, in aws-admins (admin.directory_groups)
    page = client.get("/admin/requests")
    assert page.status_code == 200, page.text
    for rid in ids.values():
        assert f'id="request-{rid}"' in page.text
    assert page.text.index(f'id="request-{ids["approved"]}"') < page.text.index(f'id="request-{ids["denied"]}"')
    assert "alice" in page.text and "aws-admins" in page.text  # the approval and the groups then
    assert page.text.count(">End now</button>") == 1  # only the active grant

    filtered = client.get("/admin/requests", params={"state": "denied"})
    assert f'id="request-{ids["denied"]}"' in filtered.text and f'id="request-{ids["approved"]}"' not in filtered.text
    bad = client.get("/admin/requests", params={"state": "sideways"})
    assert bad.status_code == 422 and "one of: pending" in bad.text

    forged = client.post(f"/admin/requests/{ids['approved']}/end", data={"csrf_token": "forged"},
                         follow_redirects=False)
    assert forged.status_code == 403 and j.credentials().status_code == 200  # nothing changed

    ended = client.post(f"/admin/requests/{ids['approved']}/end", data={"csrf_token": csrf_of(page.text)},
                        follow_redirects=False)
    assert ended.status_code == 303 and ended.headers["location"].startswith("/admin/requests?")
    assert j.credentials().json()["error"]["code"] == "grant_required"
    shown = client.get(ended.headers["location"]).text
    assert "The grant was ended" in shown and "by directory:alice" in shown and ">End now</button>" not in shown
    (event,) = [e for e in j.audit("access.end") if e["outcome"] == "allow"]
    assert event["actor"] == "directory:alice" and event["target_id"] == str(ids["approved"])
    assert event["details"]["via"] == "admin-page"

    again = client.post(f"/admin/requests/{ids['approved']}/end", data={"csrf_token": csrf_of(page.text)},
                        follow_redirects=False)
    assert again.status_code == 409 and "is ended" in again.text
    gone = client.post("/admin/requests/9999/end", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert gone.status_code == 404


def test_the_admin_page_is_for_admins_only(jit: Any) -> None:
    j: Jit = jit()
    client = j.client
    assert client.get("/admin/requests", follow_redirects=False).status_code == 303  # to sign in
    sign_in(client, "bob", BOB_PW)
    r = client.get("/admin/requests")
    assert r.status_code == 403 and "Admins only" in r.text
