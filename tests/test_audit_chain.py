"""The audit trail's tamper evidence: every row hash-chained to the one before it in the writer's
transaction, a verification that names the first broken link, the export with its cursor, and the
retention purge behind an anchor (itself audited).

Store tests run on SQLite and PostgreSQL (``store`` fixture); tampering is done the way an
attacker with database access would, in plain SQL. Hashes are recomputed here by the README's
stand-alone recipe (hashlib + json), not by the broker's own code."""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import text

from broker.audit import AuditContext, Decision
from broker.audit_chain import GENESIS, encode_cursor
from broker.db.store import SqlMappingStore
from broker.errors import Duplicate
from broker.mapping.model import AccountSpec, MappingSpec, RoleSpec

ALICE = AuditContext(actor="alice", request_id="req-1", source_ip="192.0.2.7")
CORE = "111122223333"


def recomputed(line: dict[str, Any]) -> str:
    """The README's recipe: the exported line without ``hash``, canonical JSON, SHA-256."""
    event = {k: v for k, v in line.items() if k != "hash"}
    data = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(data).hexdigest()


def export_all(store: SqlMappingStore) -> list[dict[str, Any]]:
    _, rows = store.export_audit(after_id=0, limit=1_000_000, since=None)
    # through the wire format: what a consumer of the export parses
    return [json.loads(json.dumps(r, ensure_ascii=False)) for r in rows]


def some_history(store: SqlMappingStore) -> None:
    store.create_account(AccountSpec(id=CORE, alias="core", roles=[RoleSpec(name="Admin")]), ALICE)
    store.create_mapping(MappingSpec(group="ops", account="core", role="Admin"), ALICE)
    store.record_events([
        Decision(ALICE, "login", "allow", details={"source": "static"}),
        Decision(ALICE, "issue", "deny", target_type="role", target_id=f"{CORE}/Admin", details={"why": "no grant"}),
    ])
    store.create_mapping(MappingSpec(group="devs", account="core", role="Admin"), ALICE)


def sql(store: SqlMappingStore, statement: str, **params: Any) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(statement), params)


# ---- every row is chained ----


def test_every_row_links_to_the_one_before_and_a_third_party_recomputes_each_hash(store):
    some_history(store)
    lines = export_all(store)
    assert [line["id"] for line in lines] == [1, 2, 3, 4, 5, 6]  # dense, in chain order
    assert lines[0]["prev_hash"] == GENESIS
    for before, line in itertools.pairwise(lines):
        assert line["prev_hash"] == before["hash"]
    assert [recomputed(line) for line in lines] == [line["hash"] for line in lines]
    report = store.verify_audit()
    assert (report.ok, report.checked, report.first_id, report.last_id) == (True, 6, 1, 6)


def test_the_hash_is_of_what_the_database_gives_back(store):
    """Times in another offset, tuples, integer keys, non-ASCII text: hashed as stored, so the
    chain verifies on either database and from the export."""
    plus_two = datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    store.record_events([
        Decision(ALICE, "login", "allow", details={"groups": ("a", "b"), 7: "seven", "name": "Zoë 東京", "x": 0.1},
                 at=plus_two),
        Decision(ALICE, "login", "allow", at=datetime(2026, 6, 1, 10, 0, 0)),  # naive: UTC
    ])
    lines = export_all(store)
    assert lines[0]["at"] == "2026-06-01T10:00:00.123456Z"
    assert lines[0]["details"] == {"groups": ["a", "b"], "7": "seven", "name": "Zoë 東京", "x": 0.1}
    assert lines[1]["at"] == "2026-06-01T10:00:00.000000Z"
    assert [recomputed(line) for line in lines] == [line["hash"] for line in lines]
    assert store.verify_audit().ok


def test_a_large_batch_and_a_large_import_are_chained_too(store):
    """More rows at once than PostgreSQL's one-statement append takes: the same chain."""
    store.record_events([Decision(ALICE, "login", "allow", details={"i": i}) for i in range(40)])
    from broker.mapping.model import MappingDocument

    doc = MappingDocument.model_validate({
        "accounts": [{"id": CORE, "alias": "core", "roles": [{"name": f"R{i}"} for i in range(20)]}],
    })
    store.sync_config(doc)
    lines = export_all(store)
    assert [line["id"] for line in lines] == list(range(1, 62))
    assert [recomputed(line) for line in lines] == [line["hash"] for line in lines]
    assert store.verify_audit().checked == 61


