"""Fixtures: a real OpenLDAP slapd and a real Samba AD DC, started once per session.

slapd: random loopback ports, mdb with the memberof + refint overlays, TLS from a throwaway CA,
seeded ONLINE with ldapadd (1,000 bulk users, nested groups, a user in 500 groups, referrals).
Samba: provisioned into a temp dir, users and nested groups seeded offline, then ``samba -F``
on 127.0.0.1 (LDAPS 636, StartTLS on 389) with a certificate from the same kind of CA.

A missing program skips locally and fails in CI (``tests.conftest.component_missing``).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from broker.connectors.config import AdDirectoryConfig, LdapDirectoryConfig, StaticDirectoryConfig
from broker.connectors.registry import build_connector
from broker.state.memory import MemoryState
from tests.conftest import component_missing, require_program
from tests.directory.conformance import Directory, DirectoryFixture
from tests.directory.servers import (
    AD_DOMAIN_DN,
    LDAP_ENABLED_ONLY,
    ROOT_DN,
    SERVICE_DN,
    SUFFIX,
    Pki,
    Samba,
    Slapd,
    make_pki,
    openldap_seed,
    person_dn,
    program,
)


class Trap:
    """A TCP listener nobody should ever connect to (where the referrals point)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def connections(self) -> int:
        n = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return n
            conn.close()
            n += 1


class FakeClock:
    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _need(name: str, packages: str) -> None:
    try:
        program(name)
    except FileNotFoundError:
        component_missing(f"program {name!r} ({packages}; see `make test-deps`)")


@pytest.fixture(scope="session")
def trap() -> Iterator[Trap]:
    t = Trap()
    yield t
    t.sock.close()


@pytest.fixture(scope="session")
def ldap_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    # The certificate names ldap.test and 127.0.0.1, not "localhost": a name-mismatch test uses that.
    return make_pki(tmp_path_factory.mktemp("ldap-pki"), names=("ldap.test",))


@pytest.fixture(scope="session")
def ldap_passwords() -> dict[str, str]:
    names = ["alice", "bob", "carol", "dan", "dora", "erin", "admin", "heavy", "pat", "twin1", "twin2", "bob-admin"]
    return {n: f"{n}-{secrets.token_urlsafe(10)}" for n in names}


@pytest.fixture(scope="session")
def slapd(
    tmp_path_factory: pytest.TempPathFactory, ldap_pki: Pki, ldap_passwords: dict[str, str], trap: Trap
) -> Iterator[Slapd]:
    for name in ("slapd", "ldapadd", "ldapmodify"):
        _need(name, "Debian slapd + ldap-utils")
    server = Slapd(tmp_path_factory.mktemp("slapd"), ldap_pki)
    server.start()
    try:
        openldap_seed(server, ldap_passwords, trap_port=trap.port)
        yield server
    finally:
        server.stop()


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture
def ldap_settings(slapd: Slapd, ldap_pki: Pki) -> Callable[..., dict[str, Any]]:
    """The ``directory:`` section for the test slapd (LDAPS, verified), with overrides merged in."""

    def settings(**over: Any) -> dict[str, Any]:
        base = {
            "type": "ldap",
            "name": "corp-ldap",
            "servers": [slapd.ldaps_url],
            "ca_file": str(ldap_pki.ca),
            "bind_dn": SERVICE_DN,
            "bind_password": slapd.service_password,
            "timeout": 5,
            "user_search": {
                "base": f"ou=people,{SUFFIX}",
                "filter": "(objectClass=inetOrgPerson)",
                "login_attributes": ["uid", "mail"],
                "attributes": ["departmentNumber", "title"],
            },
            "groups": {"strategy": "member_of", "base": f"ou=groups,{SUFFIX}"},
            "cache": {"ttl_seconds": 0},
        }
        return _merge(base, over)

    return settings


@pytest.fixture
def connectors() -> Iterator[Callable[..., Any]]:
    """Build connectors from ``directory:`` dicts; closed after the test."""
    built: list[Any] = []

    def build(settings: dict[str, Any], *, state: Any = None) -> Any:
        models: dict[str, type[LdapDirectoryConfig | AdDirectoryConfig]] = {
            "ldap": LdapDirectoryConfig,
            "ad": AdDirectoryConfig,
        }
        model = models[settings["type"]]
        connector = build_connector(
            model.model_validate(settings), state=MemoryState() if state is None else state
        )
        built.append(connector)
        return connector

    yield build
    for c in built:
        c.close()


