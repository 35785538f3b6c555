"""Benchmark: credential issuance through the real running broker, against its floor. Prints JSON.

Starts on loopback random ports: OpenLDAP slapd (started and seeded by the test suite's own
tests/directory/servers.py, online: --users people, each in
--groups-per-user of --groups groups, plus one group everybody is in that maps to the two
benchmark roles), a moto server (STS; HTTP/1.1 keep-alive, as AWS STS) in its own process, and
`broker serve --workers 2`
(ldap directory, PostgreSQL from BROKER_TEST_DATABASE_URL or SQLite, `api.password_login`,
`sts.mode: aws` with `sts.endpoint_url` at moto, real key files). Then, per federation path
(a SAML account, a web identity account), --clients keep-alive HTTP/1.1 clients (raw sockets,
pre-encoded requests: the load generator must not eat the broker's CPU) POST
/api/v1/credentials with HTTP Basic for --duration seconds, cut into --rounds load windows;
after each window the floor runs one block of its loop while the broker idles (~0.5 % of a
core). Alternating the two makes the ratio a paired measurement: on a shared host this
machine's speed drifts by 10-30 % within minutes, and a drift now falls on both sides alike.

Measured per path:
- broker: issuances/s, latency p50/p99, broker CPU ms per issuance (user+system time of the
  `broker serve` process tree from /proc, delta over the run / issuances);
- floor, in this process, in a tight loop with everything built once: an ldap3 bind as the
  user, the memberOf read, the mapping query (store.snapshot_for + resolve), the signed SAML
  Response or RS256 ID token (broker.minting), one STS call on a reused botocore client.
  floor_cpu_ms is this process's CPU per iteration; floor_wall_ms the iteration's wall time
  (which includes slapd's and moto's share), and floor issuances/s on 2 cores = 2000 / wall ms;
- ratios: broker CPU / floor CPU per issuance (over all rounds, and round by round), and
  floor issuances/s / broker issuances/s.

It reports; it asserts nothing about time. Usage:
    python bench/issuance.py [--quick] [--duration 20] [--rounds 5] [--clients 8] [--postgres URL | --sqlite]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx

from bench.live_broker import (
    Database,
    database,
    ldap_broker_config,
    migrate,
    percentile,
    serve,
    start_moto,
)
from tests.directory.servers import (
    SERVICE_DN,
    SUFFIX,
    Slapd,
    free_port,
    make_pki,
    population_seed,
    stop,
)

PASSWORD = "bench-" + secrets.token_urlsafe(12)
EVERYONE = "aws-deployers"
SAML_ACCOUNT, WI_ACCOUNT = "111111111111", "222222222222"
PATHS = {"saml": "saml-acct", "web_identity": "wi-acct"}
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- set-up


def mapping_document(groups: int, mapped_groups: int) -> dict[str, Any]:
    accounts: list[dict[str, Any]] = [
        {"id": SAML_ACCOUNT, "alias": PATHS["saml"], "federation": {"path": "saml"},
         "roles": [{"name": "Deploy", "max_session_duration": 3600}]},
        {"id": WI_ACCOUNT, "alias": PATHS["web_identity"], "federation": {"path": "web_identity"},
         "roles": [{"name": "Deploy", "max_session_duration": 3600}]},
    ]
    mappings: list[dict[str, Any]] = [
        {"group": EVERYONE, "account": PATHS["saml"], "role": "Deploy"},
        {"group": EVERYONE, "account": PATHS["web_identity"], "role": "Deploy"},
    ]
    for j in range(min(mapped_groups, groups)):
        acc = f"{300000000000 + j % 20:012d}"
        if j < 20:
            accounts.append({"id": acc, "alias": f"team-{j}", "roles": [{"name": "ReadOnly"}, {"name": "Operator"}]})
        mappings.append({"group": f"g-{j:03d}", "account": acc, "role": "ReadOnly" if j % 2 else "Operator"})
    return {"accounts": accounts, "mappings": mappings}


def broker_config(tmp: Path, *, slapd: Slapd, db: Database, moto: str, port: int, args: argparse.Namespace) -> Path:
    return ldap_broker_config(
        tmp, slapd=slapd, db=db, moto=moto, port=port, workers=args.workers, cpu_affinity=not args.no_affinity,
        mapping=mapping_document(args.groups, args.mapped_groups),
        directory={  # plain loopback LDAP: the floor's ldap3 connections are plain too
            "user_search": {"base": f"ou=people,{SUFFIX}", "login_attributes": ["uid"],
                            **({"dn_template": f"uid={{username}},ou=people,{SUFFIX}"} if args.login == "bind" else {})},
            "groups": {"strategy": "member_of", "nested": args.nested, "base": f"ou=groups,{SUFFIX}"},
        },
    )


# ---------------------------------------------------------------- CPU accounting


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user+system seconds) of a live process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_cpu(root: int) -> tuple[float, list[int]]:
    """CPU seconds of ``root`` and all its descendants (the uvicorn supervisor and its workers)."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            s = _stat(int(entry))
            if s is not None:
                stats[int(entry)] = s
    family, frontier = {root}, [root]
    while frontier:
        frontier = [pid for pid, (ppid, _) in stats.items() if ppid in frontier and pid not in family]
        family.update(frontier)
    return sum(stats[p][1] for p in family if p in stats), sorted(family - {root})


