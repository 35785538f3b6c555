"""The composition root: ``build_services(config)`` builds the engine, store and every service
once (``broker.services.Services``, complete), ``create_app(config)`` mounts the routers on it.

The only module that knows every room: routers reach the services through ``broker.web.deps``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from sqlalchemy import Engine

from broker import __version__, logs
from broker.access_requests import SWEEP_LIMIT, AccessRequests
from broker.admin_auth import AdminTokens
from broker.audit_forward.forwarder import Forwarder, build_forwarder
from broker.aws.doctor_cache import DoctorOnDemand, ReportCache
from broker.aws.factory import build_aws
from broker.aws.iam_access import IamAccess
from broker.aws.trust import BrokerSide
from broker.break_glass.accounts import BreakGlass
from broker.config import Config, load_config
from broker.connectors.base import BreakerConnector, ProbeConnector
from broker.connectors.registry import build_connector, build_upstream
from broker.db import outbox
from broker.db.durable_state import open_durable_state
from broker.db.mfa_store import SqlFactorStore
from broker.db.notify_outbox import OutboxNotifier
from broker.db.requests_store import SqlRequestStore
from broker.db.session import current_revision, head_revision, make_engine, migrate
from broker.db.store import SqlMappingStore, document_hash
from broker.db.webauthn_store import SqlWebAuthnStore
from broker.draining import LIFESPAN_STATE_KEY, CloseWhileDraining, Drain
from broker.errors import BrokerError, ConfigError, StateUnavailable, Unavailable
from broker.flow import Flow
from broker.metrics import Metrics
from broker.mfa.enrolment import EnrolmentCodes
from broker.mfa.passkeys import Passkeys
from broker.mfa.secrets import SecretBox
from broker.mfa.steps import StepUps
from broker.minting.factory import build_minting
from broker.notify.config import resolve as resolve_webhooks
from broker.notify_worker import Delivery
from broker.periodic import Periodic
from broker.readiness import Readiness, config_hash, directory_check, sts_check
from broker.services import Services
from broker.state import StateStore, open_state
from broker.web import (
    admin_api,
    admin_mfa,
    admin_pages,
    admin_pages_edit,
    admin_reports,
    admin_request_pages,
    admin_requests,
    admin_review_pages,
    admin_reviews,
    api_docs,
    audit_api,
    break_glass,
    device,
    federation,
    history_api,
    mfa,
    ops,
    portal,
    requests_api,
    upstream,
    user_api,
    webauthn,
)
from broker.web import errors as web_errors
from broker.web.access import Access
from broker.web.client_address import TrustedProxies
from broker.web.middleware import BodyLimit, ClientAddress, RequestContext, SecurityHeaders

log = logs.get_logger("broker.app")

MAPPING_SYNCED_ENV = "BROKER_MAPPING_SYNCED"
"""Set by `broker serve` for its workers once it has synced the mapping itself: the synced
document's hash. A worker whose file says something else (edited, then the workers restarted by
SIGHUP or respawned) syncs again."""
UVICORN_STARTUP_FAILURE = 3
"""uvicorn.config.STARTUP_FAILURE: a worker exiting with it stops the supervisor."""


def _check_schema(engine: Engine) -> None:
    have, want = current_revision(engine), head_revision()
    if have != want:
        raise Unavailable(f"database schema is at {have or 'nothing'}, the broker needs {want}: run `broker migrate`")


def _sync_config(store: SqlMappingStore, config: Config) -> None:
    """Config-declared mappings into the database. It runs under a database lock, so workers and
    replicas starting together sync one after the other; it changes only what the file declares."""
    plan = store.sync_config(config.mapping)
    for notice in plan.notices:
        log.warning("config_mapping_notice", notice=notice)
    if plan.changes:
        log.info("config_mapping_synced", changes=plan.changes)


def open_store(config: Config, *, sync_mapping: bool = True) -> tuple[Engine, SqlMappingStore]:
    """The database, migrated (when configured) and checked, with the file's mapping synced."""
    engine = make_engine(config.database)
    try:
        if config.database.auto_migrate:
            migrate(engine)
        _check_schema(engine)
        # with audit.forward, every audit row also gets its outbox rows (broker.db.outbox)
        store = SqlMappingStore(outbox.with_destinations(engine, [d.key for d in config.audit.forward]))
        if sync_mapping:
            _sync_config(store, config)
    except BaseException:
        engine.dispose()
        raise
    return engine, store


