"""An approver must still be in an approver group at the moment of approval (issue 16): the
groups are re-read from slapd when alice decides, past the group cache, so alice removed from
aws-admins by an LDAP modify can neither approve bob's request nor end his grant, though her
bearer token and the cached groups (``directory.cache.ttl_seconds: 300``) still say aws-admins."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import ADMIN_TOKEN
from tests.directory.servers import group_member, person_dn

pytestmark = pytest.mark.ldap

MAPPING = {
    "accounts": [{"id": "111122223333", "alias": "prod", "roles": [{"name": "ReadOnly", "max_session_duration": 3600}]}],
    "mappings": [{"group": "developers", "account": "prod", "role": "ReadOnly", "access": "eligible",
                  "policy": "prod-readonly"}],  # alice and bob are developers; alice is in aws-admins
}
POLICY = {"approver_groups": ["aws-admins"], "max_duration": "2h", "reason_required": True}


class People:
    def __init__(self, client: Any, passwords: dict[str, str]) -> None:
        self.client = client
        self.tokens = {who: self._token(who, passwords[who]) for who in ("alice", "bob")}

    def _token(self, who: str, password: str) -> str:
        r = self.client.post("/oauth/token", data={"grant_type": "password", "username": who, "password": password,
                                                   "client_id": "awsbroker"})
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def call(self, who: str, method: str, path: str, **kw: Any) -> Any:
        return self.client.request(method, path, headers={"Authorization": f"Bearer {self.tokens[who]}"}, **kw)

    def request(self) -> int:
        made = self.call("bob", "POST", "/api/v1/requests",
                         json={"account": "prod", "role": "ReadOnly", "reason": "incident INC-7", "duration": "1h"})
        assert made.status_code == 201, made.text
        return int(made.json()["id"])

    def state(self, request_id: int) -> str:
        mine = self.call("bob", "GET", "/api/v1/requests").json()["mine"]
        return str(next(r["state"] for r in mine if r["id"] == request_id))

    def credentials(self) -> int:
        return int(self.call("bob", "POST", "/api/v1/credentials", json={"account": "prod", "role": "ReadOnly"})
                   .status_code)

    def audit(self, action: str) -> list[dict[str, Any]]:
        page = self.client.get("/api/v1/admin/audit", params={"action": action, "limit": 100},
                               headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert page.status_code == 200, page.text
        return list(page.json()["items"])


@pytest.fixture
def people(app_factory: Any, ldap_settings: Callable[..., dict[str, Any]], ldap_passwords: dict[str, str]) -> People:
    client = app_factory(directory=ldap_settings(cache={"ttl_seconds": 300}), mapping=MAPPING,
                         jit={"policies": {"prod-readonly": POLICY}}, api={"password_login": True})
    return People(client, ldap_passwords)  # both sign-ins read the groups: cached for 300 s from now


@pytest.fixture
def alice_left(slapd: Any) -> Callable[[], None]:
    """Remove alice from aws-admins (put back after the test). Alice is its only member and a
    groupOfNames needs one: a bulk user stands in while she is out."""
    removed: list[bool] = []

    def leave() -> None:
        group_member(slapd, "add", "aws-admins", person_dn("user0999"))
        group_member(slapd, "delete", "aws-admins", person_dn("alice"))
        removed.append(True)

    yield leave  # type: ignore[misc]
    if removed:
        group_member(slapd, "add", "aws-admins", person_dn("alice"))
        group_member(slapd, "delete", "aws-admins", person_dn("user0999"))


def _code(r: Any) -> str:
    return str(r.json()["error"]["code"])


def test_an_approver_removed_from_the_approver_group_cannot_approve_within_the_cache_ttl(people, alice_left):
    rid = people.request()
    listed = people.call("alice", "GET", "/api/v1/requests").json()["to_decide"]
    assert [r["id"] for r in listed] == [rid]  # the cached groups: alice still sees it to decide
    alice_left()
    refused = people.call("alice", "POST", f"/api/v1/requests/{rid}/approve")
    assert refused.status_code == 403 and _code(refused) == "not_approver", refused.text
    assert people.state(rid) == "pending" and people.credentials() == 403  # nothing granted
    (event,) = people.audit("access.approve")
    assert event["outcome"] == "deny" and event["actor"] == "user:alice" and event["target_id"] == str(rid)
    assert event["details"]["code"] == "not_approver" and "aws-admins" not in event["details"]["groups"]
    denied = people.call("alice", "POST", f"/api/v1/requests/{rid}/deny")
    assert denied.status_code == 403 and _code(denied) == "not_approver"
    assert people.state(rid) == "pending"


def test_an_approver_removed_from_the_approver_group_cannot_end_a_grant(people, alice_left):
    rid = people.request()
    approved = people.call("alice", "POST", f"/api/v1/requests/{rid}/approve")
    assert approved.status_code == 200 and approved.json()["state"] == "approved", approved.text
    assert people.credentials() == 200
    alice_left()
    refused = people.call("alice", "POST", f"/api/v1/grants/{rid}/end")
    assert refused.status_code == 403 and _code(refused) == "not_approver", refused.text
    assert people.state(rid) == "approved" and people.credentials() == 200  # the grant runs on
    (event,) = people.audit("access.end")
    assert event["outcome"] == "deny" and event["actor"] == "user:alice" and event["details"]["code"] == "not_approver"
