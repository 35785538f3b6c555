"""Redis down under a running portal (a real redis-server on a random port, stopped and started).

What a person notices: the portal's own "Temporarily unavailable" page with 503 — never JSON in
the browser, never a 500 — while the JSON API answers 503 ``state_unavailable``; and the portal
works again by itself once Redis is back.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import free_port, make_config, require_program
from tests.directory.servers import stop as stop_process
from tests.portal.conftest import ALICE_PW, csrf_of, sections, sign_in


class RedisServer:
    """redis-server on a loopback port of its own, without persistence; stop() and start() again."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.root)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        for _ in range(100):
            done = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True,
                                  check=False)
            if done.stdout.strip() == "PONG":
                return
            if self.proc.poll() is not None:
                break
            subprocess.run(["sleep", "0.05"], check=False)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    require_program("redis-server", "redis-cli")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def _unavailable_page(response: Any) -> None:
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/html")
    assert "Temporarily unavailable" in response.text and "Redis" in response.text


def test_during_a_redis_outage_the_portal_shows_its_unavailable_page(tmp_path, app_factory, redis_server):
    data = sections() | {"state": {"backend": "redis", "redis_url": redis_server.url}}
    client = app_factory(make_config(tmp_path, **data))
    client.follow_redirects = False
    assert sign_in(client).status_code == 303
    assert client.get("/").status_code == 200
    newcomer = TestClient(client.app, follow_redirects=False)
    form = newcomer.get("/login?next=/")  # a sign-in form fetched before the outage
    assert form.status_code == 200
    csrf = csrf_of(form.text)

    redis_server.stop()
    _unavailable_page(client.get("/"))
    _unavailable_page(client.get("/login"))
    _unavailable_page(newcomer.post("/login", data={"username": "alice", "password": "x", "csrf_token": csrf}))
    _unavailable_page(client.get("/device"))
    basic = "Basic " + base64.b64encode(f"alice:{ALICE_PW}".encode()).decode()
    api = client.get("/api/v1/whoami", headers={"Authorization": basic})
    assert api.status_code == 503 and api.headers["content-type"].startswith("application/json")
    assert api.json()["error"]["code"] == "state_unavailable"

    redis_server.start()  # the same port, empty (no persistence): the session is gone
    assert client.get("/").status_code == 303  # to the sign-in page, which works again
    assert client.get("/login").status_code == 200