def prepare_start(config: Config) -> None:
    """What `broker serve` does once, before it starts several workers: migrate, check and sync
    the database, so a broken start stops there with every problem printed, and the workers
    (told by MAPPING_SYNCED_ENV) do not sync again."""
    engine, _ = open_store(config)
    engine.dispose()
    state = open_state(config.state)
    _state_answers(config, state)
    close = getattr(state, "close", None)
    if close is not None:
        close()
    os.environ[MAPPING_SYNCED_ENV] = document_hash(config.mapping)


STATE_START_TIMEOUT = 2.0
"""Seconds the Redis ping at start may take (``broker.state.redis`` socket timeouts)."""


def _state_answers(config: Config, state: StateStore) -> None:
    """A replica that cannot reach Redis at start does not start half-working: it stops with
    every start problem printed (`cannot start`), exit 1."""
    if config.state.backend == "memory":
        return
    try:
        state.ping()  # bounded: socket connect and read timeouts of STATE_START_TIMEOUT
    except StateUnavailable:
        close = getattr(state, "close", None)
        if close is not None:
            close()
        raise StateUnavailable(
            "the state store (Redis, state.redis_url) does not answer: a replica without it would not share "
            "sessions, device logins or rate limits with the others",
            details=[f"no answer to PING within {STATE_START_TIMEOUT:g} s; check state.redis_url and that Redis runs"],
        ) from None


def startup_problems(exc: BrokerError) -> list[str]:
    """A start-up failure as lines for an operator: the message, then each problem it lists."""
    if isinstance(exc, ConfigError):
        return [str(exc)]  # its text lists the problems already
    details = exc.details if isinstance(exc.details, list) else []
    return [exc.message, *(f"  - {d}" for d in details)]


def build_services(config: Config, *, env: Mapping[str, str] | None = None, sync_mapping: bool = True) -> Services:
    env = os.environ if env is None else env
    secrets_key = mfa_key(config, env)
    engine, store = open_store(config, sync_mapping=sync_mapping)
    minting = build_minting(
        public_url=config.server.public_url,
        keys=config.keys,
        saml_idp=config.saml_idp,
        oidc=config.oidc,
        session_tags=config.session_tags,
    )
    state = open_state(config.state)
    try:
        _state_answers(config, state)
    except BaseException:
        engine.dispose()
        raise
    directory = build_connector(config.directory, state=state) if config.directory is not None else None
    aws = build_aws(config=config.sts, public_url=config.server.public_url, saml_recipient=minting.saml.recipient)
    # Own fitness decides /readyz's status; shared dependencies are reported only (broker.readiness).
    readiness: dict[str, Callable[[], object]] = {"state": state.ping, "keys": minting.keys.check}

    def database() -> None:
        store.ping()
        _check_schema(engine)

    readiness["database"] = database
    sts_breakers = aws.sts.clients.breakers
    directory_breakers = directory.breakers if isinstance(directory, BreakerConnector) else list
    dependencies: dict[str, Callable[[], object]] = {}
    if isinstance(directory, ProbeConnector):  # an authenticated bind, never anonymous
        dependencies["directory"] = directory_check(directory.probe, directory_breakers)
    dependencies["sts"] = sts_check(sts_breakers)
    access = Access(config, state, durable=open_durable_state(config.state, engine, state))
    metrics = Metrics()
    notifier = OutboxNotifier(engine, config.notifications.webhooks)
    break_glass = None if config.break_glass is None else BreakGlass(
        config.break_glass, state=state, store=store, directory_check=dependencies.get("directory"),
        notifier=notifier, count=lambda outcome: metrics.break_glass.labels(outcome=outcome).inc())
    flow = Flow(store=store, directory=directory, minting=minting, aws=aws, log=store, limits=access.limits,
                devices=access.devices, requests=SqlRequestStore(engine, notifier), policies=config.jit.policies,
                break_glass=break_glass, mfa_default_max_age=config.mfa.default_max_age,
                step_up_url=f"{config.server.public_url}/mfa/step-up")
    return Services(
        config=config,
        engine=engine,
        store=store,
        flow=flow,
        admin_tokens=AdminTokens(config.admin, env, directory=directory),
        metrics=metrics,
        minting=minting,
        aws=aws,
        state=state,
        directory=directory,
        access=access,
        upstream=build_upstream(config.upstream, public_url=config.server.public_url, state=state, directory=directory),
        readiness=readiness,
        ready=Readiness(
            checks=readiness,
            dependencies=dependencies,
            breakers=lambda: [*directory_breakers(), *sts_breakers()],
            mapping_hash="sha256:" + document_hash(config.mapping),
            config_hash=config_hash(config),
        ),
        doctor=DoctorOnDemand(access=IamAccess(config.doctor, session_name="broker-doctor"), broker=BrokerSide.of(minting),
                              cache=ReportCache(state, config.doctor.cache_seconds),
                              run_timeout=config.doctor.run_timeout),
        passkeys=Passkeys.of(config.server.public_url, config.mfa.webauthn, state=state, store=SqlWebAuthnStore(engine),
                             audit=flow.audit),
        access_requests=AccessRequests(flow, public_url=config.server.public_url),
        notifier=notifier,
        step_ups=build_step_ups(config, engine, flow, secrets_key),
        enrolment=EnrolmentCodes(mode=config.mfa.enrolment, ttl=config.mfa.enrolment_code_ttl, state=state,
                                 audit=flow.audit, limits=flow.limits),
    )


