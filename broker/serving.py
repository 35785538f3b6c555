"""How `broker serve` runs uvicorn — one process, or a supervisor and worker processes — and how
every worker stops: a rolling update loses no request.

On SIGTERM or SIGINT each worker (a ``DrainingServer``):

1. fails readiness at once (``/readyz`` 503 ``draining``, ``broker.draining``) and keeps accepting
   and serving for ``server.drain_seconds``: the time a load balancer, or Kubernetes taking the pod
   out of its Service's endpoints, needs to stop sending it new connections (what a preStop
   ``sleep`` is for, without one);
2. stops accepting, closes its idle keep-alive connections and gives the requests in flight
   ``server.shutdown_grace_seconds`` to finish (uvicorn's ``timeout_graceful_shutdown``); those
   still running then are cancelled, their connections closed;
3. runs the app's lifespan shutdown: the audit forwarder, then the services (``Services.close``),
   logged as ``closed``; then it exits, waiting at most ``THREAD_WAIT_SECONDS`` for a thread a cut
   request left in a blocking call (logged as ``exit_with_threads_running``).

It logs ``shutdown_started`` and ``shutdown_draining_done``. A SIGTERM during the drain changes
nothing (the supervisor forwards one besides the one a process group gets); a SIGINT ends the drain
at once, and one during step 2 quits without waiting (uvicorn's force exit: Ctrl+C twice). The
process then exits 0, not by the signal: the shutdown was the one asked for.

With several workers, ``supervise`` binds the socket once and spawns the workers (each builds its
own app with ``broker.app:app_from_env``). It replaces a worker that dies, unless the worker failed
to start (exit 3, uvicorn's start-up failure): then it stops them all and exits 3 itself, as the
same start would fail again. On SIGHUP it restarts the workers one by one, each new one serving
before the old one drains. On SIGTERM/SIGINT it forwards SIGTERM to each worker, closes its own
copy of the listening socket (so the port refuses connections once the workers stop accepting,
instead of queueing them), and waits at most drain + grace + ``CLOSE_MARGIN_SECONDS`` before it
kills what is left.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from types import FrameType

import uvicorn

from broker import logs
from broker.draining import LIFESPAN_STATE_KEY, Drain

log = logs.get_logger("broker.serving")

STARTUP_FAILURE = 3
"""uvicorn.config.STARTUP_FAILURE: a worker that exits with it could not start."""
CLOSE_MARGIN_SECONDS = 5.0
"""After drain + grace, how long the supervisor still waits for a worker's lifespan shutdown and exit."""
THREAD_WAIT_SECONDS = 2.0
"""After its lifespan shutdown, how long a worker waits for threads a cut request left running."""
READY_TIMEOUT_SECONDS = 60.0
"""SIGHUP: how long a new worker may take to start serving before the restart is given up."""


class DrainingServer(uvicorn.Server):
    """uvicorn's server whose first SIGTERM/SIGINT starts a drain instead of stopping at once."""

    def __init__(self, config: uvicorn.Config, *, drain_seconds: float, ready: Event | None = None) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds
        self.ready = ready
        self._drain_until: float | None = None
        self._logged_start = self._logged_done = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.ready is not None:
            self.ready.set()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler: it only sets flags (no logging, no locks); on_tick acts on them.
        if not self.started:  # still starting: stop as soon as it can
            self.should_exit = True
        elif self._drain_until is None:
            self._drain_until = time.monotonic() + self.drain_seconds
            drain = self.lifespan.state.get(LIFESPAN_STATE_KEY)
            if isinstance(drain, Drain):
                drain.begin()
        elif sig == signal.SIGINT:
            if self.should_exit:
                self.force_exit = True
            self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self._drain_until is not None:
            if not self._logged_start:
                self._logged_start = True
                log.info("shutdown_started", pid=os.getpid(), drain_seconds=self.drain_seconds,
                         grace_seconds=self.config.timeout_graceful_shutdown)
            if not self.should_exit and time.monotonic() >= self._drain_until:
                self.should_exit = True
            if self.should_exit and not self._logged_done:
                self._logged_done = True
                log.info("shutdown_draining_done", pid=os.getpid(),
                         connections=len(self.server_state.connections), tasks=len(self.server_state.tasks))
        return await super().on_tick(counter)


def _leave_stuck_threads() -> None:
    """After the server has stopped and the lifespan has closed everything: a thread a request cut
    at the grace period left behind (anyio's worker threads are not daemons) would hold the process
    at exit until its blocking call ends — or forever, if that call has no bound. Such threads get
    THREAD_WAIT_SECONDS; then the process leaves without them (logs flushed, exit 0)."""
    deadline = time.monotonic() + THREAD_WAIT_SECONDS
    for thread in _other_threads():
        thread.join(max(0.0, deadline - time.monotonic()))
    left = [t.name for t in _other_threads()]
    if left:
        log.warning("exit_with_threads_running", pid=os.getpid(), threads=left,
                    note="a request cut at the grace period is still in a blocking call; leaving without it")
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(0)


