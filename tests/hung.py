"""A server that accepts TCP connections and never answers: a frozen STS, proxy or directory
(shared by the fault tests and bench/faults.py)."""

from __future__ import annotations

import socket
import threading


class HungServer:
    """Accepts every TCP connection, reads what comes, answers nothing (a frozen STS or proxy)."""

    def __init__(self) -> None:
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