def test_a_rolled_back_write_leaves_no_row_and_no_gap(store):
    some_history(store)
    with pytest.raises(Duplicate):
        store.create_account(AccountSpec(id=CORE, alias="again"), ALICE)
    store.record_events([Decision(ALICE, "login", "allow")])
    assert [line["id"] for line in export_all(store)] == [1, 2, 3, 4, 5, 6, 7]
    assert store.verify_audit().ok


def test_concurrent_writers_extend_one_chain_without_a_fork(store):
    """Issuance batches and admin writes from several threads at once (on PostgreSQL: separate
    connections, really concurrent): one chain, every row in it, no two rows after the same one."""
    store.create_account(AccountSpec(id=CORE, roles=[RoleSpec(name="Admin")]), ALICE)
    per_thread, threads_n = 25, 4
    errors: list[BaseException] = []
    start = threading.Barrier(threads_n + 1)

    def issuer(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                ctx = AuditContext(actor=f"user:{n}")
                store.record_events([Decision(ctx, "login", "allow", details={"i": i}), Decision(ctx, "issue", "allow")])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def admin() -> None:
        try:
            start.wait()
            for i in range(per_thread):
                store.create_mapping(MappingSpec(group=f"g-{i}", account=CORE, role="Admin"), ALICE)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=issuer, args=(n,)) for n in range(threads_n)] + [threading.Thread(target=admin)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    lines = export_all(store)
    expected = 2 + threads_n * per_thread * 2 + per_thread
    assert [line["id"] for line in lines] == list(range(1, expected + 1))
    prev = [line["prev_hash"] for line in lines]
    assert len(set(prev)) == len(prev)  # no fork
    report = store.verify_audit()
    assert report.ok and report.checked == expected


def test_many_issuance_writers_at_once_keep_one_dense_chain_with_their_outbox_rows(store):
    """The issuance path's own transaction (on PostgreSQL two pipelined round trips, several
    connections at once): every row chained once, in id order, each with its outbox row."""
    from broker.db import outbox

    forwarded = SqlMappingStore(outbox.with_destinations(store.engine, ["siem"]))
    per_thread, threads_n = 30, 6
    errors: list[BaseException] = []
    start = threading.Barrier(threads_n)

    def issuer(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                ctx = AuditContext(actor=f"user:{n}", request_id=f"{n}-{i}")
                forwarded.record_events([Decision(ctx, "login", "allow"), Decision(ctx, "issue", "allow", details={"i": i})])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=issuer, args=(n,)) for n in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    lines = export_all(store)
    expected = threads_n * per_thread * 2
    assert [line["id"] for line in lines] == list(range(1, expected + 1))
    for login, issue in zip(lines[::2], lines[1::2], strict=True):  # a request's two rows stay together, in order
        assert (login["action"], issue["action"], login["request_id"]) == ("login", "issue", issue["request_id"])
    assert [r["event_id"] for r in outbox.pending_rows(store.engine)] == list(range(1, expected + 1))
    report = store.verify_audit()
    assert report.ok and report.checked == expected


def _pool_connections_are_as_lent(store: SqlMappingStore) -> None:
    """Every connection the pool hands out is idle and in its usual (transactional) mode."""
    conns = [store.engine.connect() for _ in range(3)]
    try:
        for conn in conns:
            dbapi = conn.connection.driver_connection
            if store.engine.dialect.name == "postgresql":
                assert dbapi.autocommit is False
                assert dbapi.info.transaction_status.name == "IDLE"
    finally:
        for conn in conns:
            conn.close()


def test_a_write_that_fails_before_its_rows_are_sent_leaves_no_gap_and_no_lock(store):
    """The chain head is taken, then a row cannot be stored (a NaN in its details): nothing stays
    written or locked: another writer goes on at once, with the next id."""
    store.record_events([Decision(ALICE, "login", "allow")])
    with pytest.raises(ValueError):
        store.record_events([Decision(ALICE, "login", "allow"), Decision(ALICE, "issue", "allow", details={"x": float("nan")})])
    _pool_connections_are_as_lent(store)
    other = threading.Thread(target=store.record_events, args=([Decision(ALICE, "issue", "allow")],))
    other.start()
    other.join(timeout=20)
    assert not other.is_alive()  # liveness guard: no chain lock left behind
    assert [line["id"] for line in export_all(store)] == [1, 2]
    assert store.verify_audit().ok


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)  # SQLite does not check VARCHAR lengths
def test_rows_the_database_refuses_roll_back_the_whole_write(store):
    """PostgreSQL refuses a row in the write's second round trip (a target id over its column's
    length): the caller gets storage_unavailable, no row of the batch, no id, no head move, and
    the connection goes back to the pool clean."""
    from broker.errors import StorageUnavailable

    store.record_events([Decision(ALICE, "login", "allow")])
    head = store.verify_audit().last_hash
    with pytest.raises(StorageUnavailable):
        store.record_events([Decision(ALICE, "login", "allow"), Decision(ALICE, "issue", "allow", target_id="x" * 2000)])
    assert store.verify_audit().last_hash == head
    _pool_connections_are_as_lent(store)
    store.record_events([Decision(ALICE, "issue", "allow")])
    assert [line["id"] for line in export_all(store)] == [1, 2]
    assert store.verify_audit().ok


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_both_postgresql_write_paths_store_the_same_row_on_one_chain(store, monkeypatch):
    """The pipelined write (chain_pg) and the SQLAlchemy transaction (where libpq has no pipeline
    mode) store a decision alike, down to its JSON text, on one chain that verifies."""
    from broker.db import chain_pg

    at = datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
    decision = Decision(ALICE, "issue", "allow", target_type="role", target_id=f"{CORE}/Admin",
                        details={"groups": ("a", "b"), 7: "seven", "name": "Zoë 東京", "x": 0.1}, at=at)
    store.record_events([decision])
    monkeypatch.setattr(chain_pg, "supported", lambda: False)
    SqlMappingStore(store.engine).record_events([decision])
    with store.engine.connect() as conn:
        stored = conn.execute(text(
            "SELECT at, actor, action, outcome, target_type, target_id, request_id, source_ip, "
            "before::text, after::text, details::text, before IS NULL FROM audit_events ORDER BY id"
        )).all()
    assert len(stored) == 2 and stored[0] == stored[1]
    lines = export_all(store)
    assert lines[1]["prev_hash"] == lines[0]["hash"]
    assert store.verify_audit().ok