# ---------------------------------------------------------------- load


class KeepAliveClient:
    """A lean HTTP/1.1 keep-alive client: requests are pre-encoded bytes, responses are read by
    Content-Length. The load generator shares the broker's two cores, so every millisecond it
    spends is one the broker loses (httpx costs ~0.6 ms of CPU per request; this ~0.05 ms)."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        url = httpx.URL(base_url)
        self.address = (url.host, url.port or 80)
        self.host = f"{url.host}:{url.port}".encode()
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buffer = b""

    def request(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
        lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: " + self.host, b"Content-Type: application/json",
                 b"Content-Length: " + str(len(body)).encode()]
        lines += [f"{k}: {v}".encode() for k, v in headers.items()]
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    def send(self, raw: bytes) -> tuple[int, bytes]:
        if self.sock is None:
            self.sock = socket.create_connection(self.address, timeout=self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buffer = b""
        self.sock.sendall(raw)
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._fill()
        head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
        status = int(head[9:12])
        length, close = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        if close:
            self.close()
        return status, body

    def _fill(self) -> None:
        assert self.sock is not None
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def drive(base_url: str, account: str, uids: list[str], *, clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[dict[str, int]] = [{} for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]
    body = json.dumps({"account": account, "role": "Deploy"}).encode()

    def worker(i: int) -> None:
        client = KeepAliveClient(base_url)
        mine = uids[i::clients] or uids
        requests = [
            client.request("POST", "/api/v1/credentials", body,
                           {"Authorization": "Basic " + base64.b64encode(f"{uid}:{PASSWORD}".encode()).decode()})
            for uid in mine
        ]
        start.wait()
        n = 0
        try:
            while time.perf_counter() < stop_at[0]:
                raw = requests[n % len(requests)]
                n += 1
                t0 = time.perf_counter()
                status, answer = client.send(raw)
                elapsed = time.perf_counter() - t0
                if status == 200:
                    latencies[i].append(elapsed)
                else:
                    try:
                        code = json.loads(answer).get("error", {}).get("code", "")
                    except ValueError:
                        code = ""
                    key = f"{status} {code}"
                    errors[i][key] = errors[i].get(key, 0) + 1
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + seconds
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    client_cpu = time.process_time() - cpu0
    lat = [x for per in latencies for x in per]
    errs: dict[str, int] = {}
    for per in errors:
        for k, v in per.items():
            errs[k] = errs.get(k, 0) + v
    return {"ok": len(lat), "errors": errs, "wall_s": wall, "latencies": lat, "client_cpu_s": client_cpu}


def run_broker(base_url: str, server_pid: int, account: str, uids: list[str], *, clients: int, seconds: float) -> dict[str, Any]:
    """One load window: what drive() saw plus the broker tree's CPU seconds over it."""
    cpu0, workers = tree_cpu(server_pid)
    result = drive(base_url, account, uids, clients=clients, seconds=seconds)
    cpu1, _ = tree_cpu(server_pid)
    return {**result, "cpu_s": cpu1 - cpu0, "processes": 1 + len(workers)}


