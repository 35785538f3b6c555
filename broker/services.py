"""The services container: what ``broker.app.build_services`` builds once, complete, for the routers.

It is its own module so that both the composition root (``broker.app``, which builds it) and the
web layer's typed dependencies (``broker.web.deps``, which hand it to routers) can import it
without importing each other. Every field is set at construction; the one that may be absent,
``directory``, says so in its type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from broker import logs
from broker.access_requests import AccessRequests
from broker.admin_auth import AdminTokens
from broker.aws.doctor_cache import DoctorOnDemand
from broker.aws.factory import Aws
from broker.config import Config
from broker.connectors.base import Connector, UpstreamConnector
from broker.db.notify_outbox import OutboxNotifier
from broker.db.store import SqlMappingStore
from broker.flow import Flow
from broker.metrics import Metrics
from broker.mfa.enrolment import EnrolmentCodes
from broker.mfa.passkeys import Passkeys
from broker.mfa.steps import StepUps
from broker.minting.factory import Minting
from broker.readiness import Readiness
from broker.state import StateStore
from broker.web.access import Access

log = logs.get_logger("broker.app")


@dataclass
class Services:
    config: Config
    engine: Engine
    store: SqlMappingStore
    flow: Flow
    admin_tokens: AdminTokens
    metrics: Metrics
    minting: Minting
    """Signing keys (parsed once), the SAML IdP and the OIDC issuer."""
    aws: Aws
    """STS clients (one per partition/region) and the console sign-in (AWS or SANDBOX)."""
    state: StateStore
    """Shared state (in-process or Redis): sessions, replay caches, rate limits, the group cache."""
    directory: Connector | None
    """The configured connector (``directory:``), built by broker.connectors.registry; None if not configured."""
    access: Access
    """Portal sessions, CLI tokens (device login), rate limits, portal preferences (broker.web.access)."""
    upstream: Mapping[str, UpstreamConnector]
    """Upstream identity providers (``upstream:``) by name, in configuration order: SAML SPs and OIDC RPs."""
    readiness: Mapping[str, Callable[[], object]]
    """This replica's own fitness, by name (/readyz answers 503 when one fails): each raises when
    what it checks cannot be used. The same mapping as ``ready.checks``."""
    ready: Readiness
    """/readyz and /metrics: own checks, shared dependencies (reported only), circuit breakers,
    configuration hashes (broker.readiness)."""
    doctor: DoctorOnDemand
    """GET /api/v1/admin/doctor: read-only IAM checks per account (``doctor:``), cached in ``state``."""
    passkeys: Passkeys
    """WebAuthn step-up: challenges in ``state``, credentials in the database (``mfa.webauthn``)."""
    access_requests: AccessRequests
    """Just-in-time access requests on the flow: request, approve/deny, cancel, end, expiry sweep."""
    notifier: OutboxNotifier
    """``broker.notify.Notifier``: queues a notification for named webhooks (the outbox)."""
    step_ups: StepUps
    """Step-up MFA's decisions: TOTP enrolment, step-ups, recovery codes (``mfa:``; broker.mfa.steps)."""
    enrolment: EnrolmentCodes
    """Who may enrol a first second factor (``mfa.enrolment``) and the admins' enrolment codes."""

    def close(self) -> list[str]:
        """Release what build_services opened (the sandbox STS, HTTP clients, LDAP pools, Redis,
        database connections); what was closed, by name. `broker serve` has the app's lifespan
        call it once each worker has stopped serving (``create_app(close_services=True)``); safe
        to call twice. (Not by default a lifespan hook: test clients enter and leave an app's
        lifespan many times.)"""
        closers: list[tuple[str, Callable[[], Any]]] = [("aws", self.aws.close)]
        closers += [(f"upstream {name}", c.close) for name, c in self.upstream.items()]
        if self.directory is not None:
            closers.append(("directory", self.directory.close))
        close_state: Callable[[], Any] | None = getattr(self.state, "close", None)  # Redis only
        if close_state is not None:
            closers.append(("state", close_state))
        closers.append(("database", self.engine.dispose))
        closed: list[str] = []
        for name, close in closers:
            try:
                close()
                closed.append(name)
            except Exception as exc:  # noqa: BLE001 - one failing close must not keep the others open
                log.warning("close_failed", what=name, error_type=type(exc).__name__)
        return closed
