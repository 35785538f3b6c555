"""Connections to an LDAP directory: servers with failover, TLS, pools, timeouts, paged searches.

Built once at start-up. Two small pools of open connections: one bound as the service
account (searches), one used only for users' binds (a bind replaces whatever identity the
connection had, so it never searches as a user). Referrals are never followed: continuation
references are dropped and a referral result is "nothing here".

Failover (``broker.connectors.ldap_failover``): a circuit breaker per server. A server that lets
a request reach the timeout, or refuses ``breaker_failures`` connections in a row, is skipped; the
request goes on with the next server, pooled connections to it are dropped, and it is used again
once a background check (the half-open probe) sees it answer.

ldap3 exceptions become ``DirectoryUnavailable`` in ``translate`` below, and nowhere else.
Results are values: a bind's result code, a search's entries.
"""

from __future__ import annotations

import math
import queue
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import ldap3
from ldap3.core.exceptions import LDAPCommunicationError, LDAPException, LDAPResponseTimeoutError

from broker.breaker import BreakerState
from broker.connectors.config import _DirectoryServer
from broker.connectors.ldap_failover import Failover
from broker.errors import ConfigError, DirectoryUnavailable
from broker.logs import get_logger

log = get_logger("broker.directory")

T = TypeVar("T")
PAGED_RESULTS = "1.2.840.113556.1.4.319"
NO_ATTRIBUTES = "1.1"
# A broken connection: retried once on a fresh connection (which may be another server).
_BROKEN = (LDAPCommunicationError, LDAPResponseTimeoutError, OSError)
# Bind result codes that mean "these credentials are refused", not "the directory is down".
_REFUSED = {
    7,  # authMethodNotSupported
    8,  # strongerAuthRequired
    10,  # referral: never followed
    19,  # constraintViolation (password policy lockout)
    32,  # noSuchObject
    34,  # invalidDNSyntax
    48,  # inappropriateAuthentication
    49,  # invalidCredentials
    50,  # insufficientAccessRights
    53,  # unwillingToPerform
}
_SCOPES: dict[str, Literal["BASE", "LEVEL", "SUBTREE"]] = {"base": ldap3.BASE, "one": ldap3.LEVEL, "subtree": ldap3.SUBTREE}


@contextmanager
def translate(what: str, server: str = "") -> Iterator[None]:
    """ldap3 and socket exceptions → DirectoryUnavailable (details logged, never passwords)."""
    try:
        yield
    except DirectoryUnavailable:
        raise
    except (LDAPException, OSError) as exc:
        log.warning(
            "directory_error", during=what, server=server, error_type=type(exc).__name__, error=str(exc)[:300]
        )
        raise DirectoryUnavailable() from None


@dataclass
class Stats:
    """Requests sent to the directory (a paged search counts one per page)."""

    searches: int = 0
    binds: int = 0
    """Users' binds (and the dummy bind for unknown users)."""
    connections: int = 0
    """Connections opened (each service connection binds as the service account once)."""
    timeouts: int = 0
    """Waits for a server that ended with the timeout (a frozen server costs each request in flight one)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, kind: str) -> None:
        with self._lock:
            setattr(self, kind, getattr(self, kind) + 1)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "searches": self.searches,
                "binds": self.binds,
                "connections": self.connections,
                "timeouts": self.timeouts,
            }


@dataclass(frozen=True)
class Entry:
    dn: str
    attrs: dict[str, list[bytes]]
    """Raw values under lower-cased attribute names."""

    def raw(self, name: str) -> list[bytes]:
        return self.attrs.get(name.lower(), [])

    def text(self, name: str) -> list[str]:
        return [v.decode("utf-8", errors="replace") for v in self.raw(name)]

    def first(self, name: str, default: str = "") -> str:
        values = self.text(name)
        return values[0] if values else default


@dataclass(frozen=True)
class BindResult:
    ok: bool
    code: int
    message: str
    """The server's diagnostic message (AD puts its sub-code here: ``data 52e``)."""

    @property
    def refused(self) -> bool:
        return not self.ok and self.code in _REFUSED


@dataclass(frozen=True)
class _Target:
    server: ldap3.Server
    start_tls: bool
    label: str


class _Tls(ldap3.Tls):
    """TLS with the standard library's own checks: chain *and* host name verified during the
    handshake (``check_hostname``), with one SSLContext built at start-up. The handshake (LDAPS
    at every new or reopened connection, StartTLS after its answer) has ``timeout`` seconds in
    all, whatever timeout ldap3 left on the socket (CPython bounds a handshake on a socket with
    a timeout as a whole, not per read: a server trickling bytes cannot stretch it); the socket's
    own timeout is put back afterwards."""

    def __init__(self, context: ssl.SSLContext, host: str, *, timeout: float) -> None:
        super().__init__(validate=context.verify_mode)
        self._context = context
        self._host = host
        self._timeout = timeout

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
        raw = connection.socket
        previous = raw.gettimeout()
        raw.settimeout(self._timeout)
        wrapped = self._context.wrap_socket(raw, server_side=False, do_handshake_on_connect=False,
                                            server_hostname=self._host)
        if do_handshake:
            try:
                wrapped.do_handshake()
            except BaseException:
                wrapped.close()
                raise
        wrapped.settimeout(previous)
        connection.socket = wrapped


