"""Active Directory (a real Samba AD DC), what only AD does: login names (UPN, DOMAIN\\user),
nested groups by every AD strategy, account status (expired, must change, locked out) refused
with one message and re-checked at every lookup, bind sub-codes, TLS, referrals.

What every directory does (login, refusals alike, disabled account, groups, objectGUID as the
immutable id, attributes, outage, empty passwords, filter metacharacters) is in the conformance
suite (conformance.py, run by test_conformance.py)."""

from __future__ import annotations

import re

import pytest

from broker.domain import Identity
from broker.errors import DirectoryUnavailable, InvalidCredentials
from tests.directory.conftest import AD_LOCKOUT_THRESHOLD, ad_admin_connection
from tests.directory.servers import AD_DOMAIN_DN

pytestmark = pytest.mark.ad
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
GENERIC = {"code": "invalid_credentials", "message": "invalid username or password"}


@pytest.mark.parametrize(
    "login", ["carol", "carol@example.com", "EXAMPLE\\carol", "example\\CAROL", "  carol  "]
)
def test_login_by_samaccountname_upn_or_domain_backslash_user(ad, ad_passwords, login):
    carol = ad.login(login, ad_passwords["carol"])
    assert isinstance(carol, Identity), carol
    assert carol.username == "carol"
    assert carol.display_name == "Carol Cole"
    assert GUID.match(carol.id)


def test_another_domain_prefix_is_refused(ad, ad_passwords):
    result = ad.login("OTHERDOM\\carol", ad_passwords["carol"])
    assert isinstance(result, InvalidCredentials) and result.to_dict() == GENERIC


# ---- groups: every strategy sees the nesting ----

NESTED = {"aws-devs", "engineering", "everyone-eng"}


def test_in_chain_resolves_nested_groups_in_one_request(ad, ad_passwords):
    before = ad.stats.snapshot()
    carol = ad.login("carol", ad_passwords["carol"])
    after = ad.stats.snapshot()
    assert set(carol.groups) == NESTED
    assert after["searches"] - before["searches"] == 2  # the user, then one in-chain search


def test_token_groups_resolve_nested_groups_in_two_requests(connectors, ad_settings, ad_passwords):
    c = connectors(ad_settings(groups={"strategy": "token_groups"}))
    before = c.stats.snapshot()
    carol = c.lookup("carol")
    assert NESTED <= set(carol.groups)
    assert "Domain Users" in carol.groups  # tokenGroups includes the primary group
    assert c.stats.snapshot()["searches"] - before["searches"] == 3  # user, tokenGroups, SIDs → names


def test_member_of_walks_up_the_nesting_on_ad_too(connectors, ad_settings, ad_passwords):
    c = connectors(ad_settings(groups={"strategy": "member_of"}))
    assert set(c.lookup("carol").groups) == NESTED
    assert set(c.lookup("alice").groups) == NESTED | {"aws-admins"}


def test_group_search_on_ad(connectors, ad_settings):
    c = connectors(
        ad_settings(
            groups={
                "strategy": "group_search",
                "base": AD_DOMAIN_DN,
                "filter": "(objectClass=group)",
                "member_attributes": ["member"],
            }
        )
    )
    assert set(c.lookup("carol").groups) == NESTED


def test_a_removed_membership_is_gone_at_the_next_lookup(ad, ad_passwords, samba):
    dan = ad.login("dan", ad_passwords["dan"])
    assert "ephemeral" in dan.groups
    conn = ad_admin_connection(samba)
    group, user = f"CN=ephemeral,CN=Users,{AD_DOMAIN_DN}", f"CN=dan,CN=Users,{AD_DOMAIN_DN}"
    import ldap3

    assert conn.modify(group, {"member": [(ldap3.MODIFY_DELETE, [user])]})
    try:
        assert "ephemeral" not in ad.lookup("dan").groups
    finally:
        conn.modify(group, {"member": [(ldap3.MODIFY_ADD, [user])]})
        conn.unbind()


# ---- SECURITY.md rows against AD ----


def test_a_dn_with_metacharacters_is_escaped_in_the_in_chain_filter(ad, ad_passwords):
    # pat's DN is CN=Pat O'Brien\, (contractor) *,CN=Users,...
    pat = ad.login("pat", ad_passwords["pat"])
    assert isinstance(pat, Identity) and pat.groups == ("weird (group)",)