def broker_summary(windows: list[dict[str, Any]]) -> dict[str, Any]:
    ok = sum(w["ok"] for w in windows)
    n = max(ok, 1)
    wall = sum(w["wall_s"] for w in windows)
    lat = [x for w in windows for x in w["latencies"]]
    errors: dict[str, int] = {}
    for w in windows:
        for k, v in w["errors"].items():
            errors[k] = errors.get(k, 0) + v
    return {
        "issuances": ok,
        "errors": errors,
        "seconds": round(wall, 2),
        "issuances_per_s": round(ok / wall, 1),
        "latency_ms": {
            "p50": round(percentile(lat, 0.50) * 1000, 2),
            "p99": round(percentile(lat, 0.99) * 1000, 2),
            "mean": round(statistics.fmean(lat) * 1000, 2) if lat else None,
        },
        "broker_cpu_ms_per_issuance": round(sum(w["cpu_s"] for w in windows) * 1000 / n, 3),
        "broker_processes": windows[0]["processes"],
        "load_client_cpu_ms_per_issuance": round(sum(w["client_cpu_s"] for w in windows) * 1000 / n, 3),
    }


# ---------------------------------------------------------------- floor


class Floor:
    """The raw steps of one issuance, built once, for a tight loop in this process."""

    def __init__(self, *, slapd: Slapd, config_path: Path) -> None:
        import botocore.session
        import ldap3
        from botocore import UNSIGNED
        from botocore.config import Config as BotoConfig

        from broker import logs
        from broker.config import load_config
        from broker.db.session import make_engine
        from broker.db.store import SqlMappingStore
        from broker.minting.factory import build_minting

        logs.configure("warning")  # stdout is the JSON report: no info lines from build_minting
        cfg = load_config(config_path)
        server = ldap3.Server("127.0.0.1", port=slapd.port, get_info=ldap3.NONE)
        self.ldap3 = ldap3
        self.service = ldap3.Connection(server, SERVICE_DN, slapd.service_password, auto_bind=True, read_only=True)
        self.auth = ldap3.Connection(server, read_only=True)
        self.auth.open(read_server_info=False)
        self.engine = make_engine(cfg.database)
        self.store = SqlMappingStore(self.engine)
        self.minting = build_minting(
            public_url=cfg.server.public_url, keys=cfg.keys, saml_idp=cfg.saml_idp, oidc=cfg.oidc,
            session_tags=cfg.session_tags,
        )
        self.sts = botocore.session.Session().create_client(
            "sts", region_name="us-east-1", endpoint_url=cfg.sts.endpoint_url,
            config=BotoConfig(signature_version=UNSIGNED, retries={"mode": "standard", "max_attempts": 3}),
        )
        self.steps: dict[str, list[float]] = {}

    def _timed(self, name: str, t0: float) -> float:
        t1 = time.perf_counter()
        self.steps.setdefault(name, []).append(t1 - t0)
        return t1

    def once(self, uid: str, path: str) -> None:
        from broker.domain import Identity
        from broker.groups import display_name
        from broker.mapping.rules import resolve
        from broker.minting.names import role_session_name

        dn = f"uid={uid},ou=people,{SUFFIX}"
        t = time.perf_counter()
        self.auth.user, self.auth.password, self.auth.authentication = dn, PASSWORD, self.ldap3.SIMPLE
        if not self.auth.bind(read_server_info=False):
            raise RuntimeError(f"floor: bind as {uid} failed: {self.auth.result}")
        t = self._timed("ldap_bind", t)
        self.service.search(dn, "(objectClass=inetOrgPerson)", search_scope=self.ldap3.BASE,
                            attributes=["entryUUID", "uid", "cn", "mail", "memberOf"])
        entry = self.service.response[0]["raw_attributes"]
        groups = tuple(display_name(g.decode()) for g in entry["memberOf"])
        identity = Identity(id=entry["entryUUID"][0].decode(), username=uid, groups=groups, source="bench-ldap")
        t = self._timed("ldap_memberof_read", t)
        resolution = resolve(groups, self.store.snapshot_for(groups))
        grant = next(g for g in resolution.grants if g.account_alias == PATHS[path])
        t = self._timed("sql_mapping_query", t)
        now = datetime.now(UTC)
        if path == "saml":
            saml = self.minting.saml.aws_response(identity=identity, grants=[grant], session_duration=3600, now=now)
            t = self._timed("sign", t)
            self.sts.assume_role_with_saml(RoleArn=grant.role_arn, PrincipalArn=grant.saml_provider_arn,
                                           SAMLAssertion=saml.encoded, DurationSeconds=3600)
        else:
            token = self.minting.oidc.id_token(identity=identity, audience="sts.amazonaws.com", now=now)
            t = self._timed("sign", t)
            self.sts.assume_role_with_web_identity(RoleArn=grant.role_arn, RoleSessionName=role_session_name(uid),
                                                   WebIdentityToken=token, DurationSeconds=3600)
        self._timed("sts_call", t)

    def measure(self, path: str, uids: list[str], iterations: int) -> dict[str, Any]:
        """One block of ``iterations`` (after a short warm-up): raw CPU and wall seconds."""
        for i in range(min(20, iterations)):  # warm-up: the broker's load window ran in between
            self.once(uids[i % len(uids)], path)
        self.steps = {}
        walls: list[float] = []
        cpu0, t0 = time.process_time(), time.perf_counter()
        for i in range(iterations):
            s = time.perf_counter()
            self.once(uids[i % len(uids)], path)
            walls.append(time.perf_counter() - s)
        return {"iterations": iterations, "cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - t0,
                "walls": walls, "steps": self.steps}

    @staticmethod
    def summary(blocks: list[dict[str, Any]]) -> dict[str, Any]:
        iterations = sum(b["iterations"] for b in blocks)
        wall_ms = sum(b["wall_s"] for b in blocks) * 1000 / iterations
        walls = [x for b in blocks for x in b["walls"]]
        steps: dict[str, list[float]] = {}
        for b in blocks:
            for k, v in b["steps"].items():
                steps.setdefault(k, []).extend(v)
        return {
            "iterations": iterations,
            "floor_cpu_ms": round(sum(b["cpu_s"] for b in blocks) * 1000 / iterations, 3),
            "floor_wall_ms": round(wall_ms, 3),
            "floor_wall_p50_ms": round(percentile(walls, 0.5) * 1000, 3),
            "floor_issuances_per_s_2_cores": round(2000 / wall_ms, 1),
            "steps_p50_ms": {k: round(percentile(v, 0.5) * 1000, 3) for k, v in steps.items()},
        }

    def close(self) -> None:
        self.service.unbind()
        self.auth.unbind()
        self.engine.dispose()


