"""`broker revoke` against moto's IAM (a ThreadedMotoServer; with ``revoke.assume_role`` every
account is its own) and a real Redis: the dry run writes nothing anywhere; --apply attaches
BrokerRevokeOlderSessions with the documented condition, merges with what the role has, ends the
person's logins in the state store (another person's stay) and writes the audit event; a problem
in one account is that account's.

broker/aws/trust_policy.py evaluates trust policies with string conditions only (no Date
operators, no aws:TokenIssueTime), so the written policies are checked as documents here."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from broker.access_config import OAuthConfig, SessionsConfig
from broker.audit import AuditContext, AuditFilter, Decision
from broker.aws.config import IamAccessConfig
from broker.aws.iam_access import IamAccess
from broker.cli.server import app as cli
from broker.config import DatabaseConfig, load_config
from broker.db.session import make_engine, migrate
from broker.db.store import SqlMappingStore
from broker.domain import Identity
from broker.minting.names import source_identity
from broker.oauth.errors import InvalidGrant
from broker.oauth.tokens import TokenService
from broker.state.redis import RedisState
from broker.web.sessions import SessionStore
from tests.conftest import free_port

pytestmark = [pytest.mark.usefixtures("credentials"), pytest.mark.redis]  # the state the broker shares

DEV, PROD, MOTO_DEFAULT = "111111111111", "222222222222", "123456789012"
ASSUME = "arn:aws:iam::{account}:role/BrokerRevoke"
TRUST = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
HASH = "$2b$12$LYTJyrgmep47mVJhwtcAcO.ecIPdoQL7e0WhfAYEEqMhfUJ05YdhO"
ALICE_ID = "5b0e8a52-7c1d-4e3f-9a60-1f2e3d4c5b6a"


@pytest.fixture
def names() -> dict[str, str]:
    """Usernames unique to the test: the Redis server is shared, and logins are indexed by name."""
    tag = secrets.token_hex(4)
    return {"alice": f"alice-{tag}", "bob": f"bob-{tag}", "carol": f"carol-{tag}"}


def _mapping(dev: str = DEV, prod: str = PROD) -> dict[str, Any]:
    return {
        "accounts": [
            {"id": dev, "alias": "dev", "federation": {"path": "saml", "saml_provider": "broker"},
             "roles": [{"name": "Admin"}, {"name": "ReadOnly", "path": "/audit/"}]},
            {"id": prod, "alias": "prod", "federation": {"path": "web_identity", "audience": "prod-client"},
             "roles": [{"name": "Deployer"}]},
        ],
        "mappings": [
            {"group": "aws-admins", "account": "dev", "role": "Admin"},
            {"group": "aws-admins", "account": "prod", "role": "Deployer"},
            {"group": "readers", "account": "dev", "role": "ReadOnly"},
        ],
    }


def _config(tmp_path: Path, moto_sts: str, names: dict[str, str], *, mapping: dict[str, Any] | None = None,
            assume_role: str | None = ASSUME, directory: dict[str, Any] | str | None = "static") -> Path:
    path = tmp_path / "broker.yaml"
    body: dict[str, Any] = {
        "server": {"public_url": "https://broker.example.com"},
        "database": {"url": f"sqlite:///{tmp_path / 'b.db'}"},
        "state": {"backend": "redis", "redis_url": os.environ["BROKER_TEST_REDIS_URL"]},
        "revoke": {"endpoint_url": moto_sts, **({"assume_role": assume_role} if assume_role else {})},
        "mapping": mapping or _mapping(),
    }
    if isinstance(directory, dict):
        body["directory"] = directory
    elif directory == "static":
        body["directory"] = {"type": "static", "name": "corp", "users": [
            {"username": names["alice"], "id": ALICE_ID, "password_hash": HASH, "groups": ["aws-admins"]},
            {"username": names["bob"], "password_hash": HASH, "groups": ["readers"]},
            {"username": names["carol"], "password_hash": HASH, "groups": ["aws-admins"]},
        ]}
    path.write_text(yaml.safe_dump(body))
    engine = make_engine(DatabaseConfig(url=body["database"]["url"]))
    migrate(engine)
    SqlMappingStore(engine).sync_config(load_config(path).mapping)
    engine.dispose()
    return path


@pytest.fixture
def iam(moto_sts: str) -> IamAccess:
    return IamAccess(IamAccessConfig(assume_role=ASSUME, endpoint_url=moto_sts), session_name="test")


@pytest.fixture
def accounts(iam: IamAccess) -> tuple[str, str]:
    """Fresh account ids for each test (moto's accounts outlive a test), with the mapped roles created."""
    dev, prod = (f"{secrets.randbelow(10**12):012d}" for _ in range(2))
    iam.client(dev).create_role(RoleName="Admin", AssumeRolePolicyDocument=TRUST)
    iam.client(dev).create_role(RoleName="ReadOnly", Path="/audit/", AssumeRolePolicyDocument=TRUST)
    iam.client(prod).create_role(RoleName="Deployer", AssumeRolePolicyDocument=TRUST)
    return dev, prod


@pytest.fixture
def state() -> Iterator[RedisState]:
    s = RedisState.from_url(os.environ["BROKER_TEST_REDIS_URL"])  # the prefix the broker uses (open_state)
    yield s
    s.close()


def _run(*args: str) -> Any:
    return CliRunner().invoke(cli, ["revoke", *args])


def _policy(iam: IamAccess, account: str, role: str) -> dict[str, Any] | None:
    client = iam.client(account)
    try:
        document = client.get_role_policy(RoleName=role, PolicyName="BrokerRevokeOlderSessions")["PolicyDocument"]
    except client.exceptions.NoSuchEntityException:
        return None
    return json.loads(document) if isinstance(document, str) else document


def _audit(config: Path) -> list[dict[str, Any]]:
    engine = make_engine(DatabaseConfig(url=load_config(config).database.url))
    try:
        return SqlMappingStore(engine).audit_events(AuditFilter(action="sessions.revoke"), limit=10, before_id=None)
    finally:
        engine.dispose()


def _issued(stamp: str, started: datetime) -> datetime:
    at = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert started <= at <= datetime.now(UTC) + timedelta(seconds=1)
    return at


def test_a_dry_run_prints_the_policies_and_changes_nothing_anywhere(
    tmp_path: Path, moto_sts: str, iam: IamAccess, accounts: tuple[str, str], names: dict[str, str], state: RedisState
) -> None:
    dev, prod = accounts
    config = _config(tmp_path, moto_sts, names, mapping=_mapping(dev, prod))
    alice = Identity(id=ALICE_ID, username=names["alice"])
    login = TokenService(state, OAuthConfig()).issue(alice, client_id="awsbroker")

    result = _run("--user", names["alice"], "--config", str(config))

    assert result.exit_code == 0, result.output
    assert "dry run: nothing is changed" in result.output
    assert f"arn:aws:iam::{dev}:role/Admin: would write BrokerRevokeOlderSessions" in result.output
    assert f"arn:aws:iam::{prod}:role/Deployer: would write" in result.output
    assert f'"aws:SourceIdentity": "{ALICE_ID}"' in result.output
    # alice does not reach ReadOnly now: it is revoked too (her groups may have just been taken away)
    assert f"arn:aws:iam::{dev}:role/audit/ReadOnly: would write" in result.output
    reached = ", ".join(sorted([f"{dev}/Admin", f"{prod}/Deployer"]))
    assert f"reaches {reached} now; every declared role gets the revocation" in result.output
    for account, role in ((dev, "Admin"), (dev, "ReadOnly"), (prod, "Deployer")):
        assert _policy(iam, account, role) is None
    assert TokenService(state, OAuthConfig()).identity_for(login.access_token) == alice
    assert _audit(config) == []


def test_apply_revokes_one_persons_sessions_in_aws_and_in_the_broker(
    tmp_path: Path, moto_sts: str, iam: IamAccess, accounts: tuple[str, str], names: dict[str, str], state: RedisState
) -> None:
    dev, prod = accounts
    config = _config(tmp_path, moto_sts, names, mapping=_mapping(dev, prod))
    alice, bob = Identity(id=ALICE_ID, username=names["alice"]), Identity(id="bob-id", username=names["bob"])
    tokens = TokenService(state, OAuthConfig())
    sessions = SessionStore(state, SessionsConfig(), public_url="https://broker.example.com")
    alice_cli, bob_cli = tokens.issue(alice, client_id="awsbroker"), tokens.issue(bob, client_id="awsbroker")
    alice_portal, bob_portal = sessions.create(alice).id, sessions.create(bob).id
    started = datetime.now(UTC).replace(microsecond=0)

    result = _run("--user", names["alice"], "--apply", "--actor", "oncall-jo", "--config", str(config))

    assert result.exit_code == 0, result.output
    admin = _policy(iam, dev, "Admin")
    assert admin is not None
    (deny,) = admin["Statement"]
    assert (deny["Effect"], deny["Action"], deny["Resource"]) == ("Deny", "*", "*")
    assert deny["Condition"]["StringEquals"] == {"aws:SourceIdentity": ALICE_ID}
    before = _issued(deny["Condition"]["DateLessThan"]["aws:TokenIssueTime"], started)
    deployer = _policy(iam, prod, "Deployer")  # web identity: the ID token's source_identity claim
    assert deployer is not None
    assert deployer["Statement"][0]["Condition"]["StringEquals"] == {"aws:SourceIdentity": ALICE_ID}
    readonly = _policy(iam, dev, "ReadOnly")  # not reached now, revoked all the same: scoped to alice
    assert readonly is not None
    assert readonly["Statement"][0]["Condition"]["StringEquals"] == {"aws:SourceIdentity": ALICE_ID}

    assert sessions.get(alice_portal) is None
    assert tokens.identity_for(alice_cli.access_token) is None
    with pytest.raises(InvalidGrant):
        tokens.refresh(alice_cli.refresh_token, client_id="awsbroker")
    assert sessions.get(bob_portal) is not None
    assert tokens.identity_for(bob_cli.access_token) == bob
    assert "ended 2 portal session(s), CLI login(s)" in result.output

    (event,) = _audit(config)
    assert event["actor"] == "operator:oncall-jo" and event["outcome"] == "allow"
    assert (event["target_type"], event["target_id"]) == ("user", names["alice"])
    d = event["details"]
    assert d["issued_before"] == before.strftime("%Y-%m-%dT%H:%M:%SZ") and d["immutable_id"] == ALICE_ID
    assert set(d["revoked"]) == {f"arn:aws:iam::{dev}:role/Admin", f"arn:aws:iam::{dev}:role/audit/ReadOnly",
                                 f"arn:aws:iam::{prod}:role/Deployer"}
    assert d["failed"] == {} and d["logins_ended"] == 2


def test_revocations_merge_on_a_role(
    tmp_path: Path, moto_sts: str, iam: IamAccess, accounts: tuple[str, str], names: dict[str, str]
) -> None:
    dev, prod = accounts
    config = _config(tmp_path, moto_sts, names, mapping=_mapping(dev, prod))
    for who in ("alice", "carol", "alice"):
        assert _run("--user", names[who], "--apply", "--config", str(config)).exit_code == 0
    admin = _policy(iam, dev, "Admin")
    assert admin is not None
    persons = sorted(next(iter(s["Condition"]["StringEquals"].values())) for s in admin["Statement"])
    # alice's replaced, carol's kept (the static directory's default id, fitted as a SourceIdentity)
    assert persons == sorted([ALICE_ID, source_identity(f"static:{names['carol']}")])

    role = f"arn:aws:iam::{dev}:role/Admin"
    result = _run("--role", role, "--apply", "--config", str(config))
    assert result.exit_code == 0, result.output
    admin = _policy(iam, dev, "Admin")
    assert admin is not None
    (whole,) = admin["Statement"]  # the whole-role statement supersedes the persons'
    assert list(whole["Condition"]) == ["DateLessThan"]
    assert _policy(iam, prod, "Deployer") is not None  # --role touches that role only
    assert [e["target_id"] for e in _audit(config)] == [role, names["alice"], names["carol"], names["alice"]]


def test_account_revokes_every_declared_role_there(
    tmp_path: Path, moto_sts: str, iam: IamAccess, accounts: tuple[str, str], names: dict[str, str]
) -> None:
    dev, prod = accounts
    config = _config(tmp_path, moto_sts, names, mapping=_mapping(dev, prod))
    result = _run("--account", "dev", "--apply", "--config", str(config))
    assert result.exit_code == 0, result.output
    for role in ("Admin", "ReadOnly"):
        document = _policy(iam, dev, role)
        assert document is not None and list(document["Statement"][0]["Condition"]) == ["DateLessThan"]
    assert _policy(iam, prod, "Deployer") is None


def test_a_problem_in_one_account_is_that_accounts_and_the_others_proceed(
    tmp_path: Path, moto_sts: str, iam: IamAccess, names: dict[str, str], state: RedisState
) -> None:
    """Ambient credentials (no assume_role) act in moto's default account only: the other account
    is refused as the wrong one, reported for that account, and the command exits non-zero."""
    ambient = IamAccess(IamAccessConfig(endpoint_url=moto_sts), session_name="test").client(MOTO_DEFAULT)
    role = f"Admin{secrets.token_hex(3)}"
    ambient.create_role(RoleName=role, AssumeRolePolicyDocument=TRUST)
    mapping = _mapping(MOTO_DEFAULT, PROD)
    mapping["accounts"][0]["roles"] = [{"name": role}, {"name": f"Missing{secrets.token_hex(3)}"}]
    mapping["mappings"] = [{"group": "aws-admins", "account": "dev", "role": role},
                           {"group": "aws-admins", "account": "prod", "role": "Deployer"}]
    config = _config(tmp_path, moto_sts, names, mapping=mapping, assume_role=None)

    result = _run("--account", "dev", "--apply", "--config", str(config))
    assert result.exit_code == 1
    assert f"arn:aws:iam::{MOTO_DEFAULT}:role/{role}: wrote" in result.output
    assert "does not exist in the account" in result.output  # the missing role, reported on its own
    document = ambient.get_role_policy(RoleName=role, PolicyName="BrokerRevokeOlderSessions")["PolicyDocument"]
    assert document is not None

    result = _run("--user", names["alice"], "--apply", "--config", str(config))
    assert result.exit_code == 1
    assert "[access.wrong_account]" in result.output and f"account prod ({PROD})" in result.output
    assert "set revoke.assume_role (arn:aws:iam::{account}:role/BrokerRevoke)" in result.output
    assert f"arn:aws:iam::{MOTO_DEFAULT}:role/{role}: wrote" in result.output
    event = _audit(config)[0]
    assert event["outcome"] == "error" and PROD in event["details"]["failed"]
    assert event["details"]["revoked"] == [f"arn:aws:iam::{MOTO_DEFAULT}:role/{role}"]


def test_bad_input_is_refused_with_a_code_and_nothing_is_written(
    tmp_path: Path, moto_sts: str, iam: IamAccess, accounts: tuple[str, str], names: dict[str, str]
) -> None:
    dev, prod = accounts
    config = _config(tmp_path, moto_sts, names, mapping=_mapping(dev, prod))
    cases = {
        ("--role", f"arn:aws:iam::{dev}:role/NotMapped"): "unknown_role",
        ("--role", "Admin"): "invalid_input",
        ("--role", "arn:aws:iam::999999999999:role/Admin"): "unknown_account",
        ("--account", "nowhere"): "unknown_account",
        ("--user", "a", "--account", "dev"): "invalid_input",
        (): "invalid_input",
    }
    for args, code in cases.items():
        result = _run(*args, "--apply", "--config", str(config))
        assert result.exit_code == 2 and f"error [{code}]" in result.output, (args, result.output)
    for account, role in ((dev, "Admin"), (dev, "ReadOnly"), (prod, "Deployer")):
        assert _policy(iam, account, role) is None
    assert _audit(config) == []


def test_without_the_directory_every_declared_role_gets_the_persons_statement(
    tmp_path: Path, moto_sts: str, iam: IamAccess, accounts: tuple[str, str], names: dict[str, str]
) -> None:
    dev, prod = accounts
    config = _config(tmp_path, moto_sts, names, mapping=_mapping(dev, prod), directory=None)
    dave = names["alice"].replace("alice", "dave")

    refused = _run("--user", dave, "--config", str(config))
    assert refused.exit_code == 2 and "give --id" in refused.output  # no SourceIdentity to scope to

    engine = make_engine(DatabaseConfig(url=load_config(config).database.url))
    SqlMappingStore(engine).record_events([Decision(AuditContext(actor=f"user:{dave}"), "credentials.issue", "allow",
                                                    details={"user": dave, "immutable_id": "guid-dave"})])
    engine.dispose()
    result = _run("--user", dave, "--apply", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "every declared role gets the revocation" in result.output
    assert "from their latest sign-in in the audit trail" in result.output
    for role in ("Admin", "ReadOnly"):
        document = _policy(iam, dev, role)
        assert document is not None
        assert document["Statement"][0]["Condition"]["StringEquals"] == {"aws:SourceIdentity": "guid-dave"}
    assert _policy(iam, prod, "Deployer") is not None


def test_with_in_process_state_the_broker_side_is_reported_not_done(
    tmp_path: Path, moto_sts: str, iam: IamAccess, accounts: tuple[str, str], names: dict[str, str]
) -> None:
    dev, prod = accounts
    config = _config(tmp_path, moto_sts, names, mapping=_mapping(dev, prod))
    body = yaml.safe_load(config.read_text())
    body["state"] = {"backend": "memory"}
    config.write_text(yaml.safe_dump(body))
    result = _run("--user", names["alice"], "--apply", "--config", str(config))
    assert result.exit_code == 1
    assert "state.backend is memory" in result.output
    assert _policy(iam, dev, "Admin") is not None  # AWS is revoked all the same


def test_an_unreachable_directory_is_said_and_every_declared_role_is_covered(
    tmp_path: Path, moto_sts: str, iam: IamAccess, accounts: tuple[str, str], names: dict[str, str]
) -> None:
    dev, prod = accounts
    down = {"type": "ldap", "name": "corp-ldap", "servers": [f"ldap://127.0.0.1:{free_port()}"],
            "bind_dn": "cn=svc,dc=example,dc=com", "bind_password": "x", "connect_timeout": 2, "timeout": 2,
            "user_search": {"base": "dc=example,dc=com"}}
    config = _config(tmp_path, moto_sts, names, mapping=_mapping(dev, prod), directory=down)
    result = _run("--user", names["alice"], "--id", ALICE_ID, "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "note: the directory 'corp-ldap' cannot be reached" in result.output
    assert "every declared role gets the revocation" in result.output and "it denies no one else" in result.output
    for arn in (f"arn:aws:iam::{dev}:role/Admin", f"arn:aws:iam::{dev}:role/audit/ReadOnly",
                f"arn:aws:iam::{prod}:role/Deployer"):
        assert f"{arn}: would write" in result.output
