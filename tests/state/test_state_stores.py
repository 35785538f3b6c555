"""One suite, every shared-state backend: in-process and Redis (a real server).

The test owns the clock: the memory store takes a fake one; for Redis, "time passes" by
taking the same amount off every test key's remaining TTL on the server (keys whose TTL runs
out are gone, exactly as if the time had passed). Nothing sleeps.
"""

from __future__ import annotations

import os
import secrets
import threading

import pytest

from broker.config import StateConfig
from broker.errors import StateUnavailable
from broker.state import open_state
from broker.state.memory import MemoryState
from tests.state.conftest import Clock


def test_get_set_and_expiry(store):
    s, advance = store
    assert s.get("k") is None
    s.set("k", "v1", ttl=10)
    assert s.get("k") == "v1"
    assert 9 < s.ttl("k") <= 10
    advance(9.5)
    assert s.get("k") == "v1"
    advance(1)
    assert s.get("k") is None and s.ttl("k") is None


def test_set_overwrites_and_none_never_expires(store):
    s, advance = store
    s.set("k", "a", ttl=5)
    s.set("k", "b", ttl=None)
    advance(3600)
    assert s.get("k") == "b" and s.ttl("k") is None


def test_set_if_absent_is_a_replay_cache(store):
    s, advance = store
    assert s.set_if_absent("assertion:id-1", "seen", ttl=300) is True
    assert s.set_if_absent("assertion:id-1", "again", ttl=300) is False
    assert s.get("assertion:id-1") == "seen"
    advance(301)
    assert s.set_if_absent("assertion:id-1", "later", ttl=300) is True


def test_increment_counts_in_a_fixed_window(store):
    s, advance = store
    assert [s.increment("rl:alice", ttl=60) for _ in range(3)] == [1, 2, 3]
    assert s.increment("rl:alice", ttl=60, amount=5) == 8
    advance(59)
    assert s.increment("rl:alice", ttl=60) == 9  # later increments do not extend the window
    advance(2)
    assert s.increment("rl:alice", ttl=60) == 1


def test_a_negative_increment_gives_back_within_the_same_window(store):
    """Device-login starts: a completed login gives its start back (broker.ratelimit)."""
    s, advance = store
    assert [s.increment("rl:devauth", ttl=60) for _ in range(2)] == [1, 2]
    advance(30)
    assert s.increment("rl:devauth", ttl=60, amount=-1) == 1
    assert 29 <= s.ttl("rl:devauth") <= 30  # the window is not extended
    advance(31)
    assert s.get("rl:devauth") is None


def test_delete(store):
    s, _ = store
    s.set("k", "v", ttl=10)
    assert s.delete("k") is True
    assert s.delete("k") is False and s.get("k") is None


def test_delete_indexed_deletes_what_the_index_names_and_nothing_else(store):
    s, _ = store
    s.set_indexed("session:a", "alice-1", ttl=60, index="user:alice")
    s.set_indexed("oauth:fam:f1", "alice-2", ttl=600, index="user:alice")
    s.set_indexed("session:b", "bob", ttl=60, index="user:bob")
    s.set("plain", "v", ttl=60)
    assert s.get("session:a") == "alice-1" and 59 < s.ttl("oauth:fam:f1") <= 600
    assert s.delete_indexed("user:alice") == 2
    assert s.get("session:a") is None and s.get("oauth:fam:f1") is None
    assert s.get("session:b") == "bob" and s.get("plain") == "v"
    assert s.delete_indexed("user:alice") == 0  # the index went with its keys
    assert s.delete_indexed("user:nobody") == 0


def test_delete_indexed_counts_only_keys_that_still_existed(store):
    s, advance = store
    s.set_indexed("short", "1", ttl=10, index="user:carol")
    s.set_indexed("long", "2", ttl=100, index="user:carol")
    s.set_indexed("gone", "3", ttl=100, index="user:carol")
    s.delete("gone")
    advance(11)
    assert s.delete_indexed("user:carol") == 1
    assert s.get("long") is None


