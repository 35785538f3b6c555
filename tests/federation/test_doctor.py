"""`broker doctor` against moto's IAM (server): the AWS side aws-setup plans is deployed into moto
account by account, then broken one way at a time; each way gives its finding and nothing else.

moto keeps its accounts for the whole session (one server, shared with other tests), so each
test gets account ids of its own.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from broker.aws.config import IamAccessConfig
from broker.aws.doctor import AccountReport, provider_checks
from broker.aws.iam_access import IamAccess
from broker.aws.trust import AccountTrust, BrokerSide, SamlProvider, plan
from broker.cli.aws_setup import broker_side, mapping_snapshot
from broker.cli.doctor import doctor
from broker.cli.server import app as cli
from broker.config import load_config
from broker.minting.config import KeyFiles, KeysConfig
from broker.minting.keys import generate_keypair, load_keyring
from tests.federation.conftest import KeyFilesOnDisk, make_idp

DOCTOR_ROLE = "arn:aws:iam::{account}:role/BrokerDoctor"
_ACCOUNT_IDS = itertools.count(710000000001)


@dataclass
class World:
    """A config file (a SAML account, a web-identity account) and their AWS side deployed in moto."""

    path: Path
    dev: str
    prod: str
    trusts: dict[str, AccountTrust]
    access: IamAccess

    def iam(self, account: str) -> Any:
        return self.access.client(account)

    def run(self, *accounts: str) -> list[AccountReport]:
        return doctor(load_config(self.path, env={}), list(accounts)).reports

    def problems(self, *accounts: str) -> list[tuple[str, str, str]]:
        """(account, subject, code) of every check that is not ok."""
        return [(r.account_id, c.subject, c.code) for r in self.run(*accounts) for c in r.checks if c.severity != "ok"]

    def set_trust(self, account: str, role: str, change: Callable[[dict[str, Any]], None]) -> None:
        policy = json.loads(json.dumps(next(r.policy for r in self.trusts[account].roles if r.name == role)))
        change(policy)
        self.iam(account).update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(policy))


def _write_config(tmp_path: Path, moto: str, keys: dict[str, Any], dev: str, prod: str) -> Path:
    path = tmp_path / "broker.yaml"
    path.write_text(yaml.safe_dump({
        "server": {"public_url": "https://broker.example.com"},
        "database": {"url": f"sqlite:///{tmp_path / 'b.db'}", "auto_migrate": True},
        "keys": keys,
        "sts": {"mode": "aws"},
        "doctor": {"assume_role": DOCTOR_ROLE, "endpoint_url": moto, "max_attempts": 1},
        "mapping": {
            "accounts": [
                {"id": dev, "alias": "dev", "federation": {"path": "saml", "saml_provider": "broker"},
                 "roles": [{"name": "Admin", "max_session_duration": 43200},
                           {"name": "ReadOnly", "path": "/audit/", "max_session_duration": 3600}]},
                {"id": prod, "alias": "prod", "federation": {"path": "web_identity", "audience": "prod-client"},
                 "roles": [{"name": "Deployer", "max_session_duration": 7200}]},
            ],
            "mappings": [
                {"group": "aws-admins", "account": "dev", "role": "Admin", "session_duration": 14400},
                {"group": "auditors", "account": "dev", "role": "ReadOnly"},
                {"group": "deployers", "account": "prod", "role": "Deployer"},
            ],
        },
    }))
    return path


def deploy(iam: Any, trust: AccountTrust) -> None:
    """What the aws-setup template creates, through IAM, from the plan's own values."""
    provider = trust.provider
    if isinstance(provider, SamlProvider):
        iam.create_saml_provider(Name=provider.name, SAMLMetadataDocument=provider.metadata)
    else:
        iam.create_open_id_connect_provider(Url=provider.url, ClientIDList=list(provider.client_ids))
    for role in trust.roles:
        iam.create_role(RoleName=role.name, Path=role.path, AssumeRolePolicyDocument=json.dumps(role.policy),
                        MaxSessionDuration=role.max_session_duration)


