"""Benchmark: a user's 500 groups against 100,000 mapping rows. Prints JSON.

Three measurements:
- "pure": broker.mapping.rules.resolve over a full in-memory snapshot (the engine itself);
- "store": what an issuance does — SqlMappingStore.snapshot_for(groups) (one indexed SQL query
  for the mapping rows, plus the naming rules) and resolve — on SQLite, and on PostgreSQL when
  BROKER_TEST_DATABASE_URL is set (or --postgres URL);
- "hostile_rule": resolve with a nested-quantifier rule added (``([\\w+=,.@-]+)+``, exponential for a
  backtracking engine) and 500 groups that almost match it, some longer than the rule bound.

Usage: python bench/mapping_engine.py [--rows 100000] [--groups 500] [--repeat 200]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, text

from broker.config import DatabaseConfig
from broker.db.models import Account, Mapping, NamingRule, Role
from broker.db.session import make_engine, migrate
from broker.db.store import SqlMappingStore
from broker.groups import match_key
from broker.mapping.rules import resolve
from broker.mapping.snapshot import MappingSnapshot, RuleRecord

ACCOUNTS, ROLES_PER_ACCOUNT = 200, 10


def populate(engine, rows: int, seed: int = 7) -> list[str]:
    """Accounts, roles, ``rows`` mapping rows over rows//2 groups, 5 naming rules. Returns group names."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    stamps = {"source": "api", "created_at": now, "updated_at": now, "description": ""}
    accounts = [f"{100000000000 + i:012d}" for i in range(ACCOUNTS)]
    with engine.begin() as conn:
        conn.execute(
            insert(Account),
            [
                {"id": a, "alias": f"acct-{i}", "partition": "aws", "default_region": None, "environment": "prod",
                 "owner": None, "federation_path": "saml", "saml_provider": "broker", "audience": None, **stamps}
                for i, a in enumerate(accounts)
            ],
        )
        conn.execute(
            insert(Role),
            [
                {"account_id": a, "name": f"Role{j}", "name_key": f"role{j}", "path": "/", "max_session_duration": 3600, **stamps}
                for a in accounts
                for j in range(ROLES_PER_ACCOUNT)
            ],
        )
        n_roles = ACCOUNTS * ROLES_PER_ACCOUNT
        groups = [f"team-{i:06d}" for i in range(rows // 2)]
        batch = []
        for i in range(rows):
            g = groups[i // 2]
            role_id = (i * 7919 + (i % 2) * 13) % n_roles + 1
            batch.append({"group_name": g, "group_key": match_key(g), "role_id": role_id, "session_duration": None,
                          "console": True, "cli": True, **stamps})
            if len(batch) == 10000:
                conn.execute(insert(Mapping), batch)
                batch = []
        if batch:
            conn.execute(insert(Mapping), batch)
        conn.execute(
            insert(NamingRule),
            [
                {"name": f"rule{k}", "pattern": rf"^AWS{k}-(?P<account>\d{{12}})-(?P<role>[\w+=,.@-]+)$",
                 "session_duration": None, "console": True, "cli": True, **stamps}
                for k in range(5)
            ],
        )
    if engine.dialect.name == "postgresql":  # what autovacuum does soon after a bulk load
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    rng.shuffle(groups)
    return groups


def user_groups(all_groups: list[str], n: int, seed: int = 11) -> list[str]:
    """n groups: a fifth mapped, a few matching a naming rule, the rest unknown to the mapping; some as DNs."""
    rng = random.Random(seed)
    mapped = rng.sample(all_groups, n // 5)
    ruled = [f"AWS0-{100000000000 + i:012d}-Role{i % 10}" for i in range(5)]
    other = [f"CN=unmapped-{i},OU=Groups,DC=corp,DC=example" for i in range(n - len(mapped) - len(ruled))]
    return mapped + ruled + other


def timeit(fn, repeat: int) -> dict[str, float]:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 3),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 3),
        "mean_ms": round(statistics.fmean(samples), 3),
    }


def bench_backend(url: str, rows: int, n_groups: int, repeat: int) -> dict:
    engine = make_engine(DatabaseConfig(url=url))
    migrate(engine)
    t0 = time.perf_counter()
    all_groups = populate(engine, rows)
    load_s = time.perf_counter() - t0
    store = SqlMappingStore(engine)
    groups = user_groups(all_groups, n_groups)
    full = store.full_snapshot()
    result = resolve(groups, full)
    out = {
        "backend": engine.dialect.name,
        "mapping_rows": rows,
        "user_groups": len(groups),
        "grants": len(result.grants),
        "populate_s": round(load_s, 2),
        "pure_resolve": timeit(lambda: resolve(groups, full), repeat),
        "store_snapshot_and_resolve": timeit(lambda: resolve(groups, store.snapshot_for(groups)), repeat),
    }
    assert resolve(groups, store.snapshot_for(groups)).grants == result.grants
    hostile = RuleRecord("nested", r"^AWS-(?P<account>\d{12})-(?P<role>([\w+=,.@-]+)+)$", None, True, True, "api")
    evil = MappingSnapshot.build(full.accounts.values(), full.roles.values(), (), (*full.rules, hostile))
    calls = iter(range(10**9))  # new names on every call: nothing is answered from a cache

    def hostile_call() -> None:
        k = next(calls)
        resolve([f"AWS-100000000000-{'a' * (30 + i % 300)}!{k}" for i in range(n_groups)], evil)

    out["hostile_rule_uncached"] = timeit(hostile_call, max(5, repeat // 10))
    engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--groups", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--postgres", default=os.environ.get("BROKER_TEST_DATABASE_URL"))
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(bench_backend(f"sqlite:///{tmp}/bench.db", args.rows, args.groups, args.repeat))
    if args.postgres:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        base = make_url(args.postgres)
        name = f"broker_bench_{os.getpid()}"
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            results.append(bench_backend(base.set(database=name).render_as_string(hide_password=False), args.rows, args.groups, args.repeat))
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    print(json.dumps({"benchmark": "mapping_engine", "target": "a few ms per resolution", "results": results}, indent=2))


if __name__ == "__main__":
    main()