@pytest.fixture
def ldap(connectors: Callable[..., Any], ldap_settings: Callable[..., dict[str, Any]]) -> Any:
    """The default OpenLDAP connector (LDAPS, member_of, no group cache)."""
    return connectors(ldap_settings())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# ---------------------------------------------------------------- Samba AD


def _ad_password(name: str) -> str:
    return f"{name.capitalize()}-{secrets.token_urlsafe(10)}-9a"


@pytest.fixture(scope="session")
def ad_passwords() -> dict[str, str]:
    names = ["alice", "bob", "carol", "dave", "erin", "frank", "gina", "pat", "admin2", "dan"]
    return {n: _ad_password(n) for n in names}


AD_LOCKOUT_THRESHOLD = 5


@pytest.fixture(scope="session")
def samba(tmp_path_factory: pytest.TempPathFactory, ad_passwords: dict[str, str]) -> Iterator[Samba]:
    for name in ("samba", "samba-tool"):
        _need(name, "Debian samba + winbind + krb5-user")
    require_program("/usr/bin/python3")
    if os.geteuid() != 0:
        component_missing("root, for the Samba AD DC on ports 389/636")
    root = tmp_path_factory.mktemp("samba")
    pki = make_pki(root / "pki", names=("dc1.example.com",))
    server = Samba(root, pki)
    plan = {
        "lockout_threshold": AD_LOCKOUT_THRESHOLD,
        "users": [
            {
                "name": "alice",
                "password": ad_passwords["alice"],
                "given": "Alice",
                "surname": "Archer",
                "mail": "alice@example.com",
                "department": "platform",
            },
            {"name": "bob", "password": ad_passwords["bob"]},
            {"name": "carol", "password": ad_passwords["carol"], "given": "Carol", "surname": "Cole"},
            {"name": "dan", "password": ad_passwords["dan"]},
            {"name": "dave", "password": ad_passwords["dave"]},
            {"name": "erin", "password": ad_passwords["erin"]},
            {"name": "frank", "password": ad_passwords["frank"]},
            {"name": "gina", "password": ad_passwords["gina"]},
            {
                "name": "pat",
                "password": ad_passwords["pat"],
                "given": "Pat",
                "surname": "O'Brien, (contractor) *",
            },
            {"name": "admin2", "password": ad_passwords["admin2"]},
        ],
        "groups": ["aws-admins", "aws-devs", "engineering", "everyone-eng", "ephemeral", "weird (group)"],
        "members": [
            ["aws-admins", ["alice"]],
            ["aws-devs", ["carol", "bob", "alice"]],
            ["engineering", ["aws-devs"]],
            ["everyone-eng", ["engineering"]],
            ["ephemeral", ["dan"]],
            ["weird (group)", ["pat"]],
        ],
        "disabled": ["dave"],
        "expired": ["frank"],
        "must_change": ["gina"],
    }
    try:
        server.acquire()
        server.provision(plan)
        server.start()
        yield server
    except RuntimeError as exc:
        pytest.fail(f"Samba AD fixture: {exc}", pytrace=False)
    finally:
        server.stop()


@pytest.fixture
def ad_settings(samba: Samba) -> Callable[..., dict[str, Any]]:
    def settings(**over: Any) -> dict[str, Any]:
        base = {
            "type": "ad",
            "name": "corp-ad",
            "servers": [samba.ldaps_url],
            "ca_file": str(samba.pki.ca),
            "bind_dn": f"Administrator@{samba.realm.lower()}",
            "bind_password": samba.admin_password,
            "netbios_domain": samba.netbios,
            "timeout": 10,
            "user_search": {"base": AD_DOMAIN_DN, "attributes": ["department"]},
            "groups": {"strategy": "in_chain"},
            "cache": {"ttl_seconds": 0},
        }
        return _merge(base, over)

    return settings


@pytest.fixture
def ad(connectors: Callable[..., Any], ad_settings: Callable[..., dict[str, Any]]) -> Any:
    return connectors(ad_settings())