@pytest.mark.parametrize(
    "user, reason",
    [("frank", "account_expired"), ("gina", "must_change_password")],  # dave (disabled): the conformance suite
)
def test_unusable_accounts_are_refused_with_one_generic_message(ad, ad_passwords, user, reason):
    result = ad.login(user, ad_passwords[user])  # the right password
    assert isinstance(result, InvalidCredentials)
    assert result.to_dict() == GENERIC
    assert result.reason == reason  # the bind sub-code (533 / 701 / 773), for the audit log only
    assert ad.lookup(user) is None  # and at every issuance


def test_account_status_is_read_from_the_entry_as_well(ad):
    # what lookup() checks at issuance, without any bind: userAccountControl, the computed flags, accountExpires
    assert ad.inspect("dave").notes == ("account_disabled",)
    assert ad.inspect("frank").notes == ("account_expired",)
    assert ad.inspect("gina").notes == ("password_expired",)  # msDS-User-Account-Control-Computed 0x800000
    assert ad.inspect("carol").notes == () and ad.inspect("carol").usable


def test_a_locked_out_account_is_refused_and_rechecked_at_issuance(ad, ad_passwords):
    erin = ad.login("erin", ad_passwords["erin"])
    assert isinstance(erin, Identity)
    for _ in range(AD_LOCKOUT_THRESHOLD):
        assert ad.login("erin", "Wrong-Password-1").reason == "wrong_password"  # 52e
    result = ad.login("erin", ad_passwords["erin"])
    assert isinstance(result, InvalidCredentials) and result.to_dict() == GENERIC
    assert result.reason == "account_locked"  # 775
    assert ad.lookup("erin") is None  # msDS-User-Account-Control-Computed 0x10
    assert ad.inspect("erin").notes == ("account_locked",)


def test_an_account_disabled_after_sign_in_gets_nothing_at_the_next_issuance(ad, ad_passwords, samba):
    from broker.errors import Unauthenticated
    from tests.flows import unit_flow

    flow = unit_flow(ad)
    who = flow.authenticate("admin2", ad_passwords["admin2"])
    assert flow.current_identity(who).id == who.id
    conn = ad_admin_connection(samba)
    dn = f"CN=admin2,CN=Users,{AD_DOMAIN_DN}"
    import ldap3

    assert conn.modify(dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, [512 | 0x2])]})
    try:
        with pytest.raises(Unauthenticated):
            flow.current_identity(who)
    finally:
        conn.modify(dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, [512])]})
        conn.unbind()


def test_ldaps_with_a_certificate_from_another_ca_is_refused(connectors, ad_settings, samba, ad_passwords):
    c = connectors(ad_settings(ca_file=str(samba.pki.other_ca)))
    with pytest.raises(DirectoryUnavailable):
        c.login("carol", ad_passwords["carol"])


def test_starttls_on_389_works_and_verifies_the_certificate(connectors, ad_settings, samba, ad_passwords):
    good = connectors(ad_settings(servers=[samba.url], start_tls=True))
    assert isinstance(good.login("carol", ad_passwords["carol"]), Identity)
    bad = connectors(ad_settings(servers=[samba.url], start_tls=True, ca_file=str(samba.pki.other_ca)))
    with pytest.raises(DirectoryUnavailable):
        bad.login("carol", ad_passwords["carol"])


def test_referrals_ad_returns_are_ignored_not_followed(ad, ad_passwords):
    # a subtree search from the domain root makes AD return continuation references
    # (DomainDnsZones, ForestDnsZones, Configuration); they are dropped, the user is found
    assert isinstance(ad.login("carol", ad_passwords["carol"]), Identity)


def test_spelling_a_login_another_way_buys_no_more_guesses(app_factory, ad_settings, ad_passwords, samba):
    """SECURITY.md, password guessing: AD takes ``erin``, ``EXAMPLE\\erin``, ``ANY\\erin`` (no
    ``netbios_domain`` set) and ``erin@example.com`` for one account; the per-user limit counts
    them as one, before AD's own lockout (5 here) is reached."""
    import base64

    def basic(name: str, password: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}

    client = app_factory(directory=ad_settings(netbios_domain=None), api={"password_login": True},
                         rate_limits={"login_failures_per_user": 3})
    for name in (f"{samba.netbios}\\erin", "ANYWHERE\\erin", f"Erin@{samba.realm.lower()}"):
        assert client.get("/api/v1/whoami", headers=basic(name, "not-erins-password")).status_code == 401
    r = client.get("/api/v1/whoami", headers=basic("erin", ad_passwords["erin"]))
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert client.get("/api/v1/whoami", headers=basic("carol", ad_passwords["carol"])).status_code == 200
