"""A change in slapd reaches issuance through the running app, on the CLI's path (the password
grant, then ``POST /api/v1/credentials`` with the bearer token): with ``cache.ttl_seconds: 0``
the next request after a removed membership is refused; with a TTL, the cached groups are used
until the TTL ends and the first request after it is refused; a disabled account is refused at
the next request whatever the TTL (the account is read at every issuance, only groups are
cached). The time it takes on a running broker is measured by bench/revocation_latency.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import broker.state.memory
from tests.directory.conftest import FakeClock
from tests.directory.servers import LDAP_ENABLED_ONLY, group_member, ldap_modify, person_dn

pytestmark = pytest.mark.ldap

MAPPING = {
    "accounts": [
        {"id": "111122223333", "alias": "dev", "roles": [{"name": "Deploy", "max_session_duration": 3600}]}
    ],
    "mappings": [{"group": "ephemeral", "account": "dev", "role": "Deploy"}],  # dan and erin are members
}
WANT = {"account": "dev", "role": "Deploy"}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The clock of the app's in-process state (where the group cache lives), owned by the test."""
    clock = FakeClock()
    real = broker.state.memory.MemoryState
    monkeypatch.setattr(broker.state.memory, "MemoryState", lambda **kw: real(**{**kw, "clock": clock}))
    return clock


@pytest.fixture
def cli(
    app_factory: Any, ldap_settings: Callable[..., dict[str, Any]], ldap_passwords: dict[str, str]
) -> Any:
    """``cli(user, ttl)``: an app with that group-cache TTL, and a function asking it for credentials
    with the user's bearer token (from the password grant), answering (status, error code)."""

    def build(user: str, ttl: int) -> Callable[[], tuple[int, str]]:
        client = app_factory(
            directory=ldap_settings(user_search={"filter": LDAP_ENABLED_ONLY}, cache={"ttl_seconds": ttl}),
            mapping=MAPPING,
            api={"password_login": True},
        )
        token = client.post(
            "/oauth/token",
            data={
                "grant_type": "password",
                "username": user,
                "password": ldap_passwords[user],
                "client_id": "awsbroker",
            },
        )
        assert token.status_code == 200, token.text
        bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}

        def ask() -> tuple[int, str]:
            r = client.post("/api/v1/credentials", json=WANT, headers=bearer)
            if r.status_code == 200:
                assert r.json()["AccessKeyId"]
                return 200, ""
            return r.status_code, r.json()["error"]["code"]

        return ask

    return build


def test_ttl_0_caches_nothing_a_removed_group_stops_the_next_request(cli, slapd, clock):
    ask = cli("dan", ttl=0)
    assert ask() == (200, "")
    group_member(slapd, "delete", "ephemeral", person_dn("dan"))
    try:
        assert ask() == (403, "role_not_granted")
    finally:
        group_member(slapd, "add", "ephemeral", person_dn("dan"))
    assert ask() == (200, "")  # and nothing was cached the other way either


def test_with_a_ttl_the_first_request_after_it_is_refused(cli, slapd, clock):
    ask = cli("erin", ttl=5)  # the password grant read the groups: cached from now for 5 s
    group_member(slapd, "delete", "ephemeral", person_dn("erin"))
    try:
        clock.advance(4.9)
        assert ask() == (200, "")  # within the TTL: the cached groups
        clock.advance(0.2)
        assert ask() == (403, "role_not_granted")  # the first request after the TTL
        assert ask() == (403, "role_not_granted")
    finally:
        group_member(slapd, "add", "ephemeral", person_dn("erin"))


def test_a_disabled_account_is_refused_at_the_next_request_despite_cached_groups(cli, slapd, clock):
    ask = cli("erin", ttl=30)
    assert ask() == (200, "")
    dn = person_dn("erin")
    ldap_modify(slapd, f"dn: {dn}\nchangetype: modify\nreplace: employeeType\nemployeeType: disabled\n")
    try:
        assert ask() == (401, "unauthenticated")
    finally:
        ldap_modify(slapd, f"dn: {dn}\nchangetype: modify\ndelete: employeeType\n")