def test_an_index_lives_as_long_as_its_longest_lived_key(store):
    s, advance = store
    s.set_indexed("k1", "1", ttl=100, index="user:dave")
    s.set_indexed("k2", "2", ttl=10, index="user:dave")  # a shorter key does not shorten the index
    advance(50)
    assert s.delete_indexed("user:dave") == 1


def test_an_update_of_an_indexed_key_never_brings_it_back(store):
    """``existing_only``: a session re-saved by a request in flight stays ended."""
    s, _ = store
    assert s.set_indexed("session:e", "v1", ttl=60, index="user:erin", existing_only=False) is True
    assert s.set_indexed("session:e", "v2", ttl=60, index="user:erin", existing_only=True) is True
    assert s.get("session:e") == "v2"
    assert s.delete_indexed("user:erin") == 1
    assert s.set_indexed("session:e", "v3", ttl=60, index="user:erin", existing_only=True) is False
    assert s.get("session:e") is None and s.delete_indexed("user:erin") == 0


def test_keys_are_independent_and_values_round_trip_unicode(store):
    s, _ = store
    s.set("a", "ünïcode ✓", ttl=10)
    s.set("b", '{"json": [1, 2]}', ttl=10)
    assert s.get("a") == "ünïcode ✓" and s.get("b") == '{"json": [1, 2]}'


def test_non_positive_ttls_are_refused(store):
    s, _ = store
    with pytest.raises(ValueError):
        s.set("k", "v", ttl=0)
    with pytest.raises(ValueError):
        s.set_if_absent("k", "v", ttl=-1)
    with pytest.raises(ValueError):
        s.set_indexed("k", "v", ttl=0, index="i")


def test_concurrent_increments_lose_nothing(store):
    s, _ = store

    def work() -> None:
        for _ in range(50):
            s.increment("shared", ttl=60)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert s.increment("shared", ttl=60, amount=0) == 200


def test_ping(store):
    s, _ = store
    s.ping()


def test_memory_store_sweeps_expired_entries():
    clock = Clock()
    s = MemoryState(clock=clock, sweep_every=8)
    for i in range(8):
        s.set(f"k{i}", "v", ttl=1)
    clock.now += 2
    for i in range(8):
        s.set(f"n{i}", "v", ttl=100)
    assert len(s) == 8


def test_open_state_follows_the_config():
    assert isinstance(open_state(StateConfig()), MemoryState)


def test_a_redis_outage_is_state_unavailable():
    from broker.state.redis import RedisState

    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s = RedisState.from_url(f"redis://127.0.0.1:{port}/0", timeout=0.5)
    with pytest.raises(StateUnavailable) as err:
        s.get("k")
    assert err.value.status == 503 and err.value.code == "state_unavailable"
    with pytest.raises(StateUnavailable):
        s.ping()


@pytest.mark.redis
def test_a_redis_client_without_decode_responses_still_answers_text():
    """``RedisState`` takes any client: one that answers bytes gets the same strings back."""
    import redis

    from broker.state.redis import RedisState

    client = redis.Redis.from_url(os.environ["BROKER_TEST_REDIS_URL"])  # decode_responses=False
    state = RedisState(client, prefix=f"test:{secrets.token_hex(6)}:")
    try:
        state.set("k", "v\u00e9", ttl=30)
        assert state.get("k") == "v\u00e9" and state.get("absent") is None
        assert state.delete("k")
    finally:
        client.close()


def test_the_group_cache_lives_in_the_state_store():
    from broker.connectors.group_cache import GroupCache

    clock = Clock()
    state = MemoryState(clock=clock)
    cache = GroupCache(state, ttl=30, namespace="corp")
    cache.put("id-1", ("a", "b"))
    assert cache.get("id-1") == ("a", "b") and cache.get("id-2") is None
    clock.now += 31
    assert cache.get("id-1") is None
    with pytest.raises(ValueError):
        GroupCache(state, ttl=0, namespace="corp")