def background_jobs(services: Services, *, env: Mapping[str, str]) -> list[Delivery | Periodic]:
    """What every worker runs beside serving: the notification delivery (with webhooks) and the
    just-in-time expiry sweep (with access policies). A webhook's unreadable URL or key: ConfigError."""
    config = services.config
    jobs: list[Delivery | Periodic] = []
    if config.notifications.webhooks:
        jobs.append(Delivery(services.engine, resolve_webhooks(config.notifications, env), metrics=services.metrics,
                             interval=config.notifications.interval_seconds))
    if config.jit.policies:
        # a full pass (SWEEP_LIMIT rows) may have left more: the next one at once
        jobs.append(Periodic("jit-expiry-sweep", lambda: services.access_requests.sweep() >= SWEEP_LIMIT,
                             interval=config.jit.sweep_seconds))
    return jobs


def mfa_key(config: Config, env: Mapping[str, str]) -> bytes | None:
    """The TOTP secrets' key (``mfa.encryption_key_*``), read once before anything is opened."""
    try:
        return config.mfa.encryption_key(env)
    except ValueError as exc:
        raise ConfigError([str(exc)]) from None


def build_step_ups(config: Config, engine: Engine, flow: Flow, key: bytes | None) -> StepUps:
    """Step-up MFA's decisions over the database (``mfa:``)."""
    return StepUps(store=SqlFactorStore(engine), box=SecretBox(key), audit=flow.audit, limits=flow.limits,
                   issuer=config.mfa.issuer)


