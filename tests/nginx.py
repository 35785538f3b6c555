"""Debian nginx on loopback in front of brokers: the one setup of tests/proxy (the forwarding
headers, the rolling restart) and tests/cluster (the replicas).

Each caller gives only its ``http { ... }`` body (upstreams, servers); the rest is common: one
worker, the pid, logs and temp paths in the test's directory (names starting with ``prefix``),
``user root`` when run as root, ``nginx -p DIR -c DIR/nginx.conf -g 'daemon off;'`` in a session
of its own, waited for until each given URL answers, reloaded with SIGHUP, stopped with SIGTERM.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from bench.live_broker import wait_http

CONF = """
{user}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/{prefix}error.log warn;
events {{ worker_connections {connections}; }}
http {{
{log_format}    access_log {tmp}/{prefix}access.log{log_name};
    client_body_temp_path {tmp}/{prefix}client_body;
    proxy_temp_path {tmp}/{prefix}proxy;
    fastcgi_temp_path {tmp}/{prefix}fastcgi;
    uwsgi_temp_path {tmp}/{prefix}uwsgi;
    scgi_temp_path {tmp}/{prefix}scgi;
{http}
}}
"""


def nginx_program() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


class Nginx:
    """One nginx with its files in ``tmp``. ``log_format``: a ``log_format NAME '...'`` body
    (``upstreamlog '$remote_addr ...'``) the access log then uses; otherwise nginx's default."""

    def __init__(self, tmp: Path, *, worker_connections: int, prefix: str = "", log_format: str | None = None) -> None:
        program = nginx_program()
        if program is None:
            raise FileNotFoundError("nginx")
        self.program = program
        self.tmp = tmp
        self.conf = tmp / "nginx.conf"
        self.error_log = tmp / f"{prefix}error.log"
        self._connections = worker_connections
        self._prefix = prefix
        self._log_format = log_format
        self.proc: subprocess.Popen[bytes] | None = None

    def write(self, http: str) -> Path:
        """The configuration file with ``http`` as the body of its ``http`` block."""
        name = self._log_format.split(maxsplit=1)[0] if self._log_format else ""
        self.conf.write_text(CONF.format(
            user="user root;" if os.geteuid() == 0 else "", tmp=self.tmp, prefix=self._prefix,
            connections=self._connections, http=http.strip("\n"),
            log_format=f"    log_format {self._log_format};\n" if self._log_format else "",
            log_name=f" {name}" if name else ""))
        return self.conf

    def start(self, http: str, *ready: str) -> subprocess.Popen[bytes]:
        """Write the configuration, start nginx, wait until each URL of ``ready`` answers."""
        self.write(http)
        self.error_log.touch()
        with self.error_log.open("ab") as out:
            self.proc = subprocess.Popen([self.program, "-p", str(self.tmp), "-c", str(self.conf), "-g", "daemon off;"],
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        for url in ready:
            wait_http(url, self.proc, self.error_log)
        return self.proc

    def reload(self, http: str) -> None:
        """nginx -s reload: new workers route by the new file; the old ones finish what they carry
        (asynchronous: until the new workers take over, the old ones still route by the old file)."""
        self.write(http)
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def stop(self, timeout: float = 10) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
