"""SECURITY.md, "Directory (LDAP / AD)", against the real slapd: every row a test.

(The Active Directory rows — disabled, locked, expired accounts and bind sub-codes — are in
test_active_directory.py against Samba.)
"""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from broker.connectors.config import LdapDirectoryConfig
from broker.domain import Identity
from broker.errors import DirectoryUnavailable, InvalidCredentials
from tests.directory.servers import SUFFIX

pytestmark = pytest.mark.ldap

INJECTIONS = [
    "*",
    "*)(uid=*",
    "admin)(|(uid=*",
    "alice\x00",
    "\x00",
    "\\",
    "alic*",
    "*lice",
    "alice)(uid=*",
    "al\\2aice",
]


# ---- row: username `*`, `*)(uid=*`, `admin)(|(uid=*`, NUL, `\` → escaped, never widens a search ----


@pytest.mark.parametrize("username", INJECTIONS, ids=repr)
def test_filter_metacharacters_in_a_username_match_nobody(ldap, ldap_passwords, username):
    # with alice's (and admin's) real password: an unescaped `alic*` would find alice and let the bind succeed
    for password in (ldap_passwords["alice"], ldap_passwords["admin"]):
        result = ldap.login(username, password)
        assert isinstance(result, InvalidCredentials) and result.reason == "unknown_user"
    assert ldap.lookup(username) is None
    assert isinstance(ldap.login("alice", ldap_passwords["alice"]), Identity)  # still working


def test_a_dn_full_of_metacharacters_is_escaped_in_group_filters(connectors, ldap_settings, ldap_passwords):
    # pat's DN is cn=Pat O'Brien\, (contractor) * \5C x,ou=people,...: it goes into (member=...) filters
    for groups in ({"strategy": "member_of"}, {"strategy": "group_search", "base": f"ou=groups,{SUFFIX}"}):
        c = connectors(ldap_settings(groups=groups))
        pat = c.login("pat", ldap_passwords["pat"])
        assert isinstance(pat, Identity)
        assert pat.groups == ("weird (group) *",)


@pytest.mark.parametrize(
    "username", ["bob,ou=admins", "bob,ou=admins ", " bob,ou=admins", "bob+cn=x", "bob\x00", "\\"], ids=repr
)
def test_usernames_are_escaped_in_dns_built_from_a_template(
    connectors, ldap_settings, ldap_passwords, username
):
    c = connectors(ldap_settings(user_search={"base": SUFFIX, "dn_template": f"uid={{username}},{SUFFIX}"}))
    # unescaped, "bob,ou=admins" would make uid=bob,ou=admins,dc=example,dc=org — a real entry with this password
    assert c._pool.bind(f"uid=bob,ou=admins,{SUFFIX}", ldap_passwords["bob-admin"]).ok
    result = c.login(username, ldap_passwords["bob-admin"])
    assert isinstance(result, InvalidCredentials)
    assert c.lookup(username) is None


# ---- row: empty or whitespace password → refused before any bind ----


@pytest.mark.parametrize("password", ["", " ", "\t", "  \n "], ids=repr)
def test_blank_passwords_are_refused_before_anything_reaches_the_directory(ldap, password):
    before = ldap.stats.snapshot()
    result = ldap.login("alice", password)
    assert isinstance(result, InvalidCredentials) and result.reason == "empty_password"
    assert ldap.stats.snapshot() == before  # no search, no bind, no connection


def test_the_pool_itself_never_sends_an_empty_password(ldap):
    # an empty simple bind is an unauthenticated bind (RFC 4513 5.1.2): real AD answers success
    before = ldap.stats.snapshot()
    with pytest.raises(ValueError):
        ldap._pool.bind(f"uid=alice,ou=people,{SUFFIX}", "")
    assert ldap.stats.snapshot() == before


# ---- row: unknown user vs wrong password → same answer, same work (dummy bind) ----


def test_unknown_user_and_wrong_password_get_the_same_answer_for_the_same_work(ldap, ldap_passwords):
    def attempt(username: str, password: str) -> tuple[dict, dict[str, int]]:
        before = ldap.stats.snapshot()
        result = ldap.login(username, password)
        after = ldap.stats.snapshot()
        assert isinstance(result, InvalidCredentials)
        return result.to_dict(), {k: after[k] - before[k] for k in ("searches", "binds")}

    ldap.login("alice", ldap_passwords["alice"])  # connections open: compare like with like
    wrong = attempt("alice", "not-her-password")
    unknown = attempt("nobody-by-that-name", "not-her-password")
    assert wrong == unknown
    assert wrong[1] == {"searches": 1, "binds": 1}
    assert wrong[0] == {"code": "invalid_credentials", "message": "invalid username or password"}


