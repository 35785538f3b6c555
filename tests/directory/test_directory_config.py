"""The ``directory:`` section's validation, and the escaping rules (RFC 4515, RFC 4514)."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from broker.connectors.config import DirectoryConfig
from broker.connectors.ldap_escape import any_of, dn_value, filter_bytes, filter_value

LDAP = {
    "type": "ldap",
    "servers": ["ldaps://ldap1.example.org", "ldaps://ldap2.example.org:1636"],
    "bind_dn": "cn=broker,ou=services,dc=example,dc=org",
    "bind_password": "secret",
    "user_search": {"base": "ou=people,dc=example,dc=org"},
}
ADAPTER = TypeAdapter(DirectoryConfig)


def parse(**over):
    return ADAPTER.validate_python({**LDAP, **over})


def test_defaults_are_safe():
    c = parse()
    assert c.insecure_skip_verify is False and c.insecure_no_tls is False and c.start_tls is True
    assert c.groups.strategy == "member_of" and 0 < c.cache.ttl_seconds <= 60
    assert "secret" not in repr(c)
    ad = parse(type="ad")
    assert ad.groups.strategy == "in_chain" and ad.user_search.id_attribute == "objectGUID"
    assert ad.user_search.login_attributes == ["sAMAccountName", "userPrincipalName"]


@pytest.mark.parametrize(
    "over, message",
    [
        ({"servers": ["ldap://x"], "start_tls": False}, "insecure_no_tls"),
        ({"servers": ["http://x"]}, "ldaps://host"),
        ({"servers": ["ldaps://x/dc=foo"]}, "ldaps://host"),
        ({"servers": []}, "at least 1"),
        ({"ca_file": "/nonexistent/ca.pem"}, "not a readable file"),
        ({"groups": {"strategy": "in_chain"}}, "type: ad"),
        ({"groups": {"strategy": "token_groups"}}, "type: ad"),
        ({"groups": {"strategy": "group_search"}}, "base"),
        ({"groups": {"strategy": "group_search", "base": "x", "member_value": "a b"}}, "dn or an attribute"),
        ({"user_search": {"base": "dc=x", "filter": "objectClass=person"}}, "parentheses"),
        ({"user_search": {"base": "dc=x", "filter": "(&(a=b)"}}, "parentheses"),
        ({"user_search": {"base": "dc=x", "login_attributes": ["uid)(x"]}}, "pattern"),
        ({"user_search": {"base": "dc=x", "dn_template": "uid=x,dc=x"}}, "exactly once"),
        ({"cache": {"ttl_seconds": -1}}, "greater than or equal"),
        ({"timeout": 0}, "greater than"),
        ({"colour": "blue"}, "Extra inputs"),
    ],
)
def test_invalid_directory_settings_are_refused(over, message):
    with pytest.raises(ValidationError, match=message):
        parse(**over)


def test_ad_has_no_dn_template_but_a_netbios_domain():
    with pytest.raises(ValidationError, match="not used for Active Directory"):
        parse(type="ad", user_search={"base": "dc=x", "dn_template": "cn={username},dc=x"})
    assert parse(type="ad", netbios_domain="CORP").netbios_domain == "CORP"


def test_plain_ldap_with_the_explicit_flag_and_cache_off():
    c = parse(servers=["ldap://x"], start_tls=False, insecure_no_tls=True, cache={"ttl_seconds": 0})
    assert c.cache.ttl_seconds == 0


@pytest.mark.parametrize(
    "text, escaped",
    [
        ("*", r"\2a"),
        ("*)(uid=*", r"\2a\29\28uid=\2a"),
        ("admin)(|(uid=*", r"admin\29\28|\28uid=\2a"),
        ("a\x00b", r"a\00b"),
        ("\\", r"\5c"),
        ("Zoë", "Zoë"),
    ],
)
def test_filter_values_follow_rfc4515(text, escaped):
    assert filter_value(text) == escaped


@pytest.mark.parametrize(
    "text, escaped",
    [
        ("bob,ou=admins", r"bob\,ou\=admins"),
        ("a+b", r"a\+b"),
        (" lead", r"\ lead"),
        ("trail ", "trail\\ "),
        ("#hash", r"\#hash"),
        ("a\x00b", r"a\00b"),
        ("back\\slash", r"back\\slash"),
        ('q"<>;', r"q\"\<\>\;"),
        ("*)(uid=*", r"*)(uid\=*"),
    ],
)
def test_dn_values_follow_rfc4514(text, escaped):
    assert dn_value(text) == escaped


def test_binary_and_compound_filters():
    assert filter_bytes(b"\x01\xff") == r"\01\ff"
    assert any_of(["uid"], ["a*"]) == r"(uid=a\2a)"
    assert any_of(["uid", "mail"], ["x"]) == "(|(uid=x)(mail=x))"
