"""The circuit breaker (broker.breaker) on its own, with the test's clock: what a directory server
or an STS endpoint goes through when it fails, hangs and comes back."""

from __future__ import annotations

import threading

import pytest

from broker.breaker import Breaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _breaker(clock: Clock, failures: int = 3) -> Breaker:
    return Breaker("sts", "aws/eu-west-1 https://sts.eu-west-1.amazonaws.com", failures=failures, open_seconds=1.0,
                   clock=clock)


def test_it_opens_after_the_configured_consecutive_failures_only() -> None:
    b = _breaker(Clock())
    assert b.failure() is False and b.failure() is False
    b.success()  # an answer in between: the count starts again
    assert b.failure() is False and b.failure() is False and b.allow()
    assert b.failure() is True  # the third in a row
    assert b.state == "open" and not b.allow()


def test_a_timeout_opens_it_at_once() -> None:
    b = _breaker(Clock())
    assert b.failure(timeout=True) is True
    assert not b.allow() and b.snapshot().state == "open"


def test_after_the_open_interval_one_caller_probes_the_others_are_refused() -> None:
    clock = Clock()
    b = _breaker(clock, failures=1)
    b.failure()
    clock.now += 0.5
    assert not b.allow()
    clock.now += 0.6
    allowed: list[bool] = []
    barrier = threading.Barrier(8)

    def ask() -> None:
        barrier.wait()
        allowed.append(b.allow())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(allowed) == [False] * 7 + [True]
    assert b.state == "half_open"
    assert b.success() is True  # the probe answered: closed
    assert b.state == "closed" and all(b.allow() for _ in range(3))


def test_a_failed_probe_opens_it_for_another_interval() -> None:
    clock = Clock()
    b = _breaker(clock)
    b.failure(timeout=True)
    clock.now += 1.0
    assert b.allow()
    assert b.failure() is True  # one failure is enough while probing
    assert not b.allow()
    clock.now += 1.0
    assert b.allow()


def test_a_probe_that_learnt_nothing_frees_the_slot() -> None:
    clock = Clock()
    b = _breaker(clock)
    b.failure(timeout=True)
    clock.now += 1.0
    assert b.allow() and not b.allow()
    b.release()
    assert b.allow()


def test_a_late_failure_of_an_old_call_does_not_extend_the_open_interval() -> None:
    clock = Clock()
    b = _breaker(clock)
    b.failure(timeout=True)
    clock.now += 0.9
    assert b.failure(timeout=True) is False  # begun before it opened
    clock.now += 0.1
    assert b.allow()


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="failures >= 1"):
        Breaker("sts", "x", failures=0, open_seconds=1)


# ---- with breaker.call(): the report made by the block's end ----


class Refused(Exception):
    pass


def test_call_reports_a_success_when_the_block_ends_and_a_failure_when_it_raises() -> None:
    clock = Clock()
    b = _breaker(clock, failures=2)
    for _ in range(2):
        with pytest.raises(Refused), b.call():
            raise Refused()
    assert b.state == "open" and not b.allow()  # two failures in a row: open
    clock.now += 1.1
    assert b.allow() and b.state == "half_open"  # the probe
    with b.call() as outcome:
        pass
    assert outcome.changed and b.state == "closed"  # its success closed it
    assert b.snapshot().failures == 0


def test_call_counts_a_timeout_as_opening_at_once_and_an_answer_given_in_the_block_as_success() -> None:
    b = _breaker(Clock(), failures=3)
    with pytest.raises(TimeoutError), b.call(timeout=lambda exc: isinstance(exc, TimeoutError)) as outcome:
        raise TimeoutError()
    assert outcome.changed and b.state == "open"  # opened by one timeout

    b2 = _breaker(Clock(), failures=1)
    with pytest.raises(ValueError), b2.call() as outcome:
        outcome.succeed()  # the target answered, with an error of its own
        raise ValueError("AccessDenied")
    assert b2.state == "closed"


def test_a_failed_probe_opens_it_again_and_an_interrupted_probe_frees_the_slot() -> None:
    clock = Clock()
    b = _breaker(clock, failures=1)
    b.failure()
    clock.now += 1.1
    assert b.allow()
    with pytest.raises(KeyboardInterrupt), b.call():
        raise KeyboardInterrupt()  # nothing learnt: released, not a failure
    assert b.state == "open" and b.snapshot().failures == 1
    assert b.allow()  # the probe slot is free again
    with pytest.raises(Refused), b.call():
        raise Refused()
    assert b.state == "open" and not b.allow()  # the probe failed: open for another interval
    clock.now += 0.5
    assert not b.allow()


def test_release_in_the_block_reports_nothing_learnt() -> None:
    clock = Clock()
    b = _breaker(clock, failures=1)
    b.failure()
    clock.now += 1.1
    assert b.allow()
    with pytest.raises(ValueError), b.call() as outcome:
        outcome.release()  # the request was invalid before it left
        raise ValueError("never sent")
    assert b.state == "open" and b.allow()  # still open, and the next caller may probe
