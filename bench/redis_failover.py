"""Benchmark: what a Redis Sentinel failover costs the broker's state calls. Prints JSON.

Starts a Sentinel set-up on loopback random ports (tests/state/servers.py: a master, a replica,
three Sentinels, quorum 2, down-after 1 s), runs --threads threads of set + get + increment
through ``RedisState`` (the broker's store), SIGKILLs the master, and reports per trial: how long
until the Sentinels named a new master, how long until every thread succeeded again, how many
calls answered ``StateUnavailable`` meanwhile, and the slowest single call (the bound on a
request's wait). --trials set-ups one after the other.

    python bench/redis_failover.py --trials 3
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broker import logs
from broker.config import StateConfig
from broker.errors import StateUnavailable
from broker.state.redis import RedisState
from tests.state.servers import RedisSentinelSet


def trial(threads: int, timeout: float, retries: int) -> dict[str, float | int]:
    with tempfile.TemporaryDirectory() as tmp:
        servers = RedisSentinelSet(Path(tmp)).start()
        try:
            config = StateConfig(backend="redis", redis_url=servers.url, timeout_seconds=timeout, retries=retries)
            state = RedisState.from_config(servers.url, config, prefix="bench:")
            stop = threading.Event()
            last_ok: dict[int, float] = {}
            errors = [0]
            slowest = [0.0]

            def work(i: int) -> None:
                while not stop.is_set():
                    started = time.monotonic()
                    try:
                        state.set(f"k{i}", "v", ttl=60)
                        state.get(f"k{i}")
                        state.increment(f"c{i}", ttl=60)
                        last_ok[i] = time.monotonic()
                    except StateUnavailable:
                        errors[0] += 1
                    slowest[0] = max(slowest[0], time.monotonic() - started)

            pool = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
            for t in pool:
                t.start()
            time.sleep(1)
            old = servers.master_port()
            servers.current_master().kill()
            killed = time.monotonic()
            servers.wait_for_new_master(old)
            promoted = time.monotonic()
            while not all(last_ok.get(i, 0) > promoted for i in range(threads)) and time.monotonic() < promoted + 60:
                time.sleep(0.01)
            recovered = max(last_ok.values())
            stop.set()
            for t in pool:
                t.join(timeout=30)
            state.close()
            return {"promoted_after_s": round(promoted - killed, 2), "all_threads_ok_after_s": round(recovered - killed, 2),
                    "state_unavailable_calls": errors[0], "slowest_call_s": round(slowest[0], 2)}
        finally:
            servers.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=2.0, help="state.timeout_seconds")
    parser.add_argument("--retries", type=int, default=2, help="state.retries")
    args = parser.parse_args()
    logs.configure("error")  # stdout is the JSON result; each 503 logs a warning otherwise
    results = [trial(args.threads, args.timeout, args.retries) for _ in range(args.trials)]
    keys = results[0].keys()
    print(json.dumps({"threads": args.threads, "timeout_seconds": args.timeout, "retries": args.retries,
                      "trials": results,
                      "range": {k: [min(r[k] for r in results), max(r[k] for r in results)] for k in keys}}, indent=2))


if __name__ == "__main__":
    main()
