"""Fixtures of the forwarding tests: destinations, a store that fills the outbox, a test PKI."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from broker.audit import AuditContext, AuditFilter, Decision
from broker.audit_forward.config import SyslogDestination, WebhookDestination
from broker.audit_forward.forwarder import Forwarder, build_forwarder
from broker.db.outbox import with_destinations
from broker.db.store import SqlMappingStore
from broker.mapping.model import AccountSpec
from broker.metrics import Metrics
from tests.directory.servers import Pki, make_pki

CTX = AuditContext(actor="admin:test", request_id="req-1", source_ip="127.0.0.1")
SD_ID = "broker@32473"


def syslog_dest(port: int, **kw: Any) -> SyslogDestination:
    return SyslogDestination.model_validate({"type": "syslog", "address": f"127.0.0.1:{port}", "tls": "none", **kw})


def webhook_dest(url: str, **kw: Any) -> WebhookDestination:
    return WebhookDestination.model_validate({"type": "webhook", "url": url, **kw})


def forwarding_store(engine: Any, *dests: SyslogDestination | WebhookDestination) -> SqlMappingStore:
    return SqlMappingStore(with_destinations(engine, [d.key for d in dests]))


def forwarder(engine: Any, *dests: SyslogDestination | WebhookDestination, env: dict[str, str] | None = None,
              metrics: Metrics | None = None) -> Forwarder:
    fw = build_forwarder(list(dests), engine=engine, metrics=metrics, env=env or {})
    assert fw is not None
    return fw


def admin_writes(store: SqlMappingStore) -> None:
    """Audit rows through ``audit.record`` (the ORM path): an account and its two roles."""
    store.create_account(
        AccountSpec.model_validate({"id": "111122223333", "alias": "prod", "roles": [{"name": "Admin"}, {"name": "RO"}]}),
        CTX,
    )


def decisions(n: int, *, outcome: str = "allow") -> list[Decision]:
    """Audit rows through ``audit.record_decisions`` (the issuance path's batches)."""
    return [
        Decision(CTX, "issue.credentials", outcome, target_type="role", target_id=f"111122223333/Admin-{i}",
                 details={"n": i})
        for i in range(n)
    ]


def all_events(store: SqlMappingStore) -> list[dict[str, Any]]:
    """Every audit event, oldest first."""
    return list(reversed(store.audit_events(AuditFilter(), limit=10_000, before_id=None)))


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Wait until ``condition()`` (a receiver thread catching up); fail with ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki", names=("localhost",))
