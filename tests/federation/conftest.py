"""Fixtures for the federation building blocks: keys on disk, AWS-like verifiers (pysaml2 as
AWS's SAML SP, signxml, PyJWT against the JWKS over HTTP), moto's server (STS, IAM,
CloudFormation), a stand-in of the AWS federation endpoint, and a broker served by uvicorn on a
random loopback port.

Tests pass ``now`` to everything they mint. Verifiers that read the wall clock (pysaml2, PyJWT)
get a ``now`` taken from the wall clock once per test.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import yaml

from broker.config import Config
from broker.domain import GrantReason, Identity, RoleGrant
from broker.minting.config import KeyFiles, KeysConfig, SessionTagsConfig
from broker.minting.keys import KeyRing, generate_keypair, load_keyring
from broker.minting.oidc_issuer import OidcIssuer
from broker.minting.saml_idp import SamlIdp
from broker.minting.tags import TagPolicy
from tests.conftest import free_port, make_config, require_module, require_program

PUBLIC_URL = "https://broker.example.com"


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def make_grant(**overrides: Any) -> RoleGrant:
    reason = overrides.pop("reasons", None)
    fields: dict[str, Any] = {
        "account_id": "111111111111",
        "account_alias": "sandbox-dev",
        "partition": "aws",
        "region": "eu-west-1",
        "environment": "dev",
        "federation_path": "saml",
        "saml_provider": "broker",
        "audience": None,
        "role_name": "Admin",
        "role_path": "/",
        "role_max_session": 43200,
    }
    fields.update(overrides)
    reasons = reason or (GrantReason("mapping", "1", "aws-admins", True, True, None),)
    return RoleGrant(**fields, reasons=reasons)


def web_grant(**overrides: Any) -> RoleGrant:
    base = {"account_id": "222222222222", "federation_path": "web_identity", "saml_provider": None,
            "audience": "sts.amazonaws.com", "region": "us-east-1"}
    return make_grant(**(base | overrides))


ALICE = Identity(
    id="3f2b8c1e-0d4a-4f6b-9c1d-2e5f7a8b9c0d",
    username="alice",
    display_name="Alice",
    email="alice@example.com",
    groups=("aws-admins",),
    attributes=(("department", ("Platform",)), ("costCenter", ("CC-1234",))),
)


@dataclass
class KeyFilesOnDisk:
    dir: Path
    current: KeyFiles
    next: KeyFiles

    def config(self, *, with_next: bool = True) -> KeysConfig:
        return KeysConfig(current=self.current, next=self.next if with_next else None)

    def section(self, *, with_next: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"current": {"key": str(self.current.key), "cert": str(self.current.cert)}}
        if with_next:
            out["next"] = {"key": str(self.next.key), "cert": str(self.next.cert)}
        return out


@pytest.fixture(scope="session")
def key_files(tmp_path_factory: pytest.TempPathFactory) -> KeyFilesOnDisk:
    d = tmp_path_factory.mktemp("keys")
    ck, cc, _ = generate_keypair(d, name="current")
    nk, nc, _ = generate_keypair(d, name="next")
    return KeyFilesOnDisk(d, KeyFiles(key=ck, cert=cc), KeyFiles(key=nk, cert=nc))


@pytest.fixture(scope="session")
def keyring(key_files: KeyFilesOnDisk) -> KeyRing:
    return load_keyring(key_files.config())


TAGS = SessionTagsConfig.model_validate(
    {"tags": [{"key": "Department", "attribute": "department", "transitive": True},
              {"key": "CostCenter", "attribute": "costCenter"}]}
)


def make_idp(keyring: KeyRing, **options: Any) -> SamlIdp:
    return SamlIdp(keys=keyring, entity_id=PUBLIC_URL + "/saml/metadata", sso_url=PUBLIC_URL + "/login",
                   tags=TagPolicy(options.pop("tags", TAGS)), **options)


def make_issuer(keyring: KeyRing, **options: Any) -> OidcIssuer:
    return OidcIssuer(keys=keyring, issuer=PUBLIC_URL, tags=TagPolicy(options.pop("tags", TAGS)), **options)


@pytest.fixture
def idp(keyring: KeyRing) -> SamlIdp:
    return make_idp(keyring)


# ---- AWS as a SAML service provider (pysaml2), and signxml ----

AWS_SP = {
    "aws": ("urn:amazon:webservices", "https://signin.aws.amazon.com/saml"),
    "aws-us-gov": ("urn:amazon:webservices:govcloud", "https://signin.amazonaws-us-gov.com/saml"),
    "aws-cn": ("urn:amazon:webservices:cn-north-1", "https://signin.amazonaws.cn/saml"),
}


class AwsSamlVerifier:
    """pysaml2 configured as AWS is: entity urn:amazon:webservices, its ACS, signed assertions required."""

    def __init__(self, metadata: bytes, workdir: Path, *, entity_id: str, acs: str) -> None:
        require_program("xmlsec1")
        require_module("saml2")
        from saml2.client import Saml2Client
        from saml2.config import SPConfig

        meta = workdir / f"idp-metadata-{abs(hash((metadata, entity_id, acs)))}.xml"
        meta.write_bytes(metadata)
        config = SPConfig()
        config.load(
            {
                "entityid": entity_id,
                "metadata": {"local": [str(meta)]},
                "service": {
                    "sp": {
                        "endpoints": {"assertion_consumer_service": [(acs, "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST")]},
                        "allow_unsolicited": True,
                        "want_assertions_signed": True,
                        "want_response_signed": True,
                        "allow_unknown_attributes": True,
                    }
                },
                "xmlsec_binary": "/usr/bin/xmlsec1",
                "allow_unknown_attributes": True,
            }
        )
        self.client = Saml2Client(config)

    def verify(self, encoded: str) -> Any:
        """The verified AuthnResponse, or None when refused; may also raise.

        pysaml2 answers a wrong Destination with an unverified response object whose assertion
        is None (or with None): both are a refusal here.
        """
        from saml2 import BINDING_HTTP_POST

        response = self.client.parse_authn_request_response(encoded, BINDING_HTTP_POST)
        if response is None or getattr(response, "assertion", None) is None:
            return None
        return response

    def refuses(self, encoded: str) -> bool:
        """True when AWS (pysaml2 as AWS) would not sign anyone in with this response."""
        try:
            return self.verify(encoded) is None
        except Exception:  # noqa: BLE001 - pysaml2 raises many unrelated types for a refusal
            return True

    def attributes(self, encoded: str) -> dict[str, list[str]]:
        response = self.verify(encoded)
        assert response is not None, "pysaml2 (as AWS) refused the response (wrong Destination?)"
        return response.ava


@pytest.fixture
def aws_verifier(tmp_path: Path) -> Callable[..., AwsSamlVerifier]:
    def build(metadata: bytes, partition: str = "aws", acs: str | None = None) -> AwsSamlVerifier:
        entity, default_acs = AWS_SP[partition]
        return AwsSamlVerifier(metadata, tmp_path, entity_id=entity, acs=acs or default_acs)

    return build


def signxml_verify(encoded: str, cert_pem: bytes) -> tuple[Any, Any]:
    """signxml's verdict on the Response signature and on the Assertion signature (both required)."""
    require_module("signxml")
    from lxml import etree
    from signxml import XMLVerifier
    from signxml.algorithms import SignatureMethod

    xml = base64.b64decode(encoded)
    root = etree.fromstring(xml)
    outer = XMLVerifier().verify(xml, x509_cert=cert_pem.decode(), expect_config=_signxml_config(SignatureMethod))
    assertion = root.find("{urn:oasis:names:tc:SAML:2.0:assertion}Assertion")
    inner = XMLVerifier().verify(etree.tostring(assertion), x509_cert=cert_pem.decode(),
                                 expect_config=_signxml_config(SignatureMethod))
    return outer, inner


