"""Benchmark: what a fault costs a request. Prints JSON.

- "sts_hung": one AssumeRoleWithSAML against a loopback server that accepts connections and never
  answers (a hung STS), with the broker's sts settings: seconds until 503 sts_unavailable, the
  attempts the server saw, and the documented bound (min(total_timeout, attempts x (connect +
  read)) for a hang).
- "ldap_frozen": two real slapd servers (tests/directory/servers.py); the first is frozen
  (SIGSTOP): the first sign-in after the freeze (one wait for ``timeout``), the next sign-ins
  (its breaker open: skipped), then thawed and at once the second killed: seconds until sign-ins
  succeed again (the background check, the half-open probe, closes the first one's breaker).
- "sts_breaker": the circuit breaker of one STS endpoint: a relay (tests/relay.py) in front of moto's
  STS (ThreadedMotoServer) is frozen: the first call (one timeout), the calls while the breaker is
  open (refused at once; the calls the frozen endpoint saw), then the relay forwards again: seconds
  until a call succeeds (``sts.breaker_open_seconds`` and one call).
- "redis_down": one state read against a port where nothing listens: seconds until
  StateUnavailable.

Usage: python bench/faults.py [--quick] [--ldap-timeout 10] [--sts-read-timeout 10] ...
(--quick: 1 s timeouts, a few sign-ins.)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broker.aws.config import StsConfig
from broker.aws.sts import StsClients, StsGateway
from broker.connectors.config import LdapDirectoryConfig
from broker.connectors.registry import build_connector
from broker.domain import Identity
from broker.errors import BrokerError, StateUnavailable
from broker.state.memory import MemoryState
from broker.state.redis import RedisState
from tests.directory.servers import SERVICE_DN, SUFFIX, Slapd, make_pki, population_seed
from tests.federation.conftest import make_grant
from tests.hung import HungServer
from tests.relay import Relay

PASSWORD = "bench-faults-pw-1"


def sts_hung(args: argparse.Namespace) -> dict[str, Any]:
    hung = HungServer()
    config = StsConfig(mode="aws", endpoint_url=f"http://127.0.0.1:{hung.port}", connect_timeout=args.sts_connect_timeout,
                       read_timeout=args.sts_read_timeout, max_attempts=args.sts_max_attempts,
                       total_timeout=args.sts_total_timeout)
    gateway = StsGateway(clients=StsClients(config=config), issuer="https://broker.example.com")
    start = time.perf_counter()
    code = None
    try:
        gateway.assume_with_saml(grant=make_grant(), saml_assertion="PHNhbWw+", duration=3600)
    except BrokerError as exc:
        code = exc.code
    seconds = time.perf_counter() - start
    hung.close()
    bound = min(config.total_timeout, config.max_attempts * config.attempt_timeout)
    return {"seconds": round(seconds, 2), "code": code, "attempts_seen": hung.connections,
            "bound_seconds": bound, "settings": config.model_dump(include={
                "connect_timeout", "read_timeout", "max_attempts", "total_timeout"})}


def _timed_sign_in(connector: Any, user: str) -> tuple[float, bool]:
    start = time.perf_counter()
    try:
        ok = isinstance(connector.login(user, PASSWORD), Identity)
    except BrokerError:
        ok = False
    return time.perf_counter() - start, ok


def ldap_frozen(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    pki = make_pki(root / "pki", names=("ldap.test",))
    first = Slapd(root / "a", pki)
    second = Slapd(root / "b", pki, service_password=first.service_password)
    users = [f"bench{i:04d}" for i in range(4)]
    try:
        for server in (first, second):
            server.start()
            population_seed(server, users=len(users), groups=2, groups_per_user=1, password=PASSWORD)
        config = LdapDirectoryConfig.model_validate({
            "type": "ldap", "servers": [first.ldaps_url, second.ldaps_url], "ca_file": str(pki.ca),
            "bind_dn": SERVICE_DN, "bind_password": first.service_password, "timeout": args.ldap_timeout,
            "connect_timeout": args.ldap_timeout, "recheck_interval": args.recheck_interval,
            "user_search": {"base": f"ou=people,{SUFFIX}"}, "cache": {"ttl_seconds": 0},
        })
        connector = build_connector(config, state=MemoryState())
        for user in users * 2:
            _timed_sign_in(connector, user)
        assert first.proc is not None
        os.kill(first.proc.pid, signal.SIGSTOP)
        first_after, ok_first = _timed_sign_in(connector, users[0])
        later = [_timed_sign_in(connector, users[i % len(users)]) for i in range(args.sign_ins)]
        os.kill(first.proc.pid, signal.SIGCONT)  # it answers again ...
        second.stop()  # ... and is the only one left
        start = time.perf_counter()
        failed_meanwhile = 0
        while True:
            _, ok = _timed_sign_in(connector, users[1])
            if ok:
                break
            failed_meanwhile += 1
            if time.perf_counter() - start > 60:
                break
        recovered = time.perf_counter() - start
        connector.close()
        return {
            "timeout_seconds": args.ldap_timeout,
            "first_sign_in_after_freeze_seconds": round(first_after, 2),
            "first_sign_in_ok": ok_first,
            "next_sign_ins_p50_ms": round(statistics.median(t for t, _ in later) * 1000, 2),
            "next_sign_ins_max_ms": round(max(t for t, _ in later) * 1000, 2),
            "next_sign_ins_failed": sum(1 for _, ok in later if not ok),
            "thawed_other_killed_first_success_after_seconds": round(recovered, 2),
            "sign_ins_failed_meanwhile": failed_meanwhile,
        }
    finally:
        for server in (first, second):
            if server.proc is not None and server.proc.poll() is None:
                os.kill(server.proc.pid, signal.SIGCONT)
            server.stop()


def sts_breaker(args: argparse.Namespace) -> dict[str, Any]:
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    relay = Relay(moto.get_host_and_port()[1])
    config = StsConfig(mode="aws", endpoint_url=relay.url, connect_timeout=args.sts_connect_timeout,
                       read_timeout=args.sts_read_timeout, max_attempts=args.sts_max_attempts,
                       total_timeout=args.sts_total_timeout, breaker_open_seconds=args.breaker_open_seconds)
    gateway = StsGateway(clients=StsClients(config=config), issuer="https://broker.example.com")
    grant = make_grant()

    def call() -> tuple[float, str | None]:
        start = time.perf_counter()
        try:
            gateway.assume_with_web_identity(grant=grant, token="x" * 20, session_name="bench", duration=3600)
            code = None
        except BrokerError as exc:
            code = exc.code
        return time.perf_counter() - start, code

    try:
        warm = [call() for _ in range(5)]
        relay.hang()
        first, first_code = call()
        opened = time.perf_counter()
        held = relay.held
        open_calls = []
        deadline = time.perf_counter() + args.breaker_open_seconds * 0.5
        while time.perf_counter() < deadline:  # well inside the open interval
            open_calls.append(call())
        seen_while_open = relay.held - held
        relay.forward()
        start = time.perf_counter()
        answering_after_open = start - opened
        failed = 0
        while call()[1] is not None and time.perf_counter() - start < 60:
            failed += 1
            time.sleep(0.01)
        recovered = time.perf_counter() - start
        return {
            "healthy_call_p50_ms": round(statistics.median(t for t, _ in warm) * 1000, 2),
            "first_call_after_freeze_seconds": round(first, 2),
            "first_call_code": first_code,
            "calls_while_open": len(open_calls),
            "calls_while_open_p50_ms": round(statistics.median(t for t, _ in open_calls) * 1000, 3),
            "calls_while_open_p99_ms": round(statistics.quantiles([t for t, _ in open_calls], n=100)[98] * 1000, 3),
            "calls_while_open_max_ms": round(max(t for t, _ in open_calls) * 1000, 3),
            "calls_while_open_codes": sorted({c or "ok" for _, c in open_calls}),
            "connections_frozen_endpoint_saw_while_open": seen_while_open,
            "answers_again_seconds_after_breaker_opened": round(answering_after_open, 2),
            "answers_again_first_success_after_seconds": round(recovered, 2),
            "settings": config.model_dump(include={"connect_timeout", "read_timeout", "max_attempts", "total_timeout",
                                                   "breaker_failures", "breaker_open_seconds"}),
        }
    finally:
        relay.cut()
        moto.stop()


def redis_down() -> dict[str, Any]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    state = RedisState.from_url(f"redis://127.0.0.1:{port}/0")
    start = time.perf_counter()
    code = None
    try:
        state.get("x")
    except StateUnavailable as exc:
        code = exc.code
    return {"seconds": round(time.perf_counter() - start, 3), "code": code}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 s timeouts, 10 sign-ins")
    parser.add_argument("--sts-connect-timeout", type=float, default=3.0)
    parser.add_argument("--sts-read-timeout", type=float, default=10.0)
    parser.add_argument("--sts-max-attempts", type=int, default=3)
    parser.add_argument("--sts-total-timeout", type=float, default=15.0)
    parser.add_argument("--ldap-timeout", type=float, default=10.0)
    parser.add_argument("--recheck-interval", type=float, default=1.0)
    parser.add_argument("--breaker-open-seconds", type=float, default=1.0)
    parser.add_argument("--sign-ins", type=int, default=50)
    args = parser.parse_args()
    if args.quick:
        args.sts_connect_timeout, args.sts_read_timeout, args.sts_total_timeout = 1.0, 1.0, 3.5
        args.ldap_timeout, args.sign_ins = 1.0, 10
    print(json.dumps({"sts_hung": sts_hung(args), "sts_breaker": sts_breaker(args), "ldap_frozen": ldap_frozen(args),
                      "redis_down": redis_down()}, indent=2))


if __name__ == "__main__":
    main()
