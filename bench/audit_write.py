"""Benchmark: what one issuance's audit write costs (``SqlMappingStore.record_events`` with a
password sign-in and the issuance it led to: two decisions, one chained write). Prints JSON.

Per database (SQLite in a temp dir; PostgreSQL when BROKER_TEST_DATABASE_URL is set, or
--postgres URL; a database of its own, dropped at the end), after --warmup writes:

- one thread, --writes writes: CPU ms and wall ms per write (this process's CPU: the broker's
  share; the database server's own time is only in the wall), and round trips per write (the
  server's answers: TCP segments received, from TCP_INFO; the pool's pre-ping is one of them);
- --threads threads writing at once, --writes each: writes/s, CPU ms per write, wall p50/p99;
- the chain verified afterwards (``verify_audit``: ok, rows checked, ids dense).

It reports; it asserts nothing about time. Usage:
    python bench/audit_write.py [--writes 1000] [--threads 4] [--postgres URL | --sqlite-only]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if not os.environ.get("PYTHONPATH"):  # PYTHONPATH set: measure the tree it names (a paired baseline)
    sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, event, func, select

from bench.live_broker import database
from broker.audit import AuditContext, Decision
from broker.config import DatabaseConfig
from broker.db.models import AuditEvent
from broker.db.session import make_engine, migrate
from broker.db.store import SqlMappingStore


def pair(i: int) -> list[Decision]:
    """A sign-in and its issuance, shaped as broker.decisions.log.decision makes them."""
    ctx = AuditContext(actor=f"user:bench{i % 200:03d}", request_id=f"req-{i:08x}", source_ip="127.0.0.1")
    user = {"user": f"bench{i % 200:03d}", "immutable_id": f"uid-{i % 200}", "via": "api"}
    now = datetime.now(UTC)
    return [
        Decision(ctx, "login", "allow", details={**user, "source": "ldap"}, at=now),
        Decision(ctx, "credentials.issue", "allow", target_type="role", target_id="arn:aws:iam::222222222222:role/Deploy",
                 details={**user, "account": "222222222222", "role": "Deploy", "duration": 3600,
                          "groups": [f"g-{j:03d}" for j in range(20)]}, at=now),
    ]


class RoundTrips:
    """The database server's answers to this process: TCP data segments received on the engine's
    connections (Linux TCP_INFO ``tcpi_data_segs_in``; one per round trip for answers this small;
    loopback TCP to PostgreSQL; SQLite: none)."""

    _DATA_SEGS_IN = 152  # offset in struct tcp_info (u32)

    def __init__(self, engine: Engine) -> None:
        self.fds: set[int] = set()
        if engine.dialect.name == "postgresql":
            event.listen(engine, "checkout", lambda dbapi, _rec, _proxy: self.fds.add(dbapi.fileno()))

    def total(self) -> int:
        n = 0
        for fd in self.fds:
            try:
                sock = socket.socket(fileno=os.dup(fd))
            except OSError:
                continue
            with sock:
                info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
            if len(info) >= self._DATA_SEGS_IN + 4:
                n += struct.unpack_from("I", info, self._DATA_SEGS_IN)[0]
        return n


def one_thread(store: SqlMappingStore, trips: RoundTrips, writes: int, start: int) -> dict[str, Any]:
    walls: list[float] = []
    trips0 = trips.total()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for i in range(writes):
        events = pair(start + i)
        w0 = time.perf_counter()
        store.record_events(events)
        walls.append(time.perf_counter() - w0)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    round_trips = trips.total() - trips0
    walls.sort()
    return {
        "writes": writes,
        "cpu_ms_per_write": round(cpu * 1000 / writes, 3),
        "wall_ms_per_write": round(wall * 1000 / writes, 3),
        "wall_p50_ms": round(statistics.median(walls) * 1000, 3),
        "wall_p99_ms": round(walls[int(len(walls) * 0.99)] * 1000, 3),
        "round_trips_per_write": round(round_trips / writes, 2),
    }


def many_threads(store: SqlMappingStore, threads: int, writes: int, start: int) -> dict[str, Any]:
    walls: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads + 1)

    def work(t: int) -> None:
        mine: list[float] = []
        barrier.wait()
        for i in range(writes):
            w0 = time.perf_counter()
            store.record_events(pair(start + t * writes + i))
            mine.append(time.perf_counter() - w0)
        with lock:
            walls.extend(mine)

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    barrier.wait()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for th in pool:
        th.join()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    n = threads * writes
    walls.sort()
    return {
        "threads": threads,
        "writes": n,
        "writes_per_s": round(n / wall, 1),
        "cpu_ms_per_write": round(cpu * 1000 / n, 3),
        "wall_p50_ms": round(statistics.median(walls) * 1000, 3),
        "wall_p99_ms": round(walls[int(len(walls) * 0.99)] * 1000, 3),
    }


def bench(url: str, args: argparse.Namespace) -> dict[str, Any]:
    engine = make_engine(DatabaseConfig(url=url, pool_size=max(5, args.threads)))
    migrate(engine)
    store = SqlMappingStore(engine)
    trips = RoundTrips(engine)
    for i in range(args.warmup):
        store.record_events(pair(i))
    out: dict[str, Any] = {"backend": engine.dialect.name}
    out["one_thread"] = one_thread(store, trips, args.writes, args.warmup)
    if args.threads > 1:
        out["threads"] = many_threads(store, args.threads, args.writes // 2, args.warmup + args.writes)
    report = store.verify_audit()
    with engine.connect() as conn:
        n, lo, hi = conn.execute(select(func.count(), func.min(AuditEvent.id), func.max(AuditEvent.id))).one()
    out["verify"] = {"ok": report.ok, "checked": report.checked, "rows": n, "ids_dense": hi - lo + 1 == n}
    engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--writes", type=int, default=1000, help="writes in the one-thread run (half that per thread)")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--postgres", default=os.environ.get("BROKER_TEST_DATABASE_URL"))
    ap.add_argument("--sqlite-only", action="store_true")
    ap.add_argument("--postgres-only", action="store_true")
    args = ap.parse_args()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        if not args.postgres_only:
            results.append(bench(database(Path(tmp), None).url, args))
        if args.postgres and not args.sqlite_only:
            db = database(Path(tmp), args.postgres)
            try:
                results.append(bench(db.url, args))
            finally:
                db.drop()
    print(json.dumps({"bench": "audit_write", "results": results}, indent=2))


if __name__ == "__main__":
    main()