# ---- tampering is named ----


def test_an_edited_row_is_named(store):
    some_history(store)
    sql(store, "UPDATE audit_events SET details = :d WHERE id = 4", d=json.dumps({"why": "granted after all"}))
    report = store.verify_audit()
    assert report.broken is not None
    assert (report.broken.id, report.broken.kind, report.checked) == (4, "edited", 3)
    assert report.broken.found != report.broken.expected


def test_an_edited_actor_with_its_hash_recomputed_still_breaks_the_next_link(store):
    some_history(store)
    [line] = [x for x in export_all(store) if x["id"] == 3]
    forged = dict(line, actor="mallory")
    sql(store, "UPDATE audit_events SET actor = 'mallory', hash = :h WHERE id = 3", h=recomputed(forged))
    report = store.verify_audit()
    assert report.broken is not None and (report.broken.id, report.broken.kind) == (4, "reordered")


def test_a_deleted_middle_row_is_named(store):
    some_history(store)
    sql(store, "DELETE FROM audit_events WHERE id = 3")
    report = store.verify_audit()
    assert report.broken is not None
    assert (report.broken.id, report.broken.kind) == (3, "deleted")
    assert "row 4 follows row 2" in report.broken.message


def test_deleted_newest_rows_are_named(store):
    some_history(store)
    sql(store, "DELETE FROM audit_events WHERE id >= 5")
    report = store.verify_audit()
    assert report.broken is not None and (report.broken.id, report.broken.kind) == (5, "deleted")
    assert "from the end" in report.broken.message


def test_a_row_written_around_the_chain_is_named(store):
    some_history(store)
    sql(store, "INSERT INTO audit_events (id, at, actor, action, outcome, prev_hash, hash) "
               "VALUES (7, :at, 'mallory', 'login', 'allow', :p, :h)", at=datetime.now(UTC), p=GENESIS, h=GENESIS)
    report = store.verify_audit()
    assert report.broken is not None and (report.broken.id, report.broken.kind) == (7, "edited")


# ---- retention ----

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def aged(store: SqlMappingStore) -> None:
    """Three events 40 days old, then two of today."""
    old = NOW - timedelta(days=40)
    store.record_events([Decision(ALICE, "login", "allow", at=old + timedelta(seconds=i)) for i in range(3)])
    store.record_events([Decision(ALICE, "login", "allow", at=NOW - timedelta(hours=1)) for _ in range(2)])