@pytest.fixture
def world_with(tmp_path: Path, moto_sts: str, key_files: KeyFilesOnDisk,
               credentials: None) -> Callable[..., World]:
    def build(*, with_next: bool = True) -> World:
        dev, prod = f"{next(_ACCOUNT_IDS):012d}", f"{next(_ACCOUNT_IDS):012d}"
        path = _write_config(tmp_path, moto_sts, key_files.section(with_next=with_next), dev, prod)
        config = load_config(path, env={})
        trusts = {t.account_id: t for t in plan(mapping_snapshot(config)[0], broker_side(config))}
        access = IamAccess(IamAccessConfig(assume_role=DOCTOR_ROLE, endpoint_url=moto_sts), session_name="setup")
        for account, trust in trusts.items():
            deploy(access.client(account), trust)
        return World(path, dev, prod, trusts, access)

    return build


@pytest.fixture
def world(world_with: Callable[..., World]) -> World:
    return world_with()


def test_a_correct_setup_is_all_ok(world: World) -> None:
    reports = world.run()
    assert [r.account_id for r in reports] == sorted([world.dev, world.prod])
    checks = {r.account_id: [(c.subject, c.severity, c.code) for c in r.checks] for r in reports}
    assert checks[world.dev] == [
        ("saml-provider/broker", "ok", "provider.ok"),
        ("role/Admin", "ok", "trust.ok"),
        ("role/audit/ReadOnly", "ok", "trust.ok"),
    ]
    assert checks[world.prod] == [
        ("oidc-provider/broker.example.com", "ok", "provider.ok"),
        ("role/Deployer", "ok", "trust.ok"),
    ]


def test_provider_missing(world: World) -> None:
    world.iam(world.dev).delete_saml_provider(SAMLProviderArn=world.trusts[world.dev].provider.arn)
    assert world.problems() == [(world.dev, "saml-provider/broker", "provider.missing")]


def test_metadata_with_another_certificate(world_with: Callable[..., World], tmp_path: Path) -> None:
    world = world_with(with_next=False)
    key, cert, _ = generate_keypair(tmp_path / "other", name="other")
    other = make_idp(load_keyring(KeysConfig(current=KeyFiles(key=key, cert=cert))))
    world.iam(world.dev).update_saml_provider(SAMLProviderArn=world.trusts[world.dev].provider.arn,
                                              SAMLMetadataDocument=other.metadata().decode())
    assert world.problems() == [(world.dev, "saml-provider/broker", "saml.current_key_missing")]


def test_metadata_with_a_dtd_is_refused_unread(world: World) -> None:
    provider = world.trusts[world.dev].provider
    assert isinstance(provider, SamlProvider)
    body = provider.metadata.split("?>", 1)[-1]  # the broker's own metadata, with an entity declared before it
    world.iam(world.dev).update_saml_provider(
        SAMLProviderArn=provider.arn, SAMLMetadataDocument='<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>' + body)
    assert world.problems() == [(world.dev, "saml-provider/broker", "saml.metadata_unreadable")]


def test_metadata_without_the_next_certificate_is_a_warning_before_the_switch(
        world: World, key_files: KeyFilesOnDisk) -> None:
    current_only = make_idp(load_keyring(key_files.config(with_next=False)))
    world.iam(world.dev).update_saml_provider(SAMLProviderArn=world.trusts[world.dev].provider.arn,
                                              SAMLMetadataDocument=current_only.metadata().decode())
    (report,) = world.run("dev")
    assert [(c.severity, c.code) for c in report.checks if c.severity != "ok"] == [("warning", "saml.next_key_missing")]
    assert report.severity == "warning"


def _actions(*kept: str) -> Callable[[dict[str, Any]], None]:
    def change(policy: dict[str, Any]) -> None:
        policy["Statement"][0]["Action"] = list(kept)
    return change


def _aud(value: str) -> Callable[[dict[str, Any]], None]:
    def change(policy: dict[str, Any]) -> None:
        policy["Statement"][0]["Condition"] = {"StringEquals": {"SAML:aud": value}}
    return change


def _deny(policy: dict[str, Any]) -> None:
    principal = policy["Statement"][0]["Principal"]
    policy["Statement"].append({"Sid": "NoTags", "Effect": "Deny", "Principal": principal, "Action": "sts:TagSession"})