def _signxml_config(SignatureMethod: Any) -> Any:
    from signxml import SignatureConfiguration

    return SignatureConfiguration(signature_methods=frozenset({SignatureMethod.RSA_SHA256}))


# ---- moto's STS on loopback ----


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials for signed calls to moto (it accepts any): botocore's chain finds them in the environment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(scope="session")
def moto_sts() -> Iterator[str]:
    require_module("moto")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@dataclass(frozen=True)
class MotoAccounts:
    """boto3 clients on the moto server (it serves every service), each acting in one account.

    moto keeps one state per account id, taken from the ``x-moto-account-id`` header; the
    credentials are dummies. The server and its state are shared by the whole session: a test
    that creates something deletes it again.
    """

    url: str

    def client(self, service: str, account_id: str, region: str = "us-east-1") -> Any:
        import boto3

        client = boto3.client(service, region_name=region, endpoint_url=self.url,
                              aws_access_key_id="testing", aws_secret_access_key="testing")

        def in_account(request: Any, **_: Any) -> None:
            request.headers["x-moto-account-id"] = account_id

        client.meta.events.register("before-sign", in_account)
        return client


@pytest.fixture(scope="session")
def moto_accounts(moto_sts: str) -> MotoAccounts:
    return MotoAccounts(moto_sts)


