"""Upstream sign-in against independent peers started by fixtures.

- ``saml_peer`` (marker saml_peer): a pysaml2 IdP (xmlsec1 signing) behind http.server in a thread.
- ``op1`` / ``op2`` (marker oidc_peer): two npm ``oidc-provider`` processes run by node, each on a
  random loopback port; ``npm ci`` fills tests/upstream/oidc_peer/node_modules when it is missing.
- ``sso``: builds the real broker app (``create_app``: SQLite, portal, sessions) with upstream
  IdPs configured against those peers, and a small ``Browser`` to walk the redirects with it.

The broker's public URL is fixed per test session (``broker_url``) because the OIDC providers
register its redirect URIs when they start; API tests never listen on it, browser tests do.
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, component_missing, free_port, require_module, require_program
from tests.upstream.oidc_op import Client, OidcProvider, npm_install, signing_key
from tests.upstream.saml_peer import (
    EMAIL,
    GROUPS,
    NAME,
    UPN,
    ParsedRequest,
    SamlIdpPeer,
    decode_redirect_request,
)

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SECRET = "broker-client-secret-0123456789"
OTHER_SECRET = "other-app-secret-0123456789"

ACCOUNTS = {
    "alice": {"preferred_username": "alice", "email": "alice@example.com", "email_verified": True, "name": "Alice Archer",
              "groups": ["aws-admins", "developers"], "realm_access": {"roles": ["kc-admins", "kc-devs"]},
              "https://aws.example.com/groups": ["url-claim-group"], "hd": "example.com"},
    "bob": {"preferred_username": "bob", "email": "bob@example.com", "email_verified": True, "name": "Bob"},
    "mallory": {"preferred_username": "mallory", "email": "mallory@evil.test", "email_verified": False,
                "groups": ["aws-admins"], "hd": "evil.test"},
}


# ---------------------------------------------------------------- the peers


@pytest.fixture(scope="session")
def broker_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def saml_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SamlIdpPeer]:
    require_program("xmlsec1")
    require_module("saml2")
    peer = SamlIdpPeer(tmp_path_factory.mktemp("saml-idp"))
    peer.add_user("alice@example.com", email="alice@example.com", groups=["aws-admins", "developers"])
    peer.add_user("bob@example.com", email="bob@example.com")
    peer.add_user("mallory@example.com", email="mallory@example.com", groups=["developers"])
    peer.add_user("admin@example.com.evil.test", email="x@evil.test", name_id="admin@example.com.evil.test")
    try:
        yield peer
    finally:
        peer.close()


def _need_node() -> None:
    require_program("node", "npm")
    try:
        npm_install()
    except (RuntimeError, OSError) as exc:
        component_missing(f"the npm package oidc-provider ({exc})")


def _provider(root: Path, broker_url: str, name: str, *, extra_clients: list[Client] = (),
              pkce_optional: list[str] = ()) -> OidcProvider:
    clients = [Client("broker", SECRET, [f"{broker_url}/sso/{name}/oidc/callback"]), *extra_clients]
    op = OidcProvider(root, clients=clients, accounts=ACCOUNTS, keys=[signing_key(f"{name}-key-1")],
                      pkce_optional=list(pkce_optional))
    try:
        return op.start()
    except RuntimeError as exc:
        component_missing(str(exc))
        raise


@pytest.fixture(scope="session")
def op1(tmp_path_factory: pytest.TempPathFactory, broker_url: str) -> Iterator[OidcProvider]:
    _need_node()
    extra = [
        Client("other-app", OTHER_SECRET, ["http://127.0.0.1:9/other-app/callback"]),
        Client("lax-app", OTHER_SECRET, [f"{broker_url}/sso/op1-lax/oidc/callback"]),
    ]
    op = _provider(tmp_path_factory.mktemp("op1"), broker_url, "op1", extra_clients=extra, pkce_optional=["lax-app"])
    yield op
    op.stop()


@pytest.fixture(scope="session")
def op2(tmp_path_factory: pytest.TempPathFactory, broker_url: str) -> Iterator[OidcProvider]:
    _need_node()
    op = _provider(tmp_path_factory.mktemp("op2"), broker_url, "op2")
    yield op
    op.stop()


# ---------------------------------------------------------------- broker configuration


@pytest.fixture(scope="session")
def saml_metadata_file(saml_peer: SamlIdpPeer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("saml-md") / "idp-metadata.xml"
    path.write_bytes(saml_peer.metadata())
    return path


def saml_idp(metadata_file: Path, name: str = "corp-saml", **over: Any) -> dict[str, Any]:
    """An ``upstream:`` entry for the pysaml2 IdP, mapped as an ADFS relying party would be."""
    return {
        "type": "saml", "name": name, "display_name": "Corp ADFS", "metadata_file": str(metadata_file),
        "attributes": {"username": UPN, "email": EMAIL, "display_name": NAME, "groups": GROUPS},
        **over,
    }


def oidc_idp(op: OidcProvider, name: str, client_id: str = "broker", secret: str = SECRET, **over: Any) -> dict[str, Any]:
    return {
        "type": "oidc", "name": name, "display_name": f"Provider {name}", "issuer": op.issuer,
        "client_id": client_id, "client_secret": secret, "scopes": ["openid", "profile", "email", "groups"],
        **over,
    }


MAPPING = {
    "accounts": [
        {"id": "111111111111", "alias": "sandbox-dev", "federation": {"path": "saml"},
         "roles": [{"name": "Admin"}, {"name": "Developer"}]},
    ],
    "mappings": [
        {"group": "aws-admins", "account": "sandbox-dev", "role": "Admin"},
        {"group": "developers", "account": "sandbox-dev", "role": "Developer"},
    ],
}


class Tamper(httpx.BaseTransport):
    """A real HTTP transport that can rewrite the token endpoint's answer (the ID token) on its way
    to the broker, and counts requests per path (JWKS fetches)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.token_hook: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.calls: Counter[str] = Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls[request.url.path] += 1
        response = self.inner.handle_request(request)
        if request.url.path == "/token" and self.token_hook is not None:
            response.read()
            body = self.token_hook(json.loads(response.content))
            return httpx.Response(response.status_code, json=body, request=request)
        return response

    def close(self) -> None:
        self.inner.close()


