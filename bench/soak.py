"""Soak: the cluster harness (tests/cluster/harness.py: three `broker serve` replicas behind
nginx, PostgreSQL, Redis, two slapd, moto) driven through nginx for --minutes at --rate
issuances/s, mixed with portal sign-ins, device logins, admin reads and admin writes; one replica
restarted (SIGTERM, start again) at a third of the run (--rolling-restart: every replica, one
after the other; the replicas get ``server.drain_seconds: 5`` and ``shutdown_grace_seconds: 20``),
one slapd killed (SIGKILL) at two thirds and started again a
sixth later. Prints JSON:

- requests by route and status (with the stable error code), the 5xx split into those during a
  fault window (restart, slapd down, plus 5 s) and outside one;
- latency p50/p99 per route; the achieved issuance rate and how late the open-loop schedule ran;
- audit rows of `issue.credentials` (allow) against the 200s of POST /api/v1/credentials;
- each replica's resident memory (VmRSS of its processes) at the start and the end, against a
  stated bound (--memory-bound-mb);
- host: CPU count and model, load average before and after (the machine may be shared).

Issuances come from --clients threads on an open-loop schedule (slot k at start + k/rate; a
thread late for its slot sends at once and the lateness is reported; at the end of the run the
slots not yet sent are dropped: ``scheduled`` against ``sent``), each with a keep-alive
raw-socket client (bench/issuance.py's KeepAliveClient: the load generator shares the cores).
It reports; it asserts nothing about time. Usage:
    python bench/soak.py [--minutes 10] [--rate 100] [--quick] [--postgres URL] [--keep]
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx

from bench.issuance import KeepAliveClient
from bench.live_broker import percentile
from tests.cluster.harness import ADMIN_TOKEN, PASSWORD, Cluster

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# graceful shutdown's settings, given to the replicas where the config model has them
DRAIN = {"drain_seconds": 5, "shutdown_grace_seconds": 20}  # the drain outlasts nginx's upstream keepalive_timeout (4 s)


@dataclass
class Recorder:
    """Every request's route, status (+ code), latency and the time it ended."""

    t0: float = field(default_factory=time.monotonic)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    server_errors: list[tuple[float, str, str]] = field(default_factory=list)
    client_errors: list[tuple[float, str, str]] = field(default_factory=list)
    """4xx answers: none is expected in this mix (every request is a valid one)."""
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    """Portal sign-ins answered 303 whose home page was not the person's."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, route: str, status: int | None, body: bytes | str, seconds: float) -> None:
        key = str(status) if status is not None else "connection_error"
        if status is not None and status >= 400:
            key += f" {_code(body)}".rstrip()
        with self.lock:
            self.latencies[route].append(seconds)
            self.statuses[route][key] += 1
            if status is None or status >= 500:
                self.server_errors.append((time.monotonic() - self.t0, route, key))
            elif status >= 400:
                self.client_errors.append((time.monotonic() - self.t0, route, key))


def _code(body: bytes | str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        m = re.search(r"<title>([^<]+)</title>", text)
        return f"({m.group(1)})" if m else ""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("code", ""))
    return str(error or "")


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    return m.group(1) if m else ""


class Timed:
    """httpx calls recorded by route."""

    def __init__(self, rec: Recorder, client: httpx.Client) -> None:
        self.rec, self.client = rec, client

    def __call__(self, method: str, path: str, route: str | None = None, **kwargs: Any) -> httpx.Response | None:
        t = time.perf_counter()
        try:
            r = self.client.request(method, path, **kwargs)
        except httpx.HTTPError:
            self.rec.add(route or f"{method} {path}", None, b"", time.perf_counter() - t)
            return None
        self.rec.add(route or f"{method} {path}", r.status_code, r.content, time.perf_counter() - t)
        return r


# ---------------------------------------------------------------- the mix


def cli_login(cluster: Cluster, uid: str) -> str:
    """What `awsbroker login` does, untimed (before the run): a device login, approved in a portal
    session; the access token the CLI then sends with each credentials request."""
    with httpx.Client(base_url=cluster.url, timeout=60) as cli, httpx.Client(base_url=cluster.url, timeout=60,
                                                                             follow_redirects=True) as browser:
        grant = cli.post("/oauth/device/authorization", data={"client_id": "awsbroker"}).json()
        nxt = f"/device?user_code={grant['user_code']}"
        page = browser.get(f"/login?next={nxt}")
        r = browser.post("/login", data={"username": uid, "password": PASSWORD, "csrf_token": csrf_of(page.text),
                                         "next": nxt})
        browser.post("/device", data={"user_code": grant["user_code"], "decision": "approve",
                                      "csrf_token": csrf_of(r.text)})
        for _ in range(30):
            time.sleep(grant["interval"] + 0.1)
            token = cli.post("/oauth/token", data={"grant_type": DEVICE_GRANT, "device_code": grant["device_code"],
                                                   "client_id": "awsbroker"}).json()
            if "access_token" in token:
                return str(token["access_token"])
        raise RuntimeError(f"no CLI login for {uid}")


def authorizations(cluster: Cluster, uids: list[str], how: str) -> dict[str, str]:
    """The Authorization header per person: HTTP Basic (a directory bind per issuance), or the
    bearer token of a CLI login (what `awsbroker` sends: the groups re-read, no password)."""
    if how == "basic":
        return {uid: "Basic " + base64.b64encode(f"{uid}:{PASSWORD}".encode()).decode() for uid in uids}
    out: dict[str, str] = {}
    lock = threading.Lock()

    def login(chunk: list[str]) -> None:
        for uid in chunk:
            token = cli_login(cluster, uid)
            with lock:
                out[uid] = "Bearer " + token

    threads = [threading.Thread(target=login, args=(uids[i::8],), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def issuances(cluster: Cluster, rec: Recorder, *, rate: float, clients: int, until: float, late: list[float],
              auth: dict[str, str]) -> None:
    slots = itertools.count()
    start = time.monotonic()
    body = json.dumps({"account": "saml-acct", "role": "Deploy"}).encode()
    lock = threading.Lock()

    def worker(i: int) -> None:
        client = KeepAliveClient(cluster.url, timeout=60)
        mine = cluster.uids[i::clients] or cluster.uids
        requests = [client.request("POST", "/api/v1/credentials", body, {"Authorization": auth[uid]}) for uid in mine]
        for n in itertools.count():
            with lock:
                slot = start + next(slots) / rate
            now = time.monotonic()
            if slot >= until or now >= until:  # the run ends on time; slots not sent are counted
                break
            if slot > now:
                time.sleep(slot - now)
            else:
                late.append(now - slot)
            t = time.perf_counter()
            try:
                status, answer = client.send(requests[n % len(requests)])
            except OSError:
                client.close()
                rec.add("POST /api/v1/credentials", None, b"", time.perf_counter() - t)
                continue
            rec.add("POST /api/v1/credentials", status, answer, time.perf_counter() - t)
        client.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def every(seconds: float, until: float, step: Any) -> None:
    while time.monotonic() < until:
        t = time.monotonic()
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - a broken step is reported, the soak goes on
            print(f"step failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        time.sleep(max(0.0, seconds - (time.monotonic() - t)))


def portal_sign_in(cluster: Cluster, rec: Recorder, uid: str) -> None:
    with httpx.Client(base_url=cluster.url, timeout=60) as browser:
        call = Timed(rec, browser)
        page = call("GET", "/login")
        if page is None or page.status_code != 200:
            return
        r = call("POST", "/login", data={"username": uid, "password": PASSWORD, "csrf_token": csrf_of(page.text),
                                         "next": "/"})
        home = call("GET", "/")
        if r is not None and home is not None and home.status_code != 200:  # signed in, yet not let in
            with rec.lock:
                rec.anomalies.append({"at_s": round(time.monotonic() - rec.t0, 2), "sign_in": r.status_code,
                                      "sign_in_location": r.headers.get("location", ""), "home": home.status_code,
                                      "home_location": home.headers.get("location", "")})


def device_login(cluster: Cluster, rec: Recorder, uid: str) -> None:
    with httpx.Client(base_url=cluster.url, timeout=60) as cli, httpx.Client(base_url=cluster.url, timeout=60,
                                                                             follow_redirects=True) as browser:
        r = Timed(rec, cli)("POST", "/oauth/device/authorization", data={"client_id": "awsbroker"})
        if r is None or r.status_code != 200:
            return
        grant = r.json()
        call = Timed(rec, browser)
        page = call("GET", f"/login?next=/device?user_code={grant['user_code']}", route="GET /login")
        if page is None:
            return
        r = call("POST", "/login", data={"username": uid, "password": PASSWORD, "csrf_token": csrf_of(page.text),
                                         "next": f"/device?user_code={grant['user_code']}"})
        if r is None:
            return
        call("POST", "/device", data={"user_code": grant["user_code"], "decision": "approve", "csrf_token": csrf_of(r.text)})
        time.sleep(grant["interval"] + 0.1)
        Timed(rec, cli)("POST", "/oauth/token", data={"grant_type": DEVICE_GRANT, "device_code": grant["device_code"],
                                                      "client_id": "awsbroker"})


def admin_reads(call: Timed) -> None:
    call("GET", "/api/v1/admin/mappings")
    call("GET", "/api/v1/admin/audit", params={"limit": 50}, route="GET /api/v1/admin/audit")


def admin_write(call: Timed) -> None:
    r = call("POST", "/api/v1/admin/mappings", json={"group": "g-002", "account": "team", "role": "Operator"})
    if r is not None and r.status_code == 201:
        call("DELETE", f"/api/v1/admin/mappings/{r.json()['id']}", route="DELETE /api/v1/admin/mappings/{id}")


# ---------------------------------------------------------------- report


def host() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "model": model, "python": sys.version.split()[0]}


def in_window(t: float, windows: list[tuple[float, float]], slack: float = 5.0) -> bool:
    return any(a <= t <= b + slack for a, b in windows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=100.0, help="issuances per second (open loop)")
    ap.add_argument("--quick", action="store_true", help="1 minute at 30 issuances/s")
    ap.add_argument("--clients", type=int, default=32, help="issuance threads (keep-alive connections to nginx)")
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--auth", choices=("token", "basic"), default="token",
                    help="issuances with a CLI login's bearer token (as awsbroker sends them; default) or HTTP Basic")
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--memory-bound-mb", type=float, default=64.0,
                    help="the stated bound on a replica's RSS growth over the run")
    ap.add_argument("--postgres", default=os.environ.get("BROKER_TEST_DATABASE_URL"),
                    help="PostgreSQL base URL (default $BROKER_TEST_DATABASE_URL)")
    ap.add_argument("--redis-url", default=None, help="an existing Redis (e.g. Sentinel); default: one of its own")
    ap.add_argument("--rolling-restart", action="store_true",
                    help="at a third of the run restart every replica, one after the other, instead of one")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, configs)")
    args = ap.parse_args()
    if args.quick:
        args.minutes, args.rate = 1.0, 30.0
    if not args.postgres:
        ap.error("PostgreSQL is needed: --postgres URL or $BROKER_TEST_DATABASE_URL")
    seconds = args.minutes * 60
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="broker-soak-"))
    try:
        with Cluster(tmp, postgres=args.postgres, redis_url=args.redis_url, users=args.users, server=DRAIN) as cluster:
            report = soak(cluster, args, seconds)
        report["host"] = host() | {"loadavg_before": load_before, "loadavg_after": os.getloadavg()}
        report["command"] = " ".join(["python", "bench/soak.py", *sys.argv[1:]])
        print(json.dumps(report, indent=2))
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def shared_load(db: dict[str, int], redis: dict[str, int], *, wall: float, issued: int) -> dict[str, Any]:
    """PostgreSQL's and Redis's work during the run (the whole mix), per second and scaled to 100
    issuances/s of this mix: what a deployment's shared parts must carry."""
    scale = 100 / (issued / wall) if issued else 0.0

    def rates(counts: dict[str, int]) -> dict[str, float]:
        return {k: round(v / wall, 1) for k, v in sorted(counts.items())}

    def scaled(counts: dict[str, int]) -> dict[str, float]:
        return {k: round(v / wall * scale, 1) for k, v in sorted(counts.items())}

    commands = {k: v for k, v in redis.items() if not k.startswith("_")}
    top = dict(sorted(commands.items(), key=lambda kv: -kv[1])[:12])
    return {
        "postgresql_per_s": rates(db), "postgresql_per_s_at_100_issuances": scaled(db),
        "redis_commands_per_s": round(sum(commands.values()) / wall, 1) if commands else None,
        "redis_commands_per_s_at_100_issuances": round(sum(commands.values()) / wall * scale, 1) if commands else None,
        "redis_top_commands_per_s": rates(top),
        "redis_net_kb_per_s": {k.strip("_"): round(v / wall / 1024, 1) for k, v in redis.items() if k.startswith("_")},
        "note": "the whole mix, scaled linearly to 100 issuances/s of it",
    }


