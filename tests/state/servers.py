"""Real Redis set-ups on random loopback ports, started by tests (reusable by other harnesses):

- ``RedisServer``: one ``redis-server`` without persistence (restartable: what a restart loses);
- ``RedisSentinelSet``: a master, a replica (``--replicaof``) and three Sentinels (``redis-server
  --sentinel``), quorum 2, down-after 1 s, so a killed master is replaced within seconds;
- ``RedisTls``: a ``redis-server`` speaking TLS only (``--tls-port``), certificate from a test CA;
- ``RedisClusterSet``: three ``--cluster-enabled`` masters joined by ``redis-cli --cluster create``.

Every process runs in its own process group and is ended by ``stop()``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import redis

from tests.directory.servers import Pki, free_port, make_pki, program, stop

SERVICE = "mymaster"


def _redis_server() -> str:
    return program("redis-server")


def _wait(check: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"{what} not reached after {timeout}s (last error: {last!r})")


class RedisServer:
    """One redis-server, no persistence (``save ""``, no AOF), on a random port."""

    def __init__(self, workdir: Path, *, port: int | None = None, args: tuple[str, ...] = ()) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.dir), "--protected-mode", "no", *self.args]

    def start(self) -> RedisServer:
        log = open(self.dir / f"redis-{self.port}.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        _wait(self.ready, f"redis-server on {self.port}")
        return self

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"redis-server on {self.port} exited: {self.log_tail()}")
        with redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1) as r:
            return bool(r.ping())

    def log_tail(self) -> str:
        path = self.dir / f"redis-{self.port}.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=2)

    def kill(self) -> None:
        """SIGKILL: gone at once, as a crashed host."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        """Stop and start again on the same port: without persistence, everything is gone."""
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


class RedisSentinelSet:
    """A master, one replica, three Sentinels watching ``SERVICE`` with quorum 2."""

    def __init__(self, workdir: Path, *, down_after_ms: int = 1000, failover_timeout_ms: int = 3000) -> None:
        self.dir = workdir
        self.master = RedisServer(workdir / "master")
        self.replica = RedisServer(workdir / "replica")
        self.replica.args = ("--replicaof", "127.0.0.1", str(self.master.port))
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports) + f"/{SERVICE}/0"

    def start(self) -> RedisSentinelSet:
        self.master.start()
        self.replica.start()
        _wait(lambda: self.replica.client().info("replication").get("master_link_status") == "up", "replication")
        for port in self.sentinel_ports:
            conf = self.dir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {self.dir}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
                f"sentinel failover-timeout {SERVICE} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            log = open(self.dir / f"sentinel-{port}.log", "ab")  # noqa: SIM115 - the child keeps it
            self.sentinels.append(subprocess.Popen([_redis_server(), str(conf), "--sentinel"], stdout=log,
                                                   stderr=subprocess.STDOUT, start_new_session=True))
            log.close()
        for port in self.sentinel_ports:  # every Sentinel knows the other two and the replica
            _wait(lambda p=port: self._sentinel_view(p), f"sentinel {port} sees its peers", timeout=30)
        return self

    def _sentinel_view(self, port: int) -> bool:
        with redis.Redis(port=port, decode_responses=True, socket_timeout=1) as s:
            state = s.sentinel_master(SERVICE)
        return int(state["num-other-sentinels"]) == 2 and int(state["num-slaves"]) >= 1

    def master_port(self) -> int:
        for port in self.sentinel_ports:
            try:
                with redis.Redis(port=port, decode_responses=True, socket_timeout=1) as s:
                    host_port = s.sentinel_get_master_addr_by_name(SERVICE)
                if host_port:
                    return int(host_port[1])
            except redis.RedisError:
                continue
        raise RuntimeError("no Sentinel answers")

    def current_master(self) -> RedisServer:
        port = self.master_port()
        return self.master if port == self.master.port else self.replica

    def wait_for_new_master(self, old_port: int, timeout: float = 30.0) -> int:
        return int(_wait(lambda: self.master_port() != old_port and self.master_port(), "a failover", timeout))

    def stop(self) -> None:
        for proc in self.sentinels:
            stop(proc)
        self.sentinels = []
        self.replica.stop()
        self.master.stop()


class RedisTls:
    """redis-server on a TLS port only; ``pki.ca`` signed its certificate, ``pki.other_ca`` did not.
    ``clients``: a client PKI (tests/forwarding/receivers.make_client_pki) whose CA the server
    requires client certificates from (``tls-auth-clients yes``)."""

    def __init__(self, workdir: Path, *, clients: Any = None) -> None:
        self.pki: Pki = make_pki(workdir / "pki", names=("localhost",))
        self.clients = clients
        self.server = RedisServer(workdir / "server")
        self.port = self.server.port
        trusted = self.pki.ca if clients is None else clients.ca
        self.server.args = ("--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(self.pki.cert),
                            "--tls-key-file", str(self.pki.key), "--tls-ca-cert-file", str(trusted),
                            "--tls-auth-clients", "no" if clients is None else "yes")
        self.server.ready = self._ready  # type: ignore[method-assign]

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def _ready(self) -> bool:
        proc = self.server.proc
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"redis-server (TLS) exited: {self.server.log_tail()}")
        cert = {} if self.clients is None else {"ssl_certfile": str(self.clients.cert),
                                                 "ssl_keyfile": str(self.clients.key)}
        with redis.Redis(port=self.port, ssl=True, ssl_ca_certs=str(self.pki.ca), socket_timeout=1, **cert) as r:
            return bool(r.ping())

    def start(self) -> RedisTls:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()


def _cluster_port() -> int:
    """A free port whose cluster bus port (the port + 10000) is free too."""
    import socket

    for _ in range(100):
        port = free_port()
        if port + 10000 >= 65536:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisClusterSet:
    """Three cluster-enabled masters, no replicas, every slot covered."""

    def __init__(self, workdir: Path, *, nodes: int = 3) -> None:
        self.nodes = [RedisServer(workdir / f"node{i}", port=_cluster_port()) for i in range(nodes)]
        for node in self.nodes:
            node.args = ("--cluster-enabled", "yes", "--cluster-config-file", str(node.dir / "nodes.conf"),
                         "--cluster-node-timeout", "2000")

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> RedisClusterSet:
        for node in self.nodes:
            node.start()
        subprocess.run([program("redis-cli"), "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
                        "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=60)
        for node in self.nodes:
            _wait(lambda n=node: n.client().cluster("INFO").get("cluster_state") == "ok", "cluster_state:ok", timeout=30)
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
