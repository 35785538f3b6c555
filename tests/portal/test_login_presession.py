"""SECURITY.md: "cookieless requests to /login creating stored sessions → no per-request server
state before sign-in", and "CSRF on login → refused". The sign-in form's token is a signed
cookie pair; the state store holds no session until someone signs in (memory and Redis)."""

from __future__ import annotations

import os
import secrets

import pytest
from fastapi.testclient import TestClient

from broker.web.access import Access
from tests.portal.conftest import ALICE_PW, csrf_of, sign_in

pytestmark = pytest.mark.sts


def fresh_browser(portal) -> TestClient:
    return TestClient(portal.app, follow_redirects=False)


def hundred_cookieless_logins(portal) -> None:
    for _ in range(100):
        r = fresh_browser(portal).get("/login")
        assert r.status_code == 200 and "broker-login=" in r.headers["set-cookie"]


def test_cookieless_login_pages_store_nothing_in_memory(portal):
    state = portal.app.state.services.access.sessions.state
    portal.get("/login")  # the deployment's signing key is made once, the first time
    before = len(state)
    hundred_cookieless_logins(portal)
    assert len(state) == before
    assert not [k for k in state._data if k.startswith("session:")]
    assert sign_in(portal).status_code == 303 and portal.get("/").status_code == 200  # the form still signs in
    assert len([k for k in state._data if k.startswith("session:")]) == 1


@pytest.mark.redis
def test_cookieless_login_pages_store_nothing_in_redis(build, clock):
    import redis

    from broker.state.redis import RedisState

    portal = build()
    services = portal.app.state.services
    prefix = f"test:{secrets.token_hex(6)}:"
    client = redis.Redis.from_url(os.environ["BROKER_TEST_REDIS_URL"], decode_responses=True)
    services.access = Access(services.config, RedisState(client, prefix=prefix))
    services.access.set_clock(clock)
    services.flow.limits, services.flow.devices = services.access.limits, services.access.devices  # the sign-in's
    try:
        portal.get("/login")
        before = sorted(client.scan_iter(match=prefix + "*"))
        assert before == [prefix + "sessions:login-key"]
        hundred_cookieless_logins(portal)
        assert sorted(client.scan_iter(match=prefix + "*")) == before
        assert sign_in(portal).status_code == 303 and portal.get("/").status_code == 200
        assert len(list(client.scan_iter(match=prefix + "session:*"))) == 1
    finally:
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)


@pytest.mark.redis
def test_a_form_from_one_replica_signs_in_on_another(tmp_path, app_factory):
    from tests.conftest import make_config
    from tests.portal.conftest import sections

    data = sections() | {"state": {"backend": "redis", "redis_url": os.environ["BROKER_TEST_REDIS_URL"]}}
    one = app_factory(make_config(tmp_path, **data))
    two = app_factory(make_config(tmp_path, **data))
    one.follow_redirects = two.follow_redirects = False
    page = one.get("/login")
    two.cookies.set("broker-login", one.cookies.get("broker-login"))
    r = two.post("/login", data={"username": "alice", "password": ALICE_PW, "csrf_token": csrf_of(page.text)})
    assert r.status_code == 303 and r.headers["location"] == "/"


def login(browser, token, **extra):
    return browser.post("/login", data={"username": "alice", "password": ALICE_PW, "csrf_token": token}, **extra)


def refused(r) -> bool:
    return r.status_code == 403 and "expired" in r.text and "broker=" not in r.headers.get("set-cookie", "").replace(
        "broker-login=", "")


def test_forged_mismatched_or_expired_login_tokens_are_refused(portal, clock):
    mine = fresh_browser(portal)
    token = csrf_of(mine.get("/login").text)
    cookie = mine.cookies.get("broker-login")

    attacker = fresh_browser(portal)
    theirs = csrf_of(attacker.get("/login").text)
    assert refused(login(mine, theirs))  # another browser's form token (login CSRF)
    assert refused(login(mine, "forged-" + token))
    assert refused(login(mine, ""))
    nocookie = fresh_browser(portal)
    assert refused(login(nocookie, token))  # the token without its cookie
    tampered = fresh_browser(portal)
    tampered.cookies.set("broker-login", cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB"))
    assert refused(login(tampered, token))
    # a cookie the attacker signed with their own key: no
    from itsdangerous import URLSafeTimedSerializer

    forged = URLSafeTimedSerializer("guessed-key", salt="broker.login-csrf").dumps("chosen-nonce")
    stranger = fresh_browser(portal)
    stranger.cookies.set("broker-login", forged)
    assert refused(login(stranger, "chosen-nonce"))
    # a cross-site form with the right pair is refused by its Origin
    assert refused(login(mine, token, headers={"Origin": "https://evil.example"}))
    # 30 minutes later the pair has expired
    clock.advance(1801)
    assert refused(login(mine, token))
    # after every refusal the person still signs in with a fresh form
    ok = login(mine, csrf_of(mine.get("/login").text))
    assert ok.status_code == 303 and mine.get("/").status_code == 200
