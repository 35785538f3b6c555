"""OpenLDAP (slapd), what only LDAP does: group strategies (deep and cyclic nesting, 500 groups,
posixGroup), paging, the pool, failover and timeouts, the service account, StartTLS, dn_template,
and a removed membership stopping issuance (with and without the group cache).

What every directory does (login, refusals alike, disabled account, groups, entryUUID as the
immutable id, attributes, outage, empty passwords, filter metacharacters) is in the conformance
suite (conformance.py, run by test_conformance.py)."""

from __future__ import annotations

import re
import socket
import threading

import pytest

from broker.domain import Identity
from broker.errors import DirectoryUnavailable, InvalidCredentials, Unauthenticated
from broker.state.memory import MemoryState
from tests.directory.servers import BULK_USERS, HEAVY_GROUPS, SUFFIX, group_member, ldap_modify, person_dn

pytestmark = pytest.mark.ldap
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def test_nested_groups_are_resolved_up_several_levels(ldap, ldap_passwords):
    # carol ∈ backend ∈ developers ∈ engineering
    carol = ldap.login("carol", ldap_passwords["carol"])
    assert {"backend", "developers", "engineering"} <= set(carol.groups)


def test_a_cycle_of_nested_groups_ends_and_lists_each_group_once(ldap):
    # carol ∈ loop-a; loop-a ∈ loop-b; loop-b ∈ loop-a
    carol = ldap.lookup("carol")
    assert carol.groups.count("loop-a") == 1 and carol.groups.count("loop-b") == 1


def test_nesting_can_be_turned_off(connectors, ldap_settings):
    flat = connectors(ldap_settings(groups={"nested": False}))
    assert set(flat.lookup("carol").groups) == {"backend", "loop-a"}


def test_group_search_finds_groupOfNames_and_groupOfUniqueNames_members(connectors, ldap_settings):
    c = connectors(ldap_settings(groups={"strategy": "group_search", "base": f"ou=groups,{SUFFIX}"}))
    alice = c.lookup("alice")
    # auditors is a groupOfUniqueNames (uniqueMember), the others groupOfNames
    assert set(alice.groups) == {"aws-admins", "developers", "engineering", "auditors"}


def test_group_search_reads_posixGroup_memberUid(connectors, ldap_settings):
    c = connectors(
        ldap_settings(
            groups={
                "strategy": "group_search",
                "base": f"ou=groups,{SUFFIX}",
                "filter": "(objectClass=posixGroup)",
                "member_attributes": ["memberUid"],
                "member_value": "uid",
            }
        )
    )
    assert c.lookup("bob").groups == ("unix-ops",)
    assert c.lookup("alice").groups == ()


def test_1000_bulk_users_are_there_and_each_finds_their_team(ldap):
    last = ldap.lookup(f"user{BULK_USERS - 1:04d}")
    assert last is not None and last.groups == (f"team-{(BULK_USERS - 1) // 100}",)
    assert ldap.lookup(f"user{BULK_USERS:04d}") is None


@pytest.mark.parametrize(
    "groups",
    [
        {"strategy": "member_of"},
        {"strategy": "group_search", "base": f"ou=groups,{SUFFIX}"},
    ],
    ids=["member_of", "group_search"],
)
def test_a_user_in_500_groups_resolves_in_one_or_two_requests(
    connectors, ldap_settings, ldap_passwords, groups
):
    c = connectors(ldap_settings(groups=groups))
    # a user in one (un-nested) group, for comparison: the cost must not grow with the number of groups
    before = c.stats.snapshot()
    assert c.lookup("user0001").groups == ("team-0",)
    small = c.stats.snapshot()["searches"] - before["searches"]

    before = c.stats.snapshot()
    heavy = c.login("heavy", ldap_passwords["heavy"])
    after = c.stats.snapshot()
    assert len(heavy.groups) == HEAVY_GROUPS
    group_requests = after["searches"] - before["searches"] - 1  # minus the user search
    assert 1 <= group_requests <= 2
    assert after["searches"] - before["searches"] == small
    assert after["binds"] - before["binds"] == 1


