"""Shared fixtures, and the rule for real components.

A test that needs a real component carries its marker (postgres, redis, ldap, ad, sts,
saml_peer, oidc_peer, browser) and calls ``require(...)``/``missing(...)`` through the
fixtures below. Locally a missing component skips the test with the reason; when CI=true
it FAILS the test: CI never skips silently.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.config import Config, parse_config

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SCREENSHOTS = os.environ.get("BROKER_SCREENSHOTS", "").lower() in ("1", "true", "yes")
"""``make screenshots`` sets BROKER_SCREENSHOTS=1: only then do the browser tests rewrite docs/screenshots/."""


# ---- running the tests never modifies tracked files ----

_TRACKED = pytest.StashKey[dict[str, str] | None]()


def _tracked_state() -> dict[str, str] | None:
    """Each tracked file that differs from HEAD, with a hash of its content (None: not a git checkout)."""
    import hashlib
    import subprocess

    try:
        out = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "-z", "--untracked-files=no"],
                             capture_output=True, check=True, timeout=30).stdout.decode()
    except (OSError, subprocess.SubprocessError):
        return None
    state = {}
    for entry in filter(None, out.split("\0")):
        path = entry[3:]
        file = ROOT / path
        state[path] = hashlib.sha256(file.read_bytes()).hexdigest() if file.is_file() else entry[:2]
    return state


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_TRACKED] = None if SCREENSHOTS else _tracked_state()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_TRACKED, None)
    if before is None or getattr(session.config, "workerinput", None) is not None:
        return
    after = _tracked_state() or {}
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    if changed:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        text = "the tests modified tracked files (tests must not; screenshots: `make screenshots`): " + ", ".join(changed)
        if reporter is not None:
            reporter.write(f"\nFAILED: {text}\n", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def component_missing(what: str) -> None:
    """Skip locally, fail in CI."""
    if IN_CI:
        pytest.fail(f"required test component missing in CI: {what}", pytrace=False)
    pytest.skip(f"component missing: {what}")


def require_program(*names: str) -> None:
    for name in names:
        if shutil.which(name) is None and not Path(name).exists():
            component_missing(f"program {name!r} (see `make test-deps`)")


def require_module(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        component_missing(f"Python package {name!r}")


@pytest.fixture(autouse=True)
def _marker_env(request: pytest.FixtureRequest) -> None:
    """Markers whose component is given by an environment variable check it up front."""
    if request.node.get_closest_marker("postgres") and not os.environ.get("BROKER_TEST_DATABASE_URL"):
        component_missing("PostgreSQL: set BROKER_TEST_DATABASE_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    if request.node.get_closest_marker("redis") and not os.environ.get("BROKER_TEST_REDIS_URL"):
        component_missing("Redis: set BROKER_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/0)")


def make_config(tmp_path: Path, **sections: Any) -> Config:
    """A config for tests: SQLite in tmp_path, auto-migrated, JSON logs; sections override."""
    data: dict[str, Any] = {
        "database": {"url": f"sqlite:///{tmp_path / 'broker.db'}", "auto_migrate": True},
        "logging": {"level": "info", "format": "json"},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return parse_config(data, env={})


ADMIN_TOKEN = "test-admin-token-0123456789"


@pytest.fixture
def app_factory(tmp_path: Path) -> Iterator[Any]:
    """Build a real app (real SQLite file) and a TestClient; close them afterwards."""
    from fastapi.testclient import TestClient

    from broker.app import create_app

    clients: list[Any] = []

    def build(config: Config | None = None, *, env: dict[str, str] | None = None, **sections: Any) -> Any:
        cfg = config or make_config(tmp_path, **sections)
        app = create_app(cfg, env={"BROKER_ADMIN_TOKEN": ADMIN_TOKEN} if env is None else env)
        client = TestClient(app, raise_server_exceptions=False)
        clients.append((client, app))
        return client

    yield build
    for client, app in clients:
        client.close()
        app.state.services.engine.dispose()


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


# ---- databases: every store test runs on SQLite and on PostgreSQL ----


def _postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database per test, created from BROKER_TEST_DATABASE_URL, dropped after."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(os.environ["BROKER_TEST_DATABASE_URL"])
    name = f"broker_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - the server is not there: a missing component
        admin.dispose()
        component_missing(f"PostgreSQL at {base.render_as_string(hide_password=True)}: {type(exc).__name__}: {exc}")
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def engine(database_url: str) -> Iterator[Any]:
    """An empty database of either kind, migrated to the newest schema."""
    from broker.config import DatabaseConfig
    from broker.db.session import make_engine, migrate

    eng = make_engine(DatabaseConfig(url=database_url))
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def store(engine: Any) -> Any:
    from broker.db.store import SqlMappingStore

    return SqlMappingStore(engine)


# ---- a running broker, and a real browser ----


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def serve_app() -> Iterator[Any]:
    """``serve_app(app, port)`` runs the app under uvicorn in a thread on 127.0.0.1:port until the
    test ends; then it stops the server and closes the app's STS sandbox and database engine."""
    import threading
    import time

    import uvicorn

    running: list[tuple[Any, Any, Any]] = []

    def serve(app: Any, port: int) -> None:
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False,
                                                proxy_headers=False))  # as `broker serve`: the app decides
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        for _ in range(1000):
            if server.started:
                break
            time.sleep(0.01)
        assert server.started, "uvicorn did not start"
        running.append((server, thread, app))

    yield serve
    for server, thread, app in running:
        server.should_exit = True
        thread.join(timeout=10)
        app.state.services.aws.close()
        app.state.services.engine.dispose()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, driven by playwright (never `playwright install`)."""
    require_module("playwright")
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        component_missing("Debian chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def receiver() -> Iterator[Any]:
    """A webhook receiver on loopback (``tests.notify.receiver.Receiver``): 200 unless its
    ``script`` / ``status`` say otherwise; down at the end."""
    from tests.notify.receiver import Receiver

    r = Receiver()
    yield r
    r.down()
