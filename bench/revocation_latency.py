"""Benchmark: how long a revoked person still gets credentials, end to end. Prints JSON.

Starts on loopback random ports an OpenLDAP slapd (tests/directory/servers.py: --people per
trial, each a member of the mapped group), moto's STS and `broker serve --workers 2`
(bench/live_broker.py), once per group-cache TTL (``directory.cache.ttl_seconds``, --ttls,
default 0, 5 and 30 s). The user search leaves disabled accounts out
(``(!(employeeType=disabled))``, the way a generic LDAP directory marks them for the broker).

Each trial is one person and the employee CLI's own credential path: awsbroker's ``Broker``
(clients/awsbroker) signs in with the password grant, then asks for credentials (``POST
/api/v1/credentials`` with the bearer token, a refresh and one retry on 401, as the CLI does)
every --interval seconds, start to start. After a random wait (0..TTL, so the change meets
the group cache at every age), the directory's administrator either removes the person from the
mapped group (``group``) or disables the account (``disabled``), with ldapmodify. The client
keeps asking until TTL + interval + --observe seconds after the change.

Per TTL and kind of change, over --trials trials (--parallel at once, one person each):
- ``stale_s``: from the moment ldapmodify returned to the end of the last answer that still
  carried credentials (0 when none came after the change); p50, p99, max;
- ``refused_after_s``: to the end of the first refusal; the refusals' codes;
- ``target_s`` = TTL + interval and ``held``: every trial refused in the end and max(stale_s)
  <= target_s ("never longer than the TTL plus one request");
- ``flapped``: trials that got credentials again after a refusal (another cache disagreeing).

The CLI's own credential cache (``awsbroker credential-process`` reuses credentials until 5
minutes before they expire) is not in the path: credentials already issued stay valid until
they expire whatever the broker does (``broker revoke`` ends those); this measures issuance.

It reports; it asserts nothing about time. Usage:
    python bench/revocation_latency.py [--quick] [--ttls 0,5,30] [--trials 20] [--interval 0.5]
        [--parallel 5] [--redis URL] [--postgres URL | --sqlite]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "clients" / "awsbroker" / "src"))

from awsbroker.client import CLIENT_ID, EXIT_LOGIN_REQUIRED, Broker, CliError
from bench.live_broker import Database, database, ldap_broker_config, migrate, percentile, serve, start_moto
from tests.directory.servers import (
    LDAP_ENABLED_ONLY,
    SUFFIX,
    Slapd,
    free_port,
    group_member,
    ldap_modify,
    make_pki,
    person_dn,
    population_seed,
    stop,
)

PASSWORD = "bench-" + secrets.token_urlsafe(12)
GROUP = "aws-deployers"
ACCOUNT, ALIAS, ROLE = "111111111111", "revocation", "Deploy"
KINDS = ("group", "disabled")
MAPPING = {
    "accounts": [
        {
            "id": ACCOUNT,
            "alias": ALIAS,
            "federation": {"path": "saml"},
            "roles": [{"name": ROLE, "max_session_duration": 3600}],
        }
    ],
    "mappings": [{"group": GROUP, "account": ALIAS, "role": ROLE}],
}
_CODE = re.compile(r"\(([a-z_]+)\)")


class MemoryLoginBroker(Broker):
    """awsbroker's ``Broker`` with its login held in memory rather than in the user's cache
    directory (one file per user account, so one login per process): several people ask side by
    side in one process. Every request, the refresh-and-retry on 401 and the error mapping are
    the CLI's own (``Broker.call``); only where the tokens are kept differs."""

    def __init__(self, url: str, username: str, password: str) -> None:
        super().__init__(url, timeout=15.0)
        self._tokens: dict[str, Any] = {}
        self.save_tokens(self.password_login(username, password))

    def save_tokens(self, tokens: dict[str, Any]) -> None:
        self._tokens = dict(tokens)

    def _access_token(self, *, force_refresh: bool = False) -> str:
        if force_refresh:  # the CLI's refresh (client.Broker._access_token), against the tokens held here
            r = self._send(
                "POST",
                "/oauth/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": self._tokens.get("refresh_token") or "",
                    "client_id": CLIENT_ID,
                },
            )
            if r.status_code != 200:
                raise CliError("login required: the login expired or was revoked", EXIT_LOGIN_REQUIRED)
            self.save_tokens(r.json())
        return str(self._tokens["access_token"])