def test_paged_searches_bring_every_page(connectors, ldap_settings, ldap_passwords):
    c = connectors(
        ldap_settings(page_size=100, groups={"strategy": "group_search", "base": f"ou=groups,{SUFFIX}"})
    )
    before = c.stats.snapshot()["searches"]
    heavy = c.lookup("heavy")
    assert len(heavy.groups) == HEAVY_GROUPS
    # user search + 5 pages of 100 groups + the nesting check
    assert c.stats.snapshot()["searches"] - before == 1 + 5 + 1


def test_connections_are_pooled_not_opened_per_request(ldap, ldap_passwords):
    for _ in range(5):
        assert isinstance(ldap.login("alice", ldap_passwords["alice"]), Identity)
    # one service connection (searches) and one for users' binds, reused by all five sign-ins
    assert ldap.stats.snapshot()["connections"] == 2


def test_logins_from_many_threads_at_once_all_succeed(ldap, ldap_passwords):
    results: list[object] = []

    def worker(user: str) -> None:
        for _ in range(5):
            results.append(ldap.login(user, ldap_passwords[user]))

    threads = [threading.Thread(target=worker, args=(u,)) for u in ("alice", "bob", "carol", "dan") * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 40 and all(isinstance(r, Identity) for r in results)


def test_a_second_server_takes_over_when_the_first_is_down(connectors, ldap_settings, slapd, ldap_passwords):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    c = connectors(ldap_settings(servers=[f"ldaps://127.0.0.1:{dead}", slapd.ldaps_url], connect_timeout=2))
    assert isinstance(c.login("alice", ldap_passwords["alice"]), Identity)


def test_a_server_that_never_answers_times_out_as_an_outage(connectors, ldap_settings, ldap_passwords):
    silent = socket.socket()  # accepts TCP connections, never says a word
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        url = f"ldap://127.0.0.1:{silent.getsockname()[1]}"
        c = connectors(
            ldap_settings(servers=[url], start_tls=False, insecure_no_tls=True, timeout=1, connect_timeout=1)
        )
        with pytest.raises(DirectoryUnavailable):
            c.login("alice", ldap_passwords["alice"])
    finally:
        silent.close()


def test_a_wrong_service_account_password_is_an_outage_with_a_hint(connectors, ldap_settings, ldap_passwords):
    c = connectors(ldap_settings(bind_password="not-the-service-password"))
    with pytest.raises(DirectoryUnavailable) as err:
        c.login("alice", ldap_passwords["alice"])
    assert "service account" in err.value.message
    with pytest.raises(DirectoryUnavailable):
        c.probe()


def test_the_readiness_probe_opens_a_connection_and_binds_as_the_service_account(ldap):
    before = ldap.stats.snapshot()
    ldap.probe()
    after = ldap.stats.snapshot()
    assert after["connections"] == before["connections"] + 1  # a fresh, authenticated connection
    assert after["searches"] == before["searches"]


def test_starttls_on_the_plain_port_works(connectors, ldap_settings, slapd, ldap_passwords):
    c = connectors(ldap_settings(servers=[slapd.url], start_tls=True))
    assert isinstance(c.login("alice", ldap_passwords["alice"]), Identity)


def test_two_entries_with_the_same_mail_sign_in_nobody(ldap, ldap_passwords):
    result = ldap.login("twin@example.org", ldap_passwords["twin1"])
    assert isinstance(result, InvalidCredentials)
    assert ldap.lookup("twin@example.org") is None


def test_dn_template_binds_straight_to_the_users_dn(connectors, ldap_settings, ldap_passwords):
    c = connectors(ldap_settings(user_search={"dn_template": f"uid={{username}},ou=people,{SUFFIX}"}))
    before = c.stats.snapshot()
    alice = c.login("alice", ldap_passwords["alice"])
    assert isinstance(alice, Identity) and "aws-admins" in alice.groups
    assert c.stats.snapshot()["binds"] - before["binds"] == 1
    assert isinstance(c.login("alice", ldap_passwords["bob"]), InvalidCredentials)


# ---- a membership removed in the directory stops issuance ----


def test_a_removed_membership_is_gone_at_the_next_lookup_without_a_cache(ldap, slapd, ldap_passwords):
    dan = ldap.login("dan", ldap_passwords["dan"])
    assert "ephemeral" in dan.groups
    group_member(slapd, "delete", "ephemeral", person_dn("dan"))
    try:
        assert "ephemeral" not in ldap.lookup("dan").groups
    finally:
        group_member(slapd, "add", "ephemeral", person_dn("dan"))


def test_with_a_group_cache_a_removed_membership_stops_issuance_when_the_ttl_ends(
    connectors, ldap_settings, slapd, ldap_passwords, clock
):
    state = MemoryState(clock=clock)
    c = connectors(ldap_settings(cache={"ttl_seconds": 30}), state=state)
    assert "ephemeral" in c.login("erin", ldap_passwords["erin"]).groups
    group_member(slapd, "delete", "ephemeral", person_dn("erin"))
    try:
        clock.advance(29)
        searches = c.stats.snapshot()["searches"]
        assert "ephemeral" in c.lookup("erin").groups  # within the TTL: the cached groups
        assert c.stats.snapshot()["searches"] == searches + 1  # but the account itself was read again
        clock.advance(2)
        assert "ephemeral" not in c.lookup("erin").groups
    finally:
        group_member(slapd, "add", "ephemeral", person_dn("erin"))


def test_a_deleted_account_gets_nothing_even_with_cached_groups(connectors, ldap_settings, slapd, clock):
    from tests.directory.servers import ssha

    state = MemoryState(clock=clock)
    c = connectors(ldap_settings(cache={"ttl_seconds": 60}), state=state)
    dn = f"uid=temp,ou=people,{SUFFIX}"
    ldap_modify(
        slapd,
        f"dn: {dn}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: temp\ncn: Temp\nsn: Temp\nuserPassword: {ssha('x')}\n\n"
        f"dn: cn=ephemeral,ou=groups,{SUFFIX}\nchangetype: modify\nadd: member\nmember: {dn}\n",
    )
    assert "ephemeral" in c.lookup("temp").groups
    ldap_modify(slapd, f"dn: {dn}\nchangetype: delete\n")  # refint removes the membership too
    assert c.lookup("temp") is None


def test_flow_rechecks_the_directory_at_issuance(ldap, slapd, ldap_passwords):
    from tests.flows import unit_flow

    flow = unit_flow(ldap)
    dan = flow.authenticate("dan", ldap_passwords["dan"])
    assert "ephemeral" in flow.current_identity(dan).groups
    group_member(slapd, "delete", "ephemeral", person_dn("dan"))
    try:
        assert "ephemeral" not in flow.current_identity(dan).groups
    finally:
        group_member(slapd, "add", "ephemeral", person_dn("dan"))
    # an identity whose username now belongs to another account (another entryUUID) gets nothing
    impostor = Identity(id="00000000-0000-0000-0000-000000000000", username="dan", source=ldap.name)
    with pytest.raises(Unauthenticated):
        flow.current_identity(impostor)
    with pytest.raises(InvalidCredentials):
        flow.authenticate("dan", "wrong")


@pytest.mark.redis
def test_replicas_share_the_group_cache_through_redis(connectors, ldap_settings, ldap_passwords):
    import os
    import secrets

    from broker.state.redis import RedisState

    url = os.environ["BROKER_TEST_REDIS_URL"]
    prefix = f"test:{secrets.token_hex(6)}:"
    replica_a = connectors(
        ldap_settings(cache={"ttl_seconds": 30}), state=RedisState.from_url(url, prefix=prefix)
    )
    replica_b = connectors(
        ldap_settings(cache={"ttl_seconds": 30}), state=RedisState.from_url(url, prefix=prefix)
    )
    try:
        carol = replica_a.login("carol", ldap_passwords["carol"])
        before = replica_b.stats.snapshot()["searches"]
        assert replica_b.lookup("carol").groups == carol.groups
        assert replica_b.stats.snapshot()["searches"] == before + 1  # the account only; groups from Redis
    finally:
        import redis

        client = redis.Redis.from_url(url)
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)
        client.close()
