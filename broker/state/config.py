"""Configuration of the shared state: the `state:` section (in-process, or Redis for replicas).

Kept in state/ (broker.config composes it) so that state/ depends on nothing above it.

``redis_url`` forms (``broker.state.redis_client`` reads them):

- ``redis://[[user]:password@]host:port/db`` and ``rediss://...`` (TLS), ``unix:///path?db=0``;
- ``redis+sentinel://[[user]:password@]host1:26379,host2:26379/<service_name>/<db>`` (and
  ``rediss+sentinel://``: TLS to the Sentinels and the servers) — the master of ``service_name``
  as the Sentinels say; the password is the Redis servers' (``sentinel_password`` is the Sentinels');
- ``redis+cluster://[[user]:password@]host1:port,host2:port`` (and ``rediss+cluster://``) — a Redis
  Cluster found from those start nodes (database 0 only: a cluster has no other).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://", "rediss+sentinel://", "redis+cluster://",
           "rediss+cluster://")


class RedisTlsConfig(BaseModel):
    """``state.tls``: what a ``rediss`` URL trusts and presents. Certificate verification is always on."""

    model_config = ConfigDict(extra="forbid")

    ca_file: Path | None = None
    """PEM CA bundle the Redis server certificate must chain to (default: the system store)."""
    cert_file: Path | None = None
    """Client certificate (PEM) for Redis servers that require one (``tls-auth-clients yes``)."""
    key_file: Path | None = None
    """Its private key (PEM)."""
    check_hostname: bool = True
    """The certificate must name the host of the URL (turn off only for servers reached by an
    address their certificate does not list; the chain is still verified)."""


class StateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["memory", "redis"] = "memory"
    redis_url: SecretStr | None = None
    sentinel_password: SecretStr | None = None
    """The Sentinels' own password (``requirepass`` in sentinel.conf), if they have one."""
    tls: RedisTlsConfig | None = None
    timeout_seconds: float = Field(2.0, gt=0, le=30)
    """Connect and read timeout of one Redis call (and of each Sentinel asked for the master)."""
    retries: int = Field(2, ge=0, le=5)
    """Retries of a call that met a connection error or timeout, with exponential backoff (50 ms
    doubling, at most 500 ms); a call so takes at most (retries + 1) × 2 × timeout + backoff."""
    durable: Literal["database", "state"] = "database"
    """Where CLI logins (refresh-token families and their tokens) live: ``database`` (the broker's
    database: they survive a Redis restart without persistence) or ``state`` (this store)."""

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(SCHEMES):
            raise ValueError("redis_url must start with " + ", ".join(SCHEMES))
        return value
