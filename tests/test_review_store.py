"""The access reviews' storage (``broker.db.reviews`` through ``SqlMappingStore``) on SQLite and
PostgreSQL: snapshots and their pages, the mapping state a snapshot is compared with (also before
the mapping had any version), attestations and their audit events in one transaction, unknown
snapshots."""

from __future__ import annotations

import hashlib

import pytest

from broker.audit import AuditContext, AuditFilter
from broker.connectors.membership import Membership, Person
from broker.domain import Identity
from broker.errors import InvalidInput, UnknownSnapshot
from broker.mapping.model import MappingDocument, MappingSpec
from broker.reports.access import ReportFilter
from broker.reports.review_snapshot import csv_bytes, unpack_rows

RITA = AuditContext(actor="admin:rita", request_id="req-1")
DOC = MappingDocument.model_validate(
    {
        "accounts": [{"id": "111122223333", "alias": "prod", "roles": [{"name": "Admin"}, {"name": "ReadOnly"}]}],
        "mappings": [{"group": "ops", "account": "prod", "role": "Admin"}],
    }
)


def directory(**groups: tuple[str, ...]) -> Membership:
    names = {g: g for gs in groups.values() for g in gs} | {"ops": "ops", "dev": "dev"}
    return Membership(names=names, people=[Person(Identity(id=f"id-{u}", username=u), gs) for u, gs in groups.items()])


def test_snapshots_pages_and_attestations(store):
    store.sync_config(DOC)
    first = store.create_review_snapshot(directory(alice=("ops",), bob=("dev",)), ReportFilter(), RITA, title="Q4")
    assert (first["rows"], first["people"], first["mapping_version"], first["actor"]) == (1, 2, 1, "admin:rita")
    csv = b"".join(csv_bytes(store.review_snapshot_csv(first["id"])))
    assert hashlib.sha256(csv).hexdigest() == first["hash"] and len(csv) == first["csv_bytes"]
    assert [r["username"] for r in unpack_rows(store.review_snapshot_rows(first["id"]))] == ["alice"]
    later = [store.create_review_snapshot(directory(alice=("ops",)), ReportFilter(user="alice"), RITA) for _ in range(3)]
    page = store.list_review_snapshots(limit=2)
    assert [s["id"] for s in page] == [later[2]["id"], later[1]["id"]]
    assert [s["id"] for s in store.list_review_snapshots(limit=10, before=page[-1]["id"])] == [later[0]["id"], first["id"]]
    assert later[0]["filter"] == {"user": "alice"}

    a = store.attest_review_snapshot(first["id"], RITA, decision="approved", comment="all as expected")
    b = store.attest_review_snapshot(first["id"], AuditContext(actor="admin:sam"), comment="seen")
    view = store.get_review_snapshot(first["id"])
    assert [(x["actor"], x["decision"], x["comment"]) for x in view["attestations"]] == [
        ("admin:rita", "approved", "all as expected"), ("admin:sam", None, "seen")]
    assert view["attestations"][0]["id"] == a["id"] and view["attestations"][1]["id"] == b["id"]
    events = store.audit_events(AuditFilter(action="review."), limit=20, before_id=None)
    assert [e["action"] for e in events] == ["review.attest", "review.attest", *["review.snapshot"] * 4]
    assert events[1]["request_id"] == "req-1" and events[1]["details"]["decision"] == "approved"
    assert store.list_review_snapshots(limit=1, before=first["id"] + 1)[0]["attestations"] == 2
    latest = store.latest_review_attestations([first["id"], later[0]["id"]])  # the list page's "latest decision"
    assert list(latest) == [first["id"]] and (latest[first["id"]]["id"], latest[first["id"]]["actor"]) == (b["id"], "admin:sam")
    assert store.latest_review_attestations([]) == {}


def test_unknown_snapshots_and_refused_attestations_write_nothing(store):
    with pytest.raises(UnknownSnapshot) as caught:
        store.get_review_snapshot(1)
    assert caught.value.status == 404 and caught.value.code == "unknown_snapshot"
    for call in (lambda: store.review_snapshot_csv(5), lambda: store.review_changes(5, against=6),
                 lambda: store.attest_review_snapshot(5, RITA)):
        with pytest.raises(UnknownSnapshot):
            call()
    made = store.create_review_snapshot(directory(), ReportFilter(), RITA)
    with pytest.raises(UnknownSnapshot):
        store.review_changes(made["id"], against=made["id"] + 1)
    for kwargs in ({"decision": "maybe"}, {"comment": "x" * 4001}):
        with pytest.raises(InvalidInput):
            store.attest_review_snapshot(made["id"], RITA, **kwargs)
    assert store.get_review_snapshot(made["id"])["attestations"] == []
    assert store.audit_events(AuditFilter(action="review.attest"), limit=5, before_id=None) == []


def test_a_snapshot_taken_before_the_mapping_had_a_version(store):
    """An empty database: the snapshot has no mapping version; the config sync then writes version
    1 (no baseline: nothing was there), so the mapping the snapshot saw is the empty one."""
    people = directory(alice=("ops",))
    early = store.create_review_snapshot(people, ReportFilter(), RITA)
    assert early["mapping_version"] is None and early["rows"] == 0
    store.sync_config(DOC)
    [gained] = store.review_changes(early["id"], membership=people)["changes"]
    assert gained["change"] == "gained" and gained["why"] == ["mapping"]
    assert {e["object"] for e in gained["explanations"]} >= {'mapping "ops" -> 111122223333/Admin'}
    assert all(e["versions"][0]["number"] == 1 for e in gained["explanations"])


def test_changes_name_the_versions_and_a_directory_change_at_once(store):
    store.sync_config(DOC)
    ops = store.list_mappings(group="ops")[0]
    store.create_mapping(MappingSpec.model_validate({"group": "dev", "account": "prod", "role": "ReadOnly"}), RITA)
    before = store.create_review_snapshot(directory(alice=("ops",), bob=("dev",)), ReportFilter(), RITA)
    assert before["rows"] == 2 and before["mapping_version"] == 2
    dev = store.list_mappings(group="dev")[0]
    store.delete_mapping(dev["id"], AuditContext(actor="admin:sam"))
    after = store.create_review_snapshot(directory(alice=(), bob=("dev",)), ReportFilter(), RITA)
    result = store.review_changes(before["id"], against=after["id"])
    assert result["from"]["mapping_version"] == 2 and result["to"]["mapping_version"] == 3
    got = {c["username"]: c for c in result["changes"]}
    assert got["alice"]["why"] == ["directory"] and got["alice"]["before"][0]["ref"] == str(ops["id"])
    [deleted] = got["bob"]["explanations"]
    assert deleted["versions"] == [
        {"number": 3, "actor": "admin:sam", "at": deleted["versions"][0]["at"], "via": "api", "op": "deleted"}]