def ad_admin_connection(samba: Samba) -> Any:
    """ldap3 as the domain Administrator, for changes an AD admin would make."""
    import ssl

    import ldap3

    from broker.connectors.ldap_pool import _Tls

    tls = _Tls(ssl.create_default_context(cafile=str(samba.pki.ca)), samba.host, timeout=10)
    server = ldap3.Server(samba.host, port=636, use_ssl=True, tls=tls, get_info=ldap3.NONE)
    return ldap3.Connection(
        server, f"Administrator@{samba.realm.lower()}", samba.admin_password, auto_bind=True
    )


# ---------------------------------------------------------------- the conformance suite's backends


def dead_port() -> int:
    """A loopback port nobody listens on (an outage)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def static_passwords() -> dict[str, str]:
    return {n: f"{n}-{secrets.token_urlsafe(10)}" for n in ("alice", "bob", "dora")}


@pytest.fixture(scope="session")
def static_users(static_passwords: dict[str, str]) -> list[dict[str, Any]]:
    """The static directory of the conformance suite (bcrypt at cost 4: hashed once, fast)."""
    import bcrypt

    def hashed(name: str) -> str:
        return bcrypt.hashpw(static_passwords[name].encode(), bcrypt.gensalt(4)).decode()

    return [
        {
            "username": "alice",
            "id": STATIC_ALICE_ID,
            "password_hash": hashed("alice"),
            "display_name": "Alice Archer",
            "email": "alice@example.com",
            "groups": ["aws-admins", "developers", "aws-admins"],
            "attributes": {"department": ["platform"]},
        },
        {"username": "bob", "password_hash": hashed("bob"), "groups": ["AWS-sandbox-dev-ReadOnly"]},
        {"username": "dora", "password_hash": hashed("dora"), "groups": ["developers"], "disabled": True},
    ]


STATIC_ALICE_ID = "5b7f0c2e-8d1a-4f3b-9e6c-2a4d8f1b3c70"


def _static_directory(request: pytest.FixtureRequest, connectors: Callable[..., Any]) -> DirectoryFixture:
    import broker.connectors.static as static_module

    passwords: dict[str, str] = request.getfixturevalue("static_passwords")
    users = request.getfixturevalue("static_users")
    connector = build_connector(
        StaticDirectoryConfig.model_validate({"type": "static", "name": "corp-static", "users": users})
    )
    assert isinstance(connector, Directory)
    checks = {"hash_checks": 0}
    real = static_module.verify_password

    def counting(password: str, password_hash: str) -> bool:
        checks["hash_checks"] += 1
        return real(password, password_hash)

    request.getfixturevalue("monkeypatch").setattr(static_module, "verify_password", counting)
    return DirectoryFixture(
        backend="static",
        connector=connector,
        user="alice",
        password=passwords["alice"],
        spellings=("ALICE", "  alice "),
        display_name="Alice Archer",
        email="alice@example.com",
        groups=frozenset({"aws-admins", "developers"}),
        nested_groups=frozenset(),
        immutable_id=STATIC_ALICE_ID,
        attributes={"department": ("platform",)},
        other_user="bob",
        other_password=passwords["bob"],
        disabled_user="dora",
        disabled_password=passwords["dora"],
        disabled_reason="account_disabled",
        work=lambda: dict(checks),
        refusal_work={"hash_checks": 1},  # an unknown user is checked against a dummy hash
        outage=None,
        not_applicable={
            "nested_groups": "a static user's groups are declared flat in the YAML: no group entries to nest",
            "outage": "the users and their hashes are in the configuration, in the process: no server to lose",
        },
    )


def slapd_entry_uuid(slapd: Slapd, dn: str) -> str:
    """The entryUUID slapd holds for ``dn``, read as its administrator (not through the broker)."""
    import ldap3

    server = ldap3.Server("127.0.0.1", port=slapd.port, get_info=ldap3.NONE)
    conn = ldap3.Connection(server, ROOT_DN, slapd.root_password, auto_bind=True)
    try:
        conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["entryUUID"])
        return str(conn.response[0]["raw_attributes"]["entryUUID"][0].decode())
    finally:
        conn.unbind()


def _slapd_directory(request: pytest.FixtureRequest, connectors: Callable[..., Any]) -> DirectoryFixture:
    slapd: Slapd = request.getfixturevalue("slapd")
    settings: Callable[..., dict[str, Any]] = request.getfixturevalue("ldap_settings")
    passwords: dict[str, str] = request.getfixturevalue("ldap_passwords")
    enabled_only = {"filter": LDAP_ENABLED_ONLY}
    connector = connectors(settings(user_search=enabled_only))
    dead = dead_port()
    return DirectoryFixture(
        backend="slapd",
        connector=connector,
        user="alice",
        password=passwords["alice"],
        spellings=("ALICE", "  alice ", "alice@example.org"),
        display_name="Alice Archer",
        email="alice@example.org",
        groups=frozenset({"aws-admins", "developers", "engineering"}),
        nested_groups=frozenset({"engineering"}),  # alice ∈ developers ∈ engineering
        immutable_id=slapd_entry_uuid(slapd, person_dn("alice")),
        attributes={"departmentNumber": ("platform",), "title": ("SRE",)},
        other_user="bob",
        other_password=passwords["bob"],
        disabled_user="dora",  # employeeType: disabled, outside the user search
        disabled_password=passwords["dora"],
        disabled_reason="unknown_user",
        work=connector.stats.snapshot,
        refusal_work={"searches": 1, "binds": 1},  # an unknown user costs a dummy bind
        outage=lambda: connectors(
            settings(user_search=enabled_only, servers=[f"ldaps://127.0.0.1:{dead}"], connect_timeout=2)
        ),
    )


def ad_object_guid(samba: Samba, sam_account_name: str) -> str:
    """The objectGUID Samba holds for an account, in its usual string form, read as the Administrator."""
    import uuid

    conn = ad_admin_connection(samba)
    try:
        conn.search(AD_DOMAIN_DN, f"(sAMAccountName={sam_account_name})", attributes=["objectGUID"])
        return str(uuid.UUID(bytes_le=conn.response[0]["raw_attributes"]["objectGUID"][0]))
    finally:
        conn.unbind()


def _ad_directory(request: pytest.FixtureRequest, connectors: Callable[..., Any]) -> DirectoryFixture:
    samba: Samba = request.getfixturevalue("samba")
    settings: Callable[..., dict[str, Any]] = request.getfixturevalue("ad_settings")
    passwords: dict[str, str] = request.getfixturevalue("ad_passwords")
    connector = connectors(settings())
    dead = dead_port()
    return DirectoryFixture(
        backend="samba-ad",
        connector=connector,
        user="alice",
        password=passwords["alice"],
        spellings=("ALICE", "  alice ", f"alice@{samba.realm.lower()}", f"{samba.netbios}\\alice"),
        display_name="Alice Archer",
        email="alice@example.com",
        groups=frozenset({"aws-admins", "aws-devs", "engineering", "everyone-eng"}),
        nested_groups=frozenset({"engineering", "everyone-eng"}),  # alice ∈ aws-devs ∈ engineering ∈ everyone-eng
        immutable_id=ad_object_guid(samba, "alice"),
        attributes={"department": ("platform",)},
        other_user="bob",
        other_password=passwords["bob"],
        disabled_user="dave",  # userAccountControl 0x2
        disabled_password=passwords["dave"],
        disabled_reason="account_disabled",  # bind sub-code 533
        work=connector.stats.snapshot,
        refusal_work={"searches": 1, "binds": 1},
        outage=lambda: connectors(settings(servers=[f"ldaps://127.0.0.1:{dead}"], connect_timeout=2)),
    )


_BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Callable[..., Any]], DirectoryFixture]] = {
    "static": _static_directory,
    "slapd": _slapd_directory,
    "samba-ad": _ad_directory,
}


@pytest.fixture(
    params=[
        pytest.param("static", id="static"),
        pytest.param("slapd", id="slapd", marks=pytest.mark.ldap),
        pytest.param("samba-ad", id="samba-ad", marks=pytest.mark.ad),
    ]
)
def directory(request: pytest.FixtureRequest, connectors: Callable[..., Any]) -> DirectoryFixture:
    """Each directory backend with what its seed data holds: the conformance suite's one fixture."""
    return _BACKENDS[request.param](request, connectors)
