"""Break-glass fixtures: a slapd of the test's own (it is killed during the test), an app on it
with a break-glass account, the TOTP secret in a file, and its alerts read from the notification
outbox they are queued in (no delivery worker runs under a TestClient without its lifespan; the
browser test delivers them to a real receiver)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from broker.mfa.totp import new_secret
from broker.notify import Notification
from tests.conftest import ADMIN_TOKEN, make_config
from tests.directory.conftest import _need
from tests.directory.servers import SERVICE_DN, SUFFIX, Pki, Slapd, make_pki, population_seed

BG_USER, BG_PASSWORD = "oncall", "correct horse battery staple 7"
LDAP_PASSWORD = "slapd-person-pw-1"
# argon2id at OWASP's minimum (the check-config floor), so the tests stay fast
HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)

MAPPING = {
    "accounts": [
        {"id": "111111111111", "alias": "sandbox-dev", "default_region": "eu-west-1", "federation": {"path": "saml"},
         "roles": [{"name": "Developer"}, {"name": "Admin"}]},
        {"id": "222222222222", "alias": "sandbox-prod", "default_region": "us-east-1",
         "federation": {"path": "web_identity"}, "roles": [{"name": "BreakGlassAdmin"}, {"name": "ReadOnly"}]},
    ],
    "mappings": [{"group": "developers", "account": "sandbox-dev", "role": "Developer"}],
}


ALERT_HOOK = "oncall-chat"


def notifications_section(url: str = "http://127.0.0.1:9/hook") -> dict[str, Any]:
    """The webhook break-glass alerts go to (port 9: nothing answers, the rows stay queued)."""
    return {"webhooks": {ALERT_HOOK: {"url": url, "format": "slack", "unsigned": True, "max_backoff_seconds": 2}}}


@dataclass
class Outbox:
    """What was queued for the webhooks: the notification outbox's rows, oldest first."""

    engine: Any

    @property
    def queued(self) -> list[tuple[tuple[str, ...], Notification]]:
        from broker.db.notify_outbox import rows
        from broker.notify.bodies import note_of

        return [((r["webhook"],), note_of(r["payload"])) for r in rows(self.engine)]


@dataclass
class Broker:
    client: TestClient
    app: Any
    notes: Outbox
    totp: pyotp.TOTP
    slapd: Slapd
    user: str = BG_USER

    @property
    def services(self) -> Any:
        return self.app.state.services

    def code(self, offset_steps: int = 0) -> str:
        import time

        return self.totp.at(time.time() + 30 * offset_steps)

    def form_csrf(self, path: str = "/break-glass") -> str:
        page = self.client.get(path)
        assert page.status_code == 200, page.text
        m = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert m
        return m.group(1)

    def sign_in(self, username: str | None = None, password: str = BG_PASSWORD, code: str | None = None) -> Any:
        return self.client.post("/break-glass", data={"username": username or self.user, "password": password,
                                                      "code": self.code() if code is None else code,
                                                      "csrf_token": self.form_csrf()})

    def audit(self, action: str) -> list[dict[str, Any]]:
        page = self.client.get("/api/v1/admin/audit", params={"action": action, "limit": 100},
                               headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert page.status_code == 200, page.text
        return page.json()["items"]

    def csrf(self) -> str:
        m = re.search(r'name="csrf_token" value="([^"]+)"', self.client.get("/").text)
        assert m
        return m.group(1)


@pytest.fixture(scope="module")
def bg_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("bg-pki"), names=("ldap.test",))


@pytest.fixture
def own_slapd(tmp_path: Path, bg_pki: Pki) -> Iterator[Slapd]:
    """A slapd only this test uses (the session's is shared: never killed)."""
    for name in ("slapd", "ldapadd"):
        _need(name, "Debian slapd + ldap-utils")
    server = Slapd(tmp_path / "slapd", bg_pki)
    server.start()
    try:
        population_seed(server, users=2, groups=1, groups_per_user=1, password=LDAP_PASSWORD, everyone=("developers",))
        yield server
    finally:
        server.stop()


def directory_section(slapd: Slapd, ca: Path) -> dict[str, Any]:
    return {
        "type": "ldap", "name": "corp-ldap", "servers": [slapd.ldaps_url], "ca_file": str(ca), "bind_dn": SERVICE_DN,
        "bind_password": slapd.service_password, "connect_timeout": 1, "timeout": 2, "recheck_interval": 0.5,
        "user_search": {"base": f"ou=people,{SUFFIX}", "filter": "(objectClass=inetOrgPerson)"},
        "groups": {"strategy": "member_of", "base": f"ou=groups,{SUFFIX}"},
        "cache": {"ttl_seconds": 0},
    }


def break_glass_section(secret_file: Path, user: str = BG_USER, **over: Any) -> dict[str, Any]:
    return {
        "when": "directory_unavailable",
        "alert": [ALERT_HOOK],
        "session_seconds": 1800,
        "accounts": [{"username": user, "password_hash": HASHER.hash(BG_PASSWORD),
                      "totp_secret_file": str(secret_file),
                      "roles": [{"account": "sandbox-prod", "role": "BreakGlassAdmin"}]}],
        **over,
    }


@pytest.fixture
def glass(tmp_path: Path, own_slapd: Slapd, bg_pki: Pki) -> Iterator[Callable[..., Broker]]:
    """``glass(**break_glass_overrides)``: the app on this test's slapd, a break-glass account ``oncall``."""
    from broker.app import create_app

    built: list[Broker] = []
    secret = new_secret()
    secret_file = tmp_path / "oncall.totp"
    secret_file.write_text(secret + "\n")

    def build(state: dict[str, Any] | None = None, user: str = BG_USER, **over: Any) -> Broker:
        sections: dict[str, Any] = {"directory": directory_section(own_slapd, bg_pki.ca), "mapping": MAPPING,
                                    "break_glass": break_glass_section(secret_file, user, **over),
                                    "notifications": notifications_section()}
        if state is not None:
            sections["state"] = state
        config = make_config(tmp_path, **sections)
        app = create_app(config, env={"BROKER_ADMIN_TOKEN": ADMIN_TOKEN}, configure_logging=False)
        client = TestClient(app, follow_redirects=False, raise_server_exceptions=False)
        broker = Broker(client, app, Outbox(app.state.services.engine), pyotp.TOTP(secret), own_slapd, user)
        built.append(broker)
        return broker

    yield build
    for b in built:
        b.client.close()
        b.services.close()
