"""A cluster of real brokers, as production runs them: ``n`` `broker serve` replicas (one worker
each) behind Debian nginx (round robin, keep-alive to the replicas, ``X-Forwarded-For`` set, the
proxy trusted by ``server.trusted_proxies``), one PostgreSQL database made for the cluster and
dropped after it, shared state in Redis, two slapd servers holding the same people (the
directory's failover pair), and moto's STS.

Used by the cluster tests (tests/cluster/) and the soak benchmark (bench/soak.py)::

    with Cluster(tmp, postgres=url) as cluster:   # start(n=3) on entry, stop() on exit
        cluster.url                    # nginx
        cluster.replicas[1].kill()     # SIGKILL; .sigterm(), .restart(), .start(), .rss_kb()
        cluster.roll(cluster.replicas[0])   # a rolling-update step: out of nginx + SIGTERM, start, back in
        cluster.slapds[0].stop(); cluster.slapds[0].restart()   # same port, same data
        cluster.restart_redis()        # same port; what Redis held is kept (append-only file)

Redis is a `redis-server` the harness starts on a random port unless ``redis_url`` is given (a
Sentinel deployment, say: the URL is passed to the replicas as ``state.redis_url`` as it is).
The database, moto and the slapd servers are made by bench/live_broker.py and
tests/directory/servers.py, as for the single-broker benchmarks.
"""

from __future__ import annotations

import copy
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
import yaml

from bench.live_broker import BIN, Database, database, ldap_broker_config, migrate, start_moto, wait_http
from tests.directory.servers import SUFFIX, Slapd, free_port, make_pki, population_seed, stop
from tests.nginx import Nginx

ADMIN_TOKEN = "cluster-admin-token-" + secrets.token_hex(8)
PASSWORD = "cluster-" + secrets.token_urlsafe(12)
EVERYONE = "aws-deployers"
SAML_ACCOUNT, WI_ACCOUNT, TEAM_ACCOUNT = "111111111111", "222222222222", "333333333333"


def mapping_document(team_role: str = "ReadOnly") -> dict[str, Any]:
    """Everybody may deploy to the SAML and the web identity account; group ``g-000`` gets
    ``team_role`` (ReadOnly or Operator) in the team account: what a config rollout changes."""
    return {
        "accounts": [
            {"id": SAML_ACCOUNT, "alias": "saml-acct", "federation": {"path": "saml"},
             "roles": [{"name": "Deploy", "max_session_duration": 3600}]},
            {"id": WI_ACCOUNT, "alias": "wi-acct", "federation": {"path": "web_identity"},
             "roles": [{"name": "Deploy", "max_session_duration": 3600}]},
            {"id": TEAM_ACCOUNT, "alias": "team", "roles": [{"name": "ReadOnly"}, {"name": "Operator"}]},
        ],
        "mappings": [
            {"group": EVERYONE, "account": "saml-acct", "role": "Deploy"},
            {"group": EVERYONE, "account": "wi-acct", "role": "Deploy"},
            {"group": "g-000", "account": "team", "role": team_role},
        ],
    }


NGINX_LOG_FORMAT = """upstreamlog '$remote_addr "$request" $status $upstream_addr $upstream_status $request_time'"""
NGINX_HTTP = """
    upstream brokers {{
{servers}
        keepalive 32;
        # below uvicorn's own idle keep-alive timeout (5 s, which `broker serve` keeps): otherwise a
        # replica closes an idle connection just as nginx sends a request on it, and that request
        # (a POST, not retried) is answered 502
        keepalive_timeout 4s;
    }}
    server {{
        listen 127.0.0.1:{port};
        # no keep-alive to the clients: a reload (Cluster.roll) makes the old workers close their idle
        # client connections, and a client sending on one in that instant would get no answer -- a
        # race of this harness's reloads, which an ingress whose endpoints change without a reload
        # (ingress-nginx, a cloud load balancer) does not have
        keepalive_timeout 0;
        location / {{
            proxy_pass http://brokers;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_next_upstream error timeout http_502;
            proxy_connect_timeout 2s;
            proxy_read_timeout 60s;
        }}
    }}
"""


def _rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class Replica:
    """One `broker serve --workers 1` on its own port, with its own config file."""

    index: int
    port: int
    config_path: Path
    log: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config(self) -> dict[str, Any]:
        loaded: dict[str, Any] = yaml.safe_load(self.config_path.read_text())
        return loaded

    def write_config(self, config: dict[str, Any]) -> None:
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def launch(self) -> None:
        """Start the process; do not wait (``wait_ready``)."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"replica {self.index} is running")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "broker"), "serve", "--config", str(self.config_path), "--workers", "1"],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.starts += 1

    def wait_ready(self, timeout: float = 90.0) -> None:
        assert self.proc is not None
        wait_http(self.url + "/readyz", self.proc, self.log, timeout=timeout)

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process ends at once, mid-request."""
        if self.running():
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def sigterm(self, *, wait: float | None = 60.0) -> float | None:
        """SIGTERM, as an orchestrator stops a replica; with ``wait``, the seconds until it exited."""
        if not self.running():
            return None
        assert self.proc is not None
        t0 = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGTERM)
        if wait is None:
            return None
        try:
            self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        return time.monotonic() - t0

    def restart(self) -> float | None:
        """SIGTERM, wait for the exit, start again and wait until ready: seconds it took to exit."""
        took = self.sigterm()
        self.start()
        return took

    def rss_kb(self) -> int | None:
        """Resident memory of the replica's processes (the serve process and any children)."""
        if not self.running():
            return None
        assert self.proc is not None
        pids = [self.proc.pid]
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
            pids += [int(p) for p in children]
        except OSError:
            pass
        values = [v for v in (_rss_kb(p) for p in pids) if v is not None]
        return sum(values) if values else None


