"""One password sign-in behind every door (portal form, OAuth password grant, HTTP Basic on the
user API and on the admin API): one rate limit, one audit shape; a device approval is one
audit event of that shape too (broker.flow owns each decision; the routers translate)."""

from __future__ import annotations

import base64
from typing import Any

from tests.portal.conftest import ALICE_PW, audit, sign_in
from tests.portal.test_device import decide, start

DOORS = ("portal", "cli", "api", "admin-api")
"""The ``via`` of each door's sign-in events."""


def _basic(user: str, pw: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}


def _knock(client: Any, door: str, password: str) -> int:
    if door == "portal":
        status: int = sign_in(client, "alice", password).status_code
        client.cookies.clear()
        return status
    if door == "cli":
        return int(client.post("/oauth/token", data={"grant_type": "password", "client_id": "awsbroker",
                                                     "username": "alice", "password": password}).status_code)
    if door == "api":
        return int(client.get("/api/v1/whoami", headers=_basic("alice", password)).status_code)
    return int(client.get("/api/v1/admin/accounts", headers=_basic("alice", password)).status_code)


def test_every_door_counts_in_one_rate_limit_and_audits_alike(build: Any, admin_headers: dict[str, str]) -> None:
    client = build(api={"password_login": True}, admin={"directory_groups": ["aws-admins"]},
                   rate_limits={"login_failures_per_user": len(DOORS)})
    refused = {"portal": 401, "cli": 400, "api": 401, "admin-api": 401}  # the password grant: invalid_grant
    for door in DOORS:
        assert _knock(client, door, "guess") == refused[door], door
    for door in DOORS:  # one failure at each door: alice's allowance is spent at every door
        assert _knock(client, door, ALICE_PW) == 429, door
    denies = [e for e in audit(client, admin_headers, action="login") if e["outcome"] == "deny"]
    assert sorted((e["details"]["via"], e["details"]["code"]) for e in denies if e["details"]["code"] != "rate_limited") \
        == sorted((door, "invalid_credentials") for door in DOORS)
    assert [e["details"]["code"] for e in denies].count("rate_limited") == 1  # once per window
    assert all({"user", "immutable_id", "via", "code", "reason"} <= set(e["details"]) for e in denies)


def test_each_door_signs_in_with_the_same_event(build: Any, admin_headers: dict[str, str]) -> None:
    client = build(api={"password_login": True}, admin={"directory_groups": ["aws-admins"]})
    for door in DOORS:
        assert _knock(client, door, ALICE_PW) in (200, 303), door
    events = [e for e in audit(client, admin_headers, action="login") if e["outcome"] == "allow"]
    assert sorted(e["details"]["via"] for e in events) == sorted(DOORS)
    assert all(e["actor"] == "user:alice" and e["details"]["immutable_id"] == "a1b2c3d4-0000-4000-8000-000000000001"
               for e in events)
    (admitted,) = audit(client, admin_headers, action="admin.sign_in")
    assert admitted["outcome"] == "allow" and set(events[0]["details"]) - {"source"} <= set(admitted["details"])


def test_a_device_approval_is_one_audit_event_of_the_sign_in_shape(portal: Any, admin_headers: dict[str, str]) -> None:
    grant = start(portal)
    sign_in(portal)
    assert decide(portal, grant["user_code"]).status_code == 200
    (login,) = audit(portal, admin_headers, action="login")
    (approved,) = audit(portal, admin_headers, action="device.")
    assert approved["action"] == "device.approve" and approved["outcome"] == "allow"
    assert approved["actor"] == login["actor"] == "user:alice"
    assert approved["details"]["immutable_id"] == login["details"]["immutable_id"]
    assert approved["details"]["via"] == "device" and approved["details"]["groups"] == ["aws-admins", "developers"]
    assert approved["request_id"] and approved["source_ip"] == login["source_ip"]