def _other_provider(policy: dict[str, Any]) -> None:
    arn = policy["Statement"][0]["Principal"]["Federated"]
    policy["Statement"][0]["Principal"] = {"Federated": arn.replace("saml-provider/broker", "saml-provider/okta")}


@pytest.mark.parametrize(("change", "code", "named"), [
    (_actions("sts:AssumeRoleWithSAML", "sts:SetSourceIdentity"), "trust.action_missing", "sts:TagSession"),
    (_actions("sts:AssumeRoleWithSAML", "sts:TagSession"), "trust.action_missing", "sts:SetSourceIdentity"),
    (_aud("https://signin.amazonaws-us-gov.com/saml"), "trust.audience", "https://signin.aws.amazon.com/saml"),
    (_deny, "trust.denied", "NoTags"),
    (_other_provider, "trust.other_provider", "saml-provider/okta"),
], ids=["tag-session-missing", "set-source-identity-missing", "wrong-saml-aud", "deny-statement", "other-provider"])
def test_a_wrong_trust_policy(world: World, change: Callable[[dict[str, Any]], None], code: str, named: str) -> None:
    world.set_trust(world.dev, "Admin", change)
    reports = world.run()
    wrong = [c for r in reports for c in r.checks if c.severity != "ok"]
    assert [(c.subject, c.code) for c in wrong] == [("role/Admin", code)]
    assert named in wrong[0].reason and wrong[0].fix
    assert [r.severity for r in reports if r.account_id == world.dev] == ["error"]


def test_max_session_duration_shorter_than_the_mapping_cap(world: World) -> None:
    world.iam(world.dev).update_role(RoleName="Admin", MaxSessionDuration=3600)
    assert world.problems() == [(world.dev, "role/Admin", "role.max_session_too_short")]


def test_role_missing(world: World) -> None:
    world.iam(world.prod).delete_role(RoleName="Deployer")
    assert world.problems() == [(world.prod, "role/Deployer", "role.missing")]


def test_role_at_another_path(world: World) -> None:
    iam = world.iam(world.dev)
    policy = json.dumps(next(r.policy for r in world.trusts[world.dev].roles if r.name == "ReadOnly"))
    iam.delete_role(RoleName="ReadOnly")
    iam.create_role(RoleName="ReadOnly", Path="/", AssumeRolePolicyDocument=policy, MaxSessionDuration=3600)
    assert world.problems() == [(world.dev, "role/audit/ReadOnly", "role.path_mismatch")]


def test_oidc_audience_missing(world: World) -> None:
    iam = world.iam(world.prod)  # (moto's RemoveClientIDFromOpenIDConnectProvider fails: created anew)
    iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=world.trusts[world.prod].provider.arn)
    iam.create_open_id_connect_provider(Url="https://broker.example.com", ClientIDList=["sts.amazonaws.com"])
    assert world.problems() == [(world.prod, "oidc-provider/broker.example.com", "oidc.audience_missing")]


def test_oidc_thumbprints_are_said_to_be_unchecked(world: World) -> None:
    iam = world.iam(world.prod)
    iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=world.trusts[world.prod].provider.arn)
    iam.create_open_id_connect_provider(Url="https://broker.example.com", ClientIDList=["prod-client"],
                                        ThumbprintList=["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"])
    (report,) = world.run("prod")
    assert report.severity == "ok"
    assert "1 thumbprint(s) are not compared" in report.checks[0].reason


def test_orphan_role(world: World) -> None:
    admin = next(r.policy for r in world.trusts[world.dev].roles if r.name == "Admin")
    world.iam(world.dev).create_role(RoleName="Legacy", AssumeRolePolicyDocument=json.dumps(admin))
    reports = world.run()
    wrong = [(r.account_id, c.subject, c.severity, c.code) for r in reports for c in r.checks if c.severity != "ok"]
    assert wrong == [(world.dev, "role/Legacy", "warning", "role.orphan")]


# ---- access denied in one account (moto's IAM-like access control) ----