# ---- row: referral to another host → not followed ----


def test_a_referral_in_the_user_search_is_never_followed(ldap, trap, ldap_passwords):
    # uid=mallory,ou=people is a referral object pointing at the trap listener
    result = ldap.login("mallory", ldap_passwords["alice"])
    assert isinstance(result, InvalidCredentials) and result.reason == "unknown_user"
    assert ldap.lookup("mallory") is None
    assert trap.connections() == 0
    assert isinstance(ldap.login("alice", ldap_passwords["alice"]), Identity)


def test_a_search_base_that_is_a_referral_is_not_followed(connectors, ldap_settings, trap, ldap_passwords):
    c = connectors(ldap_settings(user_search={"base": f"ou=elsewhere,{SUFFIX}"}))
    assert isinstance(c.login("alice", ldap_passwords["alice"]), InvalidCredentials)
    assert trap.connections() == 0


# ---- row: LDAPS/StartTLS certificate invalid → connection refused ----


def _tls_refused(c, password: str) -> None:
    with pytest.raises(DirectoryUnavailable):
        c.login("alice", password)
    with pytest.raises(DirectoryUnavailable):
        c.probe()


def test_ldaps_with_a_certificate_from_another_ca_is_refused(
    connectors, ldap_settings, ldap_pki, ldap_passwords
):
    _tls_refused(connectors(ldap_settings(ca_file=str(ldap_pki.other_ca))), ldap_passwords["alice"])


def test_starttls_with_a_certificate_from_another_ca_is_refused(
    connectors, ldap_settings, slapd, ldap_pki, ldap_passwords
):
    c = connectors(ldap_settings(servers=[slapd.url], start_tls=True, ca_file=str(ldap_pki.other_ca)))
    _tls_refused(c, ldap_passwords["alice"])


def test_verification_is_on_by_default_the_system_store_does_not_know_a_private_ca(
    connectors, ldap_settings, ldap_passwords
):
    settings = ldap_settings()
    del settings["ca_file"]
    _tls_refused(connectors(settings), ldap_passwords["alice"])


def test_a_certificate_for_another_name_is_refused(connectors, ldap_settings, slapd, ldap_passwords):
    # the certificate names ldap.test and 127.0.0.1; "localhost" is not among them
    c = connectors(ldap_settings(servers=[f"ldaps://localhost:{slapd.tls_port}"]))
    _tls_refused(c, ldap_passwords["alice"])


def test_the_same_servers_with_the_right_ca_are_accepted(connectors, ldap_settings, slapd, ldap_passwords):
    for servers, start_tls in (([slapd.ldaps_url], True), ([slapd.url], True)):
        c = connectors(ldap_settings(servers=servers, start_tls=start_tls))
        assert isinstance(c.login("alice", ldap_passwords["alice"]), Identity)


def test_plain_ldap_needs_the_explicit_insecure_flag(ldap_settings, connectors, slapd, ldap_passwords):
    plain = ldap_settings(servers=[slapd.url], start_tls=False)
    with pytest.raises(ValidationError, match="insecure_no_tls"):
        LdapDirectoryConfig.model_validate(plain)
    c = connectors({**plain, "insecure_no_tls": True})
    assert isinstance(c.login("alice", ldap_passwords["alice"]), Identity)


# ---- never a password in the logs ----


def test_no_password_or_bind_secret_is_ever_logged(
    connectors, ldap_settings, ldap_passwords, slapd, capsys, caplog
):
    caplog.set_level(logging.DEBUG)
    good = connectors(ldap_settings())
    good.login("alice", ldap_passwords["alice"])
    good.login("alice", "Wr0ng-Secret-Value")
    good.login("nobody", "Wr0ng-Secret-Value")
    bad_service = connectors(ldap_settings(bind_password="S3rvice-Secret-Value"))
    with pytest.raises(DirectoryUnavailable):
        bad_service.login("alice", ldap_passwords["alice"])
    captured = capsys.readouterr()
    text = captured.out + captured.err + caplog.text
    assert "directory_service_bind_failed" in text  # the logs were captured
    for secret in (
        ldap_passwords["alice"],
        "Wr0ng-Secret-Value",
        "S3rvice-Secret-Value",
        slapd.service_password,
    ):
        assert secret not in text
    assert slapd.service_password not in repr(good) and "S3rvice-Secret-Value" not in repr(bad_service)