def tls_context(config: _DirectoryServer) -> ssl.SSLContext:
    """Verification on unless ``insecure_skip_verify``; the CA bundle replaces the system store."""
    try:
        context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError([f"directory.ca_file: cannot load the CA bundle ({exc})"]) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if config.insecure_skip_verify:
        log.warning("directory_tls_verification_disabled", name=config.name)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _targets(config: _DirectoryServer) -> list[_Target]:
    context = tls_context(config)
    out = []
    for url in config.servers:
        parts = urlsplit(url)
        secure = parts.scheme == "ldaps"
        host = parts.hostname or ""
        tls = _Tls(context, host, timeout=config.timeout)
        server = ldap3.Server(
            host,
            port=parts.port or (636 if secure else 389),
            use_ssl=secure,
            tls=tls,
            get_info=ldap3.NONE,
            connect_timeout=config.connect_timeout,
        )
        out.append(_Target(server, not secure and config.start_tls, f"{parts.scheme}://{host}:{server.port}"))
    return out


_Pooled = tuple[int, ldap3.Connection]
"""A pooled connection and the index of its server."""


def _timed_out(exc: BaseException) -> bool:
    """The server accepted the connection but left the request unanswered (frozen, overloaded)."""
    return isinstance(exc, (TimeoutError, LDAPResponseTimeoutError))


