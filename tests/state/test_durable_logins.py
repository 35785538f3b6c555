"""CLI logins live in the database (``state.durable: database``): a Redis restart without
persistence ends every portal session, and no CLI login — its refresh token still works."""

from __future__ import annotations

import pytest

from tests.conftest import require_program
from tests.portal.conftest import DEVICE_GRANT, Clock, csrf_of, sections, sign_in


@pytest.fixture
def redis_server(tmp_path):
    require_program("redis-server")
    from tests.state.servers import RedisServer

    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def _cli_login(client, clock):
    """``awsbroker login``: the device flow, approved in the portal; the token response."""
    grant = client.post("/oauth/device/authorization", data={"client_id": "awsbroker"}).json()
    assert sign_in(client).status_code == 303
    csrf = csrf_of(client.get("/device").text)
    assert client.post("/device", data={"user_code": grant["user_code"], "decision": "approve",
                                        "csrf_token": csrf}).status_code == 200
    clock.advance(2)
    r = client.post("/oauth/token", data={"grant_type": DEVICE_GRANT, "device_code": grant["device_code"],
                                          "client_id": "awsbroker"})
    assert r.status_code == 200, r.text
    return r.json()


def _refresh(client, token):
    return client.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": token,
                                             "client_id": "awsbroker"})


@pytest.mark.parametrize("durable", ["database", "state"])
def test_a_redis_restart_keeps_cli_logins_in_the_database(redis_server, app_factory, durable):
    clock = Clock()
    client = app_factory(**sections(), state={"backend": "redis", "redis_url": redis_server.url, "durable": durable})
    client.follow_redirects = False
    client.app.state.services.access.set_clock(clock)
    tokens = _cli_login(client, clock)
    assert client.get("/").status_code == 200  # signed in to the portal

    redis_server.restart()  # no persistence: every key is gone

    assert client.get("/").status_code == 303  # the portal session went with Redis
    r = _refresh(client, tokens["refresh_token"])
    if durable == "state":  # the old way: every CLI user signed out
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        return
    assert r.status_code == 200, r.text
    again = r.json()
    assert again["refresh_token"] != tokens["refresh_token"]
    assert _refresh(client, again["refresh_token"]).status_code == 200  # and it keeps rotating
    assert _refresh(client, tokens["refresh_token"]).json()["error"] == "invalid_grant"  # reuse still detected


def test_a_flushall_keeps_cli_logins_and_revocation_ends_them_in_both_stores(redis_server, app_factory):
    from broker.logins import end_logins

    clock = Clock()
    client = app_factory(**sections(), state={"backend": "redis", "redis_url": redis_server.url})
    client.follow_redirects = False
    access = client.app.state.services.access
    access.set_clock(clock)
    first = _cli_login(client, clock)
    redis_server.client().flushall()
    second = _cli_login(client, clock)  # signs in to the portal again
    assert end_logins(access.state, "alice", durable=access.durable) == 3  # 2 CLI logins + 1 session
    assert _refresh(client, first["refresh_token"]).json()["error"] == "invalid_grant"
    assert _refresh(client, second["refresh_token"]).json()["error"] == "invalid_grant"
    assert client.get("/").status_code == 303


def test_favorites_made_before_the_upgrade_are_carried_over_to_the_database(redis_server, app_factory):
    """Before `state.durable: database`, a person's favorites lived in Redis: the first page view
    after the upgrade copies them into the database; a later Redis restart loses nothing."""
    redis = {"backend": "redis", "redis_url": redis_server.url}
    before = app_factory(**sections(), state=redis | {"durable": "state"})
    before.follow_redirects = False
    sign_in(before)
    csrf = csrf_of(before.get("/").text)
    assert before.post("/favorites", data={"account": "222222222222", "role": "ReadOnly",
                                           "csrf_token": csrf}).status_code == 303

    after = app_factory(**sections(), state=redis | {"durable": "database"})  # same database, same Redis
    after.follow_redirects = False
    sign_in(after)
    assert 'aria-pressed="true"' in after.get("/").text  # carried over

    redis_server.restart()  # no persistence: Redis forgets them; the database has them now
    after.cookies.clear()
    sign_in(after)
    assert 'aria-pressed="true"' in after.get("/").text