def test_a_purge_deletes_the_oldest_rows_is_audited_and_the_rest_still_verifies(store):
    aged(store)
    dry = store.purge_audit(retention_days=30, ctx=ALICE, dry_run=True, now=NOW)
    assert (dry["rows"], dry["through_id"]) == (3, 3)
    assert [line["id"] for line in export_all(store)] == [1, 2, 3, 4, 5]  # a dry run deletes nothing

    done = store.purge_audit(retention_days=30, ctx=ALICE, dry_run=False, now=NOW)
    lines = export_all(store)
    assert (done["rows"], done["through_id"]) == (3, 3)
    assert [line["id"] for line in lines] == [4, 5, 6]
    assert lines[0]["prev_hash"] == done["anchor_hash"]  # the anchor: the last purged row's hash
    purge = lines[-1]
    assert (purge["action"], purge["actor"], purge["prev_hash"]) == ("audit.purge", "alice", lines[1]["hash"])
    assert purge["details"] == {"rows": 3, "through_id": 3, "anchor_hash": done["anchor_hash"], "retention_days": 30,
                                "before": "2026-11-03T12:00:00.000000Z"}
    report = store.verify_audit()
    assert (report.ok, report.checked, report.first_id) == (True, 3, 4)

    again = store.purge_audit(retention_days=30, ctx=ALICE, dry_run=False, now=NOW)
    assert (again["rows"], again["through_id"]) == (0, 3)  # nothing older left; still audited
    assert store.verify_audit().ok


def test_after_a_purge_edits_deletions_and_a_moved_anchor_are_still_detected(store):
    aged(store)
    store.purge_audit(retention_days=30, ctx=ALICE, dry_run=False, now=NOW)
    sql(store, "UPDATE audit_events SET outcome = 'deny' WHERE id = 5")
    report = store.verify_audit()
    assert report.broken is not None and (report.broken.id, report.broken.kind) == (5, "edited")
    sql(store, "UPDATE audit_events SET outcome = 'allow' WHERE id = 5")
    assert store.verify_audit().ok

    sql(store, "DELETE FROM audit_events WHERE id = 4")  # the oldest kept row, silently
    report = store.verify_audit()
    assert report.broken is not None and (report.broken.id, report.broken.kind) == (4, "deleted")


def test_an_anchor_moved_past_rows_deleted_by_hand_is_detected(store):
    """Someone deletes row 4 and moves the anchor over it: the chain links, but the last
    audit.purge names another anchor."""
    aged(store)
    store.purge_audit(retention_days=30, ctx=ALICE, dry_run=False, now=NOW)
    [row4] = [x for x in export_all(store) if x["id"] == 4]
    sql(store, "DELETE FROM audit_events WHERE id = 4")
    sql(store, "UPDATE audit_chain_head SET anchor_id = 4, anchor_hash = :h", h=row4["hash"])
    report = store.verify_audit()
    assert report.broken is not None and report.broken.kind == "anchor"


# ---- the export ----


def test_the_export_pages_with_a_cursor_and_since(store):
    some_history(store)
    end, rows = store.export_audit(after_id=0, limit=4, since=None)
    assert end == 4 and [r["id"] for r in rows] == [1, 2, 3, 4]
    end, rows = store.export_audit(after_id=end, limit=4, since=None)
    assert end == 6 and [r["id"] for r in rows] == [5, 6]
    end, rows = store.export_audit(after_id=end, limit=4, since=None)
    assert end == 6 and list(rows) == []  # caught up: the same cursor again
    _, rows = store.export_audit(after_id=0, limit=10, since=NOW + timedelta(days=3650))
    assert list(rows) == []


# ---- over HTTP ----


@pytest.fixture
def api(app_factory, admin_headers):
    client = app_factory(audit={"retention_days": 30})

    def call(method: str, path: str, **kw: Any) -> Any:
        return client.request(method, f"/api/v1/admin/audit{path}", headers=admin_headers, **kw)

    call.client = client  # type: ignore[attr-defined]
    return call


def test_http_export_is_json_lines_continued_by_its_cursor(api, admin_headers):
    for i in range(3):
        made = api.client.post("/api/v1/admin/accounts", json={"id": f"11112222333{i}"}, headers=admin_headers)
        assert made.status_code == 201
    lines = [json.loads(x) for x in api("GET", "/export").text.splitlines()]
    assert [x["action"] for x in lines] == ["account.create"] * 3
    first = api("GET", "/export", params={"limit": 1})
    assert first.status_code == 200 and first.headers["content-type"] == "application/x-ndjson"
    assert [json.loads(x)["id"] for x in first.text.splitlines()] == [1]
    cursor = first.headers["X-Next-Cursor"]
    rest = api("GET", "/export", params={"cursor": cursor})
    assert [json.loads(x)["id"] for x in rest.text.splitlines()] == [x["id"] for x in lines[1:]]
    tail = api("GET", "/export", params={"cursor": rest.headers["X-Next-Cursor"]})
    assert tail.text == "" and tail.headers["X-Next-Cursor"] == rest.headers["X-Next-Cursor"]
    for line in lines:
        assert recomputed(line) == line["hash"]


