"""The SANDBOX stand-ins for AWS (`sts.mode: sandbox`, the demo): moto's STS in-process, and a
console step that shows what AWS would receive instead of signing in anywhere.

No real AWS account is touched. The sandbox keeps no secret: what it shows is masked before it
is stored (the Session JSON's key and token, the SigninToken).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import re
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from broker.aws.partitions import partition
from broker.aws.signin import LOGIN_URL_LIFETIME, MAX_SESSION, MIN_SESSION
from broker.domain import ConsoleLink, TemporaryCredentials
from broker.errors import InvalidInput, StsUnavailable

MASK = "***"
SANDBOX_CONSOLE_PATH = "/sandbox/console/"


SANDBOX_HOST = "127.0.0.1"
_MAX_INSPECTED_BODY = 1 << 20
_ROLE_ARN_FIELD = re.compile(rb"(?:^|&)RoleArn=([^&]*)")
_ROLE_ACCOUNT = re.compile(r"^arn:[a-z-]+:iam::(\d{12}):role/")


def saml_role_account(body: bytes) -> str | None:
    """The role's account of an AssumeRoleWithSAML form body, else None."""
    if b"AssumeRoleWithSAML" not in body:
        return None
    found = _ROLE_ARN_FIELD.search(body)
    if found is None:
        return None
    arn = _ROLE_ACCOUNT.match(unquote_plus(found.group(1).decode("ascii", "replace")))
    return arn.group(1) if arn else None


_ASSERTION_FIELD = re.compile(rb"(?:^|&)SAMLAssertion=([^&]*)")
_SANDBOX_CANNOT_DECRYPT = (
    b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
    b"<Code>InvalidIdentityToken</Code><Message>SANDBOX: the assertion is encrypted, and the sandbox holds no "
    b"private key to decrypt it (AWS decrypts with the key uploaded to the provider); in sts.mode sandbox, "
    b"leave the account's assertion_encryption out</Message></Error><RequestId>sandbox</RequestId></ErrorResponse>"
)


def encrypted_saml(body: bytes) -> bool:
    """Whether an AssumeRoleWithSAML form body carries an EncryptedAssertion (moto reads only plain ones)."""
    found = _ASSERTION_FIELD.search(body)
    if b"AssumeRoleWithSAML" not in body or found is None:
        return False
    try:
        return b"EncryptedAssertion" in base64.b64decode(unquote_plus(found.group(1).decode("ascii", "replace")))
    except (binascii.Error, ValueError):
        return False


class RoleAccountMiddleware:
    """WSGI: an AssumeRoleWithSAML call is made in its role's account, as AWS keeps it; one
    carrying an encrypted assertion gets AWS's InvalidIdentityToken with the reason.

    The call is unsigned, so moto files the session under its default account (123456789012)
    while it gives the keys to the role's account: GetCallerIdentity with those keys then finds
    no session and answers ``user/moto``. moto's own ``x-moto-account-id`` header names the
    account; AssumeRoleWithWebIdentity needs nothing (moto files it under the role's account).
    """

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("REQUEST_METHOD") == "POST" and "HTTP_X_MOTO_ACCOUNT_ID" not in environ:
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if 0 < length <= _MAX_INSPECTED_BODY:
                body = environ["wsgi.input"].read(length)
                environ["wsgi.input"] = io.BytesIO(body)
                if encrypted_saml(body):  # answered as AWS would a token it cannot read, not moto's 500
                    start_response("400 Bad Request", [("Content-Type", "text/xml"),
                                                       ("Content-Length", str(len(_SANDBOX_CANNOT_DECRYPT)))])
                    return [_SANDBOX_CANNOT_DECRYPT]
                account = saml_role_account(body)
                if account is not None:
                    environ["HTTP_X_MOTO_ACCOUNT_ID"] = account
        return self.app(environ, start_response)


class MotoSandbox:
    """moto (its STS, and every other service it has) as a threaded HTTP server on loopback,
    started on first use: the broker's STS calls and the AWS CLI/SDKs of the person reach the
    same in-process backend, so GetCallerIdentity knows the credentials the broker issued.

    ``port`` 0 takes any free port (tests); a fixed one is the documented endpoint of the demo.
    """

    def __init__(self, *, port: int = 0) -> None:
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None
        self._lock = threading.Lock()

    def endpoint(self) -> str:
        with self._lock:
            if self._url is None:
                try:
                    from moto.moto_server.werkzeug_app import (
                        DomainDispatcherApplication,
                        MotoRequestHandler,
                        create_backend_app,
                    )
                    from werkzeug.serving import make_server
                except ImportError:
                    raise StsUnavailable(
                        "sts.mode is sandbox but moto is not installed: pip install 'broker[sandbox]'"
                    ) from None
                logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no per-request lines from moto
                app = RoleAccountMiddleware(DomainDispatcherApplication(create_backend_app))
                # bound here: werkzeug's own bind answers a taken port with sys.exit
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
                    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    try:
                        listener.bind((SANDBOX_HOST, self.port))
                        listener.listen(128)
                    except OSError as exc:
                        raise StsUnavailable(
                            f"the sandbox STS cannot listen on {SANDBOX_HOST}:{self.port} ({exc.strerror or exc}): "
                            "free the port or choose another with sts.sandbox_port"
                        ) from None
                    server = make_server(SANDBOX_HOST, self.port, app, threaded=True,
                                         request_handler=MotoRequestHandler, fd=listener.fileno())
                self._thread = threading.Thread(target=server.serve_forever, name="sandbox-sts", daemon=True)
                self._thread.start()
                port = server.server_address[1]  # the one bound (self.port may be 0)
                self._server, self._url = server, f"http://{SANDBOX_HOST}:{port}"
            return self._url

    def close(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()
                if self._thread is not None:
                    self._thread.join(timeout=5)
                self._server, self._thread, self._url = None, None, None


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


def pretty(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)

