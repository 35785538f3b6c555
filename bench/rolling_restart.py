"""Benchmark: a rolling restart behind nginx, measured from the client's side. Prints JSON.

The deployment of tests/proxy/rolling.py (Debian nginx in front of two `broker serve` replicas of
--workers each, on one database; its docstring explains the nginx configuration): one client
thread issues credentials (POST /api/v1/credentials, HTTP Basic, sandbox STS) and lists its roles
(GET /api/v1/roles) through nginx without pause while each replica in turn is sent SIGTERM,
waited for, started again and waited for until /readyz answers 200, --rounds times.

Per run: ``requests`` (made during the whole run), ``failures_by_status`` (any answer but 200, or
the exception's name), ``max_latency_s`` (the slowest request, a retried one included: what a
client waits at worst during a restart), and per restart the replica's ``stop_s`` (SIGTERM to
exit: drain + requests in flight + close) and ``start_s`` (start to ready), and its exit code.

It reports; it asserts nothing. Usage:
    python bench/rolling_restart.py [--rounds 1] [--workers 2] [--drain 2] [--grace 10]
        [--postgres URL | --sqlite]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.live_broker import database
from tests.proxy.rolling import Deployment, Load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=1, help="rolling restarts of both replicas (default 1)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes per replica (default 2)")
    ap.add_argument("--drain", type=float, default=2.0, help="server.drain_seconds (default 2)")
    ap.add_argument("--grace", type=int, default=10, help="server.shutdown_grace_seconds (default 10)")
    ap.add_argument("--postgres", default=os.environ.get("BROKER_TEST_DATABASE_URL"),
                    help="PostgreSQL base URL (default $BROKER_TEST_DATABASE_URL); a database is made and dropped")
    ap.add_argument("--sqlite", action="store_true", help="one SQLite file for both replicas instead")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rolling-") as tmp_name:
        tmp = Path(tmp_name)
        db = database(tmp, None if args.sqlite else args.postgres)
        deployment = Deployment(tmp, db.url, workers=args.workers, drain_seconds=args.drain, grace_seconds=args.grace)
        try:
            deployment.start()
            load = Load(deployment.url)
            load.start()
            began = time.monotonic()
            restarts = [r for _ in range(args.rounds) for r in deployment.rolling_restart()]
            elapsed = time.monotonic() - began
            load.stop()
        finally:
            deployment.close()
            db.drop()
    failures = {k: v for k, v in load.statuses.items() if k != "200"}
    print(json.dumps({
        "database": db.kind, "workers": args.workers, "drain_s": args.drain, "grace_s": args.grace,
        "rounds": args.rounds, "seconds": round(elapsed, 1), "requests": load.requests,
        "failures_by_status": failures, "max_latency_s": round(load.max_latency, 3),
        "restarts": [{"replica": r.replica, "exit_code": r.exit_code, "stop_s": round(r.stop_seconds, 2),
                      "start_s": round(r.start_seconds, 2)} for r in restarts],
        "failure_samples": load.failures[:5],
    }, indent=2))


if __name__ == "__main__":
    main()
