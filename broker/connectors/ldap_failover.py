"""Which directory servers a request may use: the ones that answer.

A server that fails (refuses the connection, or leaves a request unanswered until the timeout)
is marked down and skipped by every request; a background check, off the request path, tries it
again every ``recheck_interval`` seconds and puts it back as soon as it answers. So a frozen
server (TCP accepted by its kernel, nothing ever answered) costs the requests in flight at that
moment one timeout, not one per pooled connection or per request, and a returning server is used
again within about ``recheck_interval`` seconds.

(ldap3's ``ServerPool`` with ``active``/``exhaust`` checks a server's availability with a TCP
connect, which a frozen server passes; and a reset of its exhausted list happens on the request
path. Hence this small state machine.)

Order: failover is sticky — requests start with the server that answered last.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from broker.logs import get_logger

log = get_logger("broker.directory")


class Failover:
    def __init__(
        self, labels: Sequence[str], *, recheck_interval: float, check: Callable[[int], None]
    ) -> None:
        """``check(i)``: open a connection to server ``i`` and bind as the service account, or raise."""
        self._labels = list(labels)
        self._interval = recheck_interval
        self._check = check
        self._down: set[int] = set()
        """Servers skipped by requests; each has one checker thread until it answers again."""
        self._preferred = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def order(self) -> list[int]:
        """The servers to try, in order: those not marked down, from the one that answered last."""
        n = len(self._labels)
        with self._lock:
            start = self._preferred
            return [i for i in ((start + k) % n for k in range(n)) if i not in self._down]

    def is_down(self, index: int) -> bool:
        with self._lock:
            return index in self._down

    def answered(self, index: int) -> None:
        with self._lock:
            self._preferred = index

    def failed(self, index: int, error: BaseException) -> None:
        """Mark a server down (skipped from now on) until its background check sees it answer."""
        with self._lock:
            if index in self._down or self._closed.is_set():
                return
            self._down.add(index)
        log.warning(
            "directory_server_down",
            server=self._labels[index],
            error_type=type(error).__name__,
            error=str(error)[:300],
            recheck_seconds=self._interval,
        )
        threading.Thread(target=self._recheck, args=(index,), name="ldap-recheck", daemon=True).start()

    def _recheck(self, index: int) -> None:
        """Every ``recheck_interval`` seconds: is the server back? (One check at a time, each
        bounded by the connection's timeouts; a frozen server's check waits for it to thaw.)"""
        while not self._closed.wait(self._interval):
            try:
                self._check(index)
            except Exception:  # noqa: BLE001, S112 - still down: checked again after the interval
                continue
            with self._lock:
                self._down.discard(index)
            log.info("directory_server_back", server=self._labels[index])
            return

    def close(self) -> None:
        """Stop the checks (a check in progress ends within its timeouts)."""
        self._closed.set()
