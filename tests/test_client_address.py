"""Which address is the client: the rule of server.trusted_proxies (broker.web.client_address),
header by header, and through the app (audit source address, cookies' Secure flag)."""

from __future__ import annotations

import pytest

from broker.web.client_address import TrustedProxies, forwarded_for
from tests.conftest import ADMIN_TOKEN

PROXY = "10.0.0.5"
TRUSTED = TrustedProxies(["10.0.0.0/24", "2001:db8:ffff::/48"])


def h(**headers: str) -> list[tuple[bytes, bytes]]:
    return [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]


@pytest.mark.parametrize(("peer", "headers", "client"), [
    (PROXY, h(x_forwarded_for="198.51.100.7"), "198.51.100.7"),
    # walked from the right: what the client wrote itself (left) is not believed
    (PROXY, h(x_forwarded_for="6.6.6.6, 198.51.100.7"), "198.51.100.7"),
    # through two trusted proxies
    (PROXY, h(x_forwarded_for="198.51.100.7, 10.0.0.9"), "198.51.100.7"),
    (PROXY, [(b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-for", b"198.51.100.7")], "198.51.100.7"),
    (PROXY, h(x_forwarded_for="198.51.100.7:5555"), "198.51.100.7"),
    (PROXY, h(x_forwarded_for="[2001:db8::7]:443"), "2001:db8::7"),
    (PROXY, h(x_forwarded_for="unknown"), PROXY),  # not an address: the proxy's own
    (PROXY, h(x_forwarded_for="6.6.6.6, garbage, 10.0.0.9"), "10.0.0.9"),  # stops at the hop that passed it on
    (PROXY, h(x_forwarded_for=""), PROXY),
    (PROXY, h(x_forwarded_for="10.0.0.7"), "10.0.0.7"),  # all trusted: the leftmost
    (f"::ffff:{PROXY}", h(x_forwarded_for="198.51.100.7"), "198.51.100.7"),  # a dual-stack listener
    # RFC 7239 Forwarded
    (PROXY, h(forwarded="for=198.51.100.7;proto=https;by=10.0.0.5"), "198.51.100.7"),
    (PROXY, h(forwarded='for="[2001:db8:cafe::17]:4711"'), "2001:db8:cafe::17"),
    (PROXY, h(forwarded='for="198.51.100.7:80"'), "198.51.100.7"),
    (PROXY, h(forwarded="For=6.6.6.6, for=198.51.100.7"), "198.51.100.7"),
    (PROXY, h(forwarded='for="_hidden-client"'), PROXY),  # obfuscated (§6.3): the proxy's address
    (PROXY, h(forwarded="for=unknown"), PROXY),
    (PROXY, h(forwarded="proto=https"), PROXY),  # no for=
    (PROXY, h(forwarded="for=6.6.6.6;for=7.7.7.7"), PROXY),  # a parameter twice: malformed
    (PROXY, h(forwarded='for=198.51.100.7;x="a,b;c=\\"d"'), "198.51.100.7"),  # separators inside quotes
    (PROXY, h(forwarded='for="6.6.6.6", for="[2001:db8:ffff::1]"'), "6.6.6.6"),  # trusted IPv6 hop skipped
    # both headers: believed only when they agree (a proxy sets one; the other came from the client)
    (PROXY, h(x_forwarded_for="198.51.100.7", forwarded="for=198.51.100.7"), "198.51.100.7"),
    (PROXY, h(x_forwarded_for="198.51.100.7", forwarded="for=6.6.6.6"), PROXY),
    # from a peer that is not a trusted proxy, nothing is believed
    ("127.0.0.1", h(x_forwarded_for="10.9.9.9", forwarded="for=10.9.9.9"), "127.0.0.1"),
    ("198.51.100.7", h(x_forwarded_for="10.9.9.9"), "198.51.100.7"),
    ("testclient", h(x_forwarded_for="10.9.9.9"), "testclient"),
])
def test_the_client_address(peer, headers, client):
    assert TRUSTED.client(peer, headers) == client


def test_nobody_is_trusted_by_default():
    assert TrustedProxies([]).client("127.0.0.1", h(x_forwarded_for="10.9.9.9")) == "127.0.0.1"


def test_forwarded_values_are_unquoted():
    assert forwarded_for(['for="\\"quoted\\"";proto=http', "for=192.0.2.1"]) == ['"quoted"', "192.0.2.1"]


def _app(app_factory, trusted, peer):
    from starlette.testclient import TestClient

    plain = app_factory(server={"trusted_proxies": trusted, "public_url": "http://broker.example"},
                        api={"password_login": True}, directory={"type": "static", "users": []})
    return TestClient(plain.app, client=(peer, 4711), follow_redirects=False)


def test_a_testclient_built_app_applies_the_same_rule(app_factory):
    client = _app(app_factory, ["10.0.0.0/24"], PROXY)
    for spoof in ("6.6.6.6, 198.51.100.7", "198.51.100.8"):
        assert client.get("/api/v1/whoami", auth=("nobody", "pw"), headers={"X-Forwarded-For": spoof}).status_code == 401
    client.get("/api/v1/whoami", auth=("nobody", "pw"), headers={"Forwarded": "for=6.6.6.6"})
    items = client.get("/api/v1/admin/audit", params={"action": "login"},
                       headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()["items"]
    assert [e["source_ip"] for e in reversed(items)] == ["198.51.100.7", "198.51.100.8", "6.6.6.6"]


def test_the_scheme_comes_from_a_trusted_proxy_only(app_factory):
    """Over TLS at the proxy, the session cookie is Secure with the __Host- name (public_url is http here)."""
    behind = _app(app_factory, ["10.0.0.0/24"], PROXY)
    assert "__Host-broker-login=" in behind.get("/login", headers={"X-Forwarded-Proto": "https"}).headers.get("set-cookie", "")
    assert "secure" in behind.get("/login", headers={"Forwarded": "for=1.2.3.4;proto=https"}).headers["set-cookie"].lower()
    direct = _app(app_factory, ["10.0.0.0/24"], "198.51.100.7")
    cookie = direct.get("/login", headers={"X-Forwarded-Proto": "https"}).headers.get("set-cookie", "")
    assert "__Host-" not in cookie and "secure" not in cookie.lower()


def test_a_trusted_proxy_that_is_not_a_network_is_a_config_error(tmp_path):
    from broker.errors import ConfigError
    from tests.conftest import make_config

    with pytest.raises(ConfigError) as exc:
        make_config(tmp_path, server={"trusted_proxies": ["10.0.0.1/33", "ingress"]})
    assert "server.trusted_proxies[0]" in str(exc.value) and "server.trusted_proxies[1]" in str(exc.value)
