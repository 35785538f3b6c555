"""Which directory servers a request may use: the ones whose circuit breaker is closed.

Each server has a ``broker.breaker.Breaker``. A server that lets a request reach the timeout
(frozen, overloaded) opens its breaker at once; one that refuses connections, fails its service
bind or breaks new connections opens it after ``breaker_failures`` consecutive failures (a lone
reset connection, a server restarting, does not take it out). Requests skip a server whose breaker
is open. Its half-open probe is a background check, off the request path: every
``recheck_interval`` seconds, one connection and service-account bind; success closes the breaker
and requests use the server again. So a frozen server (TCP accepted by its kernel, nothing ever
answered) costs the requests in flight at that moment one timeout, not one per pooled connection
or per request, and a returning server is used again within about ``recheck_interval`` seconds.

(ldap3's ``ServerPool`` with ``active``/``exhaust`` checks a server's availability with a TCP
connect, which a frozen server passes; and a reset of its exhausted list happens on the request
path. Hence this.)

Order: failover is sticky — requests start with the server that answered last.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import suppress

from broker.breaker import Breaker, BreakerState
from broker.logs import get_logger

log = get_logger("broker.directory")


class Failover:
    def __init__(
        self, labels: Sequence[str], *, recheck_interval: float, check: Callable[[int], None], failures: int = 3
    ) -> None:
        """``check(i)``: open a connection to server ``i`` and bind as the service account, or raise."""
        self._labels = list(labels)
        self._interval = recheck_interval
        self._check = check
        self._breakers = [
            Breaker("directory", label, failures=failures, open_seconds=recheck_interval) for label in self._labels
        ]
        self._preferred = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def order(self) -> list[int]:
        """The servers to try, in order: those whose breaker is closed, from the one that answered last."""
        n = len(self._labels)
        with self._lock:
            start = self._preferred
        return [i for i in ((start + k) % n for k in range(n)) if self._breakers[i].state == "closed"]

    def is_down(self, index: int) -> bool:
        return self._breakers[index].state != "closed"

    def answered(self, index: int) -> None:
        self._breakers[index].success()
        with self._lock:
            self._preferred = index

    def failed(self, index: int, error: BaseException, *, timeout: bool = False) -> None:
        """One failure of a server; the one that opens its breaker starts its background check."""
        if self._closed.is_set() or not self._breakers[index].failure(timeout=timeout):
            return
        log.warning(
            "directory_server_down",
            server=self._labels[index],
            error_type=type(error).__name__,
            error=str(error)[:300],
            recheck_seconds=self._interval,
        )
        threading.Thread(target=self._recheck, args=(index,), name="ldap-recheck", daemon=True).start()

    def _recheck(self, index: int) -> None:
        """The half-open probe, every ``recheck_interval`` seconds until the server answers (one
        check at a time, each bounded by the connection's timeouts)."""
        breaker = self._breakers[index]
        while not self._closed.wait(self._interval):
            if breaker.state == "closed":
                return  # a request that began before it opened saw it answer
            if not breaker.allow():
                continue
            # still down: the failure is reported by breaker.call, and it is checked again after the interval
            with suppress(Exception), breaker.call():
                self._check(index)
                log.info("directory_server_back", server=self._labels[index])
                return

    def breakers(self) -> list[BreakerState]:
        return [b.snapshot() for b in self._breakers]

    def close(self) -> None:
        """Stop the checks (a check in progress ends within its timeouts)."""
        self._closed.set()