@dataclass
class Answer:
    start: float
    end: float
    ok: bool
    code: str = ""
    """The refusal's code (``role_not_granted``, ``login_required``...), "" for credentials."""


@dataclass
class Asker:
    """One person's client: a request every ``interval`` seconds (start to start) until stopped."""

    broker: MemoryLoginBroker
    interval: float
    answers: list[Answer] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)
    first_ok: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.stopped.is_set():
            t0 = time.monotonic()
            try:
                creds = self.broker.credentials(ALIAS, ROLE)
                answer = Answer(t0, time.monotonic(), ok=bool(creds.get("AccessKeyId")))
            except CliError as exc:
                if exc.code == EXIT_LOGIN_REQUIRED:
                    code = "login_required"
                else:
                    found = _CODE.search(exc.message)
                    code = found.group(1) if found else f"exit_{exc.code}"
                answer = Answer(t0, time.monotonic(), ok=False, code=code)
            self.answers.append(answer)
            if answer.ok:
                self.first_ok.set()
            next_at = max(next_at + self.interval, time.monotonic())
            self.stopped.wait(next_at - time.monotonic())


def disable(slapd: Slapd, uid: str) -> None:
    ldap_modify(
        slapd, f"dn: {person_dn(uid)}\nchangetype: modify\nreplace: employeeType\nemployeeType: disabled\n"
    )


def trial(
    base_url: str, slapd: Slapd, uid: str, *, kind: str, ttl: int, args: argparse.Namespace
) -> dict[str, Any]:
    asker = Asker(MemoryLoginBroker(base_url, uid, PASSWORD), args.interval)
    thread = threading.Thread(target=asker.run, daemon=True)
    thread.start()
    try:
        if not asker.first_ok.wait(30):
            return {
                "error": "no credentials before the change",
                "answers": [a.code for a in asker.answers[:5]],
            }
        time.sleep(random.uniform(0, ttl) + args.interval)  # the change meets the cache at any age
        if kind == "group":
            group_member(slapd, "delete", GROUP, person_dn(uid))
        else:
            disable(slapd, uid)
        changed = time.monotonic()
        time.sleep(ttl + args.interval + args.observe)
    finally:
        asker.stopped.set()
        thread.join(30)
        asker.broker.close()
    after = [a for a in asker.answers if a.end > changed]
    granted = [a for a in after if a.ok]
    refused = [a for a in after if not a.ok]
    first_refusal = min((a.end for a in refused), default=None)
    return {
        "stale_s": max((a.end for a in granted), default=changed) - changed,
        "refused_after_s": None if first_refusal is None else first_refusal - changed,
        "refused": bool(refused) and not after[-1].ok,
        "flapped": first_refusal is not None and any(a.ok and a.start > first_refusal for a in after),
        "codes": sorted({a.code for a in refused}),
        "request_s": [a.end - a.start for a in asker.answers],
    }


def summary(results: list[dict[str, Any]], *, ttl: int, interval: float) -> dict[str, Any]:
    done = [r for r in results if "error" not in r]
    stale = [r["stale_s"] for r in done]
    refused_after = [r["refused_after_s"] for r in done if r["refused_after_s"] is not None]
    target = ttl + interval
    codes: dict[str, int] = {}
    for r in done:
        for c in r["codes"]:
            codes[c] = codes.get(c, 0) + 1
    requests = [x for r in done for x in r["request_s"]]

    def figures(values: list[float]) -> dict[str, float | None]:
        if not values:
            return {"p50": None, "p99": None, "max": None}
        return {
            "p50": round(percentile(values, 0.5), 3),
            "p99": round(percentile(values, 0.99), 3),
            "max": round(max(values), 3),
        }

    return {
        "trials": len(results),
        "failed_trials": [r for r in results if "error" in r],
        "stale_s": figures(stale),
        "stale_mean_s": round(statistics.fmean(stale), 3) if stale else None,
        "stale_each_s": sorted(round(x, 3) for x in stale),
        "refused_after_s": figures(refused_after),
        "target_s": target,
        "held": bool(done)
        and len(done) == len(results)
        and all(r["refused"] for r in done)
        and max(stale) <= target,
        "not_refused_in_the_end": sum(not r["refused"] for r in done),
        "flapped": sum(r["flapped"] for r in done),
        "refusal_codes": codes,
        "request_p50_ms": round(percentile(requests, 0.5) * 1000, 1) if requests else None,
    }