def soak(cluster: Cluster, args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    with httpx.Client(base_url=cluster.url, timeout=30) as warm:  # pools, caches, first imports
        for uid in cluster.uids[:6]:
            warm.post("/api/v1/credentials", json={"account": "saml-acct", "role": "Deploy"}, auth=(uid, PASSWORD))
    issuers = sorted({uid for i in range(args.clients) for uid in (cluster.uids[i::args.clients] or cluster.uids)})
    auth = authorizations(cluster, issuers, args.auth)
    audit_before = cluster.issuance_audit_rows().get("allow", 0)
    db_before, redis_before = cluster.database_counters(), cluster.redis_counters()
    rss_start = {r.index: r.rss_kb() for r in cluster.replicas}
    rec = Recorder()
    until = rec.t0 + seconds
    late: list[float] = []
    events: list[dict[str, Any]] = []
    windows: list[tuple[float, float]] = []
    admin = httpx.Client(base_url=cluster.url, timeout=60, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    people = itertools.cycle(cluster.uids[len(cluster.uids) // 2:])

    def faults() -> None:
        def at(fraction: float) -> None:
            time.sleep(max(0.0, rec.t0 + fraction * seconds - time.monotonic()))

        def now() -> float:
            return round(time.monotonic() - rec.t0, 2)

        at(1 / 3)
        for replica in cluster.replicas if args.rolling_restart else cluster.replicas[1:2]:
            t = now()
            exit_s = cluster.roll(replica)
            windows.append((t, now()))
            events.append({"event": f"replica {replica.index} restarted (SIGTERM, start, ready)", "at_s": t,
                           "exit_s": round(exit_s or 0, 2), "ready_at_s": now()})
        at(2 / 3)
        t = now()
        slapd = cluster.slapds[0]
        assert slapd.proc is not None
        slapd.proc.kill()
        slapd.proc.wait(timeout=10)
        at(5 / 6)
        slapd.restart()
        windows.append((t, now()))
        events.append({"event": "slapd 0 killed (SIGKILL), then started again", "at_s": t, "restarted_at_s": now()})

    background = [
        threading.Thread(target=issuances, args=(cluster, rec), daemon=True,
                         kwargs={"rate": args.rate, "clients": args.clients, "until": until, "late": late,
                                 "auth": auth}),
        threading.Thread(target=every, args=(1.0, until, lambda: portal_sign_in(cluster, rec, next(people))), daemon=True),
        threading.Thread(target=every, args=(5.0, until, lambda: device_login(cluster, rec, next(people))), daemon=True),
        threading.Thread(target=every, args=(0.5, until, lambda: admin_reads(Timed(rec, admin))), daemon=True),
        threading.Thread(target=every, args=(10.0, until, lambda: admin_write(Timed(rec, admin))), daemon=True),
        threading.Thread(target=faults, daemon=True),
    ]
    for t in background:
        t.start()
    for t in background:
        t.join(timeout=seconds + 300)
    admin.close()
    wall = time.monotonic() - rec.t0
    time.sleep(1)  # the audit rows of the last answers are committed before their answer; margin anyway
    audit_rows = cluster.issuance_audit_rows().get("allow", 0) - audit_before
    db_delta = delta(db_before, cluster.database_counters())
    redis_delta = delta(redis_before, cluster.redis_counters())
    rss_end = {r.index: r.rss_kb() for r in cluster.replicas}

    issued = rec.statuses["POST /api/v1/credentials"].get("200", 0)
    during = [e for e in rec.server_errors if in_window(e[0], windows)]
    outside = [e for e in rec.server_errors if not in_window(e[0], windows)]

    def tally(errors: list[tuple[float, str, str]]) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for _, route, key in errors:
            out[f"{route}: {key}"] += 1
        return dict(out)

    memory = {}
    for r in cluster.replicas:
        start_kb, end_kb = rss_start[r.index], rss_end[r.index]
        growth = None if start_kb is None or end_kb is None else round((end_kb - start_kb) / 1024, 1)
        memory[f"replica_{r.index}"] = {
            "rss_mb_start": None if start_kb is None else round(start_kb / 1024, 1),
            "rss_mb_end": None if end_kb is None else round(end_kb / 1024, 1),
            "growth_mb": growth, "starts": r.starts,
            "note": "restarted during the run: the end is the new process's" if r.starts > 1 else "",
        }
    growths = [m["growth_mb"] for m in memory.values() if m["growth_mb"] is not None and not m["note"]]
    return {
        "benchmark": "soak",
        "setup": {"replicas": len(cluster.replicas), "workers_per_replica": 1, "minutes": args.minutes,
                  "drain_settings": DRAIN, "rolling_restart": args.rolling_restart,
                  "rate_target": args.rate, "issuance_clients": args.clients, "issuance_auth": args.auth, "users": len(cluster.uids),
                  "mix_per_s": {"portal sign-in (3 requests)": 1.0, "device login (5 requests)": 0.2,
                                "admin reads (2 requests)": 2.0, "admin write (create+delete)": 0.1}},
        "events": events,
        "issuances": {"ok": issued, "sent": sum(rec.statuses["POST /api/v1/credentials"].values()),
                      "scheduled": int(args.rate * seconds), "per_s": round(issued / wall, 1),
                      "schedule_late_ms": {"late_requests": len(late),
                                           "p50": round(percentile(late, 0.5) * 1000, 1) if late else 0,
                                           "p99": round(percentile(late, 0.99) * 1000, 1) if late else 0}},
        "requests_by_status": {route: dict(sorted(s.items())) for route, s in sorted(rec.statuses.items())},
        "server_errors": {"during_faults": tally(during), "outside_faults": tally(outside),
                          "outside_faults_at_s": [round(t, 1) for t, _, _ in outside[:20]],
                          "fault_windows_s": [[round(a, 1), round(b + 5, 1)] for a, b in windows]},
        "client_errors_at_s": [{"at_s": round(t, 1), "request": f"{route}: {key}"} for t, route, key in rec.client_errors[:50]],
        "portal_sign_ins_not_let_in": rec.anomalies,
        "latency_ms": {route: {"n": len(v), "p50": round(percentile(v, 0.5) * 1000, 1),
                               "p99": round(percentile(v, 0.99) * 1000, 1)}
                       for route, v in sorted(rec.latencies.items())},
        "audit": {"issue_credentials_allow_rows": audit_rows, "credentials_200s": issued,
                  "rows_minus_200s": audit_rows - issued},
        "shared_load": shared_load(db_delta, redis_delta, wall=wall, issued=issued),
        "memory": memory | {"bound_growth_mb": args.memory_bound_mb,
                            "within_bound": all(g <= args.memory_bound_mb for g in growths)},
    }


if __name__ == "__main__":
    main()
