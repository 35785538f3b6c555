"""Property-based: whatever schemathesis sends to the API (valid, invalid, odd), the answer
is never a 5xx, every error carries a stable code, and every answer is one the OpenAPI schema
documents: its status code, its content type and its body (schemathesis's conformance checks,
on the JSON APIs under /api/v1)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from broker.app import create_app
from tests.conftest import ADMIN_TOKEN, make_config

# Built at import because schemathesis parametrizes from the schema at collection time.
_app = create_app(
    make_config(
        Path(tempfile.mkdtemp(prefix="broker-fuzz-")),
        mapping={
            "accounts": [{"id": "111122223333", "alias": "prod", "roles": [{"name": "Admin"}]}],
            "mappings": [{"group": "ops", "account": "prod", "role": "Admin"}],
        },
    ),
    env={"BROKER_ADMIN_TOKEN": ADMIN_TOKEN},
    configure_logging=False,
)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
OPERATIONS = [op.ok() for op in schemathesis.openapi.from_asgi("/openapi.json", _app).get_all_operations()]


# schemathesis's own pytest plugin does not load under pytest 9, so hypothesis drives its strategies.
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_api_never_answers_5xx(operation):
    @given(case=operation.as_strategy())
    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case):
        response = case.call(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert response.status_code < 500, (case.method, case.formatted_path, response.text)
        content_type = response.headers.get("content-type") or [""]  # schemathesis: lists of values
        if response.status_code >= 400 and content_type[0].startswith("application/json"):
            error = response.json()["error"]
            # /oauth/* answers in the RFC 6749 §5.2 shape: {"error": "<code>", "error_description": ...}
            assert error if case.path.startswith("/oauth/") else error["code"]
        if case.path.startswith("/api/v1/"):
            case.validate_response(response, checks=CHECKS)

    check()
