"""Access reviews over HTTP and on the command line, with the static directory: a snapshot's
metadata and hash (reproducible from its CSV download, byte for byte), the changes since it
across a mapping change and a directory change (each explained, both at once), snapshot against
snapshot, attestations (audited), unknown snapshots, filters that name nothing."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from broker.cli.server import app as cli
from broker.reports.access import COLUMNS
from broker.web.admin_reviews import Changes, SnapshotMeta, SnapshotView
from tests.conftest import make_config

HASH = "$2b$12$LYTJyrgmep47mVJhwtcAcO.ecIPdoQL7e0WhfAYEEqMhfUJ05YdhO"
BASE = "/api/v1/admin/reviews/snapshots"


def user(name: str, *groups: str, **extra: Any) -> dict[str, Any]:
    return {"username": name, "password_hash": HASH, "groups": list(groups), **extra}


BEFORE = {
    "type": "static",
    "users": [user("alice", "ops"), user("bob", "dev"), user("carol", "qa"), user("erin", "staff")],
}
AFTER = {  # alice left ops, carol left qa, erin joined ops, dave is new
    "type": "static",
    "users": [user("alice", "staff"), user("bob", "dev"), user("carol"), user("erin", "staff", "ops"),
              user("dave", "ops")],
}
MAPPING = {
    "accounts": [
        {"id": "111122223333", "alias": "prod", "roles": [{"name": "Admin"}, {"name": "ReadOnly"}]},
        {"id": "444455556666", "alias": "dev", "roles": [{"name": "Admin"}]},
    ],
    "mappings": [{"group": "ops", "account": "prod", "role": "Admin"}],
}


@pytest.fixture
def reviews(app_factory, admin_headers, tmp_path):
    """``reviews(directory)``: a broker on the one database of this test (a restart with another directory)."""

    def build(directory: dict[str, Any]) -> Any:
        client = app_factory(make_config(tmp_path, directory=directory, mapping=MAPPING))
        client.headers.update(admin_headers)
        return client

    return build


def api_mappings(client: Any) -> dict[str, int]:
    made = {}
    for group, account, role in (("dev", "prod", "ReadOnly"), ("qa", "dev", "Admin")):
        r = client.post("/api/v1/admin/mappings", json={"group": group, "account": account, "role": role})
        assert r.status_code == 201, r.text
        made[group] = r.json()["id"]
    return made


def snapshot(client: Any, **body: Any) -> dict[str, Any]:
    r = client.post(BASE, json=body)
    assert r.status_code == 201, r.text
    return SnapshotMeta.model_validate(r.json()).model_dump()


def changes(client: Any, number: int, against: str = "now") -> dict[str, Any]:
    r = client.get(f"{BASE}/{number}/changes", params={"against": against})
    assert r.status_code == 200, r.text
    Changes.model_validate(r.json())
    return r.json()


def by_person(result: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["username"], f"{c['account_alias']}/{c['role_name']}"): c for c in result["changes"]}


def test_a_snapshot_its_hash_and_its_download(reviews):
    client = reviews(BEFORE)
    api_mappings(client)
    meta = snapshot(client, title="Q4 review")
    assert meta["rows"] == 3 and meta["people"] == 4 and meta["title"] == "Q4 review" and meta["filter"] == {}
    assert meta["actor"].startswith("admin:") and meta["at"].endswith("Z")
    versions = client.get("/api/v1/admin/history/versions").json()["items"]
    assert meta["mapping_version"] == versions[0]["number"] == 3  # the config sync, then two API mappings
    download = client.get(f"{BASE}/{meta['id']}", params={"format": "csv"})
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert hashlib.sha256(download.content).hexdigest() == meta["hash"] and len(download.content) == meta["csv_bytes"]
    table = list(csv.reader(io.StringIO(download.text)))
    assert tuple(table[0]) == COLUMNS and {r[COLUMNS.index("username")] for r in table[1:]} == {"alice", "bob", "carol"}
    # the CSV is what the live report gave then, byte for byte
    assert download.content == client.get("/api/v1/admin/reports/access", params={"format": "csv"}).content
    rows = client.get(f"{BASE}/{meta['id']}", params={"format": "json"}).json()
    assert rows["columns"] == list(COLUMNS) and rows["count"] == 3
    assert rows["rows"] == client.get("/api/v1/admin/reports/access").json()["rows"]
    view = client.get(f"{BASE}/{meta['id']}").json()
    SnapshotView.model_validate(view)
    assert view["hash"] == meta["hash"] and view["attestations"] == []
    [event] = client.get("/api/v1/admin/audit", params={"action": "review.snapshot"}).json()["items"]
    assert event["target_id"] == str(meta["id"]) and event["details"]["hash"] == meta["hash"]
    assert event["actor"] == meta["actor"]
    assert event["details"]["rows"] == 3
    listed = client.get(BASE).json()
    assert [s["id"] for s in listed["items"]] == [meta["id"]] and listed["items"][0]["attestations"] == 0


def test_changes_across_a_mapping_change_and_a_directory_change_explain_both(reviews):
    client = reviews(BEFORE)
    made = api_mappings(client)
    first = snapshot(client)
    assert changes(client, first["id"])["changes"] == []  # nothing changed yet
    for group in ("dev", "qa"):  # bob loses by the mapping; carol by the mapping and by leaving qa
        assert client.delete(f"/api/v1/admin/mappings/{made[group]}").status_code == 204
    client = reviews(AFTER)  # the directory changed: the broker restarted with the new one
    result = changes(client, first["id"])
    got = by_person(result)
    assert set(got) == {("alice", "prod/Admin"), ("bob", "prod/ReadOnly"), ("carol", "dev/Admin"),
                        ("dave", "prod/Admin"), ("erin", "prod/Admin")}
    assert result["counts"] == {"gained": 2, "lost": 3, "reason_changed": 0}
    alice, bob, carol = got[("alice", "prod/Admin")], got[("bob", "prod/ReadOnly")], got[("carol", "dev/Admin")]
    assert (alice["change"], alice["why"]) == ("lost", ["directory"])
    assert [(e["event"], e["groups"]) for e in alice["explanations"]] == [("left_group", ["ops"])]
    assert (bob["change"], bob["why"]) == ("lost", ["mapping"])
    [deleted] = bob["explanations"]
    assert deleted["event"] == "deleted" and deleted["object"] == 'mapping "dev" -> 111122223333/ReadOnly'
    [version] = deleted["versions"]
    assert version["op"] == "deleted" and version["actor"] == first["actor"]  # who deleted it
    assert f"in version {version['number']}" in deleted["text"]
    assert (carol["change"], carol["why"]) == ("lost", ["directory", "mapping"])
    assert {e["event"] for e in carol["explanations"]} == {"left_group", "deleted"}
    dave, erin = got[("dave", "prod/Admin")], got[("erin", "prod/Admin")]
    assert (dave["change"], dave["why"], dave["explanations"][0]["event"]) == ("gained", ["directory"], "account_added")
    assert (erin["change"], [e["event"] for e in erin["explanations"]]) == ("gained", ["joined_group"])
    assert erin["after"][0]["group"] == "ops" and erin["before"] == []
    assert result["from"]["snapshot"] == first["id"] and result["to"]["snapshot"] is None
    assert result["to"]["mapping_version"] == first["mapping_version"] + 2

    # snapshot against snapshot: the same answer, and the other way round the opposite
    second = snapshot(client)
    assert by_person(changes(client, first["id"], str(second["id"]))) == got
    back = by_person(changes(client, second["id"], str(first["id"])))
    assert back[("carol", "dev/Admin")]["change"] == "gained"
    assert {e["event"] for e in back[("carol", "dev/Admin")]["explanations"]} == {"joined_group", "created"}
    assert back[("dave", "prod/Admin")]["explanations"][0]["event"] == "account_removed"


def test_attestations_are_kept_and_audited(reviews):
    client = reviews(BEFORE)
    meta = snapshot(client)
    for decision, comment in (("changes_requested", "bob should not have ReadOnly"), ("approved", "fixed in #42")):
        r = client.post(f"{BASE}/{meta['id']}/attestations", json={"decision": decision, "comment": comment})
        assert r.status_code == 201, r.text
        assert r.json()["decision"] == decision and r.json()["snapshot"] == meta["id"] and r.json()["at"].endswith("Z")
    view = client.get(f"{BASE}/{meta['id']}").json()
    assert [(a["decision"], a["comment"]) for a in view["attestations"]] == [
        ("changes_requested", "bob should not have ReadOnly"), ("approved", "fixed in #42")]
    events = client.get("/api/v1/admin/audit", params={"action": "review.attest"}).json()["items"]
    assert [e["details"]["decision"] for e in events] == ["approved", "changes_requested"]  # newest first
    assert all(e["target_id"] == str(meta["id"]) and e["details"]["hash"] == meta["hash"] for e in events)
    assert client.get(BASE).json()["items"][0]["attestations"] == 2
    too_long = client.post(f"{BASE}/{meta['id']}/attestations", json={"comment": "x" * 4001})
    assert too_long.status_code == 422
    odd = client.post(f"{BASE}/{meta['id']}/attestations", json={"decision": "maybe"})
    assert odd.status_code == 422 and odd.json()["error"]["code"]
    assert len(client.get(f"{BASE}/{meta['id']}").json()["attestations"]) == 2  # refused: nothing written


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.get(f"{BASE}/999"),
        lambda c: c.get(f"{BASE}/999", params={"format": "csv"}),
        lambda c: c.get(f"{BASE}/999", params={"format": "json"}),
        lambda c: c.get(f"{BASE}/999/changes"),
        lambda c: c.get(f"{BASE}/1/changes", params={"against": "999"}),
        lambda c: c.get(f"{BASE}/1/changes", params={"against": "9999999999999999999"}),  # beyond BIGINT
        lambda c: c.post(f"{BASE}/999/attestations", json={"decision": "approved"}),
    ],
)
def test_an_unknown_snapshot_is_a_404_with_a_stable_code(reviews, call):
    client = reviews(BEFORE)
    snapshot(client)
    r = call(client)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_snapshot"
    assert client.get(f"{BASE}/1").status_code == 200  # still serving
    assert client.get("/api/v1/admin/audit", params={"action": "review.attest"}).json()["items"] == []


def test_filters_that_name_nothing_give_empty_snapshots_and_filters_are_kept(reviews):
    client = reviews(BEFORE)
    api_mappings(client)
    empty = snapshot(client, filter={"account": "999999999999"})
    assert empty["rows"] == 0 and empty["filter"] == {"account": "999999999999"}
    download = client.get(f"{BASE}/{empty['id']}", params={"format": "csv"}).content
    assert download == (",".join(COLUMNS) + "\r\n").encode() and hashlib.sha256(download).hexdigest() == empty["hash"]
    assert changes(client, empty["id"])["changes"] == []
    prod = snapshot(client, filter={"account": "prod"})
    assert prod["rows"] == 2  # alice (ops) and bob (dev) in prod
    assert changes(client, prod["id"])["filter"] == {"account": "prod"}
    other = client.get(f"{BASE}/{prod['id']}/changes", params={"against": str(empty["id"])})
    assert other.status_code == 422 and other.json()["error"]["code"] == "invalid_input"
    bad = client.post(BASE, json={"filter": {"colour": "red"}})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "unknown_field"
    assert client.get(f"{BASE}/{prod['id']}/changes", params={"against": "yesterday"}).status_code == 422


def test_without_a_directory_a_clear_error(app_factory, admin_headers):
    client = app_factory(mapping=MAPPING)
    r = client.post(BASE, json={}, headers=admin_headers)
    assert r.status_code == 400 and "directory" in r.json()["error"]["message"]
    assert client.get(BASE, headers=admin_headers).json()["items"] == []


def test_admin_only(reviews):
    client = reviews(BEFORE)
    client.headers.pop("Authorization")
    assert client.post(BASE, json={}).status_code == 401
    assert client.get(BASE).status_code == 401


def sync_mapping(path: Path) -> None:
    from broker.config import load_config
    from broker.db.session import make_engine
    from broker.db.store import SqlMappingStore

    cfg = load_config(path)
    engine = make_engine(cfg.database)
    try:
        SqlMappingStore(engine).sync_config(cfg.mapping)
    finally:
        engine.dispose()


def test_cli(tmp_path: Path):
    path = tmp_path / "broker.yaml"
    config = {"database": {"url": f"sqlite:///{tmp_path / 'b.db'}", "auto_migrate": True}, "directory": BEFORE,
              "mapping": MAPPING}
    path.write_text(yaml.safe_dump(config))
    runner = CliRunner()

    def run(*args: str) -> str:
        done = runner.invoke(cli, ["review", *args, "--config", str(path)])
        assert done.exit_code == 0, done.output
        return done.stdout

    assert runner.invoke(cli, ["migrate", "--config", str(path)]).exit_code == 0
    sync_mapping(path)  # what `broker serve` does at its start
    made = run("snapshot", "--title", "Q4", "--actor", "rita")
    assert made.startswith("snapshot 1: 1 row(s), 4 people")
    meta = json.loads(run("show", "1", "--json"))
    assert meta["actor"] == "rita" and meta["title"] == "Q4" and meta["rows"] == 1  # alice via ops
    shown = runner.invoke(cli, ["review", "show", "1", "--csv", "--config", str(path)])
    assert hashlib.sha256(shown.stdout_bytes).hexdigest() == meta["hash"]  # the bytes (CRLF kept), nothing added
    assert "1  " in run("list")
    config["directory"] = AFTER
    path.write_text(yaml.safe_dump(config))
    out = run("changes", "1")
    assert "- alice  prod/Admin  (directory)" in out and "left group ops" in out
    assert "+ dave  prod/Admin  (directory)" in out
    assert json.loads(run("changes", "1", "--json"))["counts"]["lost"] == 1
    assert run("changes", "1", "--against", "1").startswith("from snapshot 1 to snapshot 1: 0 gained, 0 lost")
    assert runner.invoke(cli, ["review", "changes", "1", "--against", "last", "--config", str(path)]).exit_code == 2
    assert "attestation 1" in run("attest", "1", "--decision", "approved", "--comment", "ok", "--actor", "rita")
    assert json.loads(run("show", "1", "--json"))["attestations"][0]["actor"] == "rita"
    missing = runner.invoke(cli, ["review", "show", "9", "--config", str(path)])
    assert missing.exit_code == 1 and "unknown_snapshot" in missing.stderr
