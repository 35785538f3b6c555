"""One rule names the broker's cookies: the ``__Host-`` prefix only on a Secure cookie."""

from __future__ import annotations

from typing import Any

from broker.web.sessions import host_cookie_name


def test_the_prefix_only_when_secure() -> None:
    assert host_cookie_name("__Host-broker", secure=True) == "__Host-broker"
    assert host_cookie_name("__Host-broker", secure=False) == "broker"
    assert host_cookie_name("__Host-broker-sso", secure=False) == "broker-sso"
    assert host_cookie_name("__Host-", secure=False) == "broker"
    assert host_cookie_name("mine", secure=False) == host_cookie_name("mine", secure=True) == "mine"


def test_the_session_cookie_over_https(build: Any) -> None:
    portal = build(sessions={"secure": "true"})
    r = portal.get("/login")
    assert "__Host-broker-login=" in r.headers["set-cookie"]