@dataclass
class Sso:
    """The broker app under test and its IdPs; methods walk a browser's redirects."""

    client: Any
    peer: SamlIdpPeer | None
    ops: dict[str, OidcProvider] = field(default_factory=dict)

    @property
    def services(self) -> Any:
        return self.client.app.state.services

    # -- connectors with the test's clock or network --

    def rebuild(self, name: str, **kw: Any) -> Any:
        from broker.connectors.registry import UPSTREAM_FACTORIES

        s = self.services
        cfg = next(u for u in s.config.upstream if u.name == name)
        new = UPSTREAM_FACTORIES[cfg.type](cfg, public_url=s.config.server.public_url, state=s.state,
                                           directory=s.directory, **kw)
        s.upstream[name].close()
        s.upstream[name] = new
        return new

    # -- SAML --

    def saml_start(self, idp: str = "corp-saml", next_url: str | None = "/", client: Any = None) -> ParsedRequest:
        r = (client or self.client).get(f"/sso/{idp}/login", params={} if next_url is None else {"next": next_url})
        assert r.status_code == 302, r.text
        location = r.headers["location"]
        assert self.peer is not None and location.startswith(self.peer.sso_url + "?")
        saml_request, relay = decode_redirect_request(location)
        return self.peer.parse_request(saml_request, relay)

    def saml_post(self, response: str, relay: str | None = None, idp: str = "corp-saml", client: Any = None,
                  **extra: str) -> Any:
        data = {"SAMLResponse": response, **extra}
        if relay is not None:
            data["RelayState"] = relay
        return (client or self.client).post(f"/sso/{idp}/saml/acs", data=data)

    def saml_response(self, user: str, req: ParsedRequest | None, **kw: Any) -> str:
        assert self.peer is not None
        if req is None:
            return self.peer.respond(user, in_response_to=None, sp_entity_id=self.sp_entity_id(),
                                     acs_url=self.acs_url(), **kw)
        return self.peer.respond(user, in_response_to=req.id, sp_entity_id=req.issuer, acs_url=req.acs_url, **kw)

    def saml_forge(self, user: str, req: ParsedRequest | None, **kw: Any) -> str:
        assert self.peer is not None
        return self.peer.forge(user, in_response_to=None if req is None else req.id, sp_entity_id=self.sp_entity_id(),
                               acs_url=self.acs_url(), **kw)

    def saml_sign_in(self, user: str = "alice@example.com", next_url: str = "/", idp: str = "corp-saml") -> Any:
        req = self.saml_start(idp, next_url)
        return self.saml_post(self.saml_response(user, req), req.relay_state, idp=idp)

    def sp_entity_id(self, idp: str = "corp-saml") -> str:
        return self.services.upstream[idp].entity_id

    def acs_url(self, idp: str = "corp-saml") -> str:
        return self.services.upstream[idp].acs_url

    # -- OIDC --

    def oidc_start(self, idp: str = "op1", next_url: str = "/", client: Any = None) -> str:
        r = (client or self.client).get(f"/sso/{idp}/login", params={"next": next_url})
        assert r.status_code == 302, r.text
        return r.headers["location"]

    def oidc_callback(self, location: str, client: Any = None) -> Any:
        parts = urlsplit(location)
        return (client or self.client).get(f"{parts.path}?{parts.query}")

    def oidc_sign_in(self, user: str = "alice", idp: str = "op1", next_url: str = "/") -> Any:
        url = self.oidc_start(idp, next_url)
        return self.oidc_callback(self.ops[idp].authorize(url, user))

    def still_works(self) -> None:
        """After an attack: a genuine sign-in still succeeds (a fresh browser)."""
        self.client.cookies.clear()
        if self.peer is not None and any(c.kind == "saml" for c in self.services.upstream.values()):
            idp = next(n for n, c in self.services.upstream.items() if c.kind == "saml")
            self.assert_signed_in(self.saml_sign_in("bob@example.com", idp=idp), "bob@example.com")
        for name in self.ops:
            if name in self.services.upstream:
                self.client.cookies.clear()
                self.assert_signed_in(self.oidc_sign_in("bob", idp=name), "bob")
        self.client.cookies.clear()

    # -- what the broker did --

    def whoami(self, client: Any = None) -> Any:
        return (client or self.client).get("/api/v1/whoami")

    def login_events(self) -> list[dict[str, Any]]:
        r = self.client.get("/api/v1/admin/audit", params={"action": "login"}, headers=ADMIN)
        assert r.status_code == 200, r.text
        return r.json()["items"]

    def assert_signed_in(self, r: Any, username: str, *, next_url: str = "/", client: Any = None) -> dict[str, Any]:
        assert r.status_code == 303, r.text
        assert r.headers["location"] == next_url
        me = self.whoami(client)
        assert me.status_code == 200, me.text
        body = me.json()
        assert body["username"] == username
        event = self.login_events()[0]
        assert event["outcome"] == "allow" and event["details"]["user"] == username
        return body

    def assert_refused(self, r: Any, code: str, *, reasons: tuple[str, ...] | str | None = None,
                       client: Any = None) -> dict[str, Any]:
        """A clean refusal: 4xx, the stable code, no trace, no session, an audited denial."""
        assert 400 <= r.status_code < 500, (r.status_code, r.text)
        assert "Traceback" not in r.text and "File \"" not in r.text
        body = r.json()
        assert body["error"]["code"] == code, body
        assert "broker=" not in r.headers.get("set-cookie", ""), "a session cookie was issued"
        assert self.whoami(client).status_code == 401, "a session exists after a refusal"
        event = self.login_events()[0]
        assert event["outcome"] == "deny", event
        assert event["details"]["code"] == code, event
        if reasons is not None:
            wanted = (reasons,) if isinstance(reasons, str) else reasons
            assert event["details"]["reason"] in wanted, event["details"]
        return event


