"""``server.cpu_affinity``: each uvicorn worker process keeps all its threads on one CPU.

A worker is an event-loop thread plus the threads that run the blocking steps of an issuance
(directory, database, STS); they hand each request back and forth. Left to the scheduler they
wander between CPUs and find their caches cold each time; kept on one CPU per worker, an
issuance costs measurably less CPU (bench/issuance.py). Workers spread over the CPUs this
process may use: a starting (or restarted) worker takes the CPU the fewest running siblings
hold. Off by default: on a host whose CPUs other busy processes share, or under a CPU quota,
the scheduler's choice is the safer one. Linux only; elsewhere it does nothing.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path


def _siblings() -> list[int]:
    """The other children of this process's parent (the uvicorn supervisor's other workers)."""
    parent, me, found = os.getppid(), os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent:
            found.append(int(entry))
    return found


def pin_worker() -> int | None:
    """Pin this process to the allowed CPU the fewest siblings are pinned to; return that CPU
    (None: not Linux, or a single CPU). Call it before the process starts other threads: they
    inherit the CPU set of the thread that starts them."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    import fcntl

    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None
    lock = Path(tempfile.gettempdir()) / f"broker-affinity-{os.getppid()}.lock"
    with lock.open("w") as handle:  # one worker chooses at a time, so two starting together differ
        fcntl.flock(handle, fcntl.LOCK_EX)
        taken: Counter[int] = Counter()
        for pid in _siblings():
            try:
                cpus = os.sched_getaffinity(pid)
            except OSError:
                continue
            if len(cpus) == 1:
                taken.update(cpus)
        cpu = min(allowed, key=lambda c: (taken[c], c))
        os.sched_setaffinity(0, {cpu})
    return cpu
