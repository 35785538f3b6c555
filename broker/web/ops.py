"""Operations: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from broker.draining import Drain
from broker.web.deps import ServicesDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Database, directory and signing keys are usable; 503 draining once shutting down")
def readyz(request: Request, services: ServicesDep) -> Response:
    drain: Drain | None = getattr(request.app.state, "drain", None)
    if drain is not None and drain.started:  # shutting down (broker.serving): still serving, not for long
        return JSONResponse({"status": "draining", "checks": {}}, status_code=503)
    checks: dict[str, Any] = {}
    ok = True
    for name, check in services.readiness.items():
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - a readiness probe reports, it never raises
            ok = False
            checks[name] = getattr(exc, "message", None) or type(exc).__name__
    return JSONResponse({"status": "ready" if ok else "not_ready", "checks": checks}, status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=True)
def metrics(services: ServicesDep) -> Response:
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)
