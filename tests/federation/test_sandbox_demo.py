"""The demo configuration: its own key files in its data directory, moto's STS in-process for both
federation paths, the console step on a SANDBOX page, and no secret in any log line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from broker.app import create_app
from broker.aws.partitions import partition
from broker.aws.sts import clamp_duration
from broker.cli.server import ensure_demo_keys
from broker.config import load_config
from broker.domain import Identity
from broker.minting.names import role_session_name
from tests.conftest import ROOT, require_module
from tests.federation.conftest import capture_logs, utcnow

pytestmark = pytest.mark.sts

ALICE = Identity(id="7f1c2b9e-0a4d-4c8e-9b61-3d2f5a8e4c01", username="alice",
                 attributes=(("department", ("platform",)), ("costCenter", ("1001",))))


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    require_module("moto")
    ensure_demo_keys(tmp_path)  # what `broker demo --data-dir` does first
    config = load_config(ROOT / "config" / "demo.yaml", env={"BROKER_DEMO_DIR": str(tmp_path), "BROKER_DEMO_PORT": "8123",
                                                                "BROKER_DEMO_STS_PORT": "0"})
    with capture_logs() as logged:
        app = create_app(config, env={}, configure_logging=False)
        client = TestClient(app)
        yield client, logged  # type: ignore[misc]
    app.state.services.aws.close()
    app.state.services.engine.dispose()


def test_demo_signs_with_the_key_in_its_data_directory(demo: tuple[TestClient, object], tmp_path: Path) -> None:
    client, logged = demo
    assert client.get("/readyz").json()["checks"]["keys"] == "ok"
    assert client.get("/saml/metadata").status_code == 200
    assert client.app.state.services.minting.keys.current.source == str(tmp_path / "keys" / "signing.key.pem")  # type: ignore[attr-defined]
    assert (tmp_path / "keys" / "signing.key.pem").stat().st_mode & 0o777 == 0o600
    events = [json.loads(line) for line in logged.getvalue().splitlines() if line.startswith("{")]  # type: ignore[attr-defined]
    assert not any(e["event"] == "ephemeral_signing_key" for e in events)
    assert any(e["event"] == "sts_sandbox" for e in events)


def test_both_demo_accounts_issue_sandbox_credentials_and_nothing_secret_is_logged(demo: tuple[TestClient, object]) -> None:
    client, logged = demo
    services = client.app.state.services  # type: ignore[attr-defined]
    grants = {g.account_alias: g for g in services.flow.grants_for(["aws-admins"]).grants if g.role_name == "Admin"}
    now = utcnow()
    secrets: list[str] = []

    dev = grants["sandbox-dev"]  # SAML path
    seconds = clamp_duration(grant=dev, channel="cli")
    saml = services.minting.saml.aws_response(identity=ALICE, grants=[dev], session_duration=seconds, now=now)
    creds = services.aws.sts.assume_with_saml(grant=dev, saml_assertion=saml.encoded, duration=seconds)
    assert creds.assumed_role_arn == "arn:aws:sts::111111111111:assumed-role/Admin/alice"
    secrets += [saml.encoded, creds.secret_access_key, creds.session_token]

    prod = grants["sandbox-prod"]  # web identity path
    token = services.minting.oidc.id_token(identity=ALICE, audience=prod.audience, now=now)
    creds2 = services.aws.sts.assume_with_web_identity(
        grant=prod, token=token, session_name=role_session_name(ALICE.username),
        duration=clamp_duration(grant=prod, channel="console"),
    )
    assert creds2.assumed_role_arn.startswith("arn:aws:sts::222222222222:assumed-role/Admin/")
    secrets += [token, creds2.secret_access_key, creds2.session_token]

    link = services.aws.signin.console_link(
        credentials=creds2, partition_name="aws", destination=partition("aws").console_url(region="us-east-1"),
        session_duration=3600, now=now,
    )
    page = client.get(link.url.removeprefix("http://127.0.0.1:8123"))
    assert page.status_code == 200 and "SANDBOX" in page.text
    for secret in (creds2.secret_access_key, creds2.session_token):
        assert secret not in page.text

    secrets.append(services.minting.keys.current.private_pem.decode().splitlines()[1])  # a line of the key
    text = logged.getvalue()  # type: ignore[attr-defined]
    assert text  # the broker did log (start-up, requests)
    for secret in secrets:
        assert secret not in text


def test_the_demo_sandbox_sts_answers_the_aws_sdk_on_its_documented_port(tmp_path: Path) -> None:
    """`broker demo --port N` serves moto's STS on 127.0.0.1:N+1 (BROKER_DEMO_STS_PORT): the very backend
    the broker issued from, so an SDK with those credentials is the assumed role, as on AWS."""
    require_module("moto")
    import botocore.session

    from tests.conftest import free_port

    port = free_port()
    ensure_demo_keys(tmp_path)  # what `broker demo --data-dir` does first
    config = load_config(ROOT / "config" / "demo.yaml", env={"BROKER_DEMO_DIR": str(tmp_path), "BROKER_DEMO_PORT": "8123",
                                                                "BROKER_DEMO_STS_PORT": str(port)})
    app = create_app(config, env={}, configure_logging=False)
    try:
        client = TestClient(app)
        assert client.get("/api/v1/cli-config", auth=("alice", "alice-demo-pw")).json() == {
            "sandbox": True, "endpoint_url": f"http://127.0.0.1:{port}"}
        for account, role, arn in (("sandbox-dev", "Admin", "arn:aws:sts::111111111111:assumed-role/Admin/alice"),
                                   ("sandbox-prod", "ReadOnly", "arn:aws:sts::222222222222:assumed-role/ReadOnly/alice")):
            r = client.post("/api/v1/credentials", json={"account": account, "role": role}, auth=("alice", "alice-demo-pw"))
            assert r.status_code == 200, r.text
            creds = r.json()
            sts = botocore.session.Session().create_client(
                "sts", region_name=r.headers["X-Aws-Region"], endpoint_url=f"http://127.0.0.1:{port}",
                aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"])
            assert sts.get_caller_identity()["Arn"] == arn
    finally:
        app.state.services.aws.close()
        app.state.services.engine.dispose()


def test_a_taken_sandbox_port_is_a_clear_sts_unavailable(tmp_path: Path) -> None:
    require_module("moto")
    import socket

    from broker.aws.sandbox import MotoSandbox
    from broker.errors import StsUnavailable

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        sandbox = MotoSandbox(port=taken.getsockname()[1])
        with pytest.raises(StsUnavailable, match="sts.sandbox_port"):
            sandbox.endpoint()


def test_against_real_aws_the_cli_is_told_no_endpoint(app_factory, key_files) -> None:  # type: ignore[no-untyped-def]
    import bcrypt

    user = {"username": "alice", "id": "a1b2c3d4-0000-4000-8000-000000000001",
            "password_hash": bcrypt.hashpw(b"alice-aws-pw", bcrypt.gensalt(rounds=4)).decode(), "groups": ["x"]}
    client = app_factory(keys=key_files.section(), sts={"mode": "aws"}, api={"password_login": True},
                         directory={"type": "static", "name": "people", "users": [user]})
    r = client.get("/api/v1/cli-config", auth=("alice", "alice-aws-pw"))
    assert r.status_code == 200 and r.json() == {"sandbox": False, "endpoint_url": None}
    assert client.get("/api/v1/cli-config").status_code == 401
