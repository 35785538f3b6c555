"""A small load generator for the cluster tests: threads issuing credentials through nginx, each
request recorded with its start, end and outcome, so a test can tell which ones were in flight
when a replica went away."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Self

import httpx

from tests.cluster.harness import PASSWORD, Cluster


@dataclass
class Outcome:
    started: float
    ended: float
    status: int | None
    """None: the client saw no HTTP answer (connection error)."""
    code: str = ""


@dataclass
class Load:
    """``threads`` keep-alive clients, each POSTing /api/v1/credentials back to back."""

    cluster: Cluster
    threads: int = 6
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Self:
        for i in range(self.threads):
            worker = threading.Thread(target=self._run, args=(i,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=90)

    def _run(self, i: int) -> None:
        uid = self.cluster.uids[i % len(self.cluster.uids)]
        with httpx.Client(base_url=self.cluster.url, timeout=60, auth=(uid, PASSWORD)) as client:
            while not self._stop.is_set():
                t0 = time.monotonic()
                try:
                    r = client.post("/api/v1/credentials", json={"account": "saml-acct", "role": "Deploy"})
                    status: int | None = r.status_code
                    code = "" if status == 200 else _code(r)
                except httpx.HTTPError as exc:
                    status, code = None, type(exc).__name__
                with self._lock:
                    self.outcomes.append(Outcome(t0, time.monotonic(), status, code))

    def failures(self) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if o.status != 200]

    def ok_after(self, t: float) -> int:
        with self._lock:
            return sum(1 for o in self.outcomes if o.started > t and o.status == 200)


def _code(r: httpx.Response) -> str:
    try:
        return str(r.json().get("error", {}).get("code", ""))
    except ValueError:
        return r.text[:60]