READ_ONLY = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Resource": "*",
    "Action": ["iam:GetSAMLProvider", "iam:GetOpenIDConnectProvider", "iam:GetRole", "iam:ListRoles"]}]}
ANYONE = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}]}


@pytest.fixture
def enforced_auth(moto_sts: str) -> Iterator[None]:
    """moto checks every request against IAM policies (its "IAM-like Access Control"), then stops."""
    httpx.post(f"{moto_sts}/moto-api/reset-auth", content=b"0").raise_for_status()
    try:
        yield
    finally:
        httpx.post(f"{moto_sts}/moto-api/reset-auth", content=b"inf").raise_for_status()


def test_access_denied_in_one_account_is_that_accounts_finding_only(
        world: World, moto_sts: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    for account, allowed in ((world.dev, True), (world.prod, False)):
        iam = world.iam(account)
        iam.create_role(RoleName="BrokerDoctor", AssumeRolePolicyDocument=json.dumps(ANYONE))
        if allowed:  # prod's audit role exists but may read nothing
            iam.put_role_policy(RoleName="BrokerDoctor", PolicyName="read", PolicyDocument=json.dumps(READ_ONLY))
    home = IamAccess(IamAccessConfig(endpoint_url=moto_sts), session_name="setup").client("123456789012")
    user = f"auditor-{world.dev}"
    home.create_user(UserName=user)
    home.put_user_policy(UserName=user, PolicyName="assume", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}))
    key = home.create_access_key(UserName=user)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    request.getfixturevalue("enforced_auth")
    reports = {r.account_id: r for r in world.run()}
    assert [(c.subject, c.code) for c in reports[world.prod].checks] == [("account", "access.denied")]
    assert "BrokerDoctor" in reports[world.prod].checks[0].fix
    assert reports[world.dev].severity == "ok" and len(reports[world.dev].checks) == 3


# ---- the command ----


def test_command_table_json_and_exit_codes(world: World) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["doctor", "--config", str(world.path)])
    assert ok.exit_code == 0, ok.output
    assert f"✔ dev ({world.dev})" in ok.stdout and "✔ role/audit/ReadOnly" in ok.stdout
    assert "✘" not in ok.stdout and "0 error(s), 0 warning(s), 5 ok" in ok.stdout

    world.iam(world.prod).delete_role(RoleName="Deployer")
    broken = runner.invoke(cli, ["doctor", "--config", str(world.path), "--json"])
    assert broken.exit_code == 1, broken.output
    body = json.loads(broken.stdout)
    assert body["summary"] == {"accounts": 2, "ok": 4, "warning": 0, "error": 1, "severity": "error"}
    prod = next(a for a in body["accounts"] if a["account"] == world.prod)
    assert prod["alias"] == "prod" and prod["severity"] == "error"
    assert prod["checks"][1] == {"severity": "error", "code": "role.missing", "subject": "role/Deployer",
                                 "reason": "the account has no role Deployer",
                                 "fix": "create it with the trust policy aws-setup generates, or remove it from the mapping"}

    table = runner.invoke(cli, ["doctor", "--config", str(world.path), "--account", "prod"])
    assert table.exit_code == 1
    assert f"✘ prod ({world.prod})" in table.stdout and "✘ role/Deployer" in table.stdout
    assert "fix: create it with the trust policy aws-setup generates" in table.stdout
    assert "dev (" not in table.stdout  # only the account asked for

    assert runner.invoke(cli, ["doctor", "--config", str(world.path), "--account", "dev"]).exit_code == 0
    unknown = runner.invoke(cli, ["doctor", "--config", str(world.path), "--account", "staging"])
    assert unknown.exit_code == 2
    assert "no account 'staging'" in unknown.stderr and "dev" in unknown.stderr
    missing = runner.invoke(cli, ["doctor", "--config", str(world.path.with_name("nope.yaml"))])
    assert missing.exit_code == 2


# ---- the admin API: GET /api/v1/admin/doctor ----


