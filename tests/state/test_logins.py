"""``broker.logins.end_logins`` on every state backend: one person's portal sessions, CLI logins
(access and refresh tokens) and approved device codes end; another person's stay usable."""

from __future__ import annotations

import pytest

from broker.access_config import OAuthConfig, SessionsConfig
from broker.domain import Identity
from broker.logins import end_logins
from broker.oauth.device import DeviceFlow
from broker.oauth.errors import ExpiredToken, InvalidGrant
from broker.oauth.tokens import TokenService
from broker.web.sessions import SessionStore

ALICE = Identity(id="guid-alice", username="alice")
BOB = Identity(id="guid-bob", username="bob")


def test_ending_one_persons_logins_leaves_everyone_elses(store):
    state, _ = store
    sessions = SessionStore(state, SessionsConfig(), public_url="https://broker.example.com")
    tokens = TokenService(state, OAuthConfig())
    devices = DeviceFlow(state, OAuthConfig())
    portal = {who.username: sessions.create(who).id for who in (ALICE, BOB)}
    cli = {who.username: tokens.issue(who, client_id="awsbroker") for who in (ALICE, BOB)}
    second_alice_login = tokens.refresh(tokens.issue(ALICE, client_id="awsbroker").refresh_token, client_id="awsbroker")
    waiting = {}
    for who in (ALICE, BOB):
        code = devices.authorize(client_id="awsbroker")
        assert devices.decide(code.user_code, identity=who, approve=True)
        waiting[who.username] = code.device_code
    anonymous = sessions.create().id  # a sign-in form in progress belongs to no one

    assert end_logins(state, "Alice") == 4  # 1 session, 2 token families, 1 approved code; case-insensitive

    assert sessions.get(portal["alice"]) is None
    assert tokens.identity_for(cli["alice"].access_token) is None
    assert tokens.identity_for(second_alice_login.access_token) is None
    with pytest.raises(InvalidGrant):
        tokens.refresh(cli["alice"].refresh_token, client_id="awsbroker")
    with pytest.raises(ExpiredToken):
        devices.poll(device_code=waiting["alice"], client_id="awsbroker")

    assert sessions.get(portal["bob"]) is not None
    assert tokens.identity_for(cli["bob"].access_token) == BOB
    assert tokens.refresh(cli["bob"].refresh_token, client_id="awsbroker").access_token
    assert devices.poll(device_code=waiting["bob"], client_id="awsbroker") == BOB
    assert sessions.get(anonymous) is not None
    assert end_logins(state, "alice") == 0


def test_a_login_after_the_revocation_works(store):
    state, _ = store
    tokens = TokenService(state, OAuthConfig())
    tokens.issue(ALICE, client_id="awsbroker")
    assert end_logins(state, "alice") == 1
    again = tokens.issue(ALICE, client_id="awsbroker")
    assert tokens.identity_for(again.access_token) == ALICE


def test_a_request_in_flight_does_not_bring_an_ended_session_back(store):
    state, _ = store
    clock = [1_000_000.0]
    sessions = SessionStore(state, SessionsConfig(), public_url="https://broker.example.com", clock=lambda: clock[0])
    sid = sessions.create(ALICE).id
    clock[0] += 60  # the next request rewrites the record (last use)
    in_flight = sessions.get(sid)
    assert in_flight is not None
    clock[0] += 60
    assert end_logins(state, "alice") == 1
    assert sessions.save(in_flight) is False  # what that request would write back
    assert sessions.get(sid) is None
