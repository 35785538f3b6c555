"""Operations: health, readiness, metrics, OpenAPI, request ids and JSON logs without secrets."""

from __future__ import annotations

import json

import pytest

from broker.app import create_app
from broker.db.session import downgrade
from broker.errors import Unavailable
from tests.conftest import ADMIN_TOKEN, make_config


def test_health_and_readiness(app_factory):
    client = app_factory()
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["checks"]["database"] == "ok"


def test_readiness_fails_when_the_schema_is_behind(app_factory):
    client = app_factory()
    downgrade(client.app.state.services.engine, "base")
    r = client.get("/readyz")
    assert r.status_code == 503 and "broker migrate" in r.json()["checks"]["database"]
    assert client.get("/healthz").status_code == 200


def test_refuses_to_start_on_an_unmigrated_database(tmp_path):
    config = make_config(tmp_path, database={"auto_migrate": False})
    with pytest.raises(Unavailable, match="broker migrate"):
        create_app(config, env={})


def test_metrics_count_requests_by_route_and_errors(app_factory, admin_headers):
    client = app_factory()
    client.get("/api/v1/admin/accounts/123412341234", headers=admin_headers)
    client.get("/api/v1/admin/accounts")
    text = client.get("/metrics").text
    assert 'broker_http_requests_total{method="GET",route="/api/v1/admin/accounts/{account}",status="404"} 1.0' in text
    assert 'broker_errors_total{code="unauthenticated"} 1.0' in text
    assert "broker_http_request_duration_seconds_bucket" in text


def test_openapi_and_docs(app_factory):
    client = app_factory()
    spec = client.get("/openapi.json").json()
    for path in ("/api/v1/admin/accounts", "/api/v1/admin/mappings", "/api/v1/admin/import", "/api/v1/admin/audit", "/healthz"):
        assert path in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_request_id_is_echoed_or_made(app_factory):
    client = app_factory()
    assert client.get("/healthz", headers={"x-request-id": "abc-123"}).headers["x-request-id"] == "abc-123"
    made = client.get("/healthz", headers={"x-request-id": "bad id with spaces"}).headers["x-request-id"]
    assert len(made) == 32 and " " not in made


def test_unknown_route_and_method(app_factory, admin_headers):
    client = app_factory()
    assert client.get("/nope").json()["error"]["code"] == "not_found"
    assert client.delete("/healthz").json()["error"]["code"] == "method_not_allowed"


def test_logs_are_json_with_request_id_and_never_hold_secrets(app_factory, capfd):
    client = app_factory()
    h = {"Authorization": f"Bearer {ADMIN_TOKEN}", "x-request-id": "trace-42"}
    client.post("/api/v1/admin/accounts", json={"id": "111122223333", "description": "with secret in description"}, headers=h)
    client.get("/api/v1/admin/accounts?token=query-secret-value", headers=h)
    client.get("/api/v1/admin/accounts", headers={"Authorization": "Bearer wrong-token-value"})
    out = capfd.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    access = [entry for entry in lines if entry.get("event") == "request" and entry.get("request_id") == "trace-42"]
    assert access and access[0]["path"] == "/api/v1/admin/accounts" and access[0]["status"] == 201
    for secret in (ADMIN_TOKEN, "wrong-token-value", "query-secret-value"):
        assert secret not in out


def test_closing_releases_what_start_up_opened(tmp_path):
    from fastapi.testclient import TestClient

    app = create_app(make_config(tmp_path), env={}, configure_logging=False)
    services = app.state.services
    client = TestClient(app)
    assert client.get("/readyz").status_code == 200
    sandbox_url = services.aws.sandbox.endpoint()  # the in-process moto STS is running
    assert sandbox_url.startswith("http://127.0.0.1:")
    services.close()  # what each worker's lifespan does in `broker serve` once it has stopped serving
    import httpx

    with pytest.raises(httpx.TransportError):
        httpx.get(sandbox_url, timeout=2)
    services.close()  # a second close is harmless
