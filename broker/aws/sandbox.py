"""The SANDBOX stand-ins for AWS (`sts.mode: sandbox`, the demo): moto's STS in-process, and a
console step that shows what AWS would receive instead of signing in anywhere.

No real AWS account is touched. The sandbox keeps no secret: what it shows is masked before it
is stored (the Session JSON's key and token, the SigninToken, the SAML signature).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lxml import etree

from broker.aws.partitions import partition
from broker.aws.signin import LOGIN_URL_LIFETIME, MAX_SESSION, MIN_SESSION
from broker.connectors.saml_sp import refuse_unsafe_xml
from broker.domain import ConsoleLink, TemporaryCredentials
from broker.errors import InvalidInput, StsUnavailable, UpstreamRejected

MASK = "***"
SANDBOX_CONSOLE_PATH = "/sandbox/console/"
SANDBOX_SAML_PATH = "/sandbox/saml"


class MotoSandbox:
    """moto's STS as a threaded HTTP server on a random loopback port, started on first use."""

    def __init__(self) -> None:
        self._server: Any = None
        self._url: str | None = None
        self._lock = threading.Lock()

    def endpoint(self) -> str:
        with self._lock:
            if self._url is None:
                try:
                    from moto.server import ThreadedMotoServer
                except ImportError:
                    raise StsUnavailable(
                        "sts.mode is sandbox but moto is not installed: pip install 'broker[sandbox]'"
                    ) from None
                logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no per-request lines from moto
                server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
                server.start()
                host, port = server.get_host_and_port()
                self._server, self._url = server, f"http://{host}:{port}"
            return self._url

    def close(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.stop()
                self._server, self._url = None, None


def mask_key_id(access_key_id: str) -> str:
    return access_key_id[:4] + "…" + access_key_id[-4:] if len(access_key_id) > 8 else MASK


@dataclass(frozen=True)
class SandboxConsoleView:
    """What AWS would have received for one console sign-in, secrets masked."""

    federation_endpoint: str
    get_signin_token: dict[str, Any]
    login: dict[str, str]
    role_arn: str
    expiration: str


class SandboxConsole:
    """Implements ``broker.aws.ConsoleSignin`` for the sandbox: a one-time local page per sign-in."""

    sandbox = True

    def __init__(self, *, public_url: str, issuer: str) -> None:
        self.public_url = public_url.rstrip("/")
        self.issuer = issuer
        self._pending: dict[str, tuple[datetime, SandboxConsoleView]] = {}
        self._lock = threading.Lock()

    def saml_post_action(self, destination: str) -> str:
        return self.public_url + SANDBOX_SAML_PATH

    def console_link(
        self,
        *,
        credentials: TemporaryCredentials,
        partition_name: str,
        destination: str,
        session_duration: int,
        now: datetime,
    ) -> ConsoleLink:
        if not MIN_SESSION <= session_duration <= MAX_SESSION:
            raise InvalidInput(f"a console session is {MIN_SESSION}-{MAX_SESSION} seconds, not {session_duration}")
        endpoint = partition(partition_name).federation_endpoint
        view = SandboxConsoleView(
            federation_endpoint=endpoint,
            get_signin_token={
                "Action": "getSigninToken",
                "SessionDuration": str(session_duration),
                "Session": {
                    "sessionId": mask_key_id(credentials.access_key_id),
                    "sessionKey": MASK,
                    "sessionToken": MASK,
                },
            },
            login={"Action": "login", "Issuer": self.issuer, "Destination": destination, "SigninToken": MASK},
            role_arn=credentials.role_arn or credentials.assumed_role_arn,
            expiration=credentials.expiration.isoformat(),
        )
        link_id = secrets.token_urlsafe(24)
        expires = now + LOGIN_URL_LIFETIME
        with self._lock:
            self._pending = {k: v for k, v in self._pending.items() if v[0] > now}
            self._pending[link_id] = (expires, view)
        return ConsoleLink(url=self.public_url + SANDBOX_CONSOLE_PATH + link_id, destination=destination,
                           expires_at=expires, sandbox=True)

    def take(self, link_id: str, *, now: datetime) -> SandboxConsoleView | None:
        """The view of a pending sign-in, once (like AWS's SigninToken), if not expired."""
        with self._lock:
            entry = self._pending.pop(link_id, None)
        if entry is None or entry[0] <= now:
            return None
        return entry[1]


_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True)
_SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
_DS = "http://www.w3.org/2000/09/xmldsig#"


def describe_saml_response(encoded: str) -> dict[str, Any]:
    """What AWS would read from a POSTed SAMLResponse (the sandbox ACS page); signature values masked."""
    try:
        xml = base64.b64decode(encoded, validate=False)
        refuse_unsafe_xml(xml)  # DTDs and entities in any case or encoding; UTF-8 only
        root = etree.fromstring(xml, _PARSER)
    except (binascii.Error, ValueError, etree.XMLSyntaxError, UpstreamRejected):
        raise InvalidInput("SAMLResponse is not a base64 SAML document") from None
    ns = {"saml": _SAML, "ds": _DS}

    def first(path: str) -> str | None:
        found = root.xpath(path, namespaces=ns)
        return str(found[0]) if found else None

    attributes: dict[str, list[str]] = {}
    for attr in root.xpath("//saml:Assertion/saml:AttributeStatement/saml:Attribute", namespaces=ns):
        attributes[attr.get("Name", "")] = [v.text or "" for v in attr.findall(f"{{{_SAML}}}AttributeValue")]
    for value in root.xpath("//ds:SignatureValue", namespaces=ns):
        value.text = MASK
    return {
        "destination": root.get("Destination"),
        "issuer": first("saml:Issuer/text()"),
        "audience": first("//saml:Audience/text()"),
        "recipient": first("//saml:SubjectConfirmationData/@Recipient"),
        "not_on_or_after": first("//saml:SubjectConfirmationData/@NotOnOrAfter"),
        "name_id": first("//saml:Subject/saml:NameID/text()"),
        "signed": {
            "response": bool(root.xpath("ds:Signature", namespaces=ns)),
            "assertion": bool(root.xpath("saml:Assertion/ds:Signature", namespaces=ns)),
        },
        "attributes": attributes,
        "xml": etree.tostring(root, pretty_print=True, encoding="unicode"),
    }


def pretty(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)