def test_http_bad_cursor_and_no_token_are_refused(api):
    for bad in ("nope", "ac1.!!", encode_cursor(5) + "x", "ac1." + "A" * 60):
        refused = api("GET", "/export", params={"cursor": bad})
        assert refused.status_code == 422 and refused.json()["error"]["code"] in ("invalid_cursor", "invalid_value"), bad
    assert api.client.get("/api/v1/admin/audit/export").status_code == 401
    assert api.client.post("/api/v1/admin/audit/purge").status_code == 401
    assert api("GET", "/verify").json()["ok"] is True  # still serving


def test_http_purge_is_audited_with_its_actor_and_verify_says_intact(api, app_factory, admin_headers):
    dry = api("POST", "/purge", params={"dry_run": "true"}).json()
    assert dry["dry_run"] is True and dry["rows"] == 0 and dry["retention_days"] == 30
    done = api("POST", "/purge").json()
    assert done["dry_run"] is False
    events = api.client.get("/api/v1/admin/audit", params={"action": "audit.purge"}, headers=admin_headers).json()
    assert [(e["actor"], e["details"]["rows"]) for e in events["items"]] == [("admin:bootstrap", 0)]
    report = api("GET", "/verify").json()
    last = api("GET", "/export").text.splitlines()[-1]
    assert report == {"ok": True, "checked": 1, "first_id": 1, "last_id": 1, "last_hash": json.loads(last)["hash"],
                      "broken": None}


def test_http_purge_without_a_retention_is_refused(app_factory, admin_headers):
    client = app_factory()
    refused = client.post("/api/v1/admin/audit/purge", headers=admin_headers)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "retention_not_configured"


# ---- the command line ----


def test_cli_verify_names_the_broken_row_and_exits_1(tmp_path):
    import yaml
    from typer.testing import CliRunner

    from broker.app import open_store
    from broker.cli.server import app as cli
    from broker.config import load_config

    path = tmp_path / "broker.yaml"
    path.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite:///{tmp_path / 'b.db'}", "auto_migrate": True},
        "audit": {"retention_days": 30},
    }))
    engine, store = open_store(load_config(path))
    some_history(store)

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, ["audit", *args, "--config", str(path)])

    ok = run("verify")
    assert ok.exit_code == 0 and "audit chain intact: 6 row(s) checked" in ok.output, ok.output
    exported = run("export", "-n", "2")
    assert exported.exit_code == 0
    assert [json.loads(x)["id"] for x in exported.stdout.splitlines()] == [1, 2]
    assert f"next cursor: {encode_cursor(2)}" in exported.stderr
    more = run("export", "--cursor", encode_cursor(2))
    assert [json.loads(x)["id"] for x in more.stdout.splitlines()] == [3, 4, 5, 6]
    assert run("export", "--cursor", "junk").exit_code == 1

    dry = run("purge", "--dry-run")
    assert dry.exit_code == 0 and "would delete 0 audit row(s)" in dry.output

    sql(store, "UPDATE audit_events SET target_id = 'elsewhere' WHERE id = 2")
    broken = run("verify")
    assert broken.exit_code == 1 and "BROKEN at id 2 (edited)" in broken.output
    as_json = json.loads(run("verify", "--json").output)
    assert as_json["broken"]["id"] == 2 and as_json["checked"] == 1
    engine.dispose()


def test_the_readme_recipe_checks_an_export_and_catches_an_edit(store, tmp_path):
    """The stand-alone script of README "Audit trail", run as an auditor would, on an export."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("### Audit trail"):]
    script = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert script is not None
    path = tmp_path / "check_audit.py"
    path.write_text(script.group(1))
    some_history(store)
    _, rows = store.export_audit(after_id=0, limit=100, since=None)
    from broker.audit_chain import export_line

    exported = "".join(export_line(r) for r in rows)
    ok = subprocess.run([sys.executable, str(path)], input=exported, capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "6 lines intact" in ok.stdout, ok.stderr
    tampered = exported.replace('"why":"no grant"', '"why":"granted"')
    bad = subprocess.run([sys.executable, str(path)], input=tampered, capture_output=True, text=True, check=False)
    assert bad.returncode != 0 and "(id 5): edited" in bad.stderr