# ---- a stand-in of the AWS federation endpoint ----


@dataclass
class FederationStandIn:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_with: int | None = None
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)


@pytest.fixture
def federation_endpoint() -> Iterator[FederationStandIn]:
    """Parses POSTed getSigninToken forms like AWS: Session JSON with sessionId/sessionKey/sessionToken."""
    state = FederationStandIn(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
            form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
            state.requests.append({"path": self.path, "content_type": self.headers.get("Content-Type"), "form": form})
            if state.fail_with:
                return self._answer(state.fail_with, b"<html>Bad Request</html>", "text/html")
            try:
                session = json.loads(form["Session"])
                assert form["Action"] == "getSigninToken"
                assert set(session) == {"sessionId", "sessionKey", "sessionToken"}
                duration = int(form.get("SessionDuration", "43200"))
                assert 900 <= duration <= 43200
            except (KeyError, ValueError, AssertionError):
                return self._answer(400, b"<html>Bad Request</html>", "text/html")
            token = base64.urlsafe_b64encode(json.dumps(session).encode()).decode()[:40]
            state.tokens[token] = {"session": session, "duration": duration}
            self._answer(200, json.dumps({"SigninToken": token}).encode(), "application/json")

        def _answer(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/federation"
    yield state
    server.shutdown()
    server.server_close()


# ---- logs ----


@contextlib.contextmanager
def capture_logs() -> Iterator[io.StringIO]:
    """Everything the broker logs (JSON lines, through its own redaction), into a buffer."""
    from broker import logs

    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    logs.configure("debug", "json")
    buffer = io.StringIO()
    root.handlers[0].setStream(buffer)  # type: ignore[attr-defined]
    try:
        yield buffer
    finally:
        root.handlers[:] = saved
        root.setLevel(level)


# ---- a running broker ----


@dataclass
class LiveBroker:
    url: str
    app: Any


@pytest.fixture
def live_broker(tmp_path: Path, serve_app: Any) -> Iterator[Callable[..., LiveBroker]]:
    """Serve create_app(config) with uvicorn in a thread on a random loopback port."""
    from broker.app import create_app

    def start(config: Config | None = None, **sections: Any) -> LiveBroker:
        port = free_port()
        sections.setdefault("server", {})
        sections["server"] = {"public_url": f"http://127.0.0.1:{port}", "port": port, **sections["server"]}
        cfg = config or make_config(tmp_path, **sections)
        app = create_app(cfg, env={}, configure_logging=False)
        serve_app(app, port)
        return LiveBroker(f"http://127.0.0.1:{port}", app)

    yield start


# A SAML account and a web-identity account, one group mapped to both: the file mapping of the
# `broker preview-assertion` and `broker aws-setup` tests.
TWO_ACCOUNTS_MAPPING: dict[str, Any] = {
    "accounts": [
        {"id": "111111111111", "alias": "sandbox-dev", "federation": {"path": "saml", "saml_provider": "broker"},
         "roles": [{"name": "Admin", "max_session_duration": 43200}]},
        {"id": "222222222222", "alias": "sandbox-prod", "federation": {"path": "web_identity", "audience": "prod-client"},
         "roles": [{"name": "ReadOnly", "max_session_duration": 3600}]},
    ],
    "mappings": [
        {"group": "aws-admins", "account": "sandbox-dev", "role": "Admin", "session_duration": 14400},
        {"group": "aws-admins", "account": "sandbox-prod", "role": "ReadOnly"},
    ],
}


@pytest.fixture
def config_file(tmp_path: Path, key_files: KeyFilesOnDisk) -> Path:
    """A configuration file for the operator commands (aws-setup, doctor...): the public URL, a
    SQLite database (not created: the commands never create it), key files on disk (current and
    next), the real STS mode, and TWO_ACCOUNTS_MAPPING."""
    path = tmp_path / "broker.yaml"
    path.write_text(yaml.safe_dump({
        "server": {"public_url": "https://broker.example.com"},
        "database": {"url": f"sqlite:///{tmp_path / 'b.db'}", "auto_migrate": True},
        "keys": key_files.section(with_next=True),
        "sts": {"mode": "aws"},
        "mapping": TWO_ACCOUNTS_MAPPING,
    }))
    return path

