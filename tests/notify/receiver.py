"""A webhook receiver on loopback for the notification tests: a real HTTP server in a thread that
answers each POST with the next status of its script (then ``status``), records every request
(headers and raw body), and can go down (its port refuses connections) and come back on the
same port."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.conftest import free_port


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes
    status: int

    @property
    def body(self) -> Any:
        return json.loads(self.raw)

    @property
    def delivery(self) -> str:
        return self.headers["x-broker-delivery"]

    @property
    def event(self) -> str:
        return self.headers["x-broker-event"]


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.script: list[int] = []
        self.status = 200
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.up()

    def url(self, path: str = "/hook/T0KEN-in-the-path") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    status = receiver.script.pop(0) if receiver.script else receiver.status
                    receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                      raw, status))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def up(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server

    def down(self) -> None:
        """The port refuses connections until ``up``."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def accepted(self) -> list[Received]:
        """The requests answered 2xx."""
        return [r for r in self.received if 200 <= r.status < 300]

    def by_event(self) -> dict[str, list[Received]]:
        out: dict[str, list[Received]] = {}
        for r in self.accepted():
            out.setdefault(r.event, []).append(r)
        return out

    def __iter__(self) -> Iterator[Received]:
        return iter(list(self.received))

