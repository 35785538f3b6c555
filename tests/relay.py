"""A TCP relay in front of a real server (moto, PostgreSQL, slapd) that a test can freeze or cut:
``hang()`` — new connections are accepted and read, nothing is forwarded or answered (a frozen
STS); ``freeze()`` — the same, and the connections already open stop too, as a stopped server's
kernel still accepts and reads (``asked`` counts the connections a request arrived on meanwhile:
how often a client asked the frozen server something); ``forward()`` — new connections reach the
server again; ``cut()`` — the port refuses connections and open ones are closed (a server that
is down)."""

from __future__ import annotations

import socket
import threading
from contextlib import suppress


class Relay:
    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.upstream = (host, upstream_port)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.hanging = False
        self.frozen = False
        self.held = 0
        """Connections accepted while hanging (each one left unanswered)."""
        self.asked: set[int] = set()
        """The connections (ids) on which a request arrived while frozen."""
        self.accepted = 0
        """Connections accepted so far (a client that opens one per request: its requests)."""
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def hang(self) -> None:
        with self._lock:
            self.hanging = True

    def freeze(self) -> None:
        with self._lock:
            self.hanging = self.frozen = True

    def forward(self) -> None:
        with self._lock:
            self.hanging = self.frozen = False

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(client)
                self.accepted += 1
                hanging = self.hanging
                if hanging:
                    self.held += 1
            if hanging:
                threading.Thread(target=self._pump, args=(client, None, id(client)), daemon=True).start()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._conns.append(server)
            threading.Thread(target=self._pump, args=(client, server, id(client)), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, None), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket | None, key: int | None) -> None:
        """Copy ``src`` to ``dst`` (None: read and drop); ``key`` names a client's side."""
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                if dst is not None:
                    with suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                return
            with self._lock:
                frozen = self.frozen
                if frozen and key is not None:
                    self.asked.add(key)
            if dst is None or frozen:
                dst = None  # this connection is dead for good: nothing it sent is ever answered
                continue
            try:
                dst.sendall(data)
            except OSError:
                return

    def cut(self) -> None:
        """Down: the port refuses connections, open ones are closed."""
        with suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() in progress: the port stops listening
        self.sock.close()
        with self._lock:
            for conn in self._conns:
                with suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                with suppress(OSError):
                    conn.close()
            self._conns.clear()

    close = cut
