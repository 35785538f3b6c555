"""RFC 5424 syslog messages of audit events, framed by RFC 6587 octet counting, sent over TCP
or TLS (RFC 5425).

One message per event::

    <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID id="…" actor="…" outcome="…" …] BOM{json}

- PRI = facility × 8 + severity; the severity from the outcome (allow: informational, deny:
  warning, error: error); TIMESTAMP the event's time (RFC 3339, UTC, microseconds).
- MSGID the action (``issue.credentials``, ``mapping.create``); STRUCTURED-DATA one element
  holding the event id (receivers de-duplicate on it: delivery is at least once), actor,
  outcome, target and request id, values escaped per §6.3.3 (``"``, ``\\``, ``]``).
- MSG the whole event as JSON, UTF-8 with the BOM (§6.4).

A delivery is one connection: every message of the batch, then our end of the stream, then the
receiver's (it closes once it has read everything; a reset or a TLS alert instead fails the batch).
Syslog has no acknowledgement of its own: that close is the nearest thing to one.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
from collections.abc import Sequence
from typing import Any

from broker.audit_forward.config import FACILITIES, SyslogDestination, SyslogTls
from broker.audit_forward.errors import DeliveryFailed

BOM = b"\xef\xbb\xbf"
SEVERITY = {"allow": 6, "deny": 4, "error": 3}
"""RFC 5424 severities: informational, warning, error (other outcomes: notice, 5)."""
_NOT_PRINTUSASCII = re.compile(r"[^\x21-\x7e]")
_SD_ESCAPE = re.compile(r'(["\\\]])')
_SD_PARAMS = ("id", "actor", "outcome", "target_type", "target_id", "request_id", "source_ip")


def _header_field(value: str | None, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, at most ``limit`` characters, or NILVALUE."""
    cleaned = _NOT_PRINTUSASCII.sub("_", value or "")[:limit]
    return cleaned or "-"


def sd_escape(value: str) -> str:
    """A PARAM-VALUE's escaping (RFC 5424 §6.3.3): ``"``, ``\\`` and ``]`` get a backslash."""
    return _SD_ESCAPE.sub(r"\\\1", value)


def format_message(
    event: dict[str, Any], *, facility: str, app_name: str, hostname: str, procid: str, sd_id: str
) -> bytes:
    """One event as an RFC 5424 message (bytes, UTF-8)."""
    pri = FACILITIES[facility] * 8 + SEVERITY.get(str(event.get("outcome")), 5)
    params = " ".join(
        f'{name}="{sd_escape(str(event[name]))}"' for name in _SD_PARAMS if event.get(name) is not None
    )
    header = " ".join(
        [
            f"<{pri}>1",
            event.get("at") or "-",
            _header_field(hostname, 255),
            _header_field(app_name, 48),
            _header_field(procid, 128),
            _header_field(event.get("action"), 32),
        ]
    )
    body = json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=str)
    return f"{header} [{sd_id} {params}] ".encode() + BOM + body.encode("utf-8")


def frame(message: bytes) -> bytes:
    """RFC 6587 §3.4.1 octet counting: ``MSG-LEN SP SYSLOG-MSG``."""
    return str(len(message)).encode("ascii") + b" " + message


def tls_context(tls: SyslogTls) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.cert_file is not None and tls.key_file is not None:
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    return ctx


class SyslogSender:
    """Sends batches to one syslog receiver; every step bounded by ``timeout_seconds``."""

    def __init__(self, dest: SyslogDestination, *, hostname: str | None = None) -> None:
        self.dest = dest
        self.host, self.port = dest.host_port()
        self._tls = tls_context(dest.tls) if isinstance(dest.tls, SyslogTls) else None
        self._server_name = (dest.tls.server_name if isinstance(dest.tls, SyslogTls) else None) or self.host
        self._hostname = hostname or socket.gethostname()
        self._procid = str(os.getpid())

    def messages(self, events: Sequence[dict[str, Any]]) -> bytes:
        d = self.dest
        return b"".join(
            frame(format_message(e, facility=d.facility, app_name=d.app_name, hostname=self._hostname,
                                 procid=self._procid, sd_id=d.sd_id))
            for e in events
        )

    def send(self, events: Sequence[dict[str, Any]]) -> None:
        payload = self.messages(events)
        try:
            with socket.create_connection((self.host, self.port), timeout=self.dest.timeout_seconds) as raw:
                if self._tls is None:
                    raw.sendall(payload)
                    raw.shutdown(socket.SHUT_WR)
                    _until_closed(raw)
                    return
                with self._tls.wrap_socket(raw, server_hostname=self._server_name) as conn:
                    conn.sendall(payload)
                    _tls_close(conn)
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryFailed(f"TLS certificate not accepted: {exc.verify_message}") from None
        except (OSError, ssl.SSLError) as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc.strerror or 'connection failed'}") from None

    def close(self) -> None:
        pass


def _until_closed(sock: socket.socket) -> None:
    """After our end of the stream: wait for the receiver's. A receiver that read everything and
    closed gives EOF; one that closed (or died) with our bytes unread resets the connection — an
    OSError, so the batch is retried. One that keeps the connection open past the timeout: delivered,
    as far as TCP can tell."""
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return


def _tls_close(conn: ssl.SSLSocket) -> None:
    """TLS's end of the stream (close_notify), then the receiver's end as for plain TCP. A receiver
    that refused us after the handshake (a client certificate refused: TLS 1.3 says so only then)
    has closed with our bytes unread: a reset, so the batch is retried."""
    try:
        raw = conn.unwrap()
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
        # closed without its close_notify: our bytes unread would have reset the connection
        if conn.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            raise ConnectionResetError("connection reset by the receiver") from None
        return
    except TimeoutError:
        return
    _until_closed(raw)