def test_admin_api_runs_the_checks_and_reuses_each_accounts_report(
        world: World, app_factory: Callable[..., Any], admin_headers: dict[str, str]) -> None:
    client = app_factory(load_config(world.path, env={}))

    def get(query: str = "", **options: Any) -> Any:
        return client.get(f"/api/v1/admin/doctor{query}", headers=options.get("headers", admin_headers))

    first = get()
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["summary"] == {"accounts": 2, "ok": 5, "warning": 0, "error": 0, "severity": "ok"}
    checked_at = {a["account"]: a["checked_at"] for a in body["accounts"]}

    world.iam(world.prod).delete_role(RoleName="Deployer")
    again = get().json()  # cached: IAM is not asked again within doctor.cache_seconds
    assert again["summary"]["severity"] == "ok"
    assert {a["account"]: a["checked_at"] for a in again["accounts"]} == checked_at

    # a mapping change makes the account's plan another one: checked afresh, at once
    assert client.post("/api/v1/admin/accounts/dev/roles", json={"name": "Auditor"},
                       headers=admin_headers).status_code == 201
    dev = get("?account=dev").json()
    assert [(c["subject"], c["code"]) for c in dev["accounts"][0]["checks"] if c["severity"] != "ok"] == [
        ("role/Auditor", "role.missing")]
    assert get("?account=prod").json()["summary"]["severity"] == "ok"  # still the cached report

    unknown = get("?account=staging")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    assert get(headers={}).status_code == 401


def test_admin_api_without_a_cache_asks_iam_every_time(
        world: World, app_factory: Callable[..., Any], admin_headers: dict[str, str]) -> None:
    config = load_config(world.path, env={})
    client = app_factory(config.model_copy(update={"doctor": config.doctor.model_copy(update={"cache_seconds": 0})}))
    assert client.get("/api/v1/admin/doctor", headers=admin_headers).json()["summary"]["severity"] == "ok"
    world.iam(world.prod).delete_role(RoleName="Deployer")
    body = client.get("/api/v1/admin/doctor?account=prod", headers=admin_headers).json()
    assert body["summary"]["severity"] == "error"
    assert [c["code"] for c in body["accounts"][0]["checks"]] == ["provider.ok", "role.missing"]


# ---- encrypted assertions: moto's IAM does not model AssertionEncryptionMode, PrivateKeyList or
# SAMLProviderUUID, so here GetSAMLProvider answers through botocore's Stubber, which checks each
# answer against IAM's own service model (the shapes AWS sends), on a real botocore IAM client.

PROVIDER_UUID = "A1B2C3D4E5F6A1B2C3D4E5F6"
METADATA = ("<md:EntityDescriptor xmlns:md='urn:oasis:names:tc:SAML:2.0:metadata' entityID='x'>"
            f"<!-- {'padding to IAM minimum metadata length ' * 30} --></md:EntityDescriptor>")


def _encrypting(mode: str | None) -> AccountTrust:
    arn = "arn:aws:iam::730000000001:saml-provider/broker"
    return AccountTrust(account_id="730000000001", alias=None, partition="aws", roles=(), provider=SamlProvider(
        name="broker", arn=arn, metadata=METADATA, assertion_encryption_mode=mode,
        provider_id=PROVIDER_UUID if mode else None))


def _provider_codes(trust: AccountTrust, **answer: Any) -> list[str]:
    import botocore.session
    from botocore.stub import Stubber

    iam = botocore.session.Session().create_client("iam", region_name="us-east-1", aws_access_key_id="x",
                                                   aws_secret_access_key="x")
    with Stubber(iam) as stub:
        stub.add_response("get_saml_provider", {"SAMLMetadataDocument": METADATA, **answer},
                          {"SAMLProviderArn": trust.provider.arn})
        broker = BrokerSide(issuer="https://broker.example.com", saml_metadata=METADATA)
        return [c.code for c in provider_checks(iam, trust, broker)]


KEY = [{"KeyId": "KEY0123456789ABCDEFGHIJ", "Timestamp": "2026-12-01T00:00:00Z"}]


def test_an_encrypting_account_whose_provider_decrypts_is_ok() -> None:
    trust = _encrypting("Required")
    assert _provider_codes(trust, AssertionEncryptionMode="Required", PrivateKeyList=KEY,
                           SAMLProviderUUID=PROVIDER_UUID) == ["provider.ok"]