def _other_threads() -> list[threading.Thread]:
    current = threading.current_thread()
    return [t for t in threading.enumerate() if t is not current and not t.daemon and t.is_alive()]


def _worker(config: uvicorn.Config, sockets: list[socket.socket], drain_seconds: float, ready: Event) -> None:
    """A worker process's main (spawned): its server on the supervisor's socket."""
    config.configure_logging()
    server = DrainingServer(config, drain_seconds=drain_seconds, ready=ready)
    server.run(sockets=sockets)
    if server.started:
        _leave_stuck_threads()


class _Worker:
    def __init__(self, config: uvicorn.Config, sock: socket.socket, drain_seconds: float) -> None:
        context = multiprocessing.get_context("spawn")
        self.ready = context.Event()
        self.process: SpawnProcess = context.Process(
            target=_worker, args=(config, [sock], drain_seconds, self.ready), name="broker-worker"
        )
        self.process.start()

    def terminate(self) -> None:
        if self.process.pid is not None and self.process.exitcode is None:
            os.kill(self.process.pid, signal.SIGTERM)

    def wait_ready(self, give_up: Callable[[], bool]) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline and self.process.is_alive() and not give_up():
            if self.ready.wait(0.2):
                return True
        return False


class _Supervisor:
    def __init__(self, config: uvicorn.Config, *, workers: int, drain_seconds: float) -> None:
        self.config, self.count, self.drain_seconds = config, workers, drain_seconds
        self.sock = config.bind_socket()
        self.workers: list[_Worker] = []
        self.retiring: list[_Worker] = []
        """Old workers a SIGHUP restart has told to stop: still draining."""
        self.signals: list[int] = []

    def start_worker(self) -> _Worker:
        return _Worker(self.config, self.sock, self.drain_seconds)

    def run(self) -> int:
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        previous = {sig: signal.signal(sig, self._queue) for sig in handled}
        try:
            self.workers = [self.start_worker() for _ in range(self.count)]
            code = self._watch()
            self._stop()
            return code
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.sock.close()

    def _queue(self, sig: int, _frame: FrameType | None) -> None:
        self.signals.append(sig)

    def _stopping(self) -> bool:
        return signal.SIGTERM in self.signals or signal.SIGINT in self.signals

    def _watch(self) -> int:
        while True:
            while self.signals:
                sig = self.signals.pop(0)
                if sig in (signal.SIGTERM, signal.SIGINT):
                    log.info("supervisor_stopping", signal=signal.Signals(sig).name, workers=len(self.workers))
                    return 0
                self._restart()
            self.retiring = [w for w in self.retiring if w.process.is_alive()]
            for index, worker in enumerate(self.workers):
                if worker.process.is_alive():
                    continue
                worker.process.join()
                if worker.process.exitcode == STARTUP_FAILURE:
                    log.error("worker_start_failed", pid=worker.process.pid, note="stopping the other workers")
                    return STARTUP_FAILURE
                log.warning("worker_died", pid=worker.process.pid, exitcode=worker.process.exitcode)
                self.workers[index] = self.start_worker()
            time.sleep(0.2)

    def _restart(self) -> None:
        """SIGHUP: each worker replaced by a new one, which serves before the old one drains."""
        log.info("supervisor_restarting_workers", workers=len(self.workers))
        for index, old in enumerate(self.workers):
            new = self.start_worker()
            if not new.wait_ready(give_up=self._stopping):
                if self._stopping():  # _stop stops it with the others
                    self.retiring.append(new)
                    return
                new.process.kill()
                new.process.join()
                log.error("worker_restart_failed", pid=new.process.pid, exitcode=new.process.exitcode,
                          note="the old workers keep serving")
                return
            old.terminate()
            self.retiring.append(old)
            self.workers[index] = new

    def _stop(self) -> None:
        everyone = [*self.workers, *self.retiring]
        for worker in everyone:
            worker.terminate()
        self.sock.close()  # the workers hold their own copies: the port closes when the last one stops accepting
        grace = self.config.timeout_graceful_shutdown or 0
        deadline = time.monotonic() + self.drain_seconds + grace + CLOSE_MARGIN_SECONDS
        for worker in everyone:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                log.error("worker_killed", pid=worker.process.pid, note="still running after drain + grace + margin")
                worker.process.kill()
                worker.process.join()


def supervise(config: uvicorn.Config, *, workers: int, drain_seconds: float) -> int:
    """Run ``workers`` worker processes on one socket until SIGTERM/SIGINT; the exit code."""
    return _Supervisor(config, workers=workers, drain_seconds=drain_seconds).run()


def serve_one(config: uvicorn.Config, *, drain_seconds: float) -> bool:
    """One process: the server in this one (``config`` holds the app itself). Whether it started."""
    server = DrainingServer(config, drain_seconds=drain_seconds)
    server.run()
    if server.started:
        _leave_stuck_threads()
    return server.started
