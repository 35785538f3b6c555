"""Signed IAM access per account (``broker.aws.iam_access``) against moto's IAM and STS server:
the assumed role acts in the account asked for, ambient credentials of another account are
refused instead of read as this one's, and a frozen endpoint costs a bounded time."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from broker.aws.config import IamAccessConfig
from broker.aws.iam_access import AccessProblem, IamAccess
from broker.config import load_config
from broker.errors import ConfigError
from tests.hung import HungServer

MOTO_DEFAULT_ACCOUNT = "123456789012"
TRUST = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}'


def _names(client: object) -> set[str]:
    return {r["RoleName"] for r in client.list_roles()["Roles"]}  # type: ignore[attr-defined]


@pytest.mark.usefixtures("credentials")
def test_an_assumed_role_reads_and_writes_iam_of_the_account_asked_for(moto_sts: str) -> None:
    access = IamAccess(IamAccessConfig(assume_role="arn:{partition}:iam::{account}:role/BrokerDoctor",
                                       endpoint_url=moto_sts), session_name="broker-doctor")
    assert access.role_arn("111111111111", "aws") == "arn:aws:iam::111111111111:role/BrokerDoctor"
    first = access.client("111111111111")
    first.create_role(RoleName="OnlyInFirst", AssumeRolePolicyDocument=TRUST)
    arn = first.get_role(RoleName="OnlyInFirst")["Role"]["Arn"]
    assert arn == "arn:aws:iam::111111111111:role/OnlyInFirst"
    assert "OnlyInFirst" not in _names(access.client("222222222222"))
    assert access.client("111111111111") is first  # built once


@pytest.mark.usefixtures("credentials")
def test_ambient_credentials_of_another_account_are_refused_not_read_as_this_one(moto_sts: str) -> None:
    access = IamAccess(IamAccessConfig(endpoint_url=moto_sts), session_name="broker-doctor")
    assert access.client(MOTO_DEFAULT_ACCOUNT).list_roles()["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(AccessProblem) as caught:
        access.client("111111111111")
    assert caught.value.code == "access.wrong_account"
    assert caught.value.account_id == "111111111111"
    assert MOTO_DEFAULT_ACCOUNT in caught.value.reason
    assert "assume_role" in caught.value.fix


@pytest.mark.usefixtures("credentials")
def test_a_frozen_sts_costs_a_bounded_time_and_names_the_account() -> None:
    hung = HungServer()
    config = IamAccessConfig(assume_role="arn:aws:iam::{account}:role/BrokerDoctor", endpoint_url=hung.url,
                             connect_timeout=0.2, read_timeout=0.4, max_attempts=5, total_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(AccessProblem) as caught:
        IamAccess(config, session_name="broker-doctor").client("111111111111")
    elapsed = time.monotonic() - started
    assert caught.value.code == "access.unreachable"
    assert 1 <= hung.connections < 5  # one per attempt: the deadline stopped the retries before max_attempts
    assert elapsed < 5  # generous: the point is that it ends (the figures are in bench/, not here)


def test_no_credentials_anywhere_is_a_finding_with_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: object,
                                                          moto_sts: str) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", f"{tmp_path}/none")
    monkeypatch.setenv("AWS_CONFIG_FILE", f"{tmp_path}/none")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    access = IamAccess(IamAccessConfig(assume_role="arn:aws:iam::{account}:role/BrokerDoctor",
                                       endpoint_url=moto_sts), session_name="broker-doctor")
    with pytest.raises(AccessProblem) as caught:
        access.client("111111111111")
    assert caught.value.code == "access.no_credentials"
    assert "AWS_PROFILE" in caught.value.fix


def test_an_assume_role_with_another_placeholder_is_refused_when_the_config_loads(tmp_path: Path) -> None:
    """Only {account} and {partition} are filled in: any other brace would crash every account's
    check at run time (str.format), so the configuration refuses it, naming the key."""
    path = tmp_path / "broker.yaml"
    for role in ("arn:aws:iam::{account}:role/{acct}", "arn:aws:iam::{account}:role/Doctor{"):
        path.write_text(f'server: {{public_url: "https://broker.example.com"}}\ndoctor: {{assume_role: "{role}"}}\n')
        with pytest.raises(ConfigError) as caught:
            load_config(path, env={})
        assert "doctor.assume_role" in str(caught.value)
    path.write_text('server: {public_url: "https://broker.example.com"}\n'
                    'revoke: {assume_role: "arn:{partition}:iam::{account}:role/Revoke-{account}"}\n')
    access = IamAccess(load_config(path, env={}).revoke, session_name="broker-revoke")
    assert access.role_arn("111122223333", "aws") == "arn:aws:iam::111122223333:role/Revoke-111122223333"


@pytest.mark.usefixtures("credentials")
def test_a_hung_assume_role_in_one_account_does_not_hold_up_another() -> None:
    """Accounts are checked concurrently (broker doctor): one account's frozen AssumeRole must not
    make the next account wait for it."""
    import threading

    hung = HungServer()
    config = IamAccessConfig(assume_role="arn:aws:iam::{account}:role/BrokerDoctor", endpoint_url=hung.url,
                             connect_timeout=1, read_timeout=4, max_attempts=1, total_timeout=5)
    access = IamAccess(config, session_name="broker-doctor")

    def ask(account: str) -> None:
        with contextlib.suppress(AccessProblem):
            access.client(account)

    first = threading.Thread(target=ask, args=("111111111111",), daemon=True)
    first.start()
    _wait_for(lambda: hung.connections >= 1)
    second = threading.Thread(target=ask, args=("222222222222",), daemon=True)
    second.start()
    _wait_for(lambda: hung.connections >= 2 or not first.is_alive())
    assert first.is_alive(), "the second account's AssumeRole waited for the first one's to end"
    first.join(10)
    second.join(10)


def _wait_for(condition: Callable[[], bool], seconds: float = 8) -> None:
    ends = time.monotonic() + seconds
    while not condition() and time.monotonic() < ends:
        time.sleep(0.02)