def run_ttl(
    ttl: int, uids: list[str], *, slapd: Slapd, db: Database, moto: str, tmp: Path, args: argparse.Namespace
) -> dict[str, Any]:
    port, here = free_port(), tmp / f"ttl{ttl}"
    here.mkdir()
    config = ldap_broker_config(
        here,
        slapd=slapd,
        db=db,
        moto=moto,
        port=port,
        workers=args.workers,
        mapping=MAPPING,
        directory={
            "user_search": {
                "base": f"ou=people,{SUFFIX}",
                "login_attributes": ["uid"],
                "filter": LDAP_ENABLED_ONLY,
            },
            "cache": {"ttl_seconds": ttl},
        },
        extra={"state": {"backend": "redis", "redis_url": args.redis}} if args.redis else None,
    )
    migrate(config)
    server, base_url = serve(config, port=port, workers=args.workers, log=here / "broker.log")
    try:
        out: dict[str, Any] = {}
        for kind in KINDS:
            people = [uids.pop() for _ in range(args.trials)]
            with ThreadPoolExecutor(max_workers=args.parallel) as pool:
                futures = [
                    pool.submit(trial, base_url, slapd, uid, kind=kind, ttl=ttl, args=args) for uid in people
                ]
                results = [f.result() for f in futures]
            out[kind] = summary(results, ttl=ttl, interval=args.interval)
        return out
    finally:
        stop(server)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="4 trials per TTL and kind of change")
    ap.add_argument(
        "--ttls", default="0,5,30", help="group-cache TTLs to measure (directory.cache.ttl_seconds)"
    )
    ap.add_argument("--trials", type=int, default=20, help="trials per TTL and kind of change")
    ap.add_argument("--interval", type=float, default=0.5, help="seconds between a client's requests")
    ap.add_argument("--observe", type=float, default=3.0, help="seconds watched past TTL + interval")
    ap.add_argument("--parallel", type=int, default=5, help="trials at once (one person each)")
    ap.add_argument("--workers", type=int, default=2, help="uvicorn workers")
    ap.add_argument(
        "--redis",
        default=None,
        help="state.backend redis at this URL (the group cache shared by the workers); default in-process",
    )
    ap.add_argument(
        "--postgres",
        default=os.environ.get("BROKER_TEST_DATABASE_URL"),
        help="PostgreSQL base URL (default $BROKER_TEST_DATABASE_URL); without it, SQLite",
    )
    ap.add_argument("--sqlite", action="store_true", help="SQLite even when BROKER_TEST_DATABASE_URL is set")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, config)")
    args = ap.parse_args()
    if args.quick:
        args.trials = 4
    ttls = [int(t) for t in args.ttls.split(",") if t]
    load_before = os.getloadavg()[0]
    started = time.monotonic()

    tmp = Path(tempfile.mkdtemp(prefix="broker-revocation-"))
    procs: list[Any] = []
    slapd = Slapd(tmp / "slapd", make_pki(tmp / "pki", names=("ldap.test",)))
    db: Database | None = None
    try:
        slapd.start()
        procs.append(slapd.proc)
        uids = population_seed(
            slapd,
            users=len(ttls) * len(KINDS) * args.trials,
            groups=4,
            groups_per_user=1,
            password=PASSWORD,
            everyone=(GROUP,),
        )
        moto, moto_url = start_moto(tmp)
        procs.append(moto)
        db = database(tmp, None if args.sqlite else args.postgres)
        results = {
            f"ttl_{ttl}": run_ttl(ttl, uids, slapd=slapd, db=db, moto=moto_url, tmp=tmp, args=args)
            for ttl in ttls
        }
        out = {
            "benchmark": "revocation_latency",
            "target": "issuance stops within the group-cache TTL plus one request interval",
            "setup": {
                "ttls_s": ttls,
                "trials": args.trials,
                "interval_s": args.interval,
                "observe_s": args.observe,
                "parallel": args.parallel,
                "workers": args.workers,
                "state": "redis" if args.redis else "memory",
                "database": db.kind,
                "client": "awsbroker.client.Broker (password grant, bearer token)",
                "cores": os.cpu_count(),
                "loadavg_1min_before": load_before,
                "loadavg_1min_after": os.getloadavg()[0],
                "seconds": round(time.monotonic() - started, 1),
            },
            "results": results,
            "held": all(r[k]["held"] for r in results.values() for k in KINDS),
        }
        print(json.dumps(out, indent=2))
    finally:
        for proc in reversed(procs):
            stop(proc)
        if db is not None:
            db.drop()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
