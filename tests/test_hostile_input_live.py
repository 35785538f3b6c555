"""Against a live server (uvicorn in a thread, or `broker serve` in its own process): a hostile
import or a hostile naming rule never stalls the worker; /healthz answers while they are
processed (SECURITY.md, resource exhaustion)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
import time

import bcrypt
import httpx
import pytest
import yaml

from broker.app import create_app
from tests.conftest import ADMIN_TOKEN, free_port, make_config

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# A client gives up after this: a stalled worker fails the test instead of hanging it.
TIMEOUT = httpx.Timeout(30.0)


def _serve(serve_app, tmp_path, **sections) -> str:
    app = create_app(make_config(tmp_path, **sections), env={"BROKER_ADMIN_TOKEN": ADMIN_TOKEN}, configure_logging=False)
    port = free_port()
    serve_app(app, port)
    return f"http://127.0.0.1:{port}"


def _healthz_while(base: str, busy: threading.Thread) -> list[int]:
    """GET /healthz until ``busy`` ends; the statuses of the answers that came while it was still running."""
    during = []
    with httpx.Client(base_url=base, timeout=TIMEOUT) as c:
        while busy.is_alive():
            status = c.get("/healthz").status_code
            if busy.is_alive():
                during.append(status)
    return during


@pytest.mark.timeout(120)
def test_healthz_answers_while_a_huge_yaml_import_is_parsed(serve_app, tmp_path):
    base = _serve(serve_app, tmp_path)
    flat = b"description: [" + b",".join([b"1"] * 450_000) + b"]\n"  # 900 KB of nodes, under the 1 MiB body limit
    answers: list[httpx.Response] = []

    def hostile_imports() -> None:
        with httpx.Client(base_url=base, timeout=TIMEOUT, headers=ADMIN) as c:
            for _ in range(3):
                answers.append(c.post("/api/v1/admin/import", content=flat, headers={"content-type": "application/yaml"}))

    busy = threading.Thread(target=hostile_imports)
    busy.start()
    during = _healthz_while(base, busy)
    busy.join()
    assert [r.status_code for r in answers] == [422] * 3
    assert all(r.json()["error"]["code"] == "invalid_import" for r in answers)
    assert during and set(during) == {200}, during


NESTED_RULE = r"^AWS-(?P<account>\d{12}|[a-z-]+)-(?P<role>([\w+=,.@-]+)+)$"  # exponential for a backtracking engine
PW = "carol-test-pw"


@pytest.fixture
def broker_process(tmp_path):
    """``start(sections)`` runs ``broker serve`` in its own process (a stalled worker there holds
    its own GIL, not the test's) and returns its URL; the process is ended afterwards."""
    procs: list[subprocess.Popen] = []

    def start(**sections) -> str:
        port = free_port()
        config = {"server": {"host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}"},
                  "database": {"url": f"sqlite:///{tmp_path / 'broker.db'}", "auto_migrate": True}, **sections}
        path = tmp_path / "broker.yaml"
        path.write_text(yaml.safe_dump(config))
        env = {**os.environ, "BROKER_ADMIN_TOKEN": ADMIN_TOKEN}
        proc = subprocess.Popen([sys.executable, "-m", "broker", "serve", "--config", str(path)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    return base
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "broker serve exited"
            time.sleep(0.1)
        raise AssertionError("broker serve did not start")

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a worker stuck in a regex never sees SIGTERM
            proc.kill()
            proc.wait(timeout=10)


@pytest.mark.sts
@pytest.mark.timeout(120)
def test_an_issuance_through_a_nested_quantifier_rule_answers_and_healthz_too(broker_process):
    almost = "AWS-dev-" + "a" * 48 + "!"  # no match: 2**48 paths for Python's re, one pass for RE2
    base = broker_process(
        api={"password_login": True},
        directory={
            "type": "static",
            "name": "people",
            "users": [{"username": "carol", "id": "c0c0c0c0-0000-4000-8000-000000000003",
                       "password_hash": bcrypt.hashpw(PW.encode(), bcrypt.gensalt(rounds=4)).decode(),
                       "groups": [almost, "AWS-dev-Admin"]}],
        },
        mapping={
            "accounts": [{"id": "111111111111", "alias": "dev", "roles": [{"name": "Admin"}]}],
            "rules": [{"name": "nested", "pattern": NESTED_RULE}],
        },
    )
    answers: list[httpx.Response] = []
    basic = "Basic " + base64.b64encode(f"carol:{PW}".encode()).decode()

    def issue() -> None:
        with httpx.Client(base_url=base, timeout=TIMEOUT) as c:
            answers.append(c.post("/api/v1/credentials", json={"account": "dev", "role": "Admin"}, headers={"Authorization": basic}))

    busy = threading.Thread(target=issue, daemon=True)
    busy.start()
    with httpx.Client(base_url=base, timeout=TIMEOUT) as c:
        health = c.get("/healthz")
    busy.join(timeout=TIMEOUT.read + 5)
    assert health.status_code == 200
    assert len(answers) == 1, "the issuance did not answer"
    assert answers[0].status_code == 200, answers[0].text
    assert answers[0].json()["AccessKeyId"]


def test_a_python_only_rule_is_refused_by_the_api_saying_re2(serve_app, tmp_path):
    base = _serve(serve_app, tmp_path)
    with httpx.Client(base_url=base, timeout=TIMEOUT, headers=ADMIN) as c:
        r = c.post("/api/v1/admin/rules", json={"name": "look", "pattern": r"^(?!x)AWS-(?P<account>\d{12})-(?P<role>\w+)$"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_regex"
        assert "RE2" in r.json()["error"]["message"] and "(?!" in r.json()["error"]["message"]
        assert c.post("/api/v1/admin/rules", json={"name": "nested", "pattern": NESTED_RULE}).status_code == 201
        assert c.get("/api/v1/admin/rules/look").status_code == 404
