"""An independent SAML IdP for tests: pysaml2 (signing through Debian's xmlsec1) behind a tiny
HTTP server in a thread.

- ``GET  /idp/metadata``  its metadata (entity ID, HTTP-Redirect SSO, signing certificate);
- ``GET  /idp/sso``       an AuthnRequest (HTTP-Redirect binding) → a sign-in form;
- ``POST /idp/login``     the form → an auto-submitting form that POSTs the SAMLResponse to the ACS
  (what a browser sees from ADFS, Entra ID, Okta or Keycloak).

Tests also call it directly: ``respond`` is pysaml2's own signed output (``create_authn_response``);
``forge`` builds the same response unsigned, lets a test change it (another audience, an old
NotOnOrAfter, a wrong Recipient...), then signs it with pysaml2's xmlsec1 backend — with the
IdP's key (a genuine IdP that signs something it should not) or with a key the broker was never
given (``key="evil"``, its certificate in KeyInfo).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import re
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
DS = "http://www.w3.org/2000/09/xmldsig#"
NS = {"saml": SAML, "samlp": SAMLP, "ds": DS}
SHA1_SIG = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA1_DIGEST = "http://www.w3.org/2000/09/xmldsig#sha1"
SHA256_SIG = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256_DIGEST = "http://www.w3.org/2001/04/xmlenc#sha256"

# ADFS-style claim names, as the broker's README tells people to map them.
UPN = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
EMAIL = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
NAME = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
GROUPS = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"


def _key_and_cert(directory: Path, stem: str, cn: str) -> tuple[Path, Path, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = directory / f"{stem}.key", directory / f"{stem}.crt"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path.write_bytes(pem)
    body = "".join(pem.decode().strip().splitlines()[1:-1])
    return key_path, cert_path, body


@dataclass
class PeerUser:
    name_id: str
    attributes: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class ParsedRequest:
    id: str
    issuer: str
    acs_url: str
    relay_state: str | None = None


class SamlIdpPeer:
    def __init__(self, root: Path) -> None:
        from saml2 import BINDING_HTTP_REDIRECT

        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.key_file, self.cert_file, self.cert_b64 = _key_and_cert(root, "idp", "test idp")
        self.evil_key_file, self.evil_cert_file, self.evil_cert_b64 = _key_and_cert(root, "evil", "test idp")
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.base = f"http://127.0.0.1:{self._http.server_address[1]}"
        self.entity_id = f"{self.base}/idp/metadata"
        self.sso_url = f"{self.base}/idp/sso"
        self.users: dict[str, PeerUser] = {}
        self._sp_metadata: dict[str, str] = {}
        self._server: Any = None
        self._lock = threading.Lock()
        self._binding = BINDING_HTTP_REDIRECT
        self._thread = threading.Thread(target=self._http.serve_forever, name="saml-idp-peer", daemon=True)
        self._thread.start()

    # ---- pysaml2 ----

    def _config(self) -> dict[str, Any]:
        from saml2 import BINDING_HTTP_REDIRECT
        from saml2.saml import NAMEID_FORMAT_PERSISTENT, NAMEID_FORMAT_UNSPECIFIED

        return {
            "entityid": self.entity_id,
            "service": {
                "idp": {
                    "endpoints": {"single_sign_on_service": [(self.sso_url, BINDING_HTTP_REDIRECT)]},
                    "policy": {"default": {"lifetime": {"minutes": 5}, "attribute_restrictions": None}},
                    "name_id_format": [NAMEID_FORMAT_PERSISTENT, NAMEID_FORMAT_UNSPECIFIED],
                    "want_authn_requests_signed": False,
                }
            },
            "key_file": str(self.key_file),
            "cert_file": str(self.cert_file),
            "xmlsec_binary": "/usr/bin/xmlsec1",
            "metadata": {"inline": list(self._sp_metadata.values())},
            "allow_unknown_attributes": True,
            "delete_tmpfiles": True,
        }

    def server(self) -> Any:
        from saml2.config import IdPConfig
        from saml2.server import Server

        with self._lock:
            if self._server is None:
                conf = IdPConfig()
                conf.load(self._config())
                self._server = Server(config=conf)
            return self._server

    def trust_sp(self, metadata: bytes | str) -> None:
        """Register a service provider (its metadata, as the broker serves it)."""
        text = metadata.decode() if isinstance(metadata, bytes) else metadata
        entity = re.search(r'entityID="([^"]+)"', text)
        assert entity, "no entityID in the SP metadata"
        acs = re.search(r'AssertionConsumerService[^>]*Location="([^"]+)"', text)
        with self._lock:
            known = self._sp_metadata.get(entity.group(1))
            if known is not None and acs and acs.group(1) in known:
                return  # the same SP again (only the metadata's validUntil differs)
            self._sp_metadata[entity.group(1)] = text
            self._server = None

    def metadata(self) -> bytes:
        from saml2.metadata import create_metadata_string

        conf = self.server().config
        return create_metadata_string(None, config=conf, valid=24, sign=False)

    def add_user(self, username: str, *, groups: list[str] = (), email: str = "", name_id: str | None = None,
                 extra: dict[str, list[str]] | None = None) -> PeerUser:
        attributes = {UPN: [username], NAME: [username.split("@")[0].title()]}
        if email:
            attributes[EMAIL] = [email]
        if groups:
            attributes[GROUPS] = list(groups)
        attributes.update(extra or {})
        user = PeerUser(name_id=name_id or f"pid-{username}", attributes=attributes)
        self.users[username] = user
        return user

    def parse_request(self, saml_request: str, relay_state: str | None = None) -> ParsedRequest:
        req = self.server().parse_authn_request(saml_request, self._binding).message
        return ParsedRequest(req.id, req.issuer.text, req.assertion_consumer_service_url, relay_state)

    def _response_xml(self, username: str, *, in_response_to: str | None, sp_entity_id: str, acs_url: str,
                      **signing: Any) -> str:
        from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID

        user = self.users[username]
        return str(
            self.server().create_authn_response(
                identity=dict(user.attributes),
                in_response_to=in_response_to,
                destination=acs_url,
                sp_entity_id=sp_entity_id,
                name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=user.name_id),
                authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"},
                **signing,
            )
        )

    def _unsigned(self, username: str, *, in_response_to: str | None, sp_entity_id: str, acs_url: str) -> str:
        return self._response_xml(username, in_response_to=in_response_to, sp_entity_id=sp_entity_id,
                                  acs_url=acs_url, sign_assertion=False, sign_response=False)

    def respond(
        self,
        username: str,
        *,
        in_response_to: str | None,
        sp_entity_id: str,
        acs_url: str,
        sign_assertion: bool = True,
        sign_response: bool = True,
        sign_alg: str = SHA256_SIG,
        digest_alg: str = SHA256_DIGEST,
    ) -> str:
        """pysaml2's own signed Response, base64 (as the HTTP-POST binding carries it)."""
        xml = self._response_xml(username, in_response_to=in_response_to, sp_entity_id=sp_entity_id, acs_url=acs_url,
                                 sign_assertion=sign_assertion, sign_response=sign_response, sign_alg=sign_alg,
                                 digest_alg=digest_alg)
        return base64.b64encode(xml.encode()).decode()

    def forge(
        self,
        username: str,
        *,
        in_response_to: str | None,
        sp_entity_id: str,
        acs_url: str,
        tweak: Callable[[etree._Element], None] | None = None,
        sign_assertion: bool = True,
        sign_response: bool = True,
        key: str = "idp",
        sign_alg: str = SHA256_SIG,
        digest_alg: str = SHA256_DIGEST,
    ) -> str:
        """pysaml2's response, changed by ``tweak`` before it is signed (so the signature covers the change)."""
        root = etree.fromstring(self._unsigned(username, in_response_to=in_response_to, sp_entity_id=sp_entity_id, acs_url=acs_url).encode())
        if tweak is not None:
            tweak(root)
        return base64.b64encode(self.sign(root, sign_assertion=sign_assertion, sign_response=sign_response,
                                          key=key, sign_alg=sign_alg, digest_alg=digest_alg)).decode()

    def sign(self, root: etree._Element, *, sign_assertion: bool, sign_response: bool, key: str = "idp",
             sign_alg: str = SHA256_SIG, digest_alg: str = SHA256_DIGEST) -> bytes:
        """Sign the assertion and/or the Response of ``root`` with pysaml2 (xmlsec1), in place order."""
        from saml2.sigver import pre_signature_part

        key_file, cert = (self.key_file, self.cert_b64) if key == "idp" else (self.evil_key_file, self.evil_cert_b64)
        sec = self.server().sec

        def add_signature(node: etree._Element) -> None:
            sig = pre_signature_part(node.get("ID"), public_key=cert, sign_alg=sign_alg, digest_alg=digest_alg)
            issuer = node.find("saml:Issuer", NS)
            issuer.addnext(etree.fromstring(str(sig).encode()))

        xml = etree.tostring(root)
        if sign_assertion:
            for ident in [a.get("ID") for a in root.findall("saml:Assertion", NS)]:
                add_signature(root.find(f"saml:Assertion[@ID='{ident}']", NS))
                xml = sec.sign_statement(
                    etree.tostring(root).decode(), f"{SAML}:Assertion", key_file=str(key_file), node_id=ident
                ).encode()
                root = etree.fromstring(xml)
        if sign_response:
            add_signature(root)
            xml = sec.sign_statement(etree.tostring(root).decode(), f"{SAMLP}:Response", key_file=str(key_file),
                                     node_id=root.get("ID")).encode()
        return xml

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