@pytest.mark.parametrize(("mode", "answer", "codes"), [
    ("Required", {"AssertionEncryptionMode": "Required", "SAMLProviderUUID": PROVIDER_UUID},
     ["saml.private_key_missing"]),
    ("Required", {"PrivateKeyList": KEY, "SAMLProviderUUID": PROVIDER_UUID}, ["saml.encryption_off"]),
    ("Required", {"AssertionEncryptionMode": "Allowed", "PrivateKeyList": KEY, "SAMLProviderUUID": PROVIDER_UUID},
     ["saml.encryption_not_required"]),
    ("Allowed", {"AssertionEncryptionMode": "Allowed", "PrivateKeyList": KEY, "SAMLProviderUUID": "F" * 24},
     ["saml.provider_id_mismatch"]),
    (None, {"AssertionEncryptionMode": "Required", "PrivateKeyList": KEY}, ["saml.encryption_required"]),
    (None, {"AssertionEncryptionMode": "Allowed", "PrivateKeyList": KEY}, ["provider.ok"]),
])
def test_encryption_settings_that_break_or_weaken_sign_in(mode: str | None, answer: dict[str, Any],
                                                         codes: list[str]) -> None:
    assert _provider_codes(_encrypting(mode), **answer) == codes


@pytest.mark.usefixtures("credentials")
def test_a_report_that_iam_could_not_be_read_is_kept_only_briefly(moto_sts: str) -> None:
    """The admin API's cache keeps a good report for cache_seconds, an access failure 30 s at most:
    a passing throttle or outage does not show for minutes, and polling does not add to it."""
    from broker.aws.doctor_cache import ACCESS_RETRY_SECONDS, DoctorOnDemand, ReportCache
    from broker.state.memory import MemoryState

    # no assume_role and moto's default account's credentials: account 740000000001 is out of reach
    access = IamAccess(IamAccessConfig(endpoint_url=moto_sts), session_name="broker-doctor")
    provider = SamlProvider(name="broker", arn="arn:aws:iam::740000000001:saml-provider/broker", metadata=METADATA)
    trust = AccountTrust(account_id="740000000001", alias=None, partition="aws", roles=(), provider=provider)
    now = [1000.0]
    cache = ReportCache(MemoryState(clock=lambda: now[0]), seconds=300)
    doctor = DoctorOnDemand(access=access, broker=BrokerSide(issuer="https://b.example.com", saml_metadata=METADATA),
                            cache=cache)
    (report,) = doctor.reports([trust])
    assert [c.code for c in report.checks] == ["access.wrong_account"]
    assert cache.get(trust) is not None  # a poll right after is answered from the cache
    now[0] += ACCESS_RETRY_SECONDS + 1
    assert cache.get(trust) is None  # then IAM is asked again (a good report would stay 300 s)


@pytest.mark.usefixtures("credentials")
def test_accounts_whose_turn_comes_after_the_run_timeout_are_not_checked() -> None:
    """A hung IAM/STS costs each account its call bounds; past doctor.run_timeout the accounts
    still waiting are reported not checked instead of each costing that again."""
    from broker.aws.doctor import check_accounts
    from tests.hung import HungServer

    hung = HungServer()
    access = IamAccess(IamAccessConfig(assume_role=DOCTOR_ROLE, endpoint_url=hung.url, connect_timeout=0.2,
                                       read_timeout=0.6, max_attempts=1, total_timeout=0.8), session_name="broker-doctor")
    trusts = [AccountTrust(account_id=account, alias=None, partition="aws", roles=(), provider=SamlProvider(
        name="broker", arn=f"arn:aws:iam::{account}:saml-provider/broker", metadata=METADATA))
        for account in ("750000000001", "750000000002", "750000000003")]
    broker = BrokerSide(issuer="https://b.example.com", saml_metadata=METADATA)
    reports = check_accounts(access, trusts, broker, max_workers=1, run_timeout=0.3)
    assert [[c.code for c in r.checks] for r in reports] == [
        ["access.unreachable"], ["access.not_checked"], ["access.not_checked"]]
    assert hung.connections == 1  # the two not checked never called AWS
