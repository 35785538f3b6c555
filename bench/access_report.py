"""The access report at scale against slapd: 10,000 people, 1,000 groups, 5,000 mapping rows over
200 accounts (default sizes). Seeds slapd online (ldapadd, one batch), writes the mapping into a
SQLite database (config sync), then runs the whole report (membership read, full snapshot, rows,
CSV) ``--runs`` times, each in a fresh process, and prints JSON: seconds, rows, peak RSS.

    PYTHONPATH=. .venv/bin/python bench/access_report.py [--users 10000 --groups 1000 --runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.directory.servers import SERVICE_DN, SUFFIX, Slapd, make_pki, population_seed

ROLES = ("Admin", "ReadOnly", "Deploy", "Billing", "Audit")


def mapping(groups: int, accounts: int, rows_per_group: int) -> dict[str, Any]:
    ids = [f"{100000000000 + i:012d}" for i in range(accounts)]
    return {
        "accounts": [
            {"id": a, "alias": f"acct-{i:03d}", "roles": [{"name": r} for r in ROLES]}
            for i, a in enumerate(ids)
        ],
        "mappings": [
            {"group": f"g-{j:03d}", "account": ids[(j + k * 37) % accounts], "role": ROLES[k % len(ROLES)]}
            for j in range(groups)
            for k in range(rows_per_group)
        ],
        "rules": [{"name": "adfs", "pattern": r"^AWS-(?P<account>\d{12})-(?P<role>[\w+=,.@-]+)$"}],
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One whole report, in this process: what ``broker report access`` does."""
    from broker.config import DatabaseConfig
    from broker.connectors.config import LdapDirectoryConfig
    from broker.connectors.registry import build_connector
    from broker.db.session import make_engine
    from broker.db.store import SqlMappingStore
    from broker.reports.access import ReportFilter, batched, csv_lines, membership_of, rows

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    directory = build_connector(
        LdapDirectoryConfig.model_validate(
            {
                "type": "ldap",
                "servers": [args.url],
                "insecure_no_tls": True,
                "start_tls": False,
                "bind_dn": SERVICE_DN,
                "bind_password": os.environ["BENCH_SERVICE_PASSWORD"],
                "user_search": {"base": f"ou=people,{SUFFIX}"},
                "groups": {"strategy": "member_of", "base": f"ou=groups,{SUFFIX}"},
            }
        )
    )
    engine = make_engine(DatabaseConfig(url=args.database))
    started = time.perf_counter()
    membership = membership_of(directory)
    read = time.perf_counter()
    snapshot = SqlMappingStore(engine).full_snapshot()
    count, size = -1, 0
    with open(os.devnull, "w") as out:
        for chunk in batched(csv_lines(rows(membership, snapshot, ReportFilter()))):
            count += chunk.count("\r\n")
            size += len(chunk)
            out.write(chunk)
    done = time.perf_counter()
    directory.close()
    engine.dispose()
    return {
        "seconds": round(done - started, 3),
        "directory_seconds": round(read - started, 3),
        "rows": count,
        "csv_bytes": size,
        "people": len(membership.people),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_mb": round(rss_before / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=1_000)
    parser.add_argument("--groups-per-user", type=int, default=3)
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--rows-per-group", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args)))
        return

    from broker.config import DatabaseConfig
    from broker.db.session import make_engine, migrate
    from broker.db.store import SqlMappingStore
    from broker.mapping.model import MappingDocument

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        slapd = Slapd(tmp / "slapd", make_pki(tmp / "pki", names=("ldap.test",)))
        (tmp / "slapd").mkdir(exist_ok=True)
        slapd.start()
        try:
            t0 = time.perf_counter()
            population_seed(
                slapd,
                users=args.users,
                groups=args.groups,
                groups_per_user=args.groups_per_user,
                password="bench-password-0",
            )
            seeded = time.perf_counter() - t0
            database = f"sqlite:///{tmp / 'broker.db'}"
            engine = make_engine(DatabaseConfig(url=database))
            migrate(engine)
            doc = MappingDocument.model_validate(mapping(args.groups, args.accounts, args.rows_per_group))
            SqlMappingStore(engine).sync_config(doc)
            engine.dispose()
            runs = []
            for _ in range(args.runs):
                child = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--measure",
                        "--url",
                        slapd.url,
                        "--database",
                        database,
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                    env={
                        **os.environ,
                        "PYTHONPATH": str(ROOT),
                        "BENCH_SERVICE_PASSWORD": slapd.service_password,
                    },
                )
                if child.returncode != 0:
                    raise SystemExit(f"measuring run failed: {child.stderr[-3000:]}")
                runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
        finally:
            slapd.stop()
    seconds = [r["seconds"] for r in runs]
    rss = [r["peak_rss_mb"] for r in runs]
    print(
        json.dumps(
            {
                "benchmark": "access_report",
                "host": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                "population": {
                    "users": args.users,
                    "groups": args.groups,
                    "groups_per_user": args.groups_per_user,
                    "accounts": args.accounts,
                    "mapping_rows": args.groups * args.rows_per_group,
                },
                "seed_seconds": round(seeded, 1),
                "runs": runs,
                "seconds_range": [min(seconds), max(seconds)],
                "peak_rss_mb_range": [min(rss), max(rss)],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
