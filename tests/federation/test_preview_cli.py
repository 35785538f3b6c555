"""`broker preview-assertion`: what the broker would send to STS, verified as AWS would verify it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
import yaml
from typer.testing import CliRunner

from broker.app import build_services
from broker.cli.server import app as cli
from broker.config import load_config
from broker.minting.keys import KeyRing
from broker.minting.saml_idp import ROLE, ROLE_SESSION_NAME, SESSION_DURATION, SOURCE_IDENTITY, SamlIdp
from tests.conftest import free_port
from tests.federation.conftest import TWO_ACCOUNTS_MAPPING as MAPPING
from tests.federation.conftest import AwsSamlVerifier, KeyFilesOnDisk


@pytest.fixture
def config_file(tmp_path: Path, key_files: KeyFilesOnDisk) -> Path:
    path = tmp_path / "broker.yaml"
    path.write_text(yaml.safe_dump({
        "server": {"public_url": "https://broker.example.com"},
        "database": {"url": f"sqlite:///{tmp_path / 'b.db'}", "auto_migrate": True},
        "keys": key_files.section(),
        "sts": {"mode": "aws"},
        "session_tags": {"tags": [{"key": "Team", "attribute": "team"}]},
        "mapping": MAPPING,
    }))
    services = build_services(load_config(path, env={}), env={})  # what a deployed broker did: migrate + sync
    services.engine.dispose()
    return path


def _run(config_file: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["preview-assertion", "--config", str(config_file), *args])


@pytest.mark.saml_peer
def test_preview_saml_is_a_response_aws_accepts(
    config_file: Path, keyring: KeyRing, aws_verifier: Callable[..., AwsSamlVerifier]
) -> None:
    result = _run(config_file, "--user", "alice", "--account", "sandbox-dev", "--role", "admin",
                  "--id", "emp-0042", "--groups", "AWS-Admins", "--attribute", "team=Platform")
    assert result.exit_code == 0, result.output
    encoded = result.stdout.strip()
    metadata = SamlIdp(keys=keyring, entity_id="https://broker.example.com/saml/metadata", sso_url="x",
                       tags=None).metadata()  # type: ignore[arg-type]
    ava = aws_verifier(metadata).attributes(encoded)
    assert ava[ROLE] == ["arn:aws:iam::111111111111:role/Admin,arn:aws:iam::111111111111:saml-provider/broker"]
    assert ava[SESSION_DURATION] == ["14400"]  # the mapping's cap, not the role's 12 h
    assert ava[ROLE_SESSION_NAME] == ["alice"] and ava[SOURCE_IDENTITY] == ["emp-0042"]
    assert ava["https://aws.amazon.com/SAML/Attributes/PrincipalTag:Team"] == ["Platform"]
    assert "recipient: https://signin.aws.amazon.com/saml" in result.stderr


def test_preview_jwt_verifies_against_the_published_key(config_file: Path, keyring: KeyRing) -> None:
    result = _run(config_file, "--user", "alice", "--account", "222222222222", "--role", "ReadOnly", "--groups", "aws-admins")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    claims = pyjwt.decode(token, keyring.current.private_key.public_key(), algorithms=["RS256"], audience="prod-client",
                          issuer="https://broker.example.com")
    assert claims["sub"] == "alice"
    decoded = _run(config_file, "--user", "alice", "--account", "sandbox-prod", "--role", "ReadOnly",
                   "--groups", "aws-admins", "--decode")
    assert json.loads(decoded.stdout)["header"]["kid"] == keyring.current.kid


def test_a_role_the_person_is_not_granted_prints_nothing(config_file: Path) -> None:
    result = _run(config_file, "--user", "mallory", "--account", "sandbox-dev", "--role", "Admin", "--groups", "developers")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "mallory has no grant for role Admin in account sandbox-dev" in result.stderr
    bad = _run(config_file, "--user", "a", "--account", "sandbox-dev", "--role", "Admin", "--format", "xml")
    assert bad.exit_code == 2 and bad.stdout == ""


# ---- the person read from the directory, as an issuance reads them ----

DEMO_HASH = "$2b$12$LYTJyrgmep47mVJhwtcAcO.ecIPdoQL7e0WhfAYEEqMhfUJ05YdhO"  # config/demo.yaml's alice-demo-pw
ALICE_ID = "5b0e8a52-7c1d-4e3f-9a60-1f2e3d4c5b6a"


def _directory_config(tmp_path: Path, key_files: KeyFilesOnDisk, directory: dict[str, Any]) -> Path:
    path = tmp_path / "with-directory.yaml"
    path.write_text(yaml.safe_dump({
        "server": {"public_url": "https://broker.example.com"},
        "database": {"url": f"sqlite:///{tmp_path / 'no-such-dir' / 'b.db'}"},  # no database: the file's mapping
        "keys": key_files.section(),
        "directory": directory,
        "session_tags": {"tags": [{"key": "Team", "attribute": "team"}]},
        "mapping": MAPPING,
    }))
    return path


STATIC = {
    "type": "static", "name": "corp",
    "users": [
        {"username": "alice", "id": ALICE_ID, "password_hash": DEMO_HASH, "groups": ["aws-admins"],
         "attributes": {"team": ["Platform"]}},
        {"username": "bob", "password_hash": DEMO_HASH, "groups": ["developers"]},
    ],
}


@pytest.mark.saml_peer
def test_preview_reads_groups_id_and_attributes_from_the_directory(
    tmp_path: Path, key_files: KeyFilesOnDisk, keyring: KeyRing, aws_verifier: Callable[..., AwsSamlVerifier]
) -> None:
    config = _directory_config(tmp_path, key_files, STATIC)
    result = _run(config, "--user", "alice", "--account", "sandbox-dev", "--role", "Admin")
    assert result.exit_code == 0, result.output
    assert f"person: alice (id {ALICE_ID}; groups: aws-admins)" in result.stderr
    assert "note: read 'alice' from the directory 'corp' (static)" in result.stderr
    metadata = SamlIdp(keys=keyring, entity_id="https://broker.example.com/saml/metadata", sso_url="x",
                       tags=None).metadata()  # type: ignore[arg-type]
    ava = aws_verifier(metadata).attributes(result.stdout.strip())
    assert ava[ROLE] == ["arn:aws:iam::111111111111:role/Admin,arn:aws:iam::111111111111:saml-provider/broker"]
    assert ava[SESSION_DURATION] == ["14400"]  # the mapping's cap
    assert ava[SOURCE_IDENTITY] == [ALICE_ID]  # the directory's immutable id, not the username
    assert ava["https://aws.amazon.com/SAML/Attributes/PrincipalTag:Team"] == ["Platform"]

    decoded = _run(config, "--user", "alice", "--account", "sandbox-dev", "--role", "Admin", "--decode")
    assert decoded.exit_code == 0 and ALICE_ID in decoded.stdout and "Platform" in decoded.stdout


def test_preview_refuses_a_role_the_directory_person_is_not_granted(tmp_path: Path, key_files: KeyFilesOnDisk) -> None:
    config = _directory_config(tmp_path, key_files, STATIC)
    bob = _run(config, "--user", "bob", "--account", "sandbox-dev", "--role", "Admin")
    assert bob.exit_code == 1 and bob.stdout == ""
    assert "bob has no grant for role Admin in account sandbox-dev (their grants: none)" in bob.stderr
    nobody = _run(config, "--user", "nobody", "--account", "sandbox-dev", "--role", "Admin")
    assert nobody.exit_code == 1 and nobody.stdout == ""
    assert "error [not_found]: the directory 'corp' has no usable account 'nobody'" in nobody.stderr
    # the overrides replace what the directory says
    overridden = _run(config, "--user", "bob", "--account", "sandbox-dev", "--role", "Admin", "--groups", "aws-admins",
                      "--id", "emp-7", "--decode")
    assert overridden.exit_code == 0, overridden.output
    assert "note: --id, --groups replace what the directory says" in overridden.stderr
    assert "person: bob (id emp-7; groups: aws-admins)" in overridden.stderr and "emp-7" in overridden.stdout


def test_preview_with_an_unreachable_directory_needs_the_overrides(tmp_path: Path, key_files: KeyFilesOnDisk) -> None:
    down = {"type": "ldap", "name": "corp-ldap", "servers": [f"ldap://127.0.0.1:{free_port()}"],
            "bind_dn": "cn=svc,dc=example,dc=com", "bind_password": "x", "connect_timeout": 2, "timeout": 2,
            "user_search": {"base": "dc=example,dc=com"}}
    config = _directory_config(tmp_path, key_files, down)
    refused = _run(config, "--user", "alice", "--account", "sandbox-dev", "--role", "Admin")
    assert refused.exit_code == 3 and refused.stdout == ""
    assert "error [directory_unavailable]: cannot read 'alice' from the directory 'corp-ldap'" in refused.stderr
    assert "give --groups and --id" in refused.stderr
    assert "Traceback" not in refused.output and isinstance(refused.exception, SystemExit)  # no stack trace
    result = _run(config, "--user", "alice", "--account", "sandbox-dev", "--role", "Admin",
                  "--groups", "aws-admins", "--id", "emp-0042", "--decode")
    assert result.exit_code == 0, result.output
    assert "note: the directory 'corp-ldap' cannot be reached" in result.stderr
    assert "the person is what --id/--groups/--attribute say" in result.stderr
    assert "emp-0042" in result.stdout
