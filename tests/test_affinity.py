"""server.cpu_affinity: workers started together by one supervisor end up on different CPUs."""

from __future__ import annotations

import multiprocessing
import os

from broker.affinity import pin_worker
from tests.conftest import component_missing


def _worker(started, answers) -> None:
    started.wait()  # all workers choose at the same moment, as uvicorn starts them
    cpu = pin_worker()
    answers.put((cpu, sorted(os.sched_getaffinity(0))))
    started.wait()  # stay alive (pinned) until every sibling has chosen


def test_workers_started_together_take_different_cpus() -> None:
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        component_missing("Linux with 2 or more CPUs (server.cpu_affinity)")
    allowed = sorted(os.sched_getaffinity(0))
    n = min(len(allowed), 4)
    ctx = multiprocessing.get_context("spawn")
    started, answers = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(started, answers)) for _ in range(n)]
    for p in procs:
        p.start()
    got = [answers.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    cpus = [cpu for cpu, _ in got]
    assert sorted(cpus) == allowed[:n]  # one each, none shared
    assert all(mask == [cpu] for cpu, mask in got)  # each process now runs on its CPU only
    assert sorted(os.sched_getaffinity(0)) == allowed  # the supervisor itself is not pinned