@pytest.fixture
def sso(app_factory: Callable[..., Any], broker_url: str, request: pytest.FixtureRequest) -> Callable[..., Sso]:
    """``sso(upstream=[...], **sections)``: the broker with those upstream IdPs, and its Browser."""

    def build(upstream: list[dict[str, Any]], peer: SamlIdpPeer | None = None,
              ops: dict[str, OidcProvider] | None = None, **sections: Any) -> Sso:
        data: dict[str, Any] = {"server": {"public_url": broker_url}, "mapping": MAPPING, "upstream": upstream,
                                "logging": {"level": "info", "format": "json", "access_log": False}}
        data.update(sections)
        client = app_factory(**data)
        client.follow_redirects = False
        services = client.app.state.services
        if peer is not None:
            for connector in services.upstream.values():
                if connector.kind == "saml":
                    peer.trust_sp(connector.metadata())
        return Sso(client, peer, dict(ops or {}))

    return build


@pytest.fixture
def saml(sso: Callable[..., Sso], saml_peer: SamlIdpPeer, saml_metadata_file: Path) -> Sso:
    """The broker with one SAML IdP (the pysaml2 peer), defaults everywhere."""
    return sso([saml_idp(saml_metadata_file)], peer=saml_peer)


@pytest.fixture
def oidc(sso: Callable[..., Sso], op1: OidcProvider, op2: OidcProvider) -> Sso:
    """The broker with two OIDC providers (op1, op2), each with its own redirect URI."""
    return sso([oidc_idp(op1, "op1"), oidc_idp(op2, "op2")], ops={"op1": op1, "op2": op2})


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def now() -> float:
    return time.time()