@dataclass
class Cluster:
    tmp: Path
    postgres: str
    """Base URL of the PostgreSQL server (BROKER_TEST_DATABASE_URL): the cluster's own database
    is created on it and dropped by stop()."""
    redis_url: str | None = None
    """Given: the replicas' ``state.redis_url`` (e.g. a Sentinel deployment). None: the harness
    runs a redis-server of its own on a random port."""
    users: int = 40
    rate_limits: dict[str, Any] = field(default_factory=dict)
    """Merged over the cluster's defaults (window 300 s, per address lifted: all clients are loopback)."""
    server: dict[str, Any] = field(default_factory=dict)
    """Extra ``server:`` keys for every replica (e.g. the drain settings)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Further top-level sections of every replica's config, replacing the defaults'."""

    replicas: list[Replica] = field(default_factory=list)
    slapds: list[Slapd] = field(default_factory=list)
    uids: list[str] = field(default_factory=list)
    url: str = ""
    db: Database | None = None
    nginx: subprocess.Popen[bytes] | None = None
    redis: subprocess.Popen[bytes] | None = None
    redis_port: int = 0
    moto: subprocess.Popen[bytes] | None = None
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _out: set[int] = field(default_factory=set)
    """Replicas marked ``down`` in nginx's upstream (``roll``)."""
    _nginx_port: int = 0
    _proxy: Nginx | None = None

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, n: int = 3) -> None:
        self._proxy = Nginx(self.tmp, worker_connections=4096, prefix="nginx-", log_format=NGINX_LOG_FORMAT)
        self.tmp.mkdir(parents=True, exist_ok=True)
        pki = make_pki(self.tmp / "pki", names=("ldap.test",))
        first = Slapd(self.tmp / "slapd-a", pki)
        second = Slapd(self.tmp / "slapd-b", pki, service_password=first.service_password)
        self.slapds = [first, second]
        for server in self.slapds:
            server.start()
            self.uids = population_seed(server, users=self.users, groups=4, groups_per_user=1, password=PASSWORD,
                                        everyone=(EVERYONE,))
        if self.redis_url is None:
            self.redis_port = free_port()
            self._start_redis()
            self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.moto, moto_url = start_moto(self.tmp)
        self._procs.append(self.moto)
        self.db = database(self.tmp, self.postgres, name=f"broker_cluster_{os.getpid()}_{secrets.token_hex(3)}")

        nginx_port = free_port()
        self.url = f"http://127.0.0.1:{nginx_port}"
        base_path = ldap_broker_config(
            self.tmp, slapd=first, db=self.db, moto=moto_url, port=1, workers=1, cpu_affinity=False,
            mapping=mapping_document(),
            directory={"servers": [first.url, second.url], "connect_timeout": 1, "timeout": 2,
                       "recheck_interval": 0.5,
                       # the two slapd are seeded one by one, not replicated: each gives its entries an
                       # entryUUID of its own, where replicas (syncrepl) share them. The immutable id
                       # must be the same on both, or a failover looks like a different account to
                       # every signed-in person (a CLI login, a portal session): hence uid here.
                       "user_search": {"base": f"ou=people,{SUFFIX}", "login_attributes": ["uid"],
                                       "id_attribute": "uid"}},
        )
        base: dict[str, Any] = yaml.safe_load(base_path.read_text())
        base["server"] |= {"public_url": self.url, "trusted_proxies": ["127.0.0.1/32"], **self.server}
        base["logging"] = {"level": "warning", "format": "json", "access_log": False}
        base["state"] = {"backend": "redis", "redis_url": self.redis_url}
        base["rate_limits"] = {"window_seconds": 300, "login_failures_per_address": 100000, **self.rate_limits}
        base["oauth"] = {"interval_seconds": 1}
        base |= self.extra
        migrate(base_path)
        env = {**os.environ, "BROKER_ADMIN_TOKEN": ADMIN_TOKEN}
        env.pop("FORWARDED_ALLOW_IPS", None)
        for i in range(n):
            port = free_port()
            replica = Replica(i, port, self.tmp / f"replica-{i}.yaml", self.tmp / f"replica-{i}.log", env)
            config = copy.deepcopy(base)
            config["server"]["port"] = port
            replica.write_config(config)
            self.replicas.append(replica)
        for replica in self.replicas:  # together, as a deployment starts them
            replica.launch()
        for replica in self.replicas:
            replica.wait_ready()

        self._nginx_port = nginx_port
        self.nginx = self._proxy.start(self._nginx_http(), self.url + "/healthz")
        self._procs.append(self.nginx)

    def _nginx_http(self) -> str:
        servers = "\n".join(f"        server 127.0.0.1:{r.port} max_fails=1 fail_timeout=2s{' down' if r.index in self._out else ''};"
                            for r in self.replicas)
        return NGINX_HTTP.format(port=self._nginx_port, servers=servers)

    def _reload_nginx(self) -> None:
        """nginx -s reload (``tests.nginx.Nginx.reload``): the old workers finish what they carry."""
        assert self._proxy is not None
        self._proxy.reload(self._nginx_http())

    def roll(self, replica: Replica) -> float | None:
        """One step of a rolling update, as an orchestrator does it: the replica leaves the load
        balancer (Kubernetes removes the pod from the Service's endpoints when it sends SIGTERM; a
        proxy that health-checks /readyz sees it draining; here: ``down`` in nginx's upstream and a
        reload) and gets SIGTERM at the same moment; its drain serves what is still on the way to
        it. Then it starts again, and rejoins once ready. The seconds it took to exit."""
        self._out.add(replica.index)
        self._reload_nginx()
        took = replica.sigterm()  # at once, not after the reload has taken effect: the drain covers that
        replica.start()
        self._out.discard(replica.index)
        self._reload_nginx()
        time.sleep(0.5)  # the new workers route to it again
        return took

    def stop(self) -> None:
        for replica in self.replicas:
            if replica.running():
                assert replica.proc is not None
                stop(replica.proc)
        for proc in reversed(self._procs):
            stop(proc)
        if self.redis is not None:
            stop(self.redis)
        for server in self.slapds:
            server.stop()
        if self.db is not None:
            self.db.drop()
            self.db = None

    # ------------------------------------------------------------ Redis

    def _start_redis(self) -> None:
        data = self.tmp / "redis"
        data.mkdir(exist_ok=True)
        log = self.tmp / "redis.log"
        with log.open("ab") as out:
            self.redis = subprocess.Popen(
                ["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port), "--save", "",
                 "--appendonly", "yes", "--dir", str(data)],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        import redis

        client = redis.Redis(port=self.redis_port, socket_timeout=1)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline or self.redis.poll() is not None:
                    raise RuntimeError(f"redis-server did not start:\n{log.read_text()[-2000:]}") from None
                time.sleep(0.05)
            finally:
                client.close()

    def restart_redis(self) -> None:
        """Stop the harness's redis-server and start it again on the same port."""
        if self.redis is None:
            raise RuntimeError("the cluster uses a Redis it did not start")
        stop(self.redis)
        self._start_redis()

    # ------------------------------------------------------------ clients

    def client(self, base: str | None = None, **kwargs: Any) -> httpx.Client:
        """An httpx client for nginx (or ``base``, e.g. a replica's URL)."""
        return httpx.Client(base_url=base or self.url, timeout=30, **kwargs)

    def admin(self, base: str | None = None) -> httpx.Client:
        return self.client(base, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

    def issuance_audit_rows(self) -> dict[str, int]:
        """``issue.credentials`` audit rows by outcome, straight from the database."""
        from sqlalchemy import create_engine, text

        assert self.db is not None
        engine = create_engine(self.db.url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT outcome, count(*) FROM audit_events "
                                         "WHERE action = 'issue.credentials' GROUP BY outcome")).all()
        finally:
            engine.dispose()
        return {outcome: int(count) for outcome, count in rows}

    def database_counters(self) -> dict[str, int]:
        """PostgreSQL's cumulative counters for the cluster's database (pg_stat_database): commits,
        rows read and written, blocks read from disk or found in its buffers. Two readings' difference
        is the database load of what ran between them."""
        from sqlalchemy import create_engine, text

        assert self.db is not None
        engine = create_engine(self.db.url)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_stat_clear_snapshot()"))
                row = conn.execute(text(
                    "SELECT xact_commit, xact_rollback, tup_returned, tup_fetched, tup_inserted, tup_updated, "
                    "tup_deleted, blks_read, blks_hit FROM pg_stat_database WHERE datname = current_database()"
                )).mappings().one()
        finally:
            engine.dispose()
        return {k: int(v) for k, v in row.items()}

    def redis_counters(self) -> dict[str, int]:
        """Redis's cumulative command counts by command (INFO commandstats) and its network bytes."""
        import redis

        if self.redis_url is None or not self.redis_url.startswith("redis://"):
            return {}
        client = redis.Redis.from_url(self.redis_url, socket_timeout=5)
        try:
            stats = client.info("commandstats")
            net = client.info("stats")
        finally:
            client.close()
        out = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
        out["_net_input_bytes"] = int(net["total_net_input_bytes"])
        out["_net_output_bytes"] = int(net["total_net_output_bytes"])
        return out
