"""Access reviews against real slapd through the running app: a snapshot, then a person removed
from a group in the directory (as its administrator would) and a mapping deleted through the
admin API; the changes since the snapshot say which loss came from which, and both at once."""

from __future__ import annotations

import hashlib

import pytest

from tests.directory.servers import group_member, person_dn

pytestmark = pytest.mark.ldap
BASE = "/api/v1/admin/reviews/snapshots"
MAPPING = {
    "accounts": [
        {"id": "111122223333", "alias": "dev", "roles": [{"name": "Developer"}]},
        {"id": "444455556666", "alias": "prod", "roles": [{"name": "Admin"}]},
    ],
    "mappings": [{"group": "ephemeral", "account": "dev", "role": "Developer"}],
}


def test_a_directory_change_and_a_mapping_deletion_are_told_apart(app_factory, ldap_settings, admin_headers, slapd):
    client = app_factory(directory=ldap_settings(), mapping=MAPPING)
    client.headers.update(admin_headers)
    made = client.post("/api/v1/admin/mappings", json={"group": "ephemeral", "account": "prod", "role": "Admin"})
    assert made.status_code == 201, made.text
    snap = client.post(BASE, json={"title": "before", "filter": {"group": "ephemeral"}})
    assert snap.status_code == 201, snap.text
    meta = snap.json()
    assert meta["rows"] == 4  # dan and erin, each Developer in dev and Admin in prod
    download = client.get(f"{BASE}/{meta['id']}", params={"format": "csv"})
    assert hashlib.sha256(download.content).hexdigest() == meta["hash"]

    assert client.delete(f"/api/v1/admin/mappings/{made.json()['id']}").status_code == 204
    group_member(slapd, "delete", "ephemeral", person_dn("erin"))
    try:
        r = client.get(f"{BASE}/{meta['id']}/changes")
    finally:
        group_member(slapd, "add", "ephemeral", person_dn("erin"))
    assert r.status_code == 200, r.text
    result = r.json()
    got = {(c["username"], c["account_alias"], c["role_name"]): c for c in result["changes"]}
    assert set(got) == {("dan", "prod", "Admin"), ("erin", "dev", "Developer"), ("erin", "prod", "Admin")}
    assert all(c["change"] == "lost" for c in got.values())
    assert got[("dan", "prod", "Admin")]["why"] == ["mapping"]
    [deleted] = got[("dan", "prod", "Admin")]["explanations"]
    assert deleted["event"] == "deleted" and deleted["versions"][0]["op"] == "deleted"
    assert got[("erin", "dev", "Developer")]["why"] == ["directory"]
    assert got[("erin", "dev", "Developer")]["explanations"][0]["groups"] == ["ephemeral"]
    assert got[("erin", "prod", "Admin")]["why"] == ["directory", "mapping"]
    assert result["filter"] == {"group": "ephemeral"}

    # erin is back in the group: only the mapping's loss is left
    again = client.get(f"{BASE}/{meta['id']}/changes").json()
    assert {(c["username"], tuple(c["why"])) for c in again["changes"]} == {("dan", ("mapping",)), ("erin", ("mapping",))}
