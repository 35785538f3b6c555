"""A redis-py client for every ``state.redis_url`` form: one server (``redis``, ``rediss``, ``unix``),
a Sentinel-managed master (``redis+sentinel``) or a Redis Cluster (``redis+cluster``).

Time is bounded in one place: every socket has ``state.timeout_seconds`` to connect and to answer,
the Sentinels are asked one attempt each, and redis-py retries nothing itself (its retries nest:
a connect retried inside a retried command). ``RedisState`` retries a whole call instead, with
redis-py's ``Retry`` (``state.retries``, exponential backoff from 50 ms to 500 ms).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel

from broker.state.config import RedisTlsConfig, StateConfig

__all__ = ["ParsedUrl", "build_client", "parse_cluster_url", "parse_multi_host_url"]


@dataclass(frozen=True)
class ParsedUrl:
    """A ``redis+sentinel://`` or ``redis+cluster://`` URL taken apart."""

    tls: bool
    username: str | None
    password: str | None
    hosts: tuple[tuple[str, int], ...]
    path: tuple[str, ...]


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    if text.startswith("["):  # [::1]:26379
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise ValueError(f"a host is missing in {text!r}")
    try:
        number = int(port) if port else default_port
    except ValueError:
        raise ValueError(f"the port of {host!r} is not a number") from None
    if not 0 < number < 65536:
        raise ValueError(f"the port of {host!r} is out of range")
    return host, number


def parse_multi_host_url(url: str, *, default_port: int) -> ParsedUrl:
    """``scheme://[[user]:password@]h1[:p1],h2[:p2][/a/b]``; ValueError (no secret in it) when malformed."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("not a URL")
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    netloc, _, path = rest.partition("/")
    userinfo, at, hostlist = netloc.rpartition("@")
    if not at:
        hostlist, userinfo = netloc, ""
    username = password = None
    if userinfo:
        user, colon, pw = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if colon else None
    hosts = tuple(_host_port(h.strip(), default_port) for h in hostlist.split(",") if h.strip())
    if not hosts:
        raise ValueError("no host given")
    return ParsedUrl(scheme.startswith("rediss"), username, password, hosts, tuple(p for p in path.split("/") if p))


def _tls_kwargs(tls: RedisTlsConfig | None) -> dict[str, Any]:
    tls = tls or RedisTlsConfig()
    return {
        "ssl": True,
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_ca_certs": None if tls.ca_file is None else str(tls.ca_file),
        "ssl_certfile": None if tls.cert_file is None else str(tls.cert_file),
        "ssl_keyfile": None if tls.key_file is None else str(tls.key_file),
        "ssl_check_hostname": tls.check_hostname,
        "ssl_min_version": ssl.TLSVersion.TLSv1_2,
    }


def _common(config: StateConfig) -> dict[str, Any]:
    return {
        "decode_responses": True,
        "socket_timeout": config.timeout_seconds,
        "socket_connect_timeout": config.timeout_seconds,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 30,
    }


def build_client(url: str, config: StateConfig) -> redis.Redis | RedisCluster:
    """The client ``url`` names, configured by ``config`` (timeouts, TLS). ValueError: a malformed URL."""
    kwargs = _common(config)
    if url.startswith(("redis+sentinel://", "rediss+sentinel://")):
        return _sentinel(url, config, kwargs)
    if url.startswith(("redis+cluster://", "rediss+cluster://")):
        return _cluster(url, config, kwargs)
    if url.startswith("rediss://"):
        kwargs |= _tls_kwargs(config.tls)
        del kwargs["ssl"]  # the scheme says so to from_url
    return redis.Redis.from_url(url, **kwargs)


def _sentinel(url: str, config: StateConfig, kwargs: dict[str, Any]) -> redis.Redis:
    parsed = parse_multi_host_url(url, default_port=26379)
    if not parsed.path or len(parsed.path) > 2:
        raise ValueError("a Sentinel URL ends in /<service_name> or /<service_name>/<db>")
    service, db = parsed.path[0], parsed.path[1] if len(parsed.path) == 2 else "0"
    if not db.isdigit():
        raise ValueError("the database of a Sentinel URL is a number")
    tls = _tls_kwargs(config.tls) if parsed.tls else {}
    sentinel_kwargs = {
        "socket_timeout": config.timeout_seconds,
        "socket_connect_timeout": config.timeout_seconds,
        "retry": Retry(NoBackoff(), 0),
        "password": None if config.sentinel_password is None else config.sentinel_password.get_secret_value(),
        **tls,
    }
    sentinel = Sentinel(list(parsed.hosts), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis 8
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis 8
        service, redis_class=redis.Redis, db=int(db), username=parsed.username, password=parsed.password,
        **kwargs, **tls)
    return client


def parse_cluster_url(url: str) -> ParsedUrl:
    """A ``redis+cluster://`` URL taken apart; ValueError when malformed (checked before connecting)."""
    parsed = parse_multi_host_url(url, default_port=6379)
    if parsed.path not in ((), ("0",)):
        raise ValueError("a Redis Cluster has database 0 only: a cluster URL names no other")
    return parsed


def _cluster(url: str, config: StateConfig, kwargs: dict[str, Any]) -> RedisCluster:
    parsed = parse_cluster_url(url)
    kwargs.pop("health_check_interval")
    tls = _tls_kwargs(config.tls) if parsed.tls else {}
    nodes = [ClusterNode(h, p) for h, p in parsed.hosts]  # type: ignore[no-untyped-call]
    return RedisCluster(startup_nodes=nodes, username=parsed.username, password=parsed.password, **kwargs, **tls)
