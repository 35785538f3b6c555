"""The static directory (YAML users, bcrypt/argon2), what only it does: hash schemes, its config
errors, the demo's users. What every directory does is in the conformance suite
(conformance.py, run by test_conformance.py)."""

from __future__ import annotations

import bcrypt
import pytest
from argon2 import PasswordHasher
from pydantic import ValidationError

from broker.config import load_config, parse_config
from broker.connectors.config import StaticDirectoryConfig
from broker.connectors.registry import build_connector
from broker.domain import Identity
from tests.conftest import ROOT

# the demo's users (config/demo.yaml), reused by other tests
DEMO_USERS = [
    {
        "username": "alice",
        "password_hash": "$2b$12$LYTJyrgmep47mVJhwtcAcO.ecIPdoQL7e0WhfAYEEqMhfUJ05YdhO",
        "groups": ["aws-admins", "developers"],
    },
    {
        "username": "bob",
        "password_hash": "$2b$12$9tcARdJssAELUUozSmyW0u.Km9IdcoTGFrnMZJcGjHanpJBh8tVm6",
        "groups": ["AWS-sandbox-dev-ReadOnly"],
    },
]


def static(users: list[dict]) -> object:
    return build_connector(StaticDirectoryConfig.model_validate({"type": "static", "users": users}))


@pytest.fixture(scope="module")
def argon_user() -> dict:
    return {
        "username": "Carol",
        "id": "c-1",
        "password_hash": PasswordHasher(time_cost=1, memory_cost=8192).hash("carol-pw"),
        "display_name": "Carol",
        "email": "carol@example.com",
        "groups": ["ops", "ops"],
        "attributes": {"team": ["sre"]},
    }


def test_bcrypt_and_argon2_users_sign_in(argon_user):
    c = static([*DEMO_USERS, argon_user])
    alice = c.login("alice", "alice-demo-pw")
    assert isinstance(alice, Identity) and alice.groups == ("aws-admins", "developers")
    assert alice.id == "static:alice" and alice.source == "static"
    carol = c.login("carol", "carol-pw")  # usernames are case-insensitive
    assert carol.username == "Carol" and carol.id == "c-1" and carol.groups == ("ops",)
    assert dict(carol.attributes) == {"team": ("sre",)}


def test_an_unknown_user_costs_a_hash_check_too(monkeypatch):
    import broker.connectors.static as mod

    calls = []
    real = mod.verify_password
    monkeypatch.setattr(mod, "verify_password", lambda p, h: calls.append(h) or real(p, h))
    mod.StaticConnector(StaticDirectoryConfig.model_validate({"type": "static", "users": DEMO_USERS})).login(
        "nobody", "x"
    )
    assert len(calls) == 1 and calls[0].startswith("$2b$12$")


def test_bcrypt_passwords_longer_than_72_bytes_still_verify():
    long = "x" * 80
    hashed = bcrypt.hashpw(long[:72].encode(), bcrypt.gensalt(4)).decode()
    assert isinstance(static([{"username": "l", "password_hash": hashed}]).login("l", long), Identity)


@pytest.mark.parametrize(
    "users, message",
    [
        ([{"username": "a", "password_hash": "plaintext"}], "bcrypt"),
        ([{"username": "a", "password_hash": DEMO_USERS[0]["password_hash"]}] * 2, "declared twice"),
        (
            [{"username": "a", "password_hash": DEMO_USERS[0]["password_hash"], "shoe_size": 9}],
            "Extra inputs",
        ),
    ],
)
def test_static_config_errors(users, message):
    with pytest.raises(ValidationError, match=message):
        StaticDirectoryConfig.model_validate({"type": "static", "users": users})


def test_the_demo_directory_has_alice_and_bob_with_the_readme_passwords(tmp_path, monkeypatch):
    monkeypatch.setenv("BROKER_DEMO_DIR", str(tmp_path))
    cfg = load_config(ROOT / "config" / "demo.yaml")
    c = build_connector(cfg.directory)
    alice, bob = c.login("alice", "alice-demo-pw"), c.login("bob", "bob-demo-pw")
    assert isinstance(alice, Identity) and isinstance(bob, Identity)
    assert cfg.admin.directory_groups == ["aws-admins"]
    from broker.cli.check_directory import _grants

    demo_db = cfg.database.model_copy(update={"url": f"sqlite:///{tmp_path / 'x.db'}"})
    alice_roles = {(g.account_alias, g.role_name) for g in _grants(demo_db, alice.groups, cfg.mapping)}
    assert alice_roles == {
        ("sandbox-dev", "Admin"),
        ("sandbox-dev", "Developer"),
        ("sandbox-prod", "Admin"),
        ("sandbox-prod", "ReadOnly"),
    }
    bob_roles = {(g.account_alias, g.role_name): g.eligible for g in _grants(demo_db, bob.groups, cfg.mapping)}
    assert bob_roles == {("sandbox-dev", "ReadOnly"): False, ("sandbox-prod", "ReadOnly"): True}  # the second on request
    assert cfg.jit.policies["prod-readonly"].max_duration == 7200


def test_directory_section_errors_name_their_path():
    with pytest.raises(Exception) as err:
        parse_config(
            {
                "directory": {
                    "type": "ldap",
                    "servers": ["ldap://x"],
                    "start_tls": False,
                    "bind_dn": "cn=a",
                    "bind_password": "${NOPE}",
                    "user_search": {"base": "dc=x", "filter": "(a"},
                    "groups": {"strategy": "in_chain"},
                }
            },
            env={},
        )
    problems = err.value.problems
    assert "directory.bind_password: environment variable NOPE is not set" in problems
    assert any(p.startswith("directory.user_search.filter:") for p in problems)
    assert any(p.startswith("directory.groups:") and "type: ad" in p for p in problems)
    with pytest.raises(Exception) as err:
        parse_config({"directory": {"type": "openldap"}}, env={})
    assert "directory" in err.value.problems[0]
