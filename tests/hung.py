"""A server that accepts TCP connections and never answers: a frozen STS, proxy or directory
(shared by the fault tests and bench/faults.py)."""

from __future__ import annotations

import socket
import threading
import time


class HungServer:
    """Accepts every TCP connection, reads what comes, answers nothing (a frozen STS or proxy).
    ``drip`` (seconds): answers instead with the start of a TLS record and then one byte per
    ``drip`` seconds, forever: each read gets something before any per-read timeout, the
    handshake never ends (only a bound on the whole handshake stops it)."""

    def __init__(self, *, drip: float | None = None) -> None:
        self.drip = drip
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self.requests = 0
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._open.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()
            if self.drip is not None:
                threading.Thread(target=self._trickle, args=(conn, self.drip), daemon=True).start()

    def _trickle(self, conn: socket.socket, every: float) -> None:
        # a TLS handshake record of 16 KiB announced, its body sent a byte at a time
        chunks = iter([b"\x16\x03\x03\x40\x00"])
        while True:
            try:
                conn.sendall(next(chunks, b"\x00"))
            except OSError:
                return
            time.sleep(every)

    def _read(self, conn: socket.socket) -> None:
        seen = b""
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            seen += data
            if b"Action=AssumeRoleWith" in seen:  # one whole request arrived (the body is small)
                with self._lock:
                    self.requests += 1
                seen = b""

    def close(self) -> None:
        self.sock.close()
        with self._lock:
            for conn in self._open:
                conn.close()