class LdapPool:
    def __init__(self, config: _DirectoryServer) -> None:
        self._config = config
        self._targets = _targets(config)
        self._service: queue.LifoQueue[_Pooled] = queue.LifoQueue(maxsize=config.pool_size)
        self._auth: queue.LifoQueue[_Pooled] = queue.LifoQueue(maxsize=config.pool_size)
        self._time_limit = max(1, int(config.timeout))
        # ldap3 packs the receive timeout as an integer (SO_RCVTIMEO)
        self._receive_timeout = max(1, math.ceil(config.timeout))
        self.stats = Stats()
        self.failover = Failover(
            [t.label for t in self._targets], recheck_interval=config.recheck_interval, check=self._check,
            failures=config.breaker_failures,
        )

    # ---- connections ----

    def _connect(self, index: int, *, service: bool) -> ldap3.Connection:
        """A new connection to one server (StartTLS, and the service bind for the service pool);
        ldap3 and socket exceptions pass through, a refused service account is an outage."""
        target = self._targets[index]
        conn = ldap3.Connection(
            target.server,
            client_strategy=ldap3.SYNC,
            raise_exceptions=False,
            auto_referrals=False,
            read_only=True,
            receive_timeout=self._receive_timeout,
            return_empty_attributes=False,
        )
        try:
            conn.open(read_server_info=False)
            if target.start_tls:
                conn.start_tls(read_server_info=False)
            ok = self._bind(conn, self._config.bind_dn, self._config.bind_password.get_secret_value()) if service else None
        except BaseException:
            _drop(conn)
            raise
        if ok is not None and not ok.ok:
            _close(conn)
            if not ok.refused:  # busy, unavailable, ...: this server, not the account
                raise LDAPCommunicationError(f"service bind answered {ok.code} {ok.message[:200]}")
            log.error("directory_service_bind_failed", server=target.label, code=ok.code, bind_dn=self._config.bind_dn)
            raise DirectoryUnavailable("the directory refused the broker's service account (bind_dn / bind_password)")
        self.stats.count("connections")
        return conn

    def _open(self, *, service: bool) -> _Pooled:
        """A new connection to the first server not marked down that answers, starting with the
        one that answered last (failover is sticky). A server that fails here is marked down."""
        for index in self.failover.order():
            try:
                conn = self._connect(index, service=service)
            except (LDAPException, OSError) as exc:  # refused, timed out, TLS refused: the next server
                if _timed_out(exc):
                    self.stats.count("timeouts")
                self.failover.failed(index, exc, timeout=_timed_out(exc))
                continue
            self.failover.answered(index)
            return index, conn
        raise DirectoryUnavailable()

    def _check(self, index: int) -> None:
        """The background check of a server marked down: a connection and a service bind."""
        _close(self._connect(index, service=True))

    def _checkout(self, pool: queue.LifoQueue[_Pooled], *, service: bool) -> tuple[int, ldap3.Connection, bool]:
        """A pooled connection to a server not marked down (others are closed), else a new one."""
        while True:
            try:
                index, conn = pool.get_nowait()
            except queue.Empty:
                return (*self._open(service=service), False)
            if not self.failover.is_down(index):
                return index, conn, True
            _drop(conn)

    def _bind(self, conn: ldap3.Connection, dn: str, password: str) -> BindResult:
        conn.user, conn.password, conn.authentication = dn, password, ldap3.SIMPLE
        try:
            ok = conn.bind(read_server_info=False)
        finally:
            conn.password = None  # the pool keeps no secret it does not need
        result = conn.result or {}
        return BindResult(bool(ok), int(result.get("result", -1)), str(result.get("message", "")))

    def _run(
        self, pool: queue.LifoQueue[_Pooled], op: Callable[[ldap3.Connection], T], what: str
    ) -> T:
        """``op`` on a pooled connection. A connection that breaks is replaced by a new one (on
        another server if its server is marked down); a server that times out, or breaks a new
        connection, is marked down. At most one more attempt than there are servers."""
        service = pool is self._service
        index, conn, reused = self._checkout(pool, service=service)
        for _attempt in range(len(self._targets) + 1):
            try:
                with translate(what, self._targets[index].label):
                    try:
                        result = op(conn)
                    except _BROKEN as exc:
                        _drop(conn)
                        if _timed_out(exc):
                            self.stats.count("timeouts")
                        if _timed_out(exc) or not reused:
                            self.failover.failed(index, exc, timeout=_timed_out(exc))
                        index, conn = self._open(service=service)
                        reused = False
                        continue
            except DirectoryUnavailable:
                _close(conn)
                raise
            self.failover.answered(index)  # consecutive failures forgotten
            try:
                pool.put_nowait((index, conn))
            except queue.Full:
                _close(conn)
            return result
        _close(conn)
        raise DirectoryUnavailable()

    # ---- operations ----

    def bind(self, dn: str, password: str) -> BindResult:
        """A user's simple bind (the password never empty: callers refuse that first)."""
        if not password:
            raise ValueError("empty password: refuse it before binding")
        self.stats.count("binds")
        return self._run(self._auth, lambda c: self._bind(c, dn, password), "bind")

    def search(
        self,
        base: str,
        search_filter: str,
        *,
        attributes: list[str] | tuple[str, ...] = (NO_ATTRIBUTES,),
        scope: str = "subtree",
        size_limit: int = 0,
        deadline: float | None = None,
    ) -> list[Entry]:
        """Every entry (all pages) under ``base``; [] when the base does not exist or is a referral.
        With ``deadline`` (``time.monotonic()``), no page is asked for after it: DirectoryUnavailable
        (a search of many pages then takes at most the deadline plus one ``timeout``)."""
        return self._run(
            self._service,
            lambda c: self._search(c, base, search_filter, list(attributes), scope, size_limit, deadline),
            "search",
        )

    def _search(
        self,
        conn: ldap3.Connection,
        base: str,
        flt: str,
        attributes: list[str],
        scope: str,
        size_limit: int,
        deadline: float | None = None,
    ) -> list[Entry]:
        entries: list[Entry] = []
        cookie: Any = None
        # One page holds it all when the caller caps the result (a user lookup asks for 2):
        # no paged-results control to encode and decode then.
        paged = scope != "base" and not 0 < size_limit <= self._config.page_size
        while True:
            if deadline is not None and time.monotonic() > deadline:
                log.warning("directory_search_out_of_time", base=base, entries=len(entries))
                raise DirectoryUnavailable("the directory did not answer within the time allowed")
            self.stats.count("searches")
            conn.search(
                base,
                flt,
                search_scope=_SCOPES[scope],
                attributes=attributes,
                size_limit=size_limit,
                time_limit=self._time_limit,
                paged_size=self._config.page_size if paged else None,
                paged_cookie=cookie,
                auto_escape=False,
            )
            result = conn.result or {}
            code = int(result.get("result", -1))
            for item in conn.response or ():
                if item.get("type") == "searchResEntry":
                    raw = item.get("raw_attributes") or {}
                    entries.append(Entry(item["dn"], {k.lower(): list(v) for k, v in raw.items()}))
            if code == 4 and size_limit:  # the caller's own limit: it gets what came
                return entries
            if code in (10, 32):  # referral (not followed) or no such base
                if code == 10:
                    log.warning("directory_referral_ignored", base=base)
                return entries
            if code != 0:
                log.warning(
                    "directory_search_failed", base=base, code=code, description=result.get("description")
                )
                raise DirectoryUnavailable()
            if not paged:
                return entries
            cookie = (((result.get("controls") or {}).get(PAGED_RESULTS) or {}).get("value") or {}).get(
                "cookie"
            )
            if not cookie:
                return entries

    def probe(self) -> None:
        """Readiness: open a new connection and bind as the service account (no anonymous probe)."""
        _close(self._open(service=True)[1])

    def breakers(self) -> list[BreakerState]:
        """Each server's circuit breaker (/readyz, /metrics)."""
        return self.failover.breakers()

    def close(self) -> None:
        self.failover.close()
        for pool in (self._service, self._auth):
            while True:
                try:
                    _close(pool.get_nowait()[1])
                except queue.Empty:
                    break


def _close(conn: ldap3.Connection) -> None:
    try:
        conn.unbind()
    except (LDAPException, OSError):
        pass


def _drop(conn: ldap3.Connection) -> None:
    """Close without an unbind request: nobody would read it (the server is down or the
    connection broken)."""
    try:
        conn.strategy.close()
    except (LDAPException, OSError):
        pass
