"""Delivery formats, consumed by botocore's own providers and by a real shell."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import ContainerProvider, ProcessProvider, SharedCredentialProvider

from awsbroker import delivery
from broker.domain import TemporaryCredentials

EXPIRES = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
CREDS = TemporaryCredentials(
    access_key_id="ASIAEXAMPLEKEY12345",
    secret_access_key="wJalr'XUtn\"FEMI/$HOME`id`\\K7MDENG+bPxRfiCY",
    session_token="FwoGZXIvYXdzE//////////wEaDEXAMPLE==",
    expiration=EXPIRES,
)


def test_credential_process_json_is_what_the_aws_cli_expects() -> None:
    assert json.loads(delivery.render(CREDS, "credential_process")) == {
        "Version": 1,
        "AccessKeyId": CREDS.access_key_id,
        "SecretAccessKey": CREDS.secret_access_key,
        "SessionToken": CREDS.session_token,
        "Expiration": "2031-01-02T03:04:05Z",
    }
    assert delivery.parse_credential_process(delivery.render(CREDS, "credential_process")) == delivery.ParsedCredentials(
        CREDS.access_key_id, CREDS.secret_access_key, CREDS.session_token, CREDS.expiration)


def test_botocore_credential_process_provider_reads_it(tmp_path: Path) -> None:
    out = tmp_path / "creds.json"
    out.write_text(delivery.render(CREDS, "credential_process"))
    command = f"{sys.executable} -c \"import sys; sys.stdout.write(open('{out}').read())\""
    provider = ProcessProvider("p", load_config=lambda: {"profiles": {"p": {"credential_process": command}}})
    creds = provider.load()
    frozen = creds.get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        CREDS.access_key_id, CREDS.secret_access_key, CREDS.session_token)


def test_botocore_container_provider_reads_the_container_format() -> None:
    body = delivery.render(CREDS, "container").encode()
    assert json.loads(body)["Token"] == CREDS.session_token and "SessionToken" not in json.loads(body)
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        provider = ContainerProvider(environ={
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://127.0.0.1:{server.server_address[1]}/creds",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": "local-token",
        })
        frozen = provider.load().get_frozen_credentials()
    finally:
        server.shutdown()
        server.server_close()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        CREDS.access_key_id, CREDS.secret_access_key, CREDS.session_token)
    assert seen == ["local-token"]


def test_bash_exports_survive_quotes_dollars_and_backticks() -> None:
    script = delivery.env(CREDS, shell="bash", region="eu-west-1")
    out = subprocess.run(["bash", "-c", script + 'printf "%s\\n" "$AWS_SECRET_ACCESS_KEY" "$AWS_SESSION_TOKEN" '
                          '"$AWS_REGION" "$AWS_CREDENTIAL_EXPIRATION"'],
                         capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [CREDS.secret_access_key, CREDS.session_token, "eu-west-1", "2031-01-02T03:04:05Z"]


def test_fish_and_powershell_quoting() -> None:
    fish = delivery.env(CREDS, shell="fish")
    assert "set -gx AWS_SECRET_ACCESS_KEY 'wJalr\\'XUtn\"FEMI/$HOME`id`\\\\K7MDENG+bPxRfiCY';" in fish
    ps = delivery.env(CREDS, shell="powershell")
    assert "$Env:AWS_SECRET_ACCESS_KEY = 'wJalr''XUtn\"FEMI/$HOME`id`\\K7MDENG+bPxRfiCY'" in ps
    if shutil.which("fish"):
        out = subprocess.run(["fish", "-c", fish + "echo $AWS_SECRET_ACCESS_KEY"], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == CREDS.secret_access_key
    if shutil.which("pwsh"):
        out = subprocess.run(["pwsh", "-NoProfile", "-Command", ps + "\nWrite-Output $Env:AWS_SECRET_ACCESS_KEY"],
                             capture_output=True, text=True, check=True)
        assert out.stdout.strip() == CREDS.secret_access_key


def test_ini_profile_is_read_by_botocore(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text(delivery.render(CREDS, "ini", profile="sandbox-dev.Admin", region="eu-west-1"))
    frozen = SharedCredentialProvider(str(path), profile_name="sandbox-dev.Admin").load().get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        CREDS.access_key_id, CREDS.secret_access_key, CREDS.session_token)
    with pytest.raises(ValueError):
        delivery.ini(CREDS, profile="x]\n[default")
    with pytest.raises(ValueError):
        delivery.env(CREDS, region="eu-west-1; rm -rf /")


def test_delivery_imports_nothing_server_side() -> None:
    code = ("import sys, awsbroker.delivery; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'xmlsec', 'lxml', 'fastapi', 'sqlalchemy', "
            "'boto3', 'botocore', 'ldap3', 'starlette', 'pydantic', 'broker'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_minting_and_aws_import_no_web_framework_or_database() -> None:
    modules = ("broker.minting.factory", "broker.minting.saml_idp", "broker.minting.oidc_issuer",
               "broker.aws.factory", "broker.aws.sts", "broker.aws.signin", "broker.aws.sandbox")
    code = (f"import sys, importlib; [importlib.import_module(m) for m in {modules!r}]; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in {'fastapi', 'starlette', 'sqlalchemy'} "
            "or m.startswith(('broker.web', 'broker.db'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
