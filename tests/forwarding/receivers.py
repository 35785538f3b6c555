"""Local receivers for the forwarding tests, on loopback: a TCP syslog receiver (RFC 6587 octet
counting, plain or TLS) and an HTTPS webhook receiver; and a strict RFC 5424 parser of our own
(no independent syslog parser is installed), written from the ABNF of RFC 5424 §6."""

from __future__ import annotations

import json
import re
import socket
import socketserver
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.conftest import free_port

# ---------------------------------------------------------------- RFC 5424 (§6), strictly

_PRINT = r"[\x21-\x7e]"
_SD_NAME = r"[\x21\x23-\x3c\x3e-\x5c\x5e-\x7e]{1,32}"  # PRINTUSASCII except '=', SP, ']', '"'
_PARAM_VALUE = r'(?:[^"\\\]]|\\["\\\]])*'
_SD_PARAM = rf'{_SD_NAME}="{_PARAM_VALUE}"'
_SD_ELEMENT = rf"\[{_SD_NAME}(?: {_SD_PARAM})*\]"
_TIMESTAMP = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})"
SYSLOG_MSG = re.compile(
    rf"<(?P<pri>\d{{1,3}})>(?P<version>[1-9]\d{{0,2}}) "
    rf"(?P<timestamp>-|{_TIMESTAMP}) (?P<hostname>-|{_PRINT}{{1,255}}) (?P<app>-|{_PRINT}{{1,48}}) "
    rf"(?P<procid>-|{_PRINT}{{1,128}}) (?P<msgid>-|{_PRINT}{{1,32}}) "
    rf"(?P<sd>-|(?:{_SD_ELEMENT})+)(?: (?P<msg>.*))?",
    re.DOTALL,
)


@dataclass
class SyslogMessage:
    pri: int
    version: int
    timestamp: str
    hostname: str
    app: str
    procid: str
    msgid: str
    sd: dict[str, dict[str, str]]
    msg: bytes


def parse_rfc5424(raw: bytes) -> SyslogMessage:
    """A message, or AssertionError saying why it is not RFC 5424."""
    bom = b"\xef\xbb\xbf"
    head, sep, body = raw.partition(b" " + bom)
    m = SYSLOG_MSG.fullmatch(head.decode("utf-8"))
    assert m is not None, f"not an RFC 5424 message: {raw[:200]!r}"
    assert 0 <= int(m["pri"]) <= 191
    sd: dict[str, dict[str, str]] = {}
    if m["sd"] != "-":
        for element in re.finditer(rf"\[({_SD_NAME})((?: {_SD_PARAM})*)\]", m["sd"]):
            params = re.findall(rf'({_SD_NAME})="({_PARAM_VALUE})"', element[2])
            sd[element[1]] = {k: re.sub(r'\\(["\\\]])', r"\1", v) for k, v in params}
    return SyslogMessage(int(m["pri"]), int(m["version"]), m["timestamp"], m["hostname"], m["app"], m["procid"],
                         m["msgid"], sd, body if sep else (m["msg"] or "").encode())


def read_frames(data: bytes) -> list[bytes]:
    """RFC 6587 §3.4.1 octet-counted frames (``MSG-LEN SP MSG``); the whole input must be frames."""
    out: list[bytes] = []
    while data:
        length, sep, rest = data.partition(b" ")
        assert sep and length.isdigit() and not length.startswith(b"0"), f"bad frame header {data[:20]!r}"
        n = int(length)
        assert len(rest) >= n, "truncated frame"
        out.append(rest[:n])
        data = rest[n:]
    return out


# ---------------------------------------------------------------- syslog over TCP / TLS


class SyslogReceiver:
    """Accepts connections on 127.0.0.1:port, keeps what each one sent (until it closed)."""

    def __init__(self, *, port: int | None = None, tls: ssl.SSLContext | None = None, rude: bool = False) -> None:
        self.port = port or free_port()
        self.tls = tls
        self.rude = rude
        """Reads a few bytes, then closes with the rest unread (a receiver that crashes mid-batch)."""
        self.connections: list[bytes] = []
        self._lock = threading.Lock()
        self._server: socketserver.ThreadingTCPServer | None = None

    def start(self) -> SyslogReceiver:
        receiver = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                try:
                    if receiver.tls is not None:
                        sock = receiver.tls.wrap_socket(sock, server_side=True)
                    if receiver.rude:
                        sock.recv(10)
                        sock.close()
                        return
                    chunks = []
                    while chunk := sock.recv(65536):
                        chunks.append(chunk)
                except (OSError, ssl.SSLError):
                    return
                with receiver._lock:
                    receiver.connections.append(b"".join(chunks))

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def messages(self) -> list[SyslogMessage]:
        with self._lock:
            data = list(self.connections)
        return [parse_rfc5424(frame) for conn in data for frame in read_frames(conn)]

    def event_ids(self) -> list[int]:
        return [int(m.sd["broker@32473"]["id"]) for m in self.messages()]


def server_tls(cert: Path, key: Path, *, client_ca: Path | None = None) -> ssl.SSLContext:
    """The receiver's TLS; with ``client_ca``, a client certificate it signed is required."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=str(client_ca))
    return ctx


@dataclass(frozen=True)
class ClientPki:
    ca: Path
    cert: Path
    key: Path


def make_client_pki(directory: Path) -> ClientPki:
    """A CA for clients and a client certificate (clientAuth) it signed, made with cryptography."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("client CA")).issuer_name(name("client CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("broker")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    out = ClientPki(directory / "client-ca.pem", directory / "client.pem", directory / "client.key")
    out.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return out


# ---------------------------------------------------------------- HTTPS webhook


@dataclass
class WebhookReceiver:
    """An HTTPS server on 127.0.0.1 keeping every POST (headers, JSON body).

    ``statuses``: the answers of the first requests (then 204); ``gate``: while it is clear, a
    request waits (a slow receiver) — ``arrived`` is set when the first one is waiting."""

    tls: ssl.SSLContext | None
    port: int = field(default_factory=free_port)
    statuses: list[int] = field(default_factory=list)
    requests: list[tuple[dict[str, str], Any]] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    def __post_init__(self) -> None:
        self.gate.set()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/hook"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.arrived.set()
                receiver.gate.wait(60)
                status = receiver.statuses.pop(0) if receiver.statuses else 204
                if 200 <= status < 300:
                    receiver.requests.append((dict(self.headers.items()), json.loads(body)))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.gate.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def event_ids(self) -> list[int]:
        return [e["id"] for _, body in self.requests for e in body["events"]]