# ---------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short run: 4 s per path, 200 floor iterations")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of load per path")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--clients", type=int, default=8, help="concurrent keep-alive HTTP clients")
    ap.add_argument("--workers", type=int, default=2, help="uvicorn workers")
    ap.add_argument("--no-affinity", action="store_true", help="leave server.cpu_affinity off (workers float)")
    ap.add_argument("--login", choices=("bind", "search"), default="bind",
                    help="bind: user_search.dn_template, a bind to the user's DN then a read of the entry (the "
                         "floor's two LDAP steps); search: search-then-bind (one search more than the floor)")
    ap.add_argument("--floor-iterations", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5, help="alternations of broker load window and floor block per path")
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--groups", type=int, default=200)
    ap.add_argument("--groups-per-user", type=int, default=20)
    ap.add_argument("--mapped-groups", type=int, default=40, help="how many of the g-NNN groups map to roles")
    ap.add_argument("--nested", action="store_true", help="resolve nested groups (one more search per level)")
    ap.add_argument("--paths", default="saml,web_identity")
    ap.add_argument("--postgres", default=os.environ.get("BROKER_TEST_DATABASE_URL"),
                    help="PostgreSQL base URL (default $BROKER_TEST_DATABASE_URL); without it, SQLite")
    ap.add_argument("--sqlite", action="store_true", help="SQLite even when BROKER_TEST_DATABASE_URL is set")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, config)")
    args = ap.parse_args()
    if args.quick:
        args.duration, args.warmup, args.floor_iterations, args.rounds = 4.0, 1.5, 200, 2
    paths = [p for p in args.paths.split(",") if p]
    load_before = os.getloadavg()[0]

    tmp = Path(tempfile.mkdtemp(prefix="broker-bench-"))
    procs: list[subprocess.Popen] = []
    slapd = Slapd(tmp / "slapd", make_pki(tmp / "pki", names=("ldap.test",)))
    db: Database | None = None
    floor: Floor | None = None
    try:
        slapd.start()
        procs.append(slapd.proc)  # type: ignore[arg-type]
        uids = population_seed(slapd, users=args.users, groups=args.groups, groups_per_user=args.groups_per_user,
                               password=PASSWORD, everyone=(EVERYONE,))
        moto, moto_url = start_moto(tmp)
        procs.append(moto)
        db = database(tmp, None if args.sqlite else args.postgres)
        port = free_port()
        config = broker_config(tmp, slapd=slapd, db=db, moto=moto_url, port=port, args=args)
        migrate(config)
        server, base_url = serve(config, port=port, workers=args.workers, log=tmp / "broker.log")
        procs.append(server)

        # The floor's connections are opened while the broker idles (~0.5 % of a core); then,
        # per path, load windows and floor blocks alternate, so a drift in this machine's speed
        # (a shared host) falls on both sides of the ratio alike.
        floor = Floor(slapd=slapd, config_path=config)
        results: dict[str, Any] = {}
        for path in paths:
            drive(base_url, PATHS[path], uids, clients=args.clients, seconds=args.warmup)  # pools, caches
            windows, blocks = [], []
            for _ in range(args.rounds):
                windows.append(run_broker(base_url, server.pid, PATHS[path], uids, clients=args.clients,
                                          seconds=args.duration / args.rounds))
                blocks.append(floor.measure(path, uids, max(1, args.floor_iterations // args.rounds)))
            b, f = broker_summary(windows), Floor.summary(blocks)
            rounds = [
                {"broker_cpu_ms": round(w["cpu_s"] * 1000 / max(w["ok"], 1), 3),
                 "floor_cpu_ms": round(fb["cpu_s"] * 1000 / fb["iterations"], 3)}
                for w, fb in zip(windows, blocks)
            ]
            by_round = [round(r["broker_cpu_ms"] / r["floor_cpu_ms"], 2) for r in rounds]
            results[path] = {
                "broker": b,
                "floor": f,
                "rounds": rounds,
                "ratio": {
                    "cpu_per_issuance": round(b["broker_cpu_ms_per_issuance"] / f["floor_cpu_ms"], 2),
                    "cpu_per_issuance_by_round": by_round,
                    "throughput": round(f["floor_issuances_per_s_2_cores"] / max(b["issuances_per_s"], 0.1), 2),
                },
            }
        out = {
            "benchmark": "issuance",
            "goal": {"ratio_at_most": 1.5, "issuances_per_s_at_least": 150},
            "setup": {
                "database": db.kind,
                "workers": args.workers,
                "cpu_affinity": not args.no_affinity,
                "login": args.login,
                "clients": args.clients,
                "duration_s": args.duration,
                "rounds": args.rounds,
                "users": args.users,
                "groups_per_user": args.groups_per_user + 1,
                "mapped_groups": args.mapped_groups + 1,
                "nested_groups": args.nested,
                "cores": os.cpu_count(),
                "loadavg_1min_before": load_before,
            },
            "results": results,
        }
        print(json.dumps(out, indent=2))
    finally:
        if floor is not None:
            floor.close()
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
