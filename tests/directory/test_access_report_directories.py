"""The access report's directory side against real slapd and Samba AD: nested paths, the
strategies' membership, accounts the lookup refuses, the bounded total time."""

from __future__ import annotations

import time

import pytest

from broker.connectors.base import MembersConnector
from broker.errors import DirectoryUnavailable
from broker.mapping.snapshot import AccountRecord, MappingRecord, MappingSnapshot, RoleRecord, RuleRecord
from broker.reports.access import ReportFilter, rows
from tests.directory.servers import SUFFIX

ACCOUNT = AccountRecord("111122223333", "prod", "aws", "us-east-1", "prod", "saml", "broker", None)


def snapshot(*groups: str, rules: tuple[RuleRecord, ...] = ()) -> MappingSnapshot:
    return MappingSnapshot.build(
        [ACCOUNT],
        [RoleRecord(ACCOUNT.id, "Admin", "/", 3600)],
        [
            MappingRecord(f"m{i}", g, g.casefold(), ACCOUNT.id, "Admin", None, True, True, "api")
            for i, g in enumerate(groups)
        ],
        rules,
    )


def paths(connector: MembersConnector, snap: MappingSnapshot, **flt: str) -> dict[str, list[str]]:
    report = list(rows(connector.membership(deadline=time.monotonic() + 60), snap, ReportFilter(**flt)))
    return {r["username"]: r["path"] for r in report}


@pytest.mark.parametrize("strategy", ["member_of", "group_search"])
def test_openldap_nested_paths(ldap_settings, connectors, strategy):
    groups = {"strategy": strategy, "base": f"ou=groups,{SUFFIX}"}
    ldap = connectors(ldap_settings(groups=groups))
    assert isinstance(ldap, MembersConnector)
    got = paths(ldap, snapshot("engineering"))
    assert got["alice"] == ["developers", "engineering"]
    assert got["bob"] == ["developers", "engineering"]
    assert got["carol"] == ["backend", "developers", "engineering"]  # person → group → parent → grandparent
    assert "dan" not in got
    # the identities are what lookup gives at issuance
    membership = ldap.membership(deadline=time.monotonic() + 60)
    carol = next(m for m in membership.members_of(["engineering"]) if m.identity.username == "carol")
    assert set(carol.identity.groups) == set(ldap.lookup("carol").groups)
    assert carol.identity.id == ldap.lookup("carol").id


def test_openldap_filters_and_cycles(ldap):
    snap = snapshot("engineering", "loop-b", "aws-admins")
    assert set(paths(ldap, snap, group="backend")) == {"carol"}  # rows whose path passes through backend
    assert paths(ldap, snapshot("loop-b"))["carol"] == [
        "loop-a",
        "loop-b",
    ]  # the loop-a ⇄ loop-b cycle survives
    alice = rows(ldap.membership(deadline=time.monotonic() + 60), snap, ReportFilter(user="alice"))
    assert sorted(r["path"] for r in alice) == [
        ["aws-admins"],
        ["developers", "engineering"],
    ]  # one row per reason
    assert paths(ldap, snap, group="no-such-group") == {}
    assert paths(ldap, snap, account="000000000000") == {}


def test_openldap_posix_group_without_nesting(ldap_settings, connectors):
    ldap = connectors(
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
    assert paths(ldap, snapshot("unix-ops")) == {"bob": ["unix-ops"]}


def test_openldap_account_the_lookup_refuses_is_not_reported(ldap_settings, connectors):
    ldap = connectors(ldap_settings(user_search={"filter": "(&(objectClass=inetOrgPerson)(!(uid=bob)))"}))
    assert ldap.lookup("bob") is None
    assert set(paths(ldap, snapshot("developers"))) == {"alice", "carol"}


def test_openldap_deadline_bounds_the_reads(ldap):
    with pytest.raises(DirectoryUnavailable):
        ldap.membership(deadline=time.monotonic() - 1)
    assert ldap.lookup("alice") is not None  # still serving


@pytest.mark.parametrize("strategy", ["in_chain", "token_groups"])
def test_active_directory_nested_paths(ad_settings, connectors, strategy):
    ad = connectors(ad_settings(groups={"strategy": strategy}))
    got = paths(ad, snapshot("everyone-eng"))
    assert got["alice"] == ["aws-devs", "engineering", "everyone-eng"]
    assert set(got) == {"alice", "bob", "carol"}
    people = {p.identity.username for p in ad.membership(deadline=time.monotonic() + 60).people}
    assert {"alice", "carol", "pat"} <= people
    assert not {"dave", "frank"} & people  # disabled, expired: refused as lookup refuses them
    assert ad.lookup("dave") is None
    assert paths(ad, snapshot("weird (group)")) == {"pat": ["weird (group)"]}
