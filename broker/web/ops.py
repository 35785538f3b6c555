"""Operations: liveness, readiness and Prometheus metrics.

/readyz's status code is this replica's own fitness only (``services.readiness``: database
reachable and migrated, signing keys, state store): the load balancer takes a broken replica out.
Dependencies every replica shares (directory, STS) are reported in its body and as
``broker_dependency_up``, never as a 503 of /readyz: their outage must not empty the load
balancer; the broker answers requests that need them with its own 503 and stable code
(broker.readiness). Both handlers are sync: the checks (bounded by their timeouts) run in the
threadpool, never on the event loop. /metrics reuses the dependencies' outcomes for 2 s
(``broker.readiness.Readiness.recent_dependencies``): a scrape every second binds once in two.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from broker import readiness
from broker.draining import Drain
from broker.services import Services
from broker.web.deps import ServicesDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _dependencies(services: Services, *, recent: bool = False) -> dict[str, str]:
    """The dependencies' outcomes, recorded in the metrics; ``recent``: those of at most
    ``broker.readiness.DEPENDENCY_SECONDS`` ago (/metrics: no directory bind per scrape)."""
    found = services.ready.recent_dependencies() if recent else services.ready.run_dependencies()
    services.metrics.observe_readiness(
        {name: outcome == "ok" for name, outcome in found.items()},
        [(b.kind, b.target, b.state != "closed") for b in services.ready.breakers()],
        (services.ready.mapping_hash, services.ready.config_hash),
    )
    return found


@router.get("/readyz", summary="This replica can serve: database, signing keys and state store usable; 503 draining once shutting down")
def readyz(request: Request, services: ServicesDep) -> Response:
    drain: Drain | None = getattr(request.app.state, "drain", None)
    if drain is not None and drain.started:  # shutting down (broker.serving): still serving, not for long
        return JSONResponse({"status": "draining", "checks": {}}, status_code=503)
    checks = readiness.run(services.readiness)
    ok = all(outcome == "ok" for outcome in checks.values())
    body: dict[str, Any] = {
        "status": "ready" if ok else "not_ready",
        "checks": checks,
        "dependencies": _dependencies(services),
        "breakers": [
            {"kind": b.kind, "target": b.target, "state": b.state, "failures": b.failures}
            for b in services.ready.breakers()
        ],
        "config_hash": services.ready.mapping_hash,
        "effective_config_hash": services.ready.config_hash,
    }
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=True)
def metrics(services: ServicesDep) -> Response:
    _dependencies(services, recent=True)
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)
