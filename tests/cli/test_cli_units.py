"""The CLI's own parts, without a broker: what it imports, its ~/.aws/config edits, its cache."""

from __future__ import annotations

import ast
import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from awsbroker import cache
from awsbroker import config as awsconfig
from awsbroker.client import EXIT_BROKER, Broker, CliError

SERVER_SIDE = ("fastapi", "starlette", "sqlalchemy", "alembic", "xmlsec", "lxml", "ldap3", "boto3", "botocore", "moto",
               "redis", "authlib", "jinja2", "psycopg", "bcrypt", "uvicorn")


def test_the_cli_imports_nothing_of_the_server_side():
    code = (
        "import sys, json, awsbroker.cli, awsbroker.serve\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    modules = json.loads(out)
    leaked = [m for m in modules if m.split(".")[0] in SERVER_SIDE]
    leaked += [m for m in modules if m.split(".")[0] == "broker"]  # the client takes nothing of the server's package
    assert leaked == []
    assert {m for m in modules if m.startswith("awsbroker")} <= {
        "awsbroker", "awsbroker.cli", "awsbroker.cache", "awsbroker.client", "awsbroker.config", "awsbroker.serve",
        "awsbroker.delivery",
    }


ROLES = [
    {"account_id": "111111111111", "account_alias": "sandbox-dev", "role_name": "Admin", "region": "eu-west-1", "cli": True},
    {"account_id": "222222222222", "account_alias": "sandbox-prod", "role_name": "Admin", "region": "us-east-1", "cli": False},
    {"account_id": "333333333333", "account_alias": None, "role_name": "ReadOnly", "region": "us-east-1", "cli": True},
]
EXISTING = """# my own settings
[default]
region = eu-central-1

[profile sandbox-dev-Admin]
output = json
credential_process = something-old

[profile personal]
aws_access_key_id = keep-me
"""


def test_configure_writes_one_profile_per_cli_role_and_leaves_the_rest_alone(tmp_path):
    path = tmp_path / ".aws" / "config"
    path.parent.mkdir()
    path.write_text(EXISTING)
    profiles = awsconfig.profiles_for(ROLES, command="awsbroker", url=None)
    assert [p.name for p in profiles] == ["sandbox-dev-Admin", "333333333333-ReadOnly"]
    assert awsconfig.write(path, profiles) is True
    text = path.read_text()
    assert "# my own settings" in text and "region = eu-central-1" in text and "aws_access_key_id = keep-me" in text
    assert "output = json" in text and "something-old" not in text
    assert text.count("[profile sandbox-dev-Admin]") == 1
    assert "credential_process = awsbroker credential-process --account sandbox-dev --role Admin" in text
    assert "[profile 333333333333-ReadOnly]" in text and "sandbox-prod" not in text
    assert awsconfig.write(path, profiles) is False  # idempotent
    assert path.read_text() == text


def test_credential_cache_is_private_and_reused_until_five_minutes_before_expiry(tmp_path, monkeypatch):
    monkeypatch.setenv("AWSBROKER_CACHE_DIR", str(tmp_path / "c"))
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    data = {"Version": 1, "AccessKeyId": "ASIA1", "SecretAccessKey": "s", "SessionToken": "t",
            "Expiration": (now + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    path = cache.credentials_path("https://b", "dev", "Admin")
    cache.save_credentials(path, data)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert cache.fresh_credentials(path, now=now) == data
    assert cache.fresh_credentials(path, now=now + timedelta(minutes=24)) == data
    assert cache.fresh_credentials(path, now=now + timedelta(minutes=25, seconds=1)) is None
    assert cache.forget_everything() == 1 and not path.exists()


def awsbroker(*args: str, home) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWSBROKER_")} | {"HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "awsbroker", *args], capture_output=True, text=True,
                          env=env, timeout=60, check=False)


def test_a_broker_url_without_a_scheme_gets_the_right_hint(tmp_path):
    local = awsbroker("roles", "--url", "127.0.0.1:8000", home=tmp_path)
    assert local.returncode == 2
    assert "the broker URL needs a scheme: did you mean http://127.0.0.1:8000?" in local.stderr
    named = awsbroker("login", "--url", "broker.example.com", home=tmp_path)
    assert named.returncode == 2 and "did you mean https://broker.example.com?" in named.stderr
    assert "did you mean http://localhost:8000?" in awsbroker("whoami", "--url", "localhost:8000", home=tmp_path).stderr


def test_configure_writes_the_sandbox_endpoint_only_when_the_broker_gives_one(tmp_path):
    sandbox = awsconfig.profiles_for(ROLES, command="/opt/awsbroker/bin/awsbroker", url=None,
                                     endpoint_url="http://127.0.0.1:8001")
    assert all(p.values["endpoint_url"] == "http://127.0.0.1:8001" for p in sandbox)
    text = awsconfig.apply("", sandbox)
    assert "[profile sandbox-dev-Admin]\ncredential_process = /opt/awsbroker/bin/awsbroker credential-process" in text
    assert "endpoint_url" not in awsconfig.apply("", awsconfig.profiles_for(ROLES, command="awsbroker", url=None))


def test_configure_runs_awsbroker_by_its_absolute_path(tmp_path, monkeypatch):
    program = tmp_path / "bin" / "awsbroker"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    monkeypatch.setattr(sys, "argv", [str(program), "configure"])
    assert awsconfig.awsbroker_command(None) == str(program)
    monkeypatch.setattr(sys, "argv", ["awsbroker", "configure"])  # started through PATH
    monkeypatch.setenv("PATH", str(program.parent))
    monkeypatch.chdir(tmp_path)
    assert awsconfig.awsbroker_command(None) == str(program)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert awsconfig.awsbroker_command(None) is None  # configure then says so (exit 2)
    assert awsconfig.awsbroker_command("my-wrapper --flag") == "my-wrapper --flag"
    assert not awsconfig.runnable("my-wrapper --flag")


def test_a_broker_answer_that_is_not_a_json_object_is_a_broker_error(tmp_path, monkeypatch):
    """What the broker's API answers is checked at the boundary: exit 7 with the path, not a crash later."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    broker = Broker("https://broker.example.com", transport=httpx.MockTransport(lambda r: httpx.Response(200, json=[])))
    with pytest.raises(CliError) as err:
        broker.start_device_login()
    assert err.value.code == EXIT_BROKER and "/oauth/device/authorization" in err.value.message
    with pytest.raises(CliError) as err:
        broker.password_login("alice", "secret")
    assert err.value.code == EXIT_BROKER and "/oauth/token" in err.value.message


def test_no_module_of_the_client_imports_the_server_package():
    """Statically, so an import inside a function (run by one command only) counts too."""
    package = Path(__file__).resolve().parents[2] / "clients" / "awsbroker" / "src" / "awsbroker"
    found: list[str] = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in {"broker", *SERVER_SIDE}]
    assert len(list(package.glob("*.py"))) >= 7 and found == []


def test_configure_run_as_python_m_awsbroker_writes_that_command(monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(Path(awsconfig.__file__).with_name("__main__.py")), "configure"])
    assert awsconfig.awsbroker_command(None) == f"{sys.executable} -m awsbroker"
