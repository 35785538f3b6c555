"""The TOTP factor store on SQLite and PostgreSQL: one code used by two step-ups at once is
accepted once; a recovery code works once; secrets at rest are AES-GCM ciphertext bound to the
person when a key is configured."""

from __future__ import annotations

import base64
import os
import threading
from typing import Any

import pyotp
import pytest
from sqlalchemy import select

from broker.access_config import RateLimitsConfig
from broker.audit import AuditFilter
from broker.db.mfa_store import SqlFactorStore
from broker.db.models import MfaTotp
from broker.db.session import session_factory
from broker.db.store import SqlMappingStore
from broker.decisions.log import AuditWriter, DecisionContext
from broker.domain import Identity
from broker.errors import MfaCodeReused
from broker.mfa.secrets import SecretBox, SecretUnreadable
from broker.mfa.steps import StepUps
from broker.ratelimit import RateLimiter
from broker.state.memory import MemoryState
from tests.mfa.conftest import earlier_code

ALICE = Identity(id="a1b2c3d4-0000-4000-8000-000000000001", username="alice")
CTX = DecisionContext(source_ip="127.0.0.1", via="portal")


def _steps(engine: Any, key: bytes | None = None) -> StepUps:
    return StepUps(store=SqlFactorStore(engine), box=SecretBox(key), audit=AuditWriter(SqlMappingStore(engine)),
                   limits=RateLimiter(MemoryState(), RateLimitsConfig()), issuer="Test")


def _enrolled(steps: StepUps) -> tuple[str, Identity]:
    enrolment = steps.begin_totp(ALICE)
    steps.confirm_totp(ALICE, earlier_code(enrolment.secret), ctx=CTX)
    return enrolment.secret, ALICE


def test_two_step_ups_with_one_code_at_once_one_wins(engine):
    steps = _steps(engine)
    secret, _ = _enrolled(steps)
    code = pyotp.TOTP(secret).now()
    barrier = threading.Barrier(2)
    results: list[str] = []

    def attempt() -> None:
        barrier.wait()
        try:
            steps.step_up(ALICE, method="totp", code=code, ctx=CTX)
            results.append("allow")
        except MfaCodeReused:
            results.append("mfa_code_reused")

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["allow", "mfa_code_reused"]
    outcomes = sorted(e["outcome"] for e in SqlMappingStore(engine).audit_events(AuditFilter(action="mfa.step_up"), limit=10, before_id=None))
    assert outcomes == ["allow", "deny"]


def test_the_secret_at_rest_is_ciphertext_bound_to_the_person(engine):
    key = os.urandom(32)
    steps = _steps(engine, key)
    secret, _ = _enrolled(steps)
    with session_factory(engine)() as s:
        stored = s.scalar(select(MfaTotp.secret))
    assert stored is not None and stored.startswith("aesgcm:") and secret not in stored
    box = SecretBox(key)
    assert box.open(stored, person_id=ALICE.id) == secret
    with pytest.raises(SecretUnreadable):
        box.open(stored, person_id="someone-else")
    with pytest.raises(SecretUnreadable):
        SecretBox(base64.b64decode(base64.b64encode(os.urandom(32)))).open(stored, person_id=ALICE.id)
    with pytest.raises(SecretUnreadable):
        SecretBox(None).open(stored, person_id=ALICE.id)


def test_a_secret_the_key_cannot_read_is_a_clear_503_and_audited(engine):
    """The key was changed (or dropped) after enrolment: the step-up is refused with 503
    mfa_unavailable, the operator's problem in plain words, audited — not an internal error."""
    secret, _ = _enrolled(_steps(engine, os.urandom(32)))
    other = _steps(engine, os.urandom(32))
    with pytest.raises(SecretUnreadable) as refused:
        other.step_up(ALICE, method="totp", code=pyotp.TOTP(secret).now(), ctx=CTX)
    assert refused.value.status == 503 and refused.value.code == "mfa_unavailable"
    assert "mfa.encryption_key" in refused.value.message
    [event] = SqlMappingStore(engine).audit_events(AuditFilter(action="mfa.step_up"), limit=10, before_id=None)
    assert event["outcome"] != "allow" and event["details"]["code"] == "mfa_unavailable"
