"""``audit.forward:``: where each audit event is also sent (syslog over TCP/TLS, an HTTPS webhook).

Each destination is one entry of a list, its ``type`` the tag; ``name`` (default derived from the
address) is what the outbox rows of that destination carry, so keep it stable once events are
pending. Secrets never live here: a webhook's header values come from environment variables
(``headers_env``), read when the broker starts.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FACILITIES: dict[str, int] = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "console": 14,
    "solaris-cron": 15, "local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20,
    "local5": 21, "local6": 22, "local7": 23,
}
"""RFC 5424 §6.2.1 facility codes by their usual names."""

Facility = Literal[
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp",
    "ntp", "security", "console", "solaris-cron", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
]
_PRINTUSASCII = r"[\x21-\x7e]"
_ADDRESS = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>\d{1,5})$")
_HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Delivery(_Section):
    """What every destination shares: batch size, the network timeout, the retry back-off cap."""

    name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")] | None = None
    """Stable name of the destination (outbox rows and metrics carry it). Default: derived from
    the address (``syslog:HOST:PORT``, ``webhook:HOST[:PORT]``, never the URL's path)."""
    batch_size: Annotated[int, Field(ge=1, le=1000)] = 100
    """Events sent at most in one delivery (one TCP connection, one POST)."""
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0
    """Bound of every network step (connect, TLS handshake, write, read)."""
    max_backoff_seconds: Annotated[float, Field(ge=1, le=86400)] = 300.0
    """After a failed delivery the events wait 1 s, 2 s, 4 s … (with jitter) up to this, then retry."""


class SyslogTls(_Section):
    """RFC 5425: syslog over TLS. The server certificate is always verified."""

    ca_file: Path | None = None
    """CA bundle that signed the receiver's certificate. Absent: the system's trust store."""
    cert_file: Path | None = None
    """Client certificate (mutual TLS), with key_file."""
    key_file: Path | None = None
    server_name: Annotated[str, Field(min_length=1, max_length=253)] | None = None
    """Name checked against the certificate (and sent as SNI). Default: the address's host."""

    @model_validator(mode="after")
    def _pair(self) -> SyslogTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (a client certificate and its key)")
        for label, path in (("ca_file", self.ca_file), ("cert_file", self.cert_file), ("key_file", self.key_file)):
            if path is not None and not path.is_file():
                raise ValueError(f"{label}: no such file {path}")
        return self


class SyslogDestination(_Delivery):
    """RFC 5424 messages over TCP with RFC 6587 octet counting, optionally in TLS (RFC 5425)."""

    type: Literal["syslog"]
    address: str
    """``host:port`` (``[v6]:port``) of the receiver."""
    tls: SyslogTls | None
    """A TLS section, or ``none`` for plain TCP (said explicitly: the events are not encrypted)."""
    app_name: Annotated[str, Field(min_length=1, max_length=48, pattern=rf"^{_PRINTUSASCII}+$")] = "broker"
    facility: Facility = "authpriv"
    sd_id: Annotated[str, Field(pattern=r"^[\x21-\x3c\x3e-\x5c\x5e-\x7e]{1,32}$")] = "broker@32473"
    """The STRUCTURED-DATA element's id (``name@<private enterprise number>``; 32473 is the
    documentation PEN of RFC 5612: put your organisation's number here if it has one)."""

    @field_validator("tls", mode="before")
    @classmethod
    def _plain(cls, value: object) -> object:
        if value == "none":
            return None
        if value is None or isinstance(value, str):
            raise ValueError("a TLS section (ca_file, cert_file, key_file, server_name), or none for plain TCP")
        return value

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        m = _ADDRESS.match(value)
        if not m or not 1 <= int(m["port"]) <= 65535:
            raise ValueError("must be host:port (or [IPv6]:port)")
        return value

    def host_port(self) -> tuple[str, int]:
        m = _ADDRESS.match(self.address)
        assert m is not None
        return m["v6"] or m["host"], int(m["port"])

    @property
    def key(self) -> str:
        return self.name or f"syslog:{self.address}"


class WebhookDestination(_Delivery):
    """An HTTPS POST of a JSON batch ``{"events": [...]}`` per delivery; any 2xx is delivered."""

    type: Literal["webhook"]
    url: str
    """https://... (http:// only to a loopback address, e.g. a local relay)."""
    headers_env: dict[
        Annotated[str, Field(pattern=_HEADER_NAME)], Annotated[str, Field(pattern=_ENV_NAME)]
    ] = Field(default_factory=dict, max_length=32)
    """Header name → the environment variable holding its value (``Authorization: HOOK_AUTH``)."""
    ca_file: Path | None = None
    """CA bundle that signed the receiver's certificate. Absent: the system's trust store."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.username or parts.password:
            raise ValueError("no credentials in the URL: put them in a header (headers_env)")
        if parts.scheme == "https" and parts.hostname:
            return value
        if parts.scheme == "http" and is_loopback(parts.hostname):
            return value
        raise ValueError("must be an https:// URL (http:// only to a loopback address)")

    @field_validator("ca_file")
    @classmethod
    def _ca(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file {value}")
        return value

    @property
    def key(self) -> str:
        if self.name:
            return self.name
        # not the path: webhook URLs often carry their secret there, and the name is logged
        return f"webhook:{urlsplit(self.url).netloc}"[:128]


AuditDestination = Annotated[SyslogDestination | WebhookDestination, Field(discriminator="type")]


def unique_names(destinations: list[SyslogDestination | WebhookDestination]) -> None:
    """Each destination has its own rows in the outbox: a name used twice is an error."""
    seen: dict[str, int] = {}
    for i, d in enumerate(destinations):
        if d.key in seen:
            raise ValueError(f"destination {d.key!r} is listed twice ([{seen[d.key]}] and [{i}]): give each a name")
        seen[d.key] = i


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
