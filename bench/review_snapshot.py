"""Access-review snapshots at the access report's bench scale: 10,000 people in 3 of 1,000 groups
each (the population ``bench/access_report.py`` seeds in slapd, built here in memory: this measures
the snapshot, not the directory read), 5,000 mapping rows over 200 accounts, so 150,000 rows.
Writes the mapping into SQLite (or ``--database``), then: a snapshot (report, CSV hash, zlib,
insert), its CSV download, and the changes since it after one mapping deletion and one person
leaving a group. Prints JSON: seconds, rows, stored bytes, peak RSS.

    PYTHONPATH=. .venv/bin/python bench/review_snapshot.py [--users 10000 --groups 1000] [--database URL]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROLES = ("Admin", "ReadOnly", "Deploy", "Billing", "Audit")


def mapping(groups: int, accounts: int, rows_per_group: int) -> dict[str, Any]:
    """As bench/access_report.py's."""
    ids = [f"{100000000000 + i:012d}" for i in range(accounts)]
    return {
        "accounts": [
            {"id": a, "alias": f"acct-{i:03d}", "roles": [{"name": r} for r in ROLES]} for i, a in enumerate(ids)
        ],
        "mappings": [
            {"group": f"g-{j:03d}", "account": ids[(j + k * 37) % accounts], "role": ROLES[k % len(ROLES)]}
            for j in range(groups)
            for k in range(rows_per_group)
        ],
    }


def population(users: int, groups: int, per_user: int, *, drop: int | None = None) -> Any:
    """tests.directory.servers.population_seed's people and groups, as a Membership; ``drop``: the
    person who left their first group."""
    from broker.connectors.membership import Membership, Person
    from broker.domain import Identity

    names = [f"g-{j:03d}" for j in range(groups)]
    people = []
    for i in range(users):
        direct = tuple(names[(i + k * 7) % groups] for k in range(per_user))
        if i == drop:
            direct = direct[1:]
        people.append(Person(Identity(id=f"uuid-{i:05d}", username=f"bench{i:04d}"), direct))
    return Membership(names={n: n for n in names}, people=people)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=1_000)
    parser.add_argument("--groups-per-user", type=int, default=3)
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--rows-per-group", type=int, default=5)
    parser.add_argument("--database", help="a database URL (default: a fresh SQLite file)")
    args = parser.parse_args()

    from sqlalchemy import text

    from broker.audit import AuditContext
    from broker.config import DatabaseConfig
    from broker.db.session import make_engine, migrate
    from broker.db.store import SqlMappingStore
    from broker.mapping.model import MappingDocument
    from broker.reports.access import ReportFilter
    from broker.reports.review_snapshot import csv_bytes

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(DatabaseConfig(url=args.database or f"sqlite:///{Path(tmp) / 'broker.db'}"))
        migrate(engine)
        store = SqlMappingStore(engine)
        store.sync_config(MappingDocument.model_validate(mapping(args.groups, args.accounts, args.rows_per_group)))
        ctx = AuditContext(actor="bench")
        membership = population(args.users, args.groups, args.groups_per_user)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        t0 = time.perf_counter()
        meta = store.create_review_snapshot(membership, ReportFilter(), ctx, title="bench")
        t1 = time.perf_counter()
        blob = store.review_snapshot_csv(meta["id"])
        digest = hashlib.sha256()
        for chunk in csv_bytes(blob):
            digest.update(chunk)
        t2 = time.perf_counter()
        assert digest.hexdigest() == meta["hash"]
        rows_blob = store.review_snapshot_rows(meta["id"])
        with engine.connect() as conn:
            people_bytes = conn.execute(text("SELECT length(people) FROM review_snapshots WHERE id = :i"),
                                        {"i": meta["id"]}).scalar_one()

        # one mapping row dropped from the file (the config sync deletes it), one person out of a group
        victim = store.list_mappings(limit=1)[0]
        sync_doc = mapping(args.groups, args.accounts, args.rows_per_group)
        sync_doc["mappings"] = [m for m in sync_doc["mappings"]
                                if not (m["group"] == victim["group"] and m["role"] == victim["role"]
                                        and m["account"] == victim["account"])]
        store.sync_config(MappingDocument.model_validate(sync_doc))
        t3 = time.perf_counter()
        result = store.review_changes(meta["id"], membership=population(args.users, args.groups,
                                                                         args.groups_per_user, drop=0))
        t4 = time.perf_counter()
        engine.dispose()
    print(json.dumps({
        "rows": meta["rows"],
        "people": meta["people"],
        "csv_bytes": meta["csv_bytes"],
        "stored_bytes": {"csv": len(blob), "rows": len(rows_blob), "people": people_bytes},
        "snapshot_seconds": round(t1 - t0, 2),
        "csv_download_seconds": round(t2 - t1, 2),
        "changes_seconds": round(t4 - t3, 2),
        "changes": result["counts"],
        "why": sorted({w for c in result["changes"] for w in c["why"]}),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_mb": round(rss_before / 1024, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