def post_form(page: str) -> tuple[str, dict[str, str]]:
    """(action, fields) of an auto-submitting HTML form."""
    action = html.unescape(re.search(r'<form[^>]*action="([^"]*)"', page).group(1))
    fields = {html.unescape(n): html.unescape(v) for n, v in re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page)}
    return action, fields


def decode_redirect_request(url: str) -> tuple[str, str | None]:
    """(SAMLRequest, RelayState) of an HTTP-Redirect binding URL."""
    q = parse_qs(urlsplit(url).query)
    return q["SAMLRequest"][0], q.get("RelayState", [None])[0]


def inflate(saml_request: str) -> bytes:
    return zlib.decompress(base64.b64decode(saml_request), -15)


def _handler(peer: SamlIdpPeer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            return

        def _send(self, status: int, body: bytes, ctype: str = "text/html; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path == "/idp/metadata":
                return self._send(200, peer.metadata(), "application/samlmetadata+xml")
            if parts.path == "/idp/sso":
                q = parse_qs(parts.query)
                if "SAMLRequest" not in q:
                    return self._send(400, b"no SAMLRequest")
                fields = "".join(
                    f'<input type="hidden" name="{k}" value="{html.escape(q[k][0])}">' for k in ("SAMLRequest", "RelayState") if k in q
                )
                page = (
                    "<!doctype html><title>Test IdP sign-in</title><h1>Test IdP</h1>"
                    '<form method="post" action="/idp/login">'
                    f'{fields}<label>Username <input id="username" name="username" autocomplete="off"></label>'
                    '<button id="signin" type="submit">Sign in</button></form>'
                )
                return self._send(200, page.encode())
            return self._send(404, b"not found")

        def do_POST(self) -> None:
            if urlsplit(self.path).path != "/idp/login":
                return self._send(404, b"not found")
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            username = form.get("username", "")
            if username not in peer.users:
                return self._send(403, b"unknown user")
            req = peer.parse_request(form["SAMLRequest"])
            response = peer.respond(username, in_response_to=req.id, sp_entity_id=req.issuer, acs_url=req.acs_url)
            relay = form.get("RelayState")
            relay_field = f'<input type="hidden" name="RelayState" value="{html.escape(relay)}">' if relay else ""
            page = (
                "<!doctype html><title>Signing in</title>"
                f'<body onload="document.forms[0].submit()"><form method="post" action="{html.escape(req.acs_url)}">'
                f'<input type="hidden" name="SAMLResponse" value="{response}">{relay_field}'
                '<noscript><button type="submit">Continue</button></noscript></form></body>'
            )
            return self._send(200, page.encode())

    return Handler
