"""Portal, sessions, device login: an app with a static directory (alice, bob, carol without
roles), two sandbox accounts, and helpers to sign in through the real login form."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from tests.conftest import make_config

ALICE_PW, BOB_PW, CAROL_PW = "alice-portal-pw-1", "bob-portal-pw-2", "carol-portal-pw-3"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def _hash(pw: str) -> str:
    return bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)).decode()


def sections() -> dict[str, Any]:
    return {
        "directory": {
            "type": "static",
            "name": "people",
            "users": [
                {"username": "alice", "id": "a1b2c3d4-0000-4000-8000-000000000001", "password_hash": _hash(ALICE_PW),
                 "display_name": "Alice Admin", "groups": ["aws-admins", "developers"]},
                {"username": "bob", "id": "b0b0b0b0-0000-4000-8000-000000000002", "password_hash": _hash(BOB_PW),
                 "groups": ["developers"]},
                {"username": "carol", "id": "c0c0c0c0-0000-4000-8000-000000000003", "password_hash": _hash(CAROL_PW),
                 "groups": ["marketing"]},
            ],
        },
        "mapping": {
            "accounts": [
                {"id": "111111111111", "alias": "sandbox-dev", "environment": "dev", "default_region": "eu-west-1",
                 "federation": {"path": "saml"},
                 "roles": [{"name": "Admin", "max_session_duration": 43200}, {"name": "Developer"}]},
                {"id": "222222222222", "alias": "sandbox-prod", "environment": "prod", "default_region": "us-east-1",
                 "federation": {"path": "web_identity"},
                 "roles": [{"name": "Admin"}, {"name": "ReadOnly", "max_session_duration": 7200}]},
            ],
            "mappings": [
                {"group": "aws-admins", "account": "sandbox-dev", "role": "Admin"},
                {"group": "aws-admins", "account": "sandbox-prod", "role": "Admin", "cli": False},
                {"group": "developers", "account": "sandbox-dev", "role": "Developer"},
                {"group": "developers", "account": "sandbox-prod", "role": "ReadOnly"},
            ],
        },
        "oauth": {"interval_seconds": 1},
    }


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def sign_in(client: Any, username: str = "alice", password: str = ALICE_PW, next_url: str = "/") -> Any:
    page = client.get(f"/login?next={next_url}")
    return client.post("/login", data={"username": username, "password": password, "csrf_token": csrf_of(page.text),
                                       "next": next_url})


class Clock:
    """The test's clock (epoch seconds) for sessions, tokens and device codes."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def build(app_factory: Callable[..., Any], clock: Clock) -> Callable[..., Any]:
    """A TestClient (no automatic redirects) on the portal app; ``extra`` sections override."""

    def make(**extra: Any) -> Any:
        data = sections()
        for key, value in extra.items():
            data[key] = {**data.get(key, {}), **value}
        client = app_factory(**data)
        client.follow_redirects = False
        client.app.state.services.access.set_clock(clock)
        return client

    return make


@pytest.fixture
def portal(build: Callable[..., Any]) -> Any:
    return build()


def audit(client: Any, admin_headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    return client.get("/api/v1/admin/audit", params=params, headers=admin_headers).json()["items"]


# ---- a real server (uvicorn in a thread) for the browser and the CLI ----


@dataclass
class Live:
    url: str
    app: Any

    @property
    def services(self) -> Any:
        return self.app.state.services


@pytest.fixture
def live(tmp_path: Path, serve_app: Any) -> Iterator[Callable[..., Live]]:
    from broker.app import create_app
    from tests.conftest import free_port

    def start(**extra: Any) -> Live:
        port = free_port()
        data = sections()
        data["server"] = {"public_url": f"http://127.0.0.1:{port}", "port": port}
        data["logging"] = {"level": "info", "format": "json", "access_log": False}
        for key, value in extra.items():
            data[key] = {**data.get(key, {}), **value}
        app = create_app(make_config(tmp_path, **data), env={}, configure_logging=False)
        serve_app(app, port)
        return Live(f"http://127.0.0.1:{port}", app)

    yield start