def create_app(
    config: Config,
    *,
    env: Mapping[str, str] | None = None,
    configure_logging: bool = True,
    sync_mapping: bool = True,
    close_services: bool = False,
) -> FastAPI:
    """The app on its services. ``close_services``: its lifespan's shutdown closes them (`broker
    serve`, in every worker); tests that enter one app's lifespan many times close them themselves."""
    if configure_logging:
        logs.configure(config.logging.level, config.logging.format)
    services = build_services(config, env=env, sync_mapping=sync_mapping)
    try:
        forwarder = build_forwarder(config.audit.forward, engine=services.engine, metrics=services.metrics,
                                    env=os.environ if env is None else env,
                                    interval=config.audit.forward_interval_seconds)
        jobs = background_jobs(services, env=os.environ if env is None else env)
    except BaseException:
        services.close()
        raise
    if not services.admin_tokens.configured:
        log.warning("no_admin_tokens", hint="set BROKER_ADMIN_TOKEN or admin.tokens to use the admin API")
    drain = Drain()
    app = FastAPI(
        title="Federation broker",
        version=__version__,
        description="Directory identities into AWS accounts and roles, with no AWS keys anywhere.",
        # /docs is broker.web.api_docs (no CDN); no ReDoc. No slash redirects: they echo the Host header.
        docs_url=None, redoc_url=None, openapi_url=api_docs.OPENAPI_PATH if config.server.docs else None,
        redirect_slashes=False,
        lifespan=_lifespan(forwarder, services if close_services else None, drain, jobs),
    )
    app.state.services = services
    app.state.drain = drain
    app.state.forwarder = forwarder
    app.state.jobs = jobs
    app.state.metrics = services.metrics
    web_errors.install(app)
    # Routes are matched one by one in this order: the per-issuance user API first, the
    # admin API (many routes, seldom called) after the rest.
    app.include_router(user_api.router)
    app.include_router(requests_api.router)
    app.include_router(ops.router)
    app.include_router(federation.router)
    app.include_router(device.router)
    app.include_router(upstream.router)
    app.include_router(admin_api.router)
    app.include_router(admin_reports.router)
    app.include_router(admin_reviews.router)
    app.include_router(admin_requests.router)
    app.include_router(admin_mfa.router)
    app.include_router(audit_api.router)
    app.include_router(history_api.router)
    if config.portal.enabled:
        app.include_router(portal.router)
        app.include_router(webauthn.router)
        app.include_router(break_glass.router)
        app.include_router(mfa.router)
        app.include_router(admin_pages.router)
        app.include_router(admin_pages_edit.router)
        app.include_router(admin_review_pages.router)
        app.include_router(admin_request_pages.router)
    if config.server.docs:
        app.include_router(api_docs.router)
    # Added innermost first: the client address is decided before anything reads it, the request id
    # exists before the body limit can answer.
    app.add_middleware(BodyLimit, max_bytes=config.server.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestContext, metrics=services.metrics, access_log=config.logging.access_log)
    app.add_middleware(CloseWhileDraining, drain=drain)  # while draining: Connection: close
    app.add_middleware(ClientAddress, trusted=TrustedProxies(config.server.trusted_proxies))  # before all else
    return app


def _lifespan(forwarder: Forwarder | None, services: Services | None, drain: Drain,
              jobs: list[Delivery | Periodic]) -> Callable[[FastAPI], Any]:
    """The lifespan: the audit forwarder's thread and the background ``jobs`` (notification
    delivery, the expiry sweep) run while the app serves (in every worker); the
    server finds the app's Drain in its state (broker.serving). At the end, with ``services``, what
    the worker opened is closed, once, after the requests in flight (broker.serving's step 3)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        if forwarder is not None:
            forwarder.start()
        for job in jobs:
            job.start()
        try:
            yield {LIFESPAN_STATE_KEY: drain}
        finally:
            closed: list[str] = []
            for job in jobs:
                await anyio.to_thread.run_sync(job.close if isinstance(job, Delivery) else job.stop)
            if forwarder is not None:
                await anyio.to_thread.run_sync(forwarder.close)
                closed.append("audit forwarder")
            if services is not None:
                closed += await anyio.to_thread.run_sync(services.close)  # blocking closes: off the event loop
                log.info("closed", pid=os.getpid(), closed=closed)

    return lifespan


def app_from_env() -> FastAPI:
    """uvicorn factory (`broker serve` with several workers): the config path is $BROKER_CONFIG.

    A worker that cannot start prints why and exits with uvicorn's start-up failure code, so the
    supervisor stops instead of respawning workers that would fail the same way."""
    try:
        config = load_config()
        cpu = None
        if config.server.cpu_affinity:
            from broker.affinity import pin_worker

            cpu = pin_worker()  # before create_app starts threads: they inherit it
        app = create_app(config, sync_mapping=os.environ.get(MAPPING_SYNCED_ENV) != document_hash(config.mapping),
                         close_services=True)
    except BrokerError as exc:
        print("cannot start:\n" + "\n".join(startup_problems(exc)), file=sys.stderr, flush=True)
        sys.exit(UVICORN_STARTUP_FAILURE)
    if config.server.cpu_affinity:
        log.info("worker_cpu", cpu=cpu, note=None if cpu is not None else "server.cpu_affinity needs Linux and 2+ CPUs")
    return app
