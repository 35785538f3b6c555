"""SECURITY.md, resource exhaustion and deployment: the broker behind a real reverse proxy.

- failed sign-ins from many addresses behind one load balancer: the per-address limit never locks
  out people who share the proxy's address; the client address comes from forwarding headers only
  through configured trusted proxies (X-Forwarded-For and RFC 7239 Forwarded);
- a client on loopback setting its own X-Forwarded-For: ignored unless loopback is trusted.
"""

from __future__ import annotations

import pytest

from tests.proxy.conftest import PROXY_ADDRESS, USERS

pytestmark = pytest.mark.proxy

LIMITS = {"login_failures_per_address": 4, "login_failures_per_user": 100, "over_address_limit_failures_per_user": 2}
ALICE, BOB, CAROL = (("alice", USERS["alice"]), ("bob", USERS["bob"]), ("carol", USERS["carol"]))


def test_through_a_trusted_proxy_each_person_is_their_own_address(behind_nginx):
    setup = behind_nginx(trusted_proxies=[f"{PROXY_ADDRESS}/32"], rate_limits=LIMITS | {"over_address_limit_failures_per_user": 1})
    with setup.client(setup.xff, "127.0.0.2") as guesser, setup.client(setup.xff, "127.0.0.3") as office:
        assert setup.sign_in(guesser, *BOB) == 200  # bob signs in from 127.0.0.2 first
        for _ in range(4):  # then someone at 127.0.0.2 guesses carol's password past the per-address limit
            assert setup.sign_in(guesser, "carol", "guess") == 401
        assert setup.sign_in(guesser, *CAROL) == 429  # over it, for the name being guessed
        assert setup.sign_in(office, *ALICE) == 200  # another address behind the same proxy: untouched
        assert setup.sign_in(guesser, *BOB) == 200  # and bob, who signed in from 127.0.0.2 lately
        # a client's own X-Forwarded-For is kept as what it is, left of the address nginx saw
        assert setup.sign_in(office, "alice", "typo", headers={"X-Forwarded-For": "10.9.9.9"}) == 401
    assert setup.login_addresses("carol")[:1] == ["127.0.0.2"]
    assert setup.login_addresses("alice") == ["127.0.0.3", "127.0.0.3"]
    assert set(setup.login_addresses("bob")) == {"127.0.0.2"}


def test_a_client_on_loopback_choosing_its_own_x_forwarded_for_is_its_own_address(behind_nginx):
    setup = behind_nginx(trusted_proxies=[f"{PROXY_ADDRESS}/32"], rate_limits=LIMITS)
    with setup.client(setup.broker, "127.0.0.1") as direct:  # straight to the broker, not through nginx
        for i in range(4):  # a new made-up address every time: still one address, 127.0.0.1
            spoof = {"X-Forwarded-For": f"10.9.9.{i}", "Forwarded": f"for=10.8.8.{i}"}
            assert setup.sign_in(direct, "carol", "guess", headers=spoof) == 401
        assert setup.sign_in(direct, *CAROL, headers={"X-Forwarded-For": "10.9.9.99"}) == 429
    assert set(setup.login_addresses("carol")) == {"127.0.0.1"}


def test_with_several_workers_too(behind_nginx):
    setup = behind_nginx(trusted_proxies=[f"{PROXY_ADDRESS}/32"], rate_limits=LIMITS, workers=2)
    with setup.client(setup.broker, "127.0.0.1") as direct, setup.client(setup.xff, "127.0.0.3") as office:
        for i in range(4):
            setup.sign_in(direct, "carol", "guess", headers={"X-Forwarded-For": f"10.9.9.{i}"})
            setup.sign_in(office, "alice", "typo", headers={"X-Forwarded-For": f"10.9.9.{i}"})
    assert set(setup.login_addresses("carol")) == {"127.0.0.1"}
    assert set(setup.login_addresses("alice")) == {"127.0.0.3"}


def test_the_rfc_7239_forwarded_header_from_a_trusted_proxy(behind_nginx):
    setup = behind_nginx(trusted_proxies=[f"{PROXY_ADDRESS}/32"], rate_limits=LIMITS)
    with setup.client(setup.forwarded, "127.0.0.2") as guesser, setup.client(setup.forwarded, "127.0.0.3") as office:
        for _ in range(4):  # the guesser makes up a Forwarded element of its own: nginx appends the real one
            spoof = {"Forwarded": 'for="[2001:db8::9]:4711";proto=https', "X-Forwarded-For": "10.9.9.9"}
            assert setup.sign_in(guesser, "carol", "guess", headers=spoof) == 401
        assert setup.sign_in(guesser, *CAROL) == 429
        assert setup.sign_in(office, *ALICE) == 200
    assert set(setup.login_addresses("carol")) == {"127.0.0.2"}
    assert setup.login_addresses("alice") == ["127.0.0.3"]


def test_behind_an_untrusted_proxy_one_guesser_cannot_lock_out_everybody(behind_nginx):
    # trusted_proxies not set: everyone shares nginx's address, as behind an ingress nobody configured
    setup = behind_nginx(trusted_proxies=[], rate_limits=LIMITS)
    with setup.client(setup.xff, "127.0.0.2") as guesser, setup.client(setup.xff, "127.0.0.3") as office:
        assert setup.sign_in(office, *ALICE) == 200  # alice signed in lately (from the shared address)
        for name in ("bob", "carol", "carol", "alice"):  # the shared address reaches its limit
            assert setup.sign_in(guesser, name, "guess") == 401
        assert setup.sign_in(guesser, "carol", "guess") == 429  # the degraded bucket: 2 failures per name
        assert setup.sign_in(guesser, "bob", "guess") == 401  # bob's second, then his bucket is spent too
        assert setup.sign_in(guesser, "bob", "guess") == 429
        assert setup.sign_in(office, *ALICE) == 200  # known there: never refused by the address limit
        assert setup.sign_in(office, *CAROL) == 429  # carol's bucket at the shared address is spent
    assert set(setup.login_addresses("alice")) == {PROXY_ADDRESS}
