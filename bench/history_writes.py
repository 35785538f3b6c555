"""Benchmark: what the mapping's history costs, on a mapping of 5,000 rows. Prints JSON.

The mapping is seeded like bench/mapping_engine.py (200 accounts, 2,000 roles, ``--rows`` mapping
rows, 5 rules). Measured on SQLite, and on PostgreSQL when BROKER_TEST_DATABASE_URL is set (or
--postgres URL):

- "baseline_first_write": the first change of a mapping older than its history (it writes the
  whole mapping as version 1 first);
- "write": one admin write (a mapping created), each adding a version: p50 of the writes that
  store only their diff, and the writes that also store a checkpoint (every 50th version);
- "version_document": GET a version's whole document (the nearest checkpoint plus its diffs);
- "restore_plan": the dry run of a restore 40 versions back;
- storage: the bytes of a version row's diff, and of a checkpoint.

Usage: python bench/history_writes.py [--rows 5000] [--writes 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mapping_engine import populate
from sqlalchemy import func, select, text

from broker.audit import AuditContext
from broker.config import DatabaseConfig
from broker.db.history import CHECKPOINT_EVERY
from broker.db.models import MappingVersion
from broker.db.session import make_engine, migrate
from broker.db.store import SqlMappingStore
from broker.mapping.model import MappingSpec

CTX = AuditContext(actor="bench")


def ms(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def stats(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "n": len(samples),
        "p50_ms": round(statistics.median(samples), 2),
        "max_ms": round(samples[-1], 2),
        "mean_ms": round(statistics.fmean(samples), 2),
    }


def bench_backend(url: str, rows: int, writes: int) -> dict[str, Any]:
    engine = make_engine(DatabaseConfig(url=url))
    migrate(engine)
    populate(engine, rows)
    store = SqlMappingStore(engine)
    account = store.list_accounts()[0]["id"]

    def write(i: int) -> None:
        store.create_mapping(MappingSpec(group=f"bench-{i:05d}", account=account, role="Role0"), CTX)

    out: dict[str, Any] = {"backend": engine.dialect.name, "mapping_rows": rows}
    out["baseline_first_write_ms"] = round(ms(lambda: write(0)), 1)
    plain: list[float] = []
    checkpointed: list[float] = []
    for i in range(1, writes + 1):
        took = ms(lambda i=i: write(i))
        number = store.list_versions(limit=1)[0]["number"]
        (checkpointed if number % CHECKPOINT_EVERY == 0 else plain).append(took)
    out["write_diff_only"] = stats(plain)
    out["write_with_checkpoint"] = stats(checkpointed)
    last = store.list_versions(limit=1)[0]["number"]
    out["version_document"] = stats(
        [ms(lambda k=k: store.version_document(last - k)) for k in range(0, 49, 4)]
    )
    out["restore_plan_ms"] = round(ms(lambda: store.plan_restore(last - 40)), 1)
    with engine.connect() as conn:
        diff_bytes = conn.scalar(
            select(func.avg(func.length(MappingVersion.diff))).where(MappingVersion.number > 1)
        )
        cp_bytes = conn.scalar(
            select(func.avg(func.length(MappingVersion.checkpoint))).where(
                MappingVersion.checkpoint.is_not(None)
            )
        )
    out["diff_bytes_avg"] = round(float(diff_bytes or 0))
    out["checkpoint_bytes_avg"] = round(float(cp_bytes or 0))
    engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--writes", type=int, default=200)
    ap.add_argument("--postgres", default=os.environ.get("BROKER_TEST_DATABASE_URL"))
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(bench_backend(f"sqlite:///{tmp}/bench.db", args.rows, args.writes))
    if args.postgres:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        base = make_url(args.postgres)
        name = f"broker_bench_{os.getpid()}"
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = base.set(database=name).render_as_string(hide_password=False)
            results.append(bench_backend(url, args.rows, args.writes))
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    print(json.dumps({"benchmark": "history_writes", "results": results}, indent=2))


if __name__ == "__main__":
    main()
